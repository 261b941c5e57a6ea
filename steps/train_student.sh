#!/usr/bin/env bash
# Trains a student on the hard senone labels of an alignment dir and the teacher's soft labels
# of a dump dir (steps/dump_teacher_posteriors.sh) together. The objective and its weights are
# the config's `distill:` section (kdhybrid/distill/objectives.py): multitask (Yang et al.),
# full (Chebotar & Waters), interpolation (Lee & Chang's baseline); --init-from a member's
# final.pt starts from an ensemble member. Everything else is steps/train_nnet.sh.

# Begin configuration section.
config=conf/student.yaml
num_procs=1
cmd=              # passed to steps/train_nnet.sh (e.g. steps/slurm.py: train on the cluster)
resume=false
init_from=
set_opts=
cuts=             # passed to steps/train_nnet.sh
dev_data=         # passed to steps/train_nnet.sh (its default: data/dev)
# End configuration section.

help_message="Usage: $0 [options] <data-dir> <ali-dir> <post-dir> <exp-dir>
e.g.: $0 --config conf/student.yaml data/train exp/tri1_ali exp/ensemble_logit/post_k10_train exp/student_k10
Options:
  --config <yaml>        model, training and distill options (default: $config)
  --set-opts 'k=v ...'   overrides, e.g. 'distill.soft_weight=0.5 distill.head=distill seed=2'
  --init-from <final.pt> initialise from an ensemble member of the same architecture"

echo "$0 $*"
. steps/parse_options.sh || exit 1
if [ $# -ne 4 ]; then printf '%s\n' "$help_message" 1>&2; exit 1; fi
set -euo pipefail
data=$1; ali=$2; post=$3; dir=$4
for f in $config $post/post.scp $post/post.json; do [ -f $f ] || { echo "$0: no such file $f" 1>&2; exit 1; }; done
opts=()
[ -n "$init_from" ] && opts+=(--init-from $init_from)
[ -n "$cuts" ] && opts+=(--cuts $cuts)
[ -n "$dev_data" ] && opts+=(--dev-data $dev_data)
steps/train_nnet.sh --config $config --num-procs $num_procs --cmd "$cmd" --resume $resume "${opts[@]}" \
  --set-opts "distill.posts=$post/post.scp $set_opts" $data $ali $dir

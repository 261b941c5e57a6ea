#!/usr/bin/env bash
# Dumps a unit LM's frame-wise posteriors (LM-to-AM distillation) of every frame of a data dir
# as Kaldi Posterior archives: <post-dir>/{post.JOB.ark, post.JOB.scp, post.scp, post.json,
# units.txt}. Each utterance's alignment is split into unit instances, the LM runs over them
# from a sentence start, and every frame of instance k gets the top-k of the LM's distribution
# of unit k given the units before it. Jobs are atomic and resumable: a re-run after a kill
# redoes only the jobs without dump.JOB.json. Train a head on it with the trainer's lm_heads.

# Begin configuration section.
nj=2
cmd=steps/run.py
topk=16
batch_tokens=20000
cuts=             # cuts (data/cuts/train) whose frame counts the targets are fitted to, as their labels
# End configuration section.

help_message="Usage: $0 [options] <data-dir> <lang-dir> <ali-dir> <lm-dir> <post-dir>
e.g.: $0 --topk 16 --cuts data/cuts/train data/train data/lang exp/tri1_ali exp/unit_lm/monophone exp/unit_lm/monophone/post_train
Options:
  --topk <k>     most probable units kept per frame, 0 for all (default: $topk)
  --cuts <dir>   fit the targets to these cuts' frame counts (as make_cuts fits the labels)"

echo "$0 $*"
. steps/parse_options.sh || exit 1
if [ $# -ne 5 ]; then printf '%s\n' "$help_message" 1>&2; exit 1; fi
set -euo pipefail
data=$1; lang=$2; ali=$3; lmdir=$4; dir=$5
for f in $data/text $lang/phones.txt $ali/final.pkl $ali/ali.1.gz $lmdir/unit_lm.json $lmdir/lm.pt; do
  [ -f $f ] || { echo "$0: no such file $f" 1>&2; exit 1; }
done
mkdir -p $dir/log
opts="--topk $topk --batch-tokens $batch_tokens"
[ -n "$cuts" ] && opts="$opts --cuts $cuts"
. steps/dump_jobs.sh
resumable_dump kdhybrid.bin.dump_lm_posteriors $data $dir "$opts" $lang $ali $lmdir

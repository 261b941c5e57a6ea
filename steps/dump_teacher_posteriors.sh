#!/usr/bin/env bash
# Dumps the teacher's top-k senone posteriors of every frame of a data dir as Kaldi Posterior
# archives: <post-dir>/{post.JOB.ark, post.JOB.scp, post.scp, post.json, mass_curve.png}.
# The teacher is an ensemble dir (ensemble.json) or a model dir (final.pt). Jobs are atomic
# and resumable: a re-run after a kill redoes only the jobs without dump.JOB.json.

# Begin configuration section.
nj=2
cmd=steps/run.py
topk=10           # 0: the full distribution
temperature=1.0
batch_frames=2500
from_dump=        # a finished dump of the same teacher with K >= topk: take its top k (no forward pass)
# End configuration section.

help_message="Usage: $0 [options] <data-dir> <teacher-dir> <post-dir>
e.g.: $0 --topk 10 data/train exp/ensemble_logit exp/ensemble_logit/post_k10_train
Options:
  --topk <k>          most probable pdfs kept per frame, 0 for all (default: $topk)
  --temperature <T>   softmax temperature (default: $temperature)
  --from-dump <dir>   cut a finished top-K dump (K >= k) down to top k instead of running the teacher"

echo "$0 $*"
. steps/parse_options.sh || exit 1
if [ $# -ne 3 ]; then printf '%s\n' "$help_message" 1>&2; exit 1; fi
set -euo pipefail
data=$1; teacher=$2; dir=$3
# cmvn.scp: fbank dirs; a dir of GMM-adapted features (feats_origin.json) is used as it is
for f in $data/feats.scp $([ -f $data/feats_origin.json ] || echo $data/cmvn.scp); do [ -f $f ] || { echo "$0: no such file $f" 1>&2; exit 1; }; done
[ -f $teacher/ensemble.json ] || [ -f $teacher/final.pt ] || { echo "$0: no ensemble.json or final.pt in $teacher" 1>&2; exit 1; }
mkdir -p $dir/log
opts="--topk $topk --temperature $temperature --batch-frames $batch_frames"
[ -n "$from_dump" ] && opts="$opts --from-dump $from_dump"
. steps/dump_jobs.sh
resumable_dump kdhybrid.bin.dump_teacher_posteriors $data $dir "$opts" $teacher

#!/usr/bin/env bash
# Decodes a data dir with a speaker-adapted (SAT) GMM-HMM in two passes, like Kaldi's
# steps/decode_fmllr.sh: (1) the speaker-independent final.alimdl -> <decode-dir>.si (a
# full, scored decode dir); (2) each speaker's fMLLR transform estimated from the first
# pass's best paths (silence weighted by --silence-weight) -> <decode-dir>/trans.JOB;
# (3) final.mdl on the adapted features -> <decode-dir>. Options as steps/decode.sh.

# Begin configuration section.
nj=2
cmd=steps/run.py
silence_weight=0.01
first_beam=10.0        # the speaker-independent pass's beams (Kaldi's decode_fmllr.sh: narrower,
first_max_active=2000  # it only has to find the transcript the transforms are estimated on)
scoring_opts=
decode_opts=      # passed to both passes of steps/decode.sh (e.g. "--acwt 0.1 --beam 13")
lang=data/lang    # for the silence phones
# End configuration section.

help_message="Usage: $0 [options] <graph-dir> <data-dir> <decode-dir>
e.g.: $0 --nj 2 exp/tri3/graph_tgsmall data/dev exp/tri3/decode_tgsmall_dev"

echo "$0 $*"
. steps/parse_options.sh || exit 1
if [ $# -ne 3 ]; then printf '%s\n' "$help_message" 1>&2; exit 1; fi
set -euo pipefail
graph=$1; data=$2; dir=$3
srcdir=$(dirname $dir)
for f in $srcdir/final.pkl $srcdir/final.alimdl.pkl $lang/phones/silence.csl; do
  [ -f $f ] || { echo "$0: no such file $f (a SAT model dir?)" 1>&2; exit 1; }
done
steps/decode.sh --nj $nj --cmd "$cmd" $decode_opts --beam $first_beam --max-active $first_max_active \
  --scoring-opts "$scoring_opts" --model-dir $srcdir --gmm-model final.alimdl $graph $data $dir.si
mkdir -p $dir/log
rm -f $dir/trans.*
$cmd JOB=1:$nj $dir/log/fmllr.JOB.log python -m kdhybrid.bin.est_fmllr --lattices $dir.si/lat.JOB.pt \
  --silence-weight $silence_weight $srcdir $lang $data/split$nj/JOB $dir/trans.JOB
grep -h "^est_fmllr:" $dir/log/fmllr.*.log
steps/decode.sh --nj $nj --cmd "$cmd" $decode_opts --scoring-opts "$scoring_opts" --model-dir $srcdir \
  --transform-dir $dir $graph $data $dir

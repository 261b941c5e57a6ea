#!/usr/bin/env bash
# Decodes a data dir with a GMM-HMM and Kaldi's LatticeFasterDecoder on an HCLG, in --nj
# jobs, and scores it: <decode-dir>/{best_wer,wer.json}. The model is <decode-dir>/..
# (Kaldi's convention).

# Begin configuration section.
nj=2
cmd=steps/run.py
acwt=0.1
beam=13.0
max_active=7000
# End configuration section.

help_message="Usage: $0 [options] <graph-dir> <data-dir> <decode-dir>
e.g.: $0 exp/tri1/graph_tgsmall data/dev exp/tri1/decode_tgsmall_dev"

echo "$0 $*"
. steps/parse_options.sh || exit 1
if [ $# -ne 3 ]; then printf '%s\n' "$help_message" 1>&2; exit 1; fi
set -euo pipefail
graph=$1; data=$2; dir=$3
mkdir -p $dir/log
for f in $graph/HCLG.fst $data/feats.scp $data/cmvn.scp $dir/../final.pkl; do [ -f $f ] || { echo "$0: no such file $f" 1>&2; exit 1; }; done
python -c "from kdhybrid.io.datadir import split_data; split_data('$data', $nj, per_speaker=True)"
$cmd JOB=1:$nj $dir/log/decode.JOB.log python -m kdhybrid.bin.decode_gmm --model-dir $dir/.. --acwt $acwt --beam $beam \
  --max-active $max_active $graph $data/split$nj/JOB $dir/part.JOB
python -m kdhybrid.bin.score_parts $data $dir $nj

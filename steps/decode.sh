#!/usr/bin/env bash
# Decodes a data dir with the model of <decode-dir>/.. (Kaldi's convention): final.pt (neural
# network: log posteriors - log priors), final.pkl (GMM-HMM) or ensemble.json, scaled by --acwt,
# searched over <graph-dir>'s HCLG in --nj jobs, then scored (steps/score.sh).
#   --backend k2     k2 pruned intersection with HCLG.k2.pt; lattices in <decode-dir>/lat.JOB.pt
#   --backend kaldi  Kaldi's LatticeFasterDecoder (kaldi-hmm-gmm); best paths in nbest.JOB.json.gz
# Writes <decode-dir>/{lat.JOB.pt, wer_*, scoring/, best_wer, hyp.txt, wer.json, log/} (wall times
# only in log/: log/decode.JOB.json, log/rtf.json).

# Begin configuration section.
nj=2
cmd=steps/run.py
backend=k2
acwt=0.1
beam=13.0
lattice_beam=6.0
max_active=7000
min_active=200
batch_frames=2500  # frames per acoustic-model batch (kdhybrid.decode.acoustic.BATCH_FRAMES)
search_frames=1500  # frames per k2 search (its memory grows with frames x max-active)
model_dir=          # default: <decode-dir>/..
gmm_model=final     # a GMM's model: final, or final.alimdl (the speaker-independent first pass of SAT)
transform_dir=      # dir with the speakers' fMLLR trans.* for a SAT model (see steps/decode_fmllr.sh)
skip_scoring=false
scoring_opts=
# End configuration section.

help_message="Usage: $0 [options] <graph-dir> <data-dir> <decode-dir>
e.g.: $0 --nj 2 exp/tri1/graph_tgsmall data/dev exp/tdnn/decode_tgsmall_dev
Options:
  --backend <k2|kaldi>   search (default: $backend)
  --acwt <float>         acoustic scale (default: $acwt)
  --beam, --lattice-beam, --max-active, --min-active   search beams (Kaldi's meanings)"

echo "$0 $*"
. steps/parse_options.sh || exit 1
if [ $# -ne 3 ]; then printf '%s\n' "$help_message" 1>&2; exit 1; fi
set -euo pipefail
graph=$1; data=$2; dir=$3
model_dir=${model_dir:-$(dirname $dir)}
for f in $graph/HCLG.fst $graph/graph.json $data/feats.scp; do [ -f $f ] || { echo "$0: no such file $f" 1>&2; exit 1; }; done
if [ ! -f $model_dir/final.pt ] && [ ! -f $model_dir/final.pkl ] && [ ! -f $model_dir/ensemble.json ]; then
  echo "$0: no model in $model_dir (final.pt, final.pkl or ensemble.json)" 1>&2; exit 1
fi
mkdir -p $dir/log
rm -f $dir/lat.*.pt $dir/nbest.*.json.gz $dir/log/decode.*.json
python -c "from kdhybrid.io.datadir import split_data; split_data('$data', $nj, per_speaker=True)"
OMP_NUM_THREADS=1 $cmd JOB=1:$nj $dir/log/decode.JOB.log python -m kdhybrid.bin.decode --job JOB --backend $backend \
  --model-dir $model_dir --gmm-model $gmm_model ${transform_dir:+--transform-dir $transform_dir} --acwt $acwt --beam $beam --lattice-beam $lattice_beam --max-active $max_active \
  --min-active $min_active --batch-frames $batch_frames --search-frames $search_frames $graph $data/split$nj/JOB $dir
$skip_scoring || steps/score.sh $scoring_opts $data $graph $dir

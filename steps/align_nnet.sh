#!/usr/bin/env bash
# Viterbi-aligns a data dir with any acoustic model (Kaldi's steps/nnet3/align.sh): a neural
# model (final.pt), an ensemble (ensemble.json) or a GMM-HMM, its scaled log-likelihoods against
# the training graphs of the transcripts (the tree of --tree-dir). Makes the numerators of
# sequence training. Writes <ali-dir>/ali.JOB.gz (transition-ids) with the tree dir's model,
# tree and phones beside them (so the dir is an ali dir like steps/align.sh's).

# Begin configuration section.
nj=2
cmd=steps/run.py
acwt=0.1
beam=10
retry_beam=40
tree_dir=     # GMM dir (final.pkl) of the model's tree and transition model; default: <src-model-dir> if it has final.pkl
# End configuration section.

help_message="Usage: $0 [options] <data-dir> <lang-dir> <src-model-dir> <ali-dir>
e.g.: $0 --nj 2 --tree-dir exp/tri1 data/train data/lang exp/tdnn exp/tdnn_ali"

echo "$0 $*"
. steps/parse_options.sh || exit 1
if [ $# -ne 4 ]; then printf '%s\n' "$help_message" 1>&2; exit 1; fi
set -euo pipefail
data=$1; lang=$2; src=$3; dir=$4
tree_dir=${tree_dir:-$src}
for f in $data/feats.scp $data/text $lang/L.fst $tree_dir/final.pkl $tree_dir/final.mdl; do
  [ -f $f ] || { echo "$0: no such file $f (--tree-dir: the GMM dir of the model's tree)" 1>&2; exit 1; }
done
if [ ! -f $src/final.pt ] && [ ! -f $src/final.pkl ] && [ ! -f $src/ensemble.json ]; then
  echo "$0: no model in $src (final.pt, final.pkl or ensemble.json)" 1>&2; exit 1
fi
mkdir -p $dir/log
for f in final.mdl final.pkl tree phones.txt; do if [ -f $tree_dir/$f ]; then cp $tree_dir/$f $dir/; fi; done
python -c "from kdhybrid.io.datadir import split_data; split_data('$data', $nj)"
echo $nj > $dir/num_jobs
OMP_NUM_THREADS=1 $cmd JOB=1:$nj $dir/log/align.JOB.log python -m kdhybrid.bin.align_nnet --acwt $acwt --beam $beam \
  --retry-beam $retry_beam $tree_dir $lang $data/split${nj}utt/JOB $src $dir/ali.JOB.gz
failed=$(grep -h "^align_nnet: done" $dir/log/align.*.log | awk '{s+=$5} END{print s+0}')
done_=$(grep -h "^align_nnet: done" $dir/log/align.*.log | awk '{s+=$3} END{print s+0}')
echo "$0: aligned $done_ utterances with $src, $failed failed (see $dir/log/align.*.log)"

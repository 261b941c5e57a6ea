#!/usr/bin/env bash
# Trains an LDA+MLLT triphone GMM-HMM like Kaldi's steps/train_lda_mllt.sh: cepstra spliced
# +-<splice-context> frames, LDA to <dim> on the pdfs of <ali-dir>'s alignments (silence
# excluded), a new tree, MLLT re-estimated on --mllt-iters (kdhybrid.gmm.lda_mllt).
# Writes final.mdl, tree, 0.mat (LDA) and final.mat (LDA+MLLT, Kaldi binary), ali.*.gz.

# Begin configuration section.
nj=2
cmd=steps/run.py
seed=1         # seeds the Gaussian mix-up (same seed and data: byte-identical model and alignments)
num_iters=35
mllt_iters=2,4,6,12
splice_context=4
dim=40
beam=20
retry_beam=100
min_count=100
# End configuration section.

help_message="Usage: $0 [options] <num-leaves> <tot-gauss> <data-dir> <lang-dir> <ali-dir> <exp-dir>
e.g.: $0 2500 15000 data/train data/lang exp/tri1_ali exp/tri2"

echo "$0 $*"
. steps/parse_options.sh || exit 1
if [ $# -ne 6 ]; then printf '%s\n' "$help_message" 1>&2; exit 1; fi
set -euo pipefail
leaves=$1; gauss=$2; data=$3; lang=$4; alidir=$5; dir=$6
for f in $data/feats.scp $data/cmvn.scp $data/text $lang/L.fst $lang/phones/roots.int $alidir/final.pkl $alidir/ali.1.gz; do
  [ -f $f ] || { echo "$0: no such file $f" 1>&2; exit 1; }
done
mkdir -p $dir/log
$cmd $dir/log/train_lda_mllt.log python -m kdhybrid.bin.train_lda_mllt --nj $nj --seed $seed --num-iters $num_iters --mllt-iters $mllt_iters --splice-context $splice_context --dim $dim --beam $beam \
  --retry-beam $retry_beam --min-count $min_count $leaves $gauss $data $lang $alidir $dir
grep "^train_lda_mllt:" $dir/log/train_lda_mllt.log

#!/usr/bin/env bash
# Trains a triphone GMM-HMM on delta features like Kaldi's steps/train_deltas.sh: a
# decision tree built from the alignments in <ali-dir> (kdhybrid.gmm.tree), alignments
# converted to the new tree, EM with realignment and mix-up to <tot-gauss>.

# Begin configuration section.
nj=2
cmd=steps/run.py
seed=1         # seeds the Gaussian mix-up (same seed and data: byte-identical model and alignments)
num_iters=25
beam=20
retry_beam=100
min_count=100
# End configuration section.

help_message="Usage: $0 [options] <num-leaves> <tot-gauss> <data-dir> <lang-dir> <ali-dir> <exp-dir>
e.g.: $0 1000 8000 data/train data/lang exp/mono exp/tri1"

echo "$0 $*"
. steps/parse_options.sh || exit 1
if [ $# -ne 6 ]; then printf '%s\n' "$help_message" 1>&2; exit 1; fi
set -euo pipefail
leaves=$1; gauss=$2; data=$3; lang=$4; alidir=$5; dir=$6
for f in $data/feats.scp $data/cmvn.scp $data/text $lang/L.fst $lang/phones/roots.int $alidir/final.pkl $alidir/ali.1.gz; do
  [ -f $f ] || { echo "$0: no such file $f" 1>&2; exit 1; }
done
mkdir -p $dir/log
$cmd $dir/log/train_deltas.log python -m kdhybrid.bin.train_deltas --nj $nj --seed $seed --num-iters $num_iters --beam $beam \
  --retry-beam $retry_beam --min-count $min_count $leaves $gauss $data $lang $alidir $dir
grep "^train_deltas:" $dir/log/train_deltas.log

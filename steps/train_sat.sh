#!/usr/bin/env bash
# Trains a speaker-adapted (SAT) triphone GMM-HMM like Kaldi's steps/train_sat.sh on the
# features of an LDA+MLLT <ali-dir> (its final.mat, and its trans.* when present): per-speaker
# fMLLR re-estimated on --fmllr-iters, a new tree (kdhybrid.gmm.sat). Writes final.mdl,
# final.alimdl (speaker-independent, for first passes), final.mat, trans.* (per speaker,
# Kaldi binary), ali.*.gz. Speakers with too little data keep the identity (named in the log).

# Begin configuration section.
nj=2
cmd=steps/run.py
seed=1         # seeds the Gaussian mix-up (same seed and data: byte-identical model and alignments)
num_iters=35
fmllr_iters=2,4,6,12
silence_weight=0.0
beam=20
retry_beam=100
min_count=100
# End configuration section.

help_message="Usage: $0 [options] <num-leaves> <tot-gauss> <data-dir> <lang-dir> <ali-dir> <exp-dir>
e.g.: $0 2500 15000 data/train data/lang exp/tri2_ali exp/tri3"

echo "$0 $*"
. steps/parse_options.sh || exit 1
if [ $# -ne 6 ]; then printf '%s\n' "$help_message" 1>&2; exit 1; fi
set -euo pipefail
leaves=$1; gauss=$2; data=$3; lang=$4; alidir=$5; dir=$6
for f in $data/feats.scp $data/cmvn.scp $data/text $lang/L.fst $lang/phones/roots.int $alidir/final.pkl $alidir/ali.1.gz $alidir/feat_opts.json; do
  [ -f $f ] || { echo "$0: no such file $f" 1>&2; exit 1; }
done
mkdir -p $dir/log
$cmd $dir/log/train_sat.log python -m kdhybrid.bin.train_sat --nj $nj --seed $seed --num-iters $num_iters --fmllr-iters $fmllr_iters --silence-weight $silence_weight --beam $beam \
  --retry-beam $retry_beam --min-count $min_count $leaves $gauss $data $lang $alidir $dir
grep "^train_sat:" $dir/log/train_sat.log

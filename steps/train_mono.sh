#!/usr/bin/env bash
# Trains a monophone GMM-HMM like Kaldi's steps/train_mono.sh: flat start (equal
# alignment), EM with realignment, Gaussian mix-up to --tot-gauss, silence boost.
# Writes <exp-dir>/{final.mdl,final.pkl,tree,ali.JOB.gz,num_jobs,phones.txt,cmvn_opts,log/}.

# Begin configuration section.
nj=2
cmd=steps/run.py
seed=1         # seeds the Gaussian mix-up (same seed and data: byte-identical model and alignments)
num_iters=30
tot_gauss=1000
boost_silence=1.25
beam=20        # wider than Kaldi's 6/40: flat-start models on this degraded multi-voice data are weak
retry_beam=100
# End configuration section.

help_message="Usage: $0 [options] <data-dir> <lang-dir> <exp-dir>
e.g.: $0 --nj 2 data/train data/lang exp/mono"

echo "$0 $*"
. steps/parse_options.sh || exit 1
if [ $# -ne 3 ]; then printf '%s\n' "$help_message" 1>&2; exit 1; fi
set -euo pipefail
data=$1; lang=$2; dir=$3
for f in $data/feats.scp $data/cmvn.scp $data/text $lang/L.fst $lang/topo $lang/phones/sets.int; do
  [ -f $f ] || { echo "$0: no such file $f" 1>&2; exit 1; }
done
mkdir -p $dir/log
$cmd $dir/log/train_mono.log python -m kdhybrid.bin.train_mono --nj $nj --seed $seed --num-iters $num_iters \
  --tot-gauss $tot_gauss --boost-silence $boost_silence --beam $beam --retry-beam $retry_beam $data $lang $dir
grep "^train_mono:" $dir/log/train_mono.log

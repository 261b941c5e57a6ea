#!/usr/bin/env bash
# Viterbi-aligns a data dir with a trained GMM-HMM (Kaldi's steps/align_si.sh):
# <ali-dir>/ali.JOB.gz (transition-ids) plus the model, tree and settings copied beside
# them. Utterances that fail to align are listed in the job logs and counted.

# Begin configuration section.
nj=2
cmd=steps/run.py
beam=10
retry_beam=40
boost_silence=1.0
# End configuration section.

help_message="Usage: $0 [options] <data-dir> <lang-dir> <src-exp-dir> <ali-dir>
e.g.: $0 --nj 2 data/train data/lang exp/tri1 exp/tri1_ali"

echo "$0 $*"
. steps/parse_options.sh || exit 1
if [ $# -ne 4 ]; then printf '%s\n' "$help_message" 1>&2; exit 1; fi
set -euo pipefail
data=$1; lang=$2; srcdir=$3; dir=$4
for f in $data/feats.scp $data/cmvn.scp $data/text $lang/L.fst $srcdir/final.pkl $srcdir/feat_opts.json; do
  [ -f $f ] || { echo "$0: no such file $f" 1>&2; exit 1; }
done
mkdir -p $dir/log
for f in final.mdl final.pkl tree phones.txt cmvn_opts feat_opts.json; do cp $srcdir/$f $dir/; done
[ -f $srcdir/final.mat ] && cp $srcdir/final.mat $dir/
if [ -f $srcdir/final.alimdl ]; then
  echo "$0: $srcdir is speaker-adapted (SAT): align it with steps/align_fmllr.sh" 1>&2; exit 1
fi
python -c "from kdhybrid.io.datadir import split_data; split_data('$data', $nj)"
echo $nj > $dir/num_jobs
$cmd JOB=1:$nj $dir/log/align.JOB.log python -m kdhybrid.bin.align_gmm --beam $beam --retry-beam $retry_beam \
  --boost-silence $boost_silence $dir $lang $data/split${nj}utt/JOB $dir/ali.JOB.gz
failed=$(grep -h "^align_gmm: done" $dir/log/align.*.log | awk '{s+=$5} END{print s+0}')
done_=$(grep -h "^align_gmm: done" $dir/log/align.*.log | awk '{s+=$3} END{print s+0}')
echo "$0: aligned $done_ utterances, $failed failed (see $dir/log/align.*.log)"

#!/usr/bin/env bash
# Aligns a data dir with a speaker-adapted (SAT) GMM-HMM, like Kaldi's steps/align_fmllr.sh:
# per job (speakers never straddle jobs) a first pass with the speaker-independent
# final.alimdl, each speaker's fMLLR estimated from it (silence not counted), then the
# final alignment with final.mdl on the adapted features. Writes <ali-dir>/ali.JOB.gz and
# trans.JOB (Kaldi binary) plus the model files; failed utterances are named and counted.

# Begin configuration section.
nj=2
cmd=steps/run.py
beam=10
retry_beam=40
boost_silence=1.0
# End configuration section.

help_message="Usage: $0 [options] <data-dir> <lang-dir> <src-exp-dir> <ali-dir>
e.g.: $0 --nj 2 data/train data/lang exp/tri3 exp/tri3_ali"

echo "$0 $*"
. steps/parse_options.sh || exit 1
if [ $# -ne 4 ]; then printf '%s\n' "$help_message" 1>&2; exit 1; fi
set -euo pipefail
data=$1; lang=$2; srcdir=$3; dir=$4
for f in $data/feats.scp $data/cmvn.scp $data/text $lang/L.fst $srcdir/final.pkl $srcdir/final.alimdl.pkl $srcdir/feat_opts.json; do
  [ -f $f ] || { echo "$0: no such file $f" 1>&2; exit 1; }
done
mkdir -p $dir/log
rm -f $dir/trans.* $dir/ali.*.gz $dir/ali_si.*.gz
for f in final.mdl final.pkl final.alimdl final.alimdl.pkl tree phones.txt cmvn_opts feat_opts.json final.mat; do
  [ -f $srcdir/$f ] && cp $srcdir/$f $dir/
done
python -c "from kdhybrid.io.datadir import split_data; split_data('$data', $nj, per_speaker=True)"
sdata=$data/split$nj
echo $nj > $dir/num_jobs
opts="--beam $beam --retry-beam $retry_beam --boost-silence $boost_silence"
$cmd JOB=1:$nj $dir/log/align_si.JOB.log python -m kdhybrid.bin.align_gmm $opts --gmm-model final.alimdl \
  $dir $lang $sdata/JOB $dir/ali_si.JOB.gz
$cmd JOB=1:$nj $dir/log/fmllr.JOB.log python -m kdhybrid.bin.est_fmllr --alignments $dir/ali_si.JOB.gz \
  --silence-weight 0.0 $dir $lang $sdata/JOB $dir/trans.JOB
$cmd JOB=1:$nj $dir/log/align.JOB.log python -m kdhybrid.bin.align_gmm $opts --transform-dir $dir \
  $dir $lang $sdata/JOB $dir/ali.JOB.gz
rm -f $dir/ali_si.*.gz
grep -h "^est_fmllr:" $dir/log/fmllr.*.log
failed=$(grep -h "^align_gmm: done" $dir/log/align.*.log | awk '{s+=$5} END{print s+0}')
done_=$(grep -h "^align_gmm: done" $dir/log/align.*.log | awk '{s+=$3} END{print s+0}')
echo "$0: aligned $done_ utterances, $failed failed (see $dir/log/align.*.log)"

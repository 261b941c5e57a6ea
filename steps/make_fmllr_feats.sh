#!/usr/bin/env bash
# Writes a data dir of a GMM system's speaker-adapted features for neural models, like Kaldi's
# steps/nnet/make_fmllr_feats.sh: spliced cepstra -> LDA+MLLT (<gmm-dir>/final.mat) -> each
# speaker's fMLLR transform from --transform-dir (steps/align_fmllr.sh's for training data,
# steps/decode_fmllr.sh's for test data: adaptation to the first-pass transcript), stored as
# <feat-dir>/feats_<name>.JOB.{ark,scp}. <tgt-data-dir> gets the source's tables and the new
# feats.scp, utt2num_frames and frame_shift, and no cmvn.scp: the features are used as they are
# (the fMLLR transform already normalises each speaker; Kaldi's nnet1 applies no CMVN either).
# Without --transform-dir: the speaker-independent LDA+MLLT features.

# Begin configuration section.
nj=2
cmd=steps/run.py
transform_dir=
# End configuration section.

help_message="Usage: $0 [options] <tgt-data-dir> <src-data-dir> <gmm-dir> <log-dir> <feat-dir>
e.g.: $0 --transform-dir exp/tri3_ali data-fmllr-tri3/train data/train exp/tri3 exp/make_fmllr/train fmllr
Options:
  --nj <nj>                 parallel jobs, split by speaker (default: $nj)
  --cmd <cmd>               how to run jobs (default: $cmd)
  --transform-dir <dir>     the speakers' fMLLR transforms trans.* (default: none, LDA+MLLT only)"

echo "$0 $*"
. steps/parse_options.sh || exit 1
if [ $# -ne 5 ]; then printf '%s\n' "$help_message" 1>&2; exit 1; fi
set -euo pipefail
data=$1; src=$2; gmmdir=$3; logdir=$4; featdir=$5
name=$(basename $data)
for f in $src/feats.scp $src/cmvn.scp $gmmdir/feat_opts.json $gmmdir/final.mat; do
  [ -f $f ] || { echo "$0: no such file $f" 1>&2; exit 1; }
done
if [ -n "$transform_dir" ]; then
  ls $transform_dir/trans.* > /dev/null 2>&1 || { echo "$0: no fMLLR transforms $transform_dir/trans.*" 1>&2; exit 1; }
fi
[ "$(cd $data 2>/dev/null && pwd)" = "$(cd $src && pwd)" ] && { echo "$0: <tgt-data-dir> must differ from <src-data-dir>" 1>&2; exit 1; }
mkdir -p $logdir $featdir
featdir=$(cd $featdir; pwd)
nspk=$(wc -l < $src/spk2utt)
[ $nj -gt $nspk ] && nj=$nspk
python -c "from kdhybrid.io.datadir import split_data; split_data('$src', $nj, per_speaker=True)"
$cmd JOB=1:$nj $logdir/make_fmllr_feats_${name}.JOB.log \
  python -m kdhybrid.bin.make_fmllr_feats ${transform_dir:+--transform-dir $transform_dir} $gmmdir $src/split$nj/JOB \
    $featdir/feats_$name.JOB.ark $featdir/feats_$name.JOB.scp

# the new data dir: the source's tables, then the new features (each file through a temporary name)
rm -rf $data.tmp; mkdir -p $data.tmp
for f in $src/*; do
  case $(basename $f) in feats.scp|cmvn.scp|utt2num_frames|split*|log|data) ;; *) [ -f $f ] && cp $f $data.tmp/ ;; esac
done
for n in $(seq $nj); do cat $featdir/feats_$name.$n.scp; done | LC_ALL=C sort -k1,1 > $data.tmp/feats.scp
for n in $(seq $nj); do cat $featdir/feats_$name.$n.scp.utt2num_frames; done | LC_ALL=C sort -k1,1 > $data.tmp/utt2num_frames
echo "{\"gmm_dir\": \"$gmmdir\", \"transform_dir\": \"$transform_dir\", \"src_data\": \"$src\"}" > $data.tmp/feats_origin.json
python -m kdhybrid.bin.validate_data_dir --require-feats $data.tmp
rm -rf $data; mv $data.tmp $data
echo "$0: wrote $data ($(wc -l < $data/feats.scp) utterances, the features of $gmmdir${transform_dir:+ with the fMLLR transforms of $transform_dir})"
grep -h "^make_fmllr_feats:" $logdir/make_fmllr_feats_${name}.*.log || true

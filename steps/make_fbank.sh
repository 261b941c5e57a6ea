#!/usr/bin/env bash
# Computes Kaldi-compatible log-mel filterbank features (kaldi-native-fbank; audio read
# through lhotse) for a data dir: <fbank-dir>/raw_fbank_<name>.JOB.{ark,scp}, then
# <data-dir>/feats.scp, utt2num_frames and frame_shift. Options in Kaldi's names
# (conf/fbank.conf). Runs --nj jobs through --cmd.

# Begin configuration section.
nj=4
cmd=steps/run.py
fbank_config=conf/fbank.conf
# End configuration section.

help_message="Usage: $0 [options] <data-dir> [<log-dir> [<fbank-dir>]]
e.g.: $0 --nj 2 data/train exp/make_fbank/train fbank
Options:
  --nj <nj>                  number of parallel jobs (default: $nj)
  --cmd <cmd>                how to run jobs (default: $cmd)
  --fbank-config <config>    Kaldi fbank options (default: $fbank_config)"

echo "$0 $*"
. steps/parse_options.sh || exit 1
if [ $# -lt 1 ] || [ $# -gt 3 ]; then printf '%s\n' "$help_message" 1>&2; exit 1; fi
set -euo pipefail

data=$1
name=$(basename $data)
logdir=${2:-$data/log}
fbankdir=${3:-$data/data}

for f in $data/wav.scp $data/utt2spk $fbank_config; do
  [ -f $f ] || { echo "$0: no such file $f" 1>&2; exit 1; }
done
mkdir -p $logdir $fbankdir
fbankdir=$(cd $fbankdir; pwd)

python -m kdhybrid.bin.validate_data_dir $data
nutt=$(wc -l < $data/utt2spk)
[ $nj -gt $nutt ] && nj=$nutt
python -c "from kdhybrid.io.datadir import split_data; split_data('$data', $nj)"

$cmd JOB=1:$nj $logdir/make_fbank_${name}.JOB.log \
  python -m kdhybrid.bin.compute_fbank --config $fbank_config $data/split${nj}utt/JOB \
    $fbankdir/raw_fbank_$name.JOB.ark $fbankdir/raw_fbank_$name.JOB.scp

for n in $(seq $nj); do cat $fbankdir/raw_fbank_$name.$n.scp; done > $data/feats.scp.tmp
for n in $(seq $nj); do cat $fbankdir/raw_fbank_$name.$n.scp.utt2num_frames; done > $data/utt2num_frames.tmp
mv $data/feats.scp.tmp $data/feats.scp
mv $data/utt2num_frames.tmp $data/utt2num_frames
python -c "from kdhybrid.features.fbank import FbankConfig; print(FbankConfig.from_kaldi_conf('$fbank_config').frame_shift / 1000)" > $data/frame_shift
python -m kdhybrid.bin.validate_data_dir --require-feats $data
echo "$0: made fbank features for $name ($(wc -l < $data/feats.scp) utterances)"
grep -h "^compute_fbank:" $logdir/make_fbank_${name}.*.log || true

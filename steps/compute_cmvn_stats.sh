#!/usr/bin/env bash
# Computes per-speaker CMVN statistics (Kaldi's 2 x (dim+1) matrices) of a data dir
# with features: <cmvn-dir>/cmvn_<name>.{ark,scp} and <data-dir>/cmvn.scp.

help_message="Usage: $0 <data-dir> [<log-dir> [<cmvn-dir>]]
e.g.: $0 data/train exp/make_fbank/train fbank"

echo "$0 $*"
. steps/parse_options.sh || exit 1
if [ $# -lt 1 ] || [ $# -gt 3 ]; then printf '%s\n' "$help_message" 1>&2; exit 1; fi
set -euo pipefail
data=$1
name=$(basename $data)
logdir=${2:-$data/log}
cmvndir=${3:-$data/data}
[ -f $data/feats.scp ] || { echo "$0: no such file $data/feats.scp" 1>&2; exit 1; }
mkdir -p $logdir $cmvndir
cmvndir=$(cd $cmvndir; pwd)
python -m kdhybrid.bin.compute_cmvn_stats $data $cmvndir/cmvn_$name.ark $cmvndir/cmvn_$name.scp > $logdir/cmvn_$name.log 2>&1 \
  || { echo "$0: failed, see $logdir/cmvn_$name.log" 1>&2; cat $logdir/cmvn_$name.log 1>&2; exit 1; }
cp $cmvndir/cmvn_$name.scp $data/cmvn.scp
python -m kdhybrid.bin.validate_data_dir --require-feats $data
echo "$0: wrote $data/cmvn.scp ($(wc -l < $data/cmvn.scp) speakers)"

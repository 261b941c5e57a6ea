#!/usr/bin/env bash
# Trains a hybrid acoustic model (kdhybrid.nnet zoo) with frame cross-entropy on the senone
# labels of an alignment dir: makes lhotse cuts (features, CMVN, labels) for the training
# and dev data, then trains, data-parallel (kdhybrid.bin.launch) when --num-procs > 1: local
# processes here, or one rank per task through srun when this runs inside a Slurm job (e.g.
# --cmd "steps/slurm.py ...", which submits the training as one job of --num-procs tasks).
# Writes <exp-dir>/{final.pt,epoch-N.pt,history.json,learning_curve.png,config.json,log/}.

# Begin configuration section.
config=conf/tdnn.yaml
dev_data=data/dev
dev_ali=          # default: <ali-dir>_dev
num_procs=1       # data-parallel ranks (>1: kdhybrid.bin.launch; srun inside a Slurm job)
cmd=              # how to run the training: empty runs it here with its progress on the console;
                  # e.g. "steps/slurm.py --num-threads 2": one job (log/train_nnet.log) of
                  # --num-procs tasks on the cluster
resume=false
init_from=        # a final.pt of the same architecture (initialise from an ensemble member)
set_opts=         # space-separated key=value overrides of the config
cuts=             # a dir with train/ and dev/ cuts of exactly these data and alignments
                  # (kdhybrid.bin.make_cuts, e.g. the recipe's data/cuts); default: made in <exp-dir>
# End configuration section.

help_message="Usage: $0 [options] <data-dir> <ali-dir> <exp-dir>
e.g.: $0 --config conf/tdnn.yaml data/train exp/tri1_ali exp/tdnn
Options:
  --config <yaml>        model and training options (default: $config)
  --dev-data <dir>       dev data dir (default: $dev_data); --dev-ali <dir> its alignments
  --num-procs <n>        data-parallel processes (default: $num_procs)
  --cmd <cmd>            run the training as one job of --num-procs tasks, e.g. steps/slurm.py
                         (default: here, in the foreground)
  --resume <true|false>  continue from the last epoch checkpoint (default: $resume)"

echo "$0 $*"
. steps/parse_options.sh || exit 1
if [ $# -ne 3 ]; then printf '%s\n' "$help_message" 1>&2; exit 1; fi
set -euo pipefail
data=$1; ali=$2; dir=$3
dev_ali=${dev_ali:-${ali}_dev}
for f in $config $data/feats.scp $ali/final.mdl $ali/ali.1.gz $dev_data/feats.scp $dev_ali/ali.1.gz; do
  [ -f $f ] || { echo "$0: no such file $f" 1>&2; exit 1; }
done
mkdir -p $dir/log
if [ -n "$cuts" ]; then
  train_cuts=$cuts/train; dev_cuts=$cuts/dev
  for f in $train_cuts/cuts.jsonl.gz $dev_cuts/cuts.jsonl.gz; do [ -f $f ] || { echo "$0: no such file $f" 1>&2; exit 1; }; done
else
  train_cuts=$dir/cuts_train; dev_cuts=$dir/cuts_dev
  [ -f $train_cuts/cuts.jsonl.gz ] || python -m kdhybrid.bin.make_cuts --ali-dir $ali $data $train_cuts
  [ -f $dev_cuts/cuts.jsonl.gz ] || python -m kdhybrid.bin.make_cuts --ali-dir $dev_ali $dev_data $dev_cuts
fi
opts="--config $config"
for kv in $set_opts; do opts="$opts --set $kv"; done
$resume && opts="$opts --resume"
[ -n "$init_from" ] && opts="$opts --init-from $init_from"
if [ $num_procs -gt 1 ]; then
  launcher="python -m kdhybrid.bin.launch --nproc $num_procs -m kdhybrid.bin.train_nnet"
else
  launcher="python -m kdhybrid.bin.train_nnet"
fi
if [ -n "$cmd" ]; then
  tasks=; [ $num_procs -gt 1 ] && tasks="--num-tasks $num_procs"
  echo "$0: training through '$cmd', log in $dir/log/train_nnet.log"
  $cmd $tasks $dir/log/train_nnet.log $launcher $opts $train_cuts $dev_cuts $dir
else
  $launcher $opts $train_cuts $dev_cuts $dir 2> >(tee -a $dir/log/stderr.log | grep -v "it/s\]\|batch/s\]" 1>&2)
fi

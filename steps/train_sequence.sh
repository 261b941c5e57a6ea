#!/usr/bin/env bash
# Sequence-discriminative fine-tuning of a hybrid model (a member or a student) with sMBR, MMI
# or boosted MMI on denominator lattices (steps/make_denlats.sh) and numerator alignments
# (an ali dir of the same tree, e.g. steps/align_nnet.sh): every step rescores the stored
# lattices with the current network and takes the objective and its gradient through k2
# (kdhybrid.train.sequence). Kaldi's conventions: one silence class for sMBR, frames dropped
# for MMI, the cross-entropy regularisation, priors re-estimated at the end.
# Writes <exp-dir>/{final.pt, epoch-N.pt, history.json, sequence_curve.png, config.json, log/}.

# Begin configuration section.
criterion=smbr      # smbr | mmi | bmmi
boost=0.1           # bmmi
acwt=0.1
xent_regularize=0.1
drop_frames=true    # mmi, bmmi
one_silence_class=true  # smbr
skip_without_reference=true  # false: keep lattices without the reference path (Kaldi's acoustic-only numerator)
epochs=4
lr=0.00005          # AdamW. Chosen on dev (synth_en default tier, 4 epochs, tglarge): the fMLLR TDNN's dev WER 25.77 (CE) ->
                    # 24.58 at 1e-5 -> 24.00 at 5e-5; the essence student's 26.88 -> 25.35 -> 23.96 (~1/4 of CE's last lr, 1.9e-4)
max_duration=60     # seconds of audio a batch
seed=1
threads=0           # torch threads (0: all cores)
dev_data=           # with --graph-dir: dev WER every epoch
graph_dir=
resume=false
cuts=               # cuts of exactly <data-dir> and <ali-dir> (kdhybrid.bin.make_cuts); default: made in <exp-dir>
cmd=                # how to run the training: empty runs it here; e.g. steps/slurm.py runs it as one
                    # cluster job (one process: sequence training is not data-parallel yet)
# End configuration section.

help_message="Usage: $0 [options] <data-dir> <ali-dir> <denlats-dir> <src-model-dir> <exp-dir>
e.g.: $0 --criterion smbr --dev-data data/dev --graph-dir exp/tri1/graph_tgsmall data/train exp/tdnn_ali exp/tdnn_denlats exp/tdnn exp/tdnn_smbr
Options:
  --criterion <smbr|mmi|bmmi>  objective (default: $criterion); --boost <b> for bmmi (default: $boost)
  --acwt <float>               acoustic scale (default: $acwt)
  --xent-regularize <float>    weight of the cross-entropy term (default: $xent_regularize)
  --epochs <n>, --lr <float>   (defaults: $epochs, $lr)
  --resume <true|false>        continue from the last epoch checkpoint (default: $resume)"

echo "$0 $*"
. steps/parse_options.sh || exit 1
if [ $# -ne 5 ]; then printf '%s\n' "$help_message" 1>&2; exit 1; fi
set -euo pipefail
data=$1; ali=$2; den=$3; src=$4; dir=$5
for f in $data/feats.scp $ali/final.mdl $ali/ali.1.gz $den/denlats.json $src/final.pt; do
  [ -f $f ] || { echo "$0: no such file $f" 1>&2; exit 1; }
done
mkdir -p $dir/log
if [ -n "$cuts" ]; then
  [ -f $cuts/cuts.jsonl.gz ] || { echo "$0: no such file $cuts/cuts.jsonl.gz" 1>&2; exit 1; }
else
  cuts=$dir/cuts_train
  [ -f $cuts/cuts.jsonl.gz ] || python -m kdhybrid.bin.make_cuts --ali-dir $ali $data $cuts
fi
opts="--criterion $criterion --boost $boost --acwt $acwt --xent-regularize $xent_regularize --drop-frames $drop_frames"
opts="$opts --one-silence-class $one_silence_class --epochs $epochs --lr $lr --max-duration $max_duration --seed $seed"
opts="$opts --threads $threads --skip-without-reference $skip_without_reference"
[ -n "$dev_data" ] && [ -n "$graph_dir" ] && opts="$opts --dev-data $dev_data --graph-dir $graph_dir"
$resume && opts="$opts --resume"
if [ -n "$cmd" ]; then
  echo "$0: training through '$cmd', log in $dir/log/train_sequence.log"
  $cmd $dir/log/train_sequence.log python -m kdhybrid.bin.train_sequence $opts $cuts $ali $den $src $dir
else
  python -m kdhybrid.bin.train_sequence $opts $cuts $ali $den $src $dir
fi

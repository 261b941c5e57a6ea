#!/usr/bin/env bash
# LibriSpeech: the kdhybrid recipe for users who have the real corpus (it cannot be
# downloaded here). It differs from egs/synth_en/s5 only in its data step.
#
# Stages (./run.sh --stage N --stop-stage M):
#   0  lhotse's prepare_librispeech on $corpus -> data/{train,dev,test,test_other}, dict dir
#      (CMUdict + festival G2P), LM text ($lm_text, or the training transcripts)
# and the stages every recipe shares (steps/hybrid_recipe.sh): 1 lang, 2 LMs, 3 features,
# 4 mono, 5 tri1 + senone alignments, 6 tri1 decoding, 7 the acoustic model zoo.
#
# e.g.: ./run.sh --corpus /data/LibriSpeech --lm-text /data/librispeech-lm-norm.txt.gz

stage=0
stop_stage=12       # 13: the full distillation grid (steps/hybrid_recipe.sh)
corpus=            # the LibriSpeech dir (with train-clean-100/, dev-clean/, ...)
lm_text=
nj=$(nproc)
tri1_leaves=2500
tri1_gauss=15000
ens_criterion=ce    # stage 9's ensemble weights: ce (dev frame cross-entropy) or wer (dev WER)

. ./path.sh || exit 1
. ./cmd.sh || exit 1
. steps/parse_options.sh || exit 1
set -euo pipefail

log() { echo -e "$(date '+%Y-%m-%d %H:%M:%S') (${BASH_SOURCE[1]##*/}:${BASH_LINENO[0]}) $*"; }
. steps/stage_times.sh  # stage 0's wall time in exp/stage_times.jsonl (hybrid_recipe.sh records the rest)
[ $stage -ge 13 ] && [ $stop_stage -lt $stage ] && stop_stage=$stage  # stages 13-15 run on their own
export KDHYBRID_RUN_START=$(date +%s) KDHYBRID_RUN_STAGE=$stage  # for the wall time in RESULTS.md

if [ $stage -le 0 ] && [ $stop_stage -ge 0 ]; then
  [ -n "$corpus" ] || { echo "$0: give --corpus <LibriSpeech dir>" 1>&2; exit 1; }
  stage_begin 0 "prepare LibriSpeech from $corpus"
  local/prepare_librispeech.sh --nj $nj --lm-text "$lm_text" $corpus data
  stage_end
fi

if [ $stop_stage -ge 1 ]; then
  steps/hybrid_recipe.sh --stage $([ $stage -gt 1 ] && echo $stage || echo 1) --stop-stage $stop_stage --nj $nj \
    --train-cmd "$train_cmd" --decode-cmd "$decode_cmd" --nnet-cmd "${nnet_cmd:-}" --splits "train dev test test_other" \
    --tri1-leaves $tri1_leaves --tri1-gauss $tri1_gauss --ens-criterion $ens_criterion
fi

log "Done."

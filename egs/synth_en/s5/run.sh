#!/usr/bin/env bash
# synth_en: the main kdhybrid recipe on the embedded synthetic English corpus.
#
# Stages (run.sh --stage N --stop-stage M):
#   0  build the corpus from the Debian TTS engines and prepare it (lhotse manifests,
#      Kaldi data dirs, dict dir, LM text)

stage=0
stop_stage=100
tier=default   # corpus tier: tiny | default | large
nj=$(nproc)

. ./path.sh || exit 1
. ./cmd.sh || exit 1
. steps/parse_options.sh || exit 1
set -euo pipefail

log() { echo -e "$(date '+%Y-%m-%d %H:%M:%S') (${BASH_SOURCE[1]##*/}:${BASH_LINENO[0]}) $*"; }

if [ $stage -le 0 ] && [ $stop_stage -ge 0 ]; then
  log "Stage 0: build and prepare synth_en ($tier tier)"
  local/prepare_synth_en.sh --tier $tier --nj $nj data
fi

log "Done."

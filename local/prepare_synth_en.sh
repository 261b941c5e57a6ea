#!/usr/bin/env bash
# Builds the embedded synth_en corpus from the Debian TTS engines (LibriSpeech layout)
# and prepares it: lhotse manifests, Kaldi data dirs data/{train,dev,test,test_heldout},
# the dict dir data/local/dict (CMUdict + festival G2P) and the LM text
# data/local/lm/lm_text.txt. Idempotent: a finished stage is skipped on re-run.

# Begin configuration section.
tier=default      # tiny (~200/50/50/50 utterances), default (~2 h of training audio), large (~6 h)
seed=1
nj=$(nproc)
corpus=           # where the audio goes (default: corpus/synth_en_<tier>)
# End configuration section.

help_message="Usage: $0 [options] <data-root>
e.g.: $0 --tier tiny data
Options:
  --tier <tiny|default|large>   corpus size (default: $tier)
  --seed <int>                  corpus seed; one seed, one corpus (default: $seed)
  --nj <int>                    parallel workers (default: $nj)
  --corpus <dir>                audio output dir (default: corpus/synth_en_<tier>)"

echo "$0 $*"
. ./path.sh || exit 1
. steps/parse_options.sh || exit 1
if [ $# -ne 1 ]; then printf '%s\n' "$help_message" 1>&2; exit 1; fi
data=$1
corpus=${corpus:-corpus/synth_en_$tier}
set -euo pipefail

if [ ! -f $corpus/meta/.complete ]; then
  python -m kdhybrid.bin.build_synth_en --tier $tier --seed $seed --nj $nj $corpus
else
  echo "$0: $corpus already built"
fi
python -m kdhybrid.bin.prepare_synth_en --nj $nj $corpus $data

#!/usr/bin/env bash
# Prepares a LibriSpeech-layout corpus for the shared stages (steps/hybrid_recipe.sh):
# Kaldi data dirs data/{train,dev,test,test_other} from lhotse's prepare_librispeech,
# the dict dir (CMUdict + festival G2P) and data/local/lm/lm_text.txt.

# Begin configuration section.
nj=$(nproc)
parts="train-clean-100:train,dev-clean:dev,test-clean:test,test-other:test_other"
lm_text=     # e.g. librispeech-lm-norm.txt.gz; default: the training transcripts
# End configuration section.

help_message="Usage: $0 [options] <corpus-dir> <data-root>
e.g.: $0 --lm-text /data/librispeech-lm-norm.txt.gz /data/LibriSpeech data"

echo "$0 $*"
. ./path.sh || exit 1
. steps/parse_options.sh || exit 1
if [ $# -ne 2 ]; then printf '%s\n' "$help_message" 1>&2; exit 1; fi
set -euo pipefail
lm_opt=""; [ -n "$lm_text" ] && lm_opt="--lm-text $lm_text"
python -m kdhybrid.bin.prepare_librispeech --nj $nj --parts $parts $lm_opt $1 $2

#!/usr/bin/env bash
# Trains a Kneser-Ney word n-gram LM (ARPA) with kaldingram on LM text, words outside
# the lang dir's vocabulary mapped to its OOV word, entropy-pruned when --prune > 0;
# writes <arpa>.json with n-gram counts and perplexity/OOV rate on --dev-text files.

# Begin configuration section.
order=3
prune=0        # relative-entropy pruning threshold (e.g. 1e-7); 0 = no pruning
dev_text=      # Kaldi text file(s) for perplexity, space-separated
num_workers=2
# End configuration section.

help_message="Usage: $0 [options] <lm-text> <lang-dir> <out-arpa>
e.g.: $0 --order 3 --prune 1e-7 --dev-text data/dev/text data/local/lm/lm_text.txt data/lang data/local/lm/3gram_pruned.arpa"

echo "$0 $*"
. steps/parse_options.sh || exit 1
if [ $# -ne 3 ]; then printf '%s\n' "$help_message" 1>&2; exit 1; fi
set -euo pipefail
text=$1; lang=$2; arpa=$3
for f in $text $lang/words.txt $lang/oov.txt; do [ -f $f ] || { echo "$0: no such file $f" 1>&2; exit 1; }; done
mkdir -p $(dirname $arpa)/log
dev_opts=""; for t in $dev_text; do dev_opts="$dev_opts --dev-text $t"; done
python -m kdhybrid.bin.train_lm --order $order --prune $prune --num-workers $num_workers $dev_opts $text $lang $arpa \
  > $(dirname $arpa)/log/$(basename $arpa).log 2>&1 || { echo "$0: failed, see $(dirname $arpa)/log/$(basename $arpa).log" 1>&2; exit 1; }
grep "^train_lm:" $(dirname $arpa)/log/$(basename $arpa).log

#!/usr/bin/env bash
# Trains a Kneser-Ney word n-gram LM (ARPA) with kaldingram on LM text, words outside the LM
# vocabulary (--vocab, else the lang dir's words) mapped to the lang dir's OOV word,
# entropy-pruned when --prune > 0; with --pruned "<threshold> <arpa>" also prunes it further
# into a smaller LM (Kaldi's tgsmall from tglarge). Writes <arpa>.json for each LM (n-gram
# counts, perplexity and OOV rate on --dev-text files), --report <json> of them all, and
# prints one line a LM.

# Begin configuration section.
order=3
prune=0        # relative-entropy pruning threshold (e.g. 1e-7); 0 = no pruning
pruned=        # "<threshold> <arpa>": also prune the LM at <threshold> into <arpa>
vocab=         # the LM's vocabulary, one word a line (default: the lang dir's words.txt)
dev_text=      # Kaldi text file(s) for perplexity, space-separated
report=        # a JSON of every LM made
num_workers=2
# End configuration section.

help_message="Usage: $0 [options] <lm-text> <lang-dir> <out-arpa>
e.g.: $0 --order 3 --pruned '3e-7 data/local/lm/tgsmall.arpa' --vocab data/local/lm/vocab.txt \\
        --dev-text data/dev/text data/local/lm/lm_text.txt data/lang data/local/lm/tglarge.arpa"

echo "$0 $*"
. steps/parse_options.sh || exit 1
if [ $# -ne 3 ]; then printf '%s\n' "$help_message" 1>&2; exit 1; fi
set -euo pipefail
text=$1; lang=$2; arpa=$3
for f in $text $lang/words.txt $lang/oov.txt $vocab $dev_text; do [ -f $f ] || { echo "$0: no such file $f" 1>&2; exit 1; }; done
mkdir -p $(dirname $arpa)/log
opts=""
for t in $dev_text; do opts="$opts --dev-text $t"; done
[ -n "$pruned" ] && opts="$opts --pruned $pruned"
[ -n "$vocab" ] && opts="$opts --vocab $vocab"
[ -n "$report" ] && opts="$opts --report $report"
log=$(dirname $arpa)/log/$(basename $arpa).log
python -m kdhybrid.bin.train_lm --order $order --prune $prune --num-workers $num_workers $opts $text $lang $arpa \
  > $log 2>&1 || { echo "$0: failed, see $log" 1>&2; exit 1; }
grep "^train_lm:" $log

#!/usr/bin/env bash
# Makes <lang-test-dir>: a copy of <lang-dir> plus G.fst from an ARPA LM (kaldilm's
# arpa2fst: #0 on backoff arcs, <s> and </s> as epsilons).

help_message="Usage: $0 <lang-dir> <arpa> <lang-test-dir>
e.g.: $0 data/lang data/local/lm/3gram_pruned.arpa data/lang_test_tgsmall"

echo "$0 $*"
. steps/parse_options.sh || exit 1
if [ $# -ne 3 ]; then printf '%s\n' "$help_message" 1>&2; exit 1; fi
set -euo pipefail
for f in $1/words.txt $1/L_disambig.fst $2; do [ -f $f ] || { echo "$0: no such file $f" 1>&2; exit 1; }; done
python -m kdhybrid.bin.format_lm $1 $2 $3 2>$3.log || { cat $3.log 1>&2; exit 1; }
echo "$0: $3/G.fst:"; fstinfo $3/G.fst | grep -E "# of (states|arcs)"

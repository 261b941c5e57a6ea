#!/usr/bin/env bash
# Decodes the test sets with one model dir and rescores them with the large LM:
#   <model-dir>/decode_<graph-lm>_<set>   (steps/decode.sh, k2 lattices, LM-weight sweep)
#   <model-dir>/decode_<rescore-lm>_<set> (steps/lmrescore.sh)   when --rescore-lang is given

# Begin configuration section.
nj=2
cmd=steps/run.py
sets="dev test test_heldout"
graph_lang=data/lang_test_tgsmall
rescore_lang=data/lang_test_tglarge   # empty: no rescoring
decode_opts=
# End configuration section.

help_message="Usage: $0 [options] <graph-dir> <model-dir>
e.g.: $0 --sets 'dev test' exp/tri1/graph_tgsmall exp/tdnn"

echo "$0 $*"
. steps/parse_options.sh || exit 1
if [ $# -ne 2 ]; then printf '%s\n' "$help_message" 1>&2; exit 1; fi
set -euo pipefail
graph=$1; model=$2
g=${graph_lang##*_}; r=${rescore_lang##*_}
for x in $sets; do
  steps/decode.sh --nj $nj --cmd "$cmd" $decode_opts $graph data/$x $model/decode_${g}_$x
  if [ -n "$rescore_lang" ]; then
    steps/lmrescore.sh $graph_lang $rescore_lang data/$x $model/decode_${g}_$x $model/decode_${r}_$x
  fi
done

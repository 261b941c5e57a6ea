#!/usr/bin/env bash
# Builds the decoding graph HCLG.fst the Kaldi way (utils/mkgraph.sh): L_disambig o G,
# determinise, minimise, context (the model's tree), H, disambiguation symbols removed,
# self-loops added with --self-loop-scale. Writes <graph-dir>/{HCLG.fst,HCLG.k2.pt,words.txt,phones.txt,graph.json,log/}.

# Begin configuration section.
self_loop_scale=0.1
transition_scale=1.0
# End configuration section.

help_message="Usage: $0 [options] <lang-test-dir> <model-dir> <graph-dir>
e.g.: $0 data/lang_test_tgsmall exp/tri1 exp/tri1/graph_tgsmall"

echo "$0 $*"
. steps/parse_options.sh || exit 1
if [ $# -ne 3 ]; then printf '%s\n' "$help_message" 1>&2; exit 1; fi
set -euo pipefail
for f in $1/G.fst $1/L_disambig.fst $2/final.pkl; do [ -f $f ] || { echo "$0: no such file $f" 1>&2; exit 1; }; done
mkdir -p $3/log
python -m kdhybrid.bin.mkgraph --self-loop-scale $self_loop_scale --transition-scale $transition_scale $1 $2 $3 2>$3/log/mkgraph.log \
  || { tail $3/log/mkgraph.log 1>&2; exit 1; }

#!/usr/bin/env bash
# Scores a decode dir like Kaldi's local/score.sh: for LM weights --min-lmwt..--max-lmwt and
# each --word-ins-penalty, the best paths of the lattices (scoring/LMWT.PENALTY.tra) and their
# WER (wer_LMWT_PENALTY); the best in best_wer, hyp.txt and wer.json.

# Begin configuration section.
min_lmwt=7
max_lmwt=17
word_ins_penalty=0.0,0.5,1.0
# End configuration section.

help_message="Usage: $0 [options] <data-dir> <graph-dir> <decode-dir>
e.g.: $0 data/dev exp/tri1/graph_tgsmall exp/tdnn/decode_tgsmall_dev"

. steps/parse_options.sh || exit 1
if [ $# -ne 3 ]; then printf '%s\n' "$help_message" 1>&2; exit 1; fi
set -euo pipefail
for f in $1/text $2/words.txt; do [ -f $f ] || { echo "$0: no such file $f" 1>&2; exit 1; }; done
mkdir -p $3/log
python -m kdhybrid.bin.score --min-lmwt $min_lmwt --max-lmwt $max_lmwt --word-ins-penalty $word_ins_penalty $1 $2 $3 \
  2> >(tee $3/log/score.log 1>&2)

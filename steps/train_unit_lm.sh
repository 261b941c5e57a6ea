#!/usr/bin/env bash
# Trains a unit LM for LM-to-AM distillation (Lee & Chang): the LM text (never dev or test
# text) as monophones, senones (the ali dir's tree) or sentencepiece subwords, a small LSTM
# against a wall-clock budget with held-out perplexity, and a Kneser-Ney n-gram floor of the
# same units that the LSTM must beat; silence between words at the rates of the alignments.
# Writes <lm-dir>/{unit_lm.json, units.txt, lm.pt, floor.arpa[, sp.model]} and log/.

# Begin configuration section.
cmd=steps/run.py
unit=monophone       # monophone | senone | subword
ngram_order=3
vocab_size=500       # subword pieces
heldout_every=100
add_alignments=true  # senone: the training alignments' senone sequences join the LM text
hidden_dim=256
max_seconds=600      # the LSTM's training budget
max_train_tokens=0   # subsample to about this many units (0: all); e.g. 3000000 for senones
threads=1
# End configuration section.

help_message="Usage: $0 [options] <lm-text> <lang-dir> <ali-dir> <lm-dir>
e.g.: $0 --unit senone --max-train-tokens 3000000 data/local/lm/lm_text.txt data/lang exp/tri1_ali exp/unit_lm/senone
Options:
  --unit <kind>            monophone, senone or subword (default: $unit)
  --max-seconds <s>        wall-clock budget of the LSTM's training (default: $max_seconds)
  --vocab-size <n>         sentencepiece pieces for --unit subword (default: $vocab_size)"

echo "$0 $*"
. steps/parse_options.sh || exit 1
if [ $# -ne 4 ]; then printf '%s\n' "$help_message" 1>&2; exit 1; fi
set -euo pipefail
text=$1; lang=$2; ali=$3; dir=$4
for f in $text $lang/phones.txt $lang/phones/align_lexicon.txt $lang/topo $ali/final.pkl $ali/ali.1.gz; do
  [ -f $f ] || { echo "$0: no such file $f" 1>&2; exit 1; }
done
opts="--unit $unit --ngram-order $ngram_order --vocab-size $vocab_size --heldout-every $heldout_every --add-alignments $add_alignments"
opts="$opts --hidden-dim $hidden_dim --max-seconds $max_seconds --max-train-tokens $max_train_tokens --threads $threads"
if [ -f $dir/unit_lm.json ] && [ "$(cat $dir/train_opts 2>/dev/null)" == "$opts $text $lang $ali" ]; then
  echo "$0: $dir is complete"; exit 0
fi
mkdir -p $dir/log
echo "$opts $text $lang $ali" > $dir/train_opts
$cmd $dir/log/train_unit_lm.log python -m kdhybrid.bin.train_unit_lm --no-progress $opts $text $lang $ali $dir
grep "^train_unit_lm:" $dir/log/train_unit_lm.log

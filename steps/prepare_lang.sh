#!/usr/bin/env bash
# Makes a Kaldi lang dir (phones.txt, words.txt, topo, L.fst, L_disambig.fst, oov,
# phones/*) from a Kaldi dict dir, like Kaldi's utils/prepare_lang.sh.

# Begin configuration section.
position_dependent_phones=true
sil_prob=0.5
num_sil_states=5
num_nonsil_states=3
# End configuration section.

help_message="Usage: $0 [options] <dict-dir> <oov-word> <tmp-dir> <lang-dir>
e.g.: $0 data/local/dict \"<UNK>\" data/local/lang_tmp data/lang
Options:
  --position-dependent-phones <true|false>  word-position phone variants (default: $position_dependent_phones)
  --sil-prob <p>                            optional-silence probability between words (default: $sil_prob)
  --num-sil-states <n>                      HMM states of silence phones (default: $num_sil_states)
  --num-nonsil-states <n>                   HMM states of other phones (default: $num_nonsil_states)"

echo "$0 $*"
. steps/parse_options.sh || exit 1
if [ $# -ne 4 ]; then printf '%s\n' "$help_message" 1>&2; exit 1; fi
set -euo pipefail
dict=$1; oov=$2; tmpdir=$3; lang=$4
mkdir -p $tmpdir
python -m kdhybrid.bin.prepare_lang --position-dependent-phones $position_dependent_phones --sil-prob $sil_prob \
  --num-sil-states $num_sil_states --num-nonsil-states $num_nonsil_states $dict "$oov" $lang 2>&1 | tee $tmpdir/prepare_lang.log

#!/usr/bin/env bash
# Rescores the lattices of a decode dir with a larger LM (Kaldi's steps/lmrescore.sh): for each
# lattice an n-best list (its best path + --num-paths sampled paths), whose graph scores get
# the old LM's exact score replaced by the new LM's (both the lang dirs' G.arpa.gz); then scored
# like a decode (steps/score.sh). Writes <out-dir>/{nbest.JOB.json.gz,rescore.json,wer_*,best_wer,wer.json}.

# Begin configuration section.
num_paths=50
nbest_scale=0.5
lm_scale=1.0
cmd=steps/run.py
skip_scoring=false
scoring_opts=
# End configuration section.

help_message="Usage: $0 [options] <old-lang-dir> <new-lang-dir> <data-dir> <input-decode-dir> <output-decode-dir>
e.g.: $0 data/lang_test_tgsmall data/lang_test_tglarge data/dev exp/tdnn/decode_tgsmall_dev exp/tdnn/decode_tglarge_dev"

echo "$0 $*"
. steps/parse_options.sh || exit 1
if [ $# -ne 5 ]; then printf '%s\n' "$help_message" 1>&2; exit 1; fi
set -euo pipefail
old=$1; new=$2; data=$3; in=$4; out=$5
for f in $old/G.arpa.gz $new/G.arpa.gz $new/words.txt $data/text $in/lat.1.pt; do [ -f $f ] || { echo "$0: no such file $f" 1>&2; exit 1; }; done
mkdir -p $out/log
rm -f $out/nbest.*.json.gz $out/rescore*.json
nj=$(ls $in/lat.*.pt | wc -l)
$cmd JOB=1:$nj $out/log/lmrescore.JOB.log python -m kdhybrid.bin.lmrescore --job JOB --num-paths $num_paths \
  --nbest-scale $nbest_scale --lm-scale $lm_scale $old $new $in $out
python -m kdhybrid.bin.lmrescore --merge $nj $old $new $in $out
$skip_scoring || steps/score.sh $scoring_opts $data $new $out

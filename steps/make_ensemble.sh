#!/usr/bin/env bash
# Makes an ensemble dir (ensemble.json) from trained members: fusion of posteriors
# (Chebotar & Waters) or of logits (Yang et al.), weights by grid search on dev.
#   --criterion ce   dev frame cross-entropy over the whole weight grid (cheap)
#   --criterion wer  the --candidates best weight vectors by CE are decoded on dev
#                    (steps/decode.sh with --graph) and the lowest WER wins
# The ensemble decodes like any model: steps/decode.sh <graph> <data> <ensemble-dir>/decode_x.

# Begin configuration section.
fusion=posterior
grid_step=0.1
criterion=ce
candidates=3
share_of=0         # --criterion wer: candidates are the CE-best vector at each total weight of the last N members
                   # (e.g. the sequence-trained ones: dev frame CE alone gives them weight 0), not the --candidates best
graph=             # for --criterion wer
dev_data=data/dev
dev_cuts=data/cuts/dev  # dev cuts with the members' senone labels (the recipe's stage 5 makes them)
nj=2
cmd=steps/run.py
decode_opts=       # e.g. "--acwt 0.25 --beam 10"
scoring_opts=      # e.g. "--min-lmwt 3 --max-lmwt 17"
# End configuration section.

help_message="Usage: $0 [options] <ensemble-dir> <member-dir> [<member-dir> ...]
e.g.: $0 --fusion logit exp/ensemble_logit exp/tdnn exp/blstm exp/cnn_tdnn"

echo "$0 $*"
. steps/parse_options.sh || exit 1
if [ $# -lt 2 ]; then printf '%s\n' "$help_message" 1>&2; exit 1; fi
set -euo pipefail
dir=$1; shift
for m in "$@"; do [ -f $m/final.pt ] || { echo "$0: no such file $m/final.pt" 1>&2; exit 1; }; done
[ -f $dev_cuts/cuts.jsonl.gz ] || { echo "$0: no such file $dev_cuts/cuts.jsonl.gz" 1>&2; exit 1; }
mkdir -p $dir/log
ncand=0; [ $criterion == wer ] && ncand=$candidates
rm -rf $dir/cand.*
python -m kdhybrid.bin.make_ensemble --fusion $fusion --grid-step $grid_step --dev-cuts $dev_cuts --candidates $ncand --share-of $share_of $dir "$@" \
  2> >(tee $dir/log/make_ensemble.log 1>&2)
if [ $criterion == wer ]; then
  [ -n "$graph" ] || { echo "$0: --criterion wer needs --graph" 1>&2; exit 1; }
  for c in $dir/cand.*; do
    steps/decode.sh --nj $nj --cmd "$cmd" $decode_opts --scoring-opts "$scoring_opts" $graph $dev_data $c/decode_dev
  done
  python - $dir <<'PY'
import json, sys
from pathlib import Path
d = Path(sys.argv[1])
cands = sorted(d.glob("cand.*"), key=lambda c: json.loads((c / "decode_dev/wer.json").read_text())["wer"])
best = json.loads((cands[0] / "ensemble.json").read_text())
best["selection"].update(criterion="dev WER among the best weight vectors by dev CE" + (" (one a share of the last members)" if best["selection"].get("share_of") else ""),
                         candidates={json.dumps(json.loads((c / "ensemble.json").read_text())["weights"]): json.loads((c / "decode_dev/wer.json").read_text())["wer"] for c in cands})
(d / "ensemble.json").write_text(json.dumps(best, indent=1) + "\n")
print(f"{d}: weights {best['weights']} by dev WER")
PY
fi

#!/usr/bin/env bash
# Speed perturbation, Kaldi's utils/data/perturb_data_dir_speed_3way.sh: <dst> holds copies of
# <src> at 0.9, 1.0 and 1.1 times the speed (ids prefixed sp0.9-, sp1.0-, sp1.1-; audio through
# sox speed; each copy's speakers are new speakers). No features: make them with
# steps/make_fbank.sh and steps/compute_cmvn_stats.sh, then align the copies with the GMM
# (steps/align_fmllr.sh or steps/align.sh), as Kaldi's recipes do.

# Begin configuration section.
factors="0.9 1.0 1.1"
# End configuration section.

help_message="Usage: $0 [options] <src-data-dir> <dst-data-dir>
e.g.: $0 data/train data/train_sp
Options:
  --factors <list>   speed factors (default: \"$factors\")"

echo "$0 $*"
. steps/parse_options.sh || exit 1
if [ $# -ne 2 ]; then printf '%s\n' "$help_message" 1>&2; exit 1; fi
set -euo pipefail
python -m kdhybrid.bin.perturb_data_dir_speed --factors "$factors" $1 $2

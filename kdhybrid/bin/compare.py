"""Exp dirs side by side, in the spirit of Kaldi's compare_wer.sh: the WER of each set and LM
(test sets at dev's best LM weight and insertion penalty), the dev frame accuracy, the
parameters and the training time, one column a system.

e.g.: python -m kdhybrid.bin.compare --sets "dev test" --lms "tgsmall tglarge" exp/tri3 exp/tdnn exp/ensemble_logit
"""
import argparse
import sys

from kdhybrid.distill.results import compare_table


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--sets", default="dev test", help="test sets, the tuning set first (default: 'dev test')")
    p.add_argument("--lms", default="tgsmall tglarge", help="decode dirs' LM names (default: 'tgsmall tglarge')")
    p.add_argument("--prefix", default="decode", help="decode dirs are <exp>/<prefix>_<lm>_<set> (default: decode)")
    p.add_argument("--tune-set", default="dev", help="the set whose best LM weight the others are scored at (default: dev)")
    p.add_argument("exp_dirs", nargs="+")
    a = p.parse_args()
    sys.stdout.write(compare_table(a.exp_dirs, a.sets.split(), a.lms.split(), a.prefix, a.tune_set))
    return 0


if __name__ == "__main__":
    sys.exit(main())

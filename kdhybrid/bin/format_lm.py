"""Make data/lang_test_<name>: the lang dir plus G.fst from an ARPA LM (kaldilm arpa2fst).

e.g.: python -m kdhybrid.bin.format_lm data/lang data/local/lm/3gram_pruned.arpa data/lang_test_tgsmall
"""
import argparse
import sys

from kdhybrid.lang.ngram import format_lm


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("lang_dir")
    p.add_argument("arpa")
    p.add_argument("lang_test_dir")
    a = p.parse_args()
    format_lm(a.lang_dir, a.arpa, a.lang_test_dir)
    print(f"format_lm: wrote {a.lang_test_dir}/G.fst")
    return 0


if __name__ == "__main__":
    sys.exit(main())

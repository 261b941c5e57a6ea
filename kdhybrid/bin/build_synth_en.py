"""Build the embedded synth_en corpus (LibriSpeech layout) from the Debian TTS engines.

e.g.: python -m kdhybrid.bin.build_synth_en --tier tiny --seed 1 --nj 2 corpus/synth_en
"""
import argparse
import logging
import sys

from kdhybrid.data.synth_corpus import TIERS, build_corpus, format_stats
from kdhybrid.data.text import MissingToolError


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("corpus_dir")
    p.add_argument("--tier", choices=sorted(TIERS), default="default")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--nj", type=int, default=None, help="worker processes (default: all cores)")
    args = p.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    try:
        stats = build_corpus(args.corpus_dir, args.tier, args.seed, args.nj)
    except MissingToolError as e:
        print(f"build_synth_en: {e}", file=sys.stderr)
        return 1
    print(format_stats(stats))
    for split, s in stats["splits"].items():
        for r in s["skipped_utts"]:
            print(f"skipped {split} {r['utt_id']}: {r['error']}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())

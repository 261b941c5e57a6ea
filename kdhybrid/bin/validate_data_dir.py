"""Validate a Kaldi data dir (like utils/validate_data_dir.sh); errors name file and line.

e.g.: python -m kdhybrid.bin.validate_data_dir --require-feats data/train
"""
import argparse
import sys

from kdhybrid.io.datadir import validate_data_dir
from kdhybrid.io.tables import KaldiFormatError


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("data_dir")
    p.add_argument("--require-text", action="store_true")
    p.add_argument("--require-feats", action="store_true")
    args = p.parse_args()
    try:
        c = validate_data_dir(args.data_dir, require_text=args.require_text, require_feats=args.require_feats)
    except (KaldiFormatError, FileNotFoundError) as e:
        print(f"validate_data_dir: {e}", file=sys.stderr)
        return 1
    print(f"validate_data_dir: {args.data_dir}: {c['utterances']} utterances, {c['speakers']} speakers: OK")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""lhotse cuts with features, CMVN stats and senone labels from an alignment dir.

e.g.: python -m kdhybrid.bin.make_cuts --ali-dir exp/tri1_ali data/train data/cuts/train
"""
import argparse
import json
import sys

from kdhybrid.data.cuts import make_cuts


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--ali-dir")
    p.add_argument("data_dir")
    p.add_argument("out_dir")
    a = p.parse_args()
    c = make_cuts(a.data_dir, a.out_dir, a.ali_dir)
    from pathlib import Path

    (Path(a.out_dir) / "make_cuts.json").write_text(json.dumps(dict(c, data_dir=a.data_dir, ali_dir=a.ali_dir), indent=1) + "\n")
    print(f"make_cuts: {a.out_dir}/cuts.jsonl.gz: {json.dumps(c)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Oracle WER of every pair and triple of systems (Chebotar & Waters): per utterance the
hypothesis of the member with fewest errors. Prints the table, best first, and writes --out.

e.g.: python -m kdhybrid.bin.oracle --out exp/oracle_dev.json data/dev exp/tdnn/decode_tgsmall_dev exp/blstm/decode_tgsmall_dev
"""
import argparse
import json
import sys
from pathlib import Path

from kdhybrid.decode.scoring import oracle_table
from kdhybrid.io.tables import atomic_write_text, read_text_table


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--max-size", type=int, default=3)
    p.add_argument("--out", default=None)
    p.add_argument("data_dir")
    p.add_argument("decode_dirs", nargs="+", help="scored decode dirs (hyp.txt: the best LM weight's words)")
    a = p.parse_args()
    refs = dict(read_text_table(Path(a.data_dir) / "text", min_fields=1))
    systems = {}
    for d in a.decode_dirs:
        h = Path(d) / "hyp.txt"
        if not h.is_file():
            raise FileNotFoundError(f"{h}: missing (score the decode dir first: steps/score.sh)")
        systems[d] = dict(read_text_table(h, min_fields=1))
    rows = oracle_table(refs, systems, a.max_size)
    print(f"{'oracle WER':>10} {'best single':>11} {'gain':>6}  members")
    for r in rows:
        print(f"{r['oracle_wer']:10.2f} {r['best_single_wer']:11.2f} {r['gain']:6.2f}  {' + '.join(r['members'])}")
    if a.out:
        atomic_write_text(a.out, json.dumps(rows, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())

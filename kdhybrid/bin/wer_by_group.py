"""Break a decode dir's errors down by the utterances' condition and voice (any ``utt2<name>``
table of the data dir among kdhybrid.decode.scoring.GROUP_TABLES): the best setting's
hypotheses (``hyp.txt``) against ``<data-dir>/text``. Writes <decode-dir>/wer_by_group.json
(steps/score.sh writes it too) and prints the table.

e.g.: python -m kdhybrid.bin.wer_by_group data/dev exp/tri1/decode_tgsmall_dev
"""
import argparse
import sys
from pathlib import Path

from kdhybrid.decode.scoring import GROUP_TABLES, format_wer_by_group, write_wer_by_group


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("data_dir")
    p.add_argument("decode_dir")
    a = p.parse_args()
    if not (Path(a.decode_dir) / "hyp.txt").is_file():
        print(f"wer_by_group: {a.decode_dir}/hyp.txt: missing (score the decode dir first: steps/score.sh)", file=sys.stderr)
        return 1
    table = write_wer_by_group(a.data_dir, a.decode_dir)
    if not table:
        print(f"wer_by_group: {a.data_dir} has none of the tables " + ", ".join(f"utt2{n}" for n in GROUP_TABLES), file=sys.stderr)
        return 1
    print(format_wer_by_group(table), end="")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Merge the per-job hypotheses of a decode dir (part.JOB/hyp.txt) and score them against
the data dir's text: <decode-dir>/{hyp.txt,wer.json,best_wer}.

e.g.: python -m kdhybrid.bin.score_parts data/dev exp/tri1/decode_dev 2
"""
import argparse
import json
import sys
from pathlib import Path

from kdhybrid.decode.scoring import kaldi_wer_line, score_decode_dir
from kdhybrid.io.tables import read_text_table


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("data_dir")
    p.add_argument("decode_dir")
    p.add_argument("nj", type=int)
    a = p.parse_args()
    d = Path(a.decode_dir)
    hyps, rtf_num, rtf_den = {}, 0.0, 0.0
    for j in range(1, a.nj + 1):
        part = d / f"part.{j}"
        hyps.update(read_text_table(part / "hyp.txt", min_fields=1))
        w = json.loads((part / "wer.json").read_text())
        rtf_num += w["rtf"] * w["words"]
        rtf_den += w["words"]
    c = score_decode_dir(a.data_dir, d, hyps, {"rtf_per_job": round(rtf_num / max(rtf_den, 1), 4)})
    print(f"{d}: {kaldi_wer_line(c)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

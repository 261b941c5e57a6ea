"""Merge the per-job hypotheses of a decode dir (part.JOB/hyp.txt) and score them against
the data dir's text: <decode-dir>/{hyp.txt,wer.json,best_wer}.

e.g.: python -m kdhybrid.bin.score_parts data/dev exp/tri1/decode_dev 2
"""
import argparse
import json
import sys
from pathlib import Path

from kdhybrid.decode.scoring import kaldi_wer_line, wer_counts
from kdhybrid.io.tables import atomic_write_text, read_text_table


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
    refs = dict(read_text_table(Path(a.data_dir) / "text", min_fields=1))
    c = wer_counts(refs, hyps)
    c["rtf_per_job"] = round(rtf_num / max(rtf_den, 1), 4)
    atomic_write_text(d / "hyp.txt", "".join(f"{u} {h}\n" for u, h in sorted(hyps.items())))
    atomic_write_text(d / "wer.json", json.dumps(c, indent=1) + "\n")
    atomic_write_text(d / "best_wer", kaldi_wer_line(c) + f" {d}/hyp.txt\n")
    print(f"{d}: {kaldi_wer_line(c)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

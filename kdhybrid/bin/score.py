"""Score a decode dir the way Kaldi's score.sh does: best paths of its lattices (or n-best
lists) for every LM weight and word insertion penalty, WER of each, the best of them.
Writes <decode-dir>/{scoring/LMWT.PENALTY.tra, wer_LMWT_PENALTY, best_wer, hyp.txt, wer.json}, and
wer_by_group.json (the best setting's errors by condition and voice) when the data dir has
utt2condition / utt2voice tables;
wer.json also gets the decode's settings and counts; its real-time factors go to log/rtf.json.

e.g.: python -m kdhybrid.bin.score data/dev exp/tri1/graph_tgsmall exp/tdnn/decode_tgsmall_dev
"""
import argparse
import json
import sys
from pathlib import Path
from typing import Tuple

from kdhybrid.decode.scoring import kaldi_wer_line, score_sweep, write_wer_by_group


def decode_stats(decode_dir: Path) -> Tuple[dict, dict]:
    """What the decode's jobs (``log/decode.JOB.json``) did: (settings and counts, for
    wer.json; summed wall times and real-time factors, for ``log/rtf.json``)."""
    parts = [json.loads(p.read_text()) for p in sorted(decode_dir.glob("log/decode.*.json"))]
    if not parts:
        return {}, {}
    frames = sum(p["frames"] for p in parts)
    am = sum(p["seconds_acoustic"] for p in parts)
    search = sum(p["seconds_search"] for p in parts)
    audio = max(frames * 0.01, 1e-9)
    what = {"backend": parts[0]["backend"], "frames": frames, "no_path": sum(p["no_path"] for p in parts),
            **{k: parts[0][k] for k in ("beam", "lattice_beam", "max_active", "min_active") if k in parts[0]}}
    times = {"seconds_acoustic": round(am, 2), "seconds_search": round(search, 2),
             "rtf_search": round(search / audio, 4), "rtf_total": round((am + search) / audio, 4)}
    return what, times


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--min-lmwt", type=int, default=7)
    p.add_argument("--max-lmwt", type=int, default=17)
    p.add_argument("--word-ins-penalty", default="0.0,0.5,1.0", help="comma-separated penalties")
    p.add_argument("data_dir")
    p.add_argument("graph_dir", help="graph or lang dir (its words.txt)")
    p.add_argument("decode_dir")
    a = p.parse_args()
    d = Path(a.decode_dir)
    extra, times = decode_stats(d)
    if times:  # wall times differ from run to run: log/, not wer.json
        (d / "log").mkdir(exist_ok=True)
        (d / "log" / "rtf.json").write_text(json.dumps(times, indent=1) + "\n")
    rescore = d / "rescore.json"
    if rescore.is_file():
        extra["rescore"] = json.loads(rescore.read_text())
    out = score_sweep(a.data_dir, a.graph_dir, d, range(a.min_lmwt, a.max_lmwt + 1),
                      [float(x) for x in a.word_ins_penalty.split(",")], extra)
    write_wer_by_group(a.data_dir, d)  # by condition and voice, where the data dir says them
    print(f"{kaldi_wer_line(out)} {d}/wer_{out['lmwt']}_{out['penalty']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

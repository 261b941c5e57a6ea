"""Rescore a decode dir's k2 lattices with a larger LM (n-best, exact ARPA scores):
<out-dir>/nbest.JOB.json.gz for every <in-dir>/lat.JOB.pt (or --job JOB's only, with
rescore.JOB.json), and <out-dir>/rescore.json.
The LMs are the lang dirs' G.arpa.gz (written by steps/format_lm.sh).

e.g.: python -m kdhybrid.bin.lmrescore data/lang_test_tgsmall data/lang_test_fglarge \\
        exp/tdnn/decode_tgsmall_dev exp/tdnn/decode_tgsmall_dev_fglarge
"""
import argparse
import json
import logging
import sys
import time
from pathlib import Path

from kdhybrid.decode.graph import read_words_table
from kdhybrid.decode.lattice import load_lattices, save_nbest
from kdhybrid.decode.rescore import lattice_nbest, rescore_nbest
from kdhybrid.lang.arpa import ArpaLm

log = logging.getLogger("lmrescore")


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--num-paths", type=int, default=50)
    p.add_argument("--nbest-scale", type=float, default=0.5)
    p.add_argument("--lm-scale", type=float, default=1.0)
    p.add_argument("--job", type=int, default=0, help="rescore only lat.JOB.pt (0: all, then write rescore.json)")
    p.add_argument("--merge", type=int, default=0, metavar="NJ", help="only merge rescore.{1..NJ}.json into rescore.json")
    p.add_argument("old_lang")
    p.add_argument("new_lang")
    p.add_argument("in_dir")
    p.add_argument("out_dir")
    a = p.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    if a.merge:
        merge_job_stats(Path(a.out_dir), a.merge)
        return 0
    t0 = time.time()
    for lang in (a.old_lang, a.new_lang):
        if not (Path(lang) / "G.arpa.gz").is_file():
            raise FileNotFoundError(f"{lang}/G.arpa.gz: missing (make the lang test dir with steps/format_lm.sh)")
    old_lm, new_lm = ArpaLm(Path(a.old_lang) / "G.arpa.gz"), ArpaLm(Path(a.new_lang) / "G.arpa.gz")
    log.info("LMs loaded: %s (order %d), %s (order %d) in %.1f s", a.old_lang, old_lm.order, a.new_lang, new_lm.order, time.time() - t0)
    id2word = read_words_table(a.new_lang)
    lats = sorted(Path(a.in_dir).glob("lat.*.pt")) if not a.job else [Path(a.in_dir) / f"lat.{a.job}.pt"]
    if not lats or not lats[0].is_file():
        raise FileNotFoundError(f"{a.in_dir}: no lat.*.pt lattices (decode with steps/decode.sh --backend k2)")
    out = Path(a.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    hyps = utts = 0
    for lp in lats:
        job = lp.name.split(".")[1]
        u, lat, acwt = load_lattices(lp)
        nb = rescore_nbest(lattice_nbest(lat, u, a.num_paths, a.nbest_scale, acwt=acwt), id2word, old_lm, new_lm, a.lm_scale)
        save_nbest(out / f"nbest.{job}.json.gz", nb, acwt)
        hyps += sum(len(h) for h in nb.values())
        utts += len(nb)
        log.info("%s: %d utterances rescored", lp, len(nb))
    stats = dict(old_lang=a.old_lang, new_lang=a.new_lang, num_paths=a.num_paths, nbest_scale=a.nbest_scale, lm_scale=a.lm_scale,
                 mean_hyps_per_utt=round(hyps / max(utts, 1), 1), utts=utts, hyps=hyps, input=a.in_dir)
    (out / (f"rescore.{a.job}.json" if a.job else "rescore.json")).write_text(json.dumps(stats, indent=1) + "\n")
    log.info("%s (%.1f s)", json.dumps(stats), time.time() - t0)  # wall time in the log only
    return 0


def merge_job_stats(out: Path, nj: int) -> None:
    """rescore.json from the jobs' rescore.JOB.json: summed counts."""
    parts = [json.loads((out / f"rescore.{j}.json").read_text()) for j in range(1, nj + 1)]
    tot = dict(parts[0], utts=sum(p["utts"] for p in parts), hyps=sum(p["hyps"] for p in parts), jobs=nj)
    tot["mean_hyps_per_utt"] = round(tot["hyps"] / max(tot["utts"], 1), 1)
    (out / "rescore.json").write_text(json.dumps(tot, indent=1) + "\n")


if __name__ == "__main__":
    sys.exit(main())

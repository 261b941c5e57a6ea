"""Make an ensemble dir from trained members: weights by grid search on dev frame
cross-entropy (the cheap criterion), for one fusion. Writes <ensemble-dir>/{ensemble.json,
grid.json}; with --candidates N also the N best weight vectors as <ensemble-dir>/cand.I/
ensemble.json, to be decoded and chosen by WER (steps/make_ensemble.sh --criterion wer); with
--share-of M instead the best vector at each total weight of the last M members (one a share).

e.g.: python -m kdhybrid.bin.make_ensemble --fusion logit --dev-cuts exp/tdnn/cuts_dev exp/ensemble_logit exp/tdnn exp/blstm
"""
import argparse
import json
import logging
import sys
import time
from pathlib import Path


from kdhybrid.distill.ensemble import EnsembleConfig, frame_ce_grid, load_members, share_candidates, simplex_grid


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--fusion", choices=["posterior", "logit"], default="posterior")
    p.add_argument("--grid-step", type=float, default=0.1)
    p.add_argument("--dev-cuts", required=True, help="dir with cuts.jsonl.gz (features, CMVN, pdf_ali labels)")
    p.add_argument("--candidates", type=int, default=0)
    p.add_argument("--share-of", type=int, default=0,
                   help="candidates: instead of the --candidates best by CE, the CE-best vector at each total weight of the last N members")
    p.add_argument("ensemble_dir")
    p.add_argument("members", nargs="+")
    a = p.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    from lhotse import CutSet

    t0 = time.time()
    members = load_members(a.members)
    from kdhybrid.data.cuts import read_cuts_info
    from kdhybrid.decode.acoustic import check_input_features

    check_input_features(members[0], a.dev_cuts, read_cuts_info(Path(a.dev_cuts) / "cuts.jsonl.gz").get("features", ""))
    cuts = CutSet.from_file(Path(a.dev_cuts) / "cuts.jsonl.gz")
    grid = simplex_grid(len(a.members), a.grid_step) if len(a.members) > 1 else [[1.0]]
    res = frame_ce_grid(members, cuts, grid, [a.fusion])
    res.sort(key=lambda r: r["ce"])
    single = [r for r in res if max(r["weights"]) == 1.0]
    best = res[0]
    out = Path(a.ensemble_dir)
    sel = dict(criterion="dev frame cross-entropy", grid_step=a.grid_step, dev_cuts=a.dev_cuts, dev_ce=round(best["ce"], 4),
               dev_acc=round(best["acc"], 4), members_dev_ce={a.members[r["weights"].index(1.0)]: round(r["ce"], 4) for r in single},
               members_dev_acc={a.members[r["weights"].index(1.0)]: round(r["acc"], 4) for r in single}, seconds=round(time.time() - t0, 1))
    if a.share_of:
        sel["share_of"] = a.share_of
    EnsembleConfig(list(a.members), best["weights"], a.fusion, sel).save(out)
    (out / "grid.json").write_text(json.dumps(res, indent=1) + "\n")
    cands = share_candidates(res, a.share_of) if a.share_of and a.candidates else res[: a.candidates]
    for i, r in enumerate(cands, 1):
        EnsembleConfig(list(a.members), r["weights"], a.fusion, dict(sel, dev_ce=round(r["ce"], 4), dev_acc=round(r["acc"], 4), candidate=i)).save(out / f"cand.{i}")
    print(f"make_ensemble: {out}: {a.fusion} fusion, weights {best['weights']}, dev CE {best['ce']:.4f} acc {best['acc']:.4f} "
          f"(members: {', '.join(f'{k} {v}' for k, v in sel['members_dev_ce'].items())})")
    return 0


if __name__ == "__main__":
    sys.exit(main())

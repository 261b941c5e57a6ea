"""Denominator lattices of one data split (--job N) for sequence training, or the record of
finished jobs (--finish NJ): lat.JOB.pt, denlats.JOB.json; denlats.json.

The source model is any model dir (final.pt, final.pkl or ensemble.json); the graph dir's
HCLG.k2.pt is searched (usually a unigram LM of the training transcripts, steps/make_denlats.sh).
A job writes its lattices atomically, then denlats.JOB.json: a job with both is done.

e.g.: python -m kdhybrid.bin.make_denlats --job 1 exp/tdnn_denlats/graph data/train/split2/1 exp/tdnn exp/tdnn_denlats
      python -m kdhybrid.bin.make_denlats --finish 2 exp/tdnn_denlats/graph data/train exp/tdnn exp/tdnn_denlats
"""
import argparse
import json
import logging
import sys
import time
from pathlib import Path

from kdhybrid.io.tables import atomic_write_text

log = logging.getLogger("make_denlats")
BATCH_FRAMES = 2500  # kdhybrid.decode.acoustic.BATCH_FRAMES (not imported: --finish stays light)


def graph_info(graph_dir: Path) -> dict:
    p = graph_dir / "graph.json"
    if not p.is_file():
        raise FileNotFoundError(f"{p}: missing (build the graph with steps/mkgraph.sh)")
    info = json.loads(p.read_text())
    for k in ("num_pdfs", "num_tids"):
        if info.get(k) is None:
            raise ValueError(f"{p}: no {k} (rebuild the graph with steps/mkgraph.sh)")
    return info


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--acwt", type=float, default=0.1)
    p.add_argument("--beam", type=float, default=13.0)
    p.add_argument("--lattice-beam", type=float, default=7.0)
    p.add_argument("--max-active", type=int, default=5000)
    p.add_argument("--min-active", type=int, default=200)
    p.add_argument("--batch-frames", type=int, default=BATCH_FRAMES)
    p.add_argument("--search-frames", type=int, default=1500)
    g = p.add_mutually_exclusive_group(required=True)
    g.add_argument("--job", type=int)
    g.add_argument("--finish", type=int, metavar="NJ")
    p.add_argument("graph_dir")
    p.add_argument("data_dir")
    p.add_argument("model_dir")
    p.add_argument("den_dir")
    a = p.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    graph_dir, den_dir = Path(a.graph_dir), Path(a.den_dir)
    den_dir.mkdir(parents=True, exist_ok=True)
    info = graph_info(graph_dir)
    opts = dict(acwt=a.acwt, beam=a.beam, lattice_beam=a.lattice_beam, max_active=a.max_active, min_active=a.min_active)
    if a.finish is not None:
        from kdhybrid.train.sequence import silence_phones

        jobs = range(1, a.finish + 1)
        missing = [str(j) for j in jobs if not (den_dir / f"lat.{j}.pt").is_file() or not (den_dir / f"denlats.{j}.json").is_file()]
        if missing:
            raise FileNotFoundError(f"{den_dir}: jobs {' '.join(missing)} unfinished (re-run steps/make_denlats.sh)")
        parts = [json.loads((den_dir / f"denlats.{j}.json").read_text()) for j in jobs]
        tot = {k: sum(x[k] for x in parts) for k in ("utts", "frames", "no_path", "arcs", "seconds_acoustic", "seconds_search")}
        rec = dict(model=str(a.model_dir), num_pdfs=int(info["num_pdfs"]), num_transition_ids=int(info["num_tids"]),
                   silence_phones=silence_phones(graph_dir), graph_dir=str(graph_dir), data_dir=str(a.data_dir), num_jobs=a.finish,
                   **opts, **tot, arcs_per_frame=round(tot["arcs"] / max(tot["frames"], 1), 1),
                   rtf=round((tot["seconds_acoustic"] + tot["seconds_search"]) / max(tot["frames"] * 0.01, 1e-9), 4))
        atomic_write_text(den_dir / "denlats.json", json.dumps(rec, indent=1) + "\n")
        print(f"make_denlats: {den_dir}: {rec['utts']} utterances, {rec['frames']} frames, {rec['no_path']} without a path, "
              f"{rec['arcs_per_frame']} arcs per frame, real-time factor {rec['rtf']}")
        return 0
    import torch

    from kdhybrid.decode.acoustic import load_scorer
    from kdhybrid.decode.denlats import make_den_lattices
    from kdhybrid.decode.k2_backend import load_k2_graph
    from kdhybrid.decode.lattice import save_lattices

    torch.set_num_threads(1)
    scorer = load_scorer(a.model_dir, data_dir=a.data_dir)
    if scorer.num_pdfs != int(info["num_pdfs"]):
        raise ValueError(f"model {a.model_dir} has {scorer.num_pdfs} pdfs but graph {graph_dir} was built for a transition model "
                         f"with {info['num_pdfs']} pdfs ({info.get('model_dir')})")
    log.info("model: %s; graph %s", scorer.description, graph_dir)
    t0 = time.time()
    graph = load_k2_graph(graph_dir / "HCLG.k2.pt")
    utts, lat, stats = make_den_lattices(scorer, graph, a.data_dir, a.acwt, a.beam, a.lattice_beam, a.min_active, a.max_active,
                                         a.batch_frames, a.search_frames)
    save_lattices(den_dir / f"lat.{a.job}.pt", utts, lat, a.acwt)
    stats.update(arcs=int(lat.num_arcs), seconds=round(time.time() - t0, 1))
    atomic_write_text(den_dir / f"denlats.{a.job}.json", json.dumps(stats, indent=1) + "\n")
    log.info("job %d: %s", a.job, json.dumps(stats))
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Decode (one job of) a data dir with any acoustic model over an HCLG graph.

The model is the decode dir's parent (Kaldi's convention) unless --model-dir is given:
``final.pt`` (neural), ``final.pkl`` (GMM-HMM) or ``ensemble.json``. Its log-likelihoods,
scaled by --acwt, are searched with k2 (``--backend k2``: pruned intersection with
``HCLG.k2.pt``, lattices kept in ``lat.JOB.pt``) or with Kaldi's LatticeFasterDecoder from
kaldi-hmm-gmm (``--backend kaldi``: best path in ``nbest.JOB.json.gz``). Timings go to
``log/decode.JOB.json``. Scoring is a separate step (kdhybrid.bin.score).

e.g.: python -m kdhybrid.bin.decode --job 1 exp/tri1/graph_tgsmall data/dev/split2/1 exp/tdnn/decode_tgsmall_dev
"""
import argparse
import json
import logging
import sys
import time
from pathlib import Path

import torch

from kdhybrid.decode.acoustic import BATCH_FRAMES, iter_feature_batches, load_scorer
from kdhybrid.decode.graph import read_graph_info
from kdhybrid.decode.k2_backend import load_k2_graph, search
from kdhybrid.decode.kaldi_backend import DecoderOptions, KaldiDecoder
from kdhybrid.decode.lattice import save_lattices, save_nbest
from kdhybrid.gmm.model import GmmHmm

log = logging.getLogger("decode")


def check_pdfs(scorer, graph_dir: str, info: dict, model_dir: Path) -> None:
    if info.get("num_pdfs") is None:
        raise ValueError(f"{graph_dir}/graph.json: no num_pdfs (rebuild the graph with steps/mkgraph.sh)")
    if scorer.num_pdfs != int(info["num_pdfs"]):
        raise ValueError(f"model {model_dir} has {scorer.num_pdfs} pdfs but graph {graph_dir} was built for a transition model "
                         f"with {info['num_pdfs']} pdfs ({info.get('model_dir')}): train the model on that model's alignments "
                         f"or build the graph from the model's own tree")


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--backend", choices=["k2", "kaldi"], default="k2")
    p.add_argument("--acwt", type=float, default=0.1)
    p.add_argument("--beam", type=float, default=13.0)
    p.add_argument("--lattice-beam", type=float, default=6.0)
    p.add_argument("--max-active", type=int, default=7000)
    p.add_argument("--min-active", type=int, default=200)
    p.add_argument("--batch-frames", type=int, default=BATCH_FRAMES, help="frames per acoustic-model batch")
    p.add_argument("--search-frames", type=int, default=1500, help="frames per k2 search (memory grows with it)")
    p.add_argument("--job", type=int, default=1)
    p.add_argument("--model-dir", default=None, help="default: the parent of the decode dir")
    p.add_argument("--gmm-model", default="final", help="a GMM's model: final, or final.alimdl (first pass of SAT)")
    p.add_argument("--transform-dir", default=None, help="dir with the speakers' fMLLR trans.* (SAT models)")
    p.add_argument("graph_dir")
    p.add_argument("data_dir")
    p.add_argument("decode_dir")
    a = p.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    torch.set_num_threads(1)
    dec_dir = Path(a.decode_dir)
    dec_dir.mkdir(parents=True, exist_ok=True)
    model_dir = Path(a.model_dir) if a.model_dir else dec_dir.parent
    info = read_graph_info(a.graph_dir)
    scorer = load_scorer(model_dir, a.gmm_model, a.transform_dir, a.data_dir)
    check_pdfs(scorer, a.graph_dir, info, model_dir)
    log.info("model: %s; graph %s (%s states, %s arcs)", scorer.description, a.graph_dir, info.get("k2_states"), info.get("k2_arcs"))
    t_load = time.time()
    if a.backend == "k2":
        graph = load_k2_graph(Path(a.graph_dir) / "HCLG.k2.pt")
    else:
        if not info.get("model_dir"):
            raise ValueError(f"{a.graph_dir}/graph.json: no model_dir (the Kaldi backend needs the graph's transition model)")
        gm = GmmHmm.load(info["model_dir"])
        tid2pdf = gm.tid2pdf()
        decoder = KaldiDecoder(str(Path(a.graph_dir) / "HCLG.fst"),
                               DecoderOptions(acwt=a.acwt, beam=a.beam, lattice_beam=a.lattice_beam, max_active=a.max_active, min_active=a.min_active))
    t_load = time.time() - t_load
    t_am = t_search = 0.0
    frames = failed = 0
    all_utts, lats, nbest = [], [], {}
    for utts, feats, cmvn in iter_feature_batches(a.data_dir, a.batch_frames):
        t0 = time.time()
        scores = [a.acwt * ll for ll in scorer.loglikes(feats, cmvn, utts)]
        t1 = time.time()
        if a.backend == "k2":
            lat, no_path = search(graph, scores, a.beam, a.lattice_beam, a.min_active, a.max_active, a.search_frames, utts=utts, log=log)
            failed += no_path
            lats.append(lat)
        else:
            for u, s in zip(utts, scores):
                ok, _, wids, am, graph_score = decoder.decode_scores(s.numpy(), gm.tm, tid2pdf, u)
                failed += int(not ok)
                nbest[u] = [(wids, am, graph_score)]
        t_search += time.time() - t1
        t_am += t1 - t0
        frames += sum(len(f) for f in feats)
        all_utts += utts
        log.info("decoded %d utterances, %d frames", len(all_utts), frames)
    if a.backend == "k2":
        import k2

        save_lattices(dec_dir / f"lat.{a.job}.pt", all_utts, k2.cat(lats) if len(lats) > 1 else lats[0], a.acwt)
    else:
        save_nbest(dec_dir / f"nbest.{a.job}.json.gz", nbest, a.acwt)
    audio_s = frames * 0.01
    stats = dict(backend=a.backend, utts=len(all_utts), frames=frames, no_path=failed, seconds_graph_load=round(t_load, 2),
                 seconds_acoustic=round(t_am, 2), seconds_search=round(t_search, 2),
                 rtf_search=round(t_search / audio_s, 4), rtf_total=round((t_am + t_search) / audio_s, 4),
                 acwt=a.acwt, beam=a.beam, lattice_beam=a.lattice_beam, max_active=a.max_active, min_active=a.min_active)
    # Wall times differ from run to run: they live in log/, beside the job's log.
    (dec_dir / "log").mkdir(exist_ok=True)
    (dec_dir / "log" / f"decode.{a.job}.json").write_text(json.dumps(stats, indent=1) + "\n")
    log.info("%s", json.dumps(stats))
    return 0


if __name__ == "__main__":
    sys.exit(main())

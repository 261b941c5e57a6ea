"""Decoding speed: real-time factors of k2 (search only, and network + search) and of Kaldi's
LatticeFasterDecoder on the same utterances, graph, scores and beams, in one process on one
core, and how often their best paths agree. Goal: k2 at least as fast as Kaldi at equal WER.

e.g.: python -m kdhybrid.bench decode-rtf --graph exp/tri1/graph_tgsmall --data data/dev --model exp/tdnn
"""
from __future__ import annotations

import argparse
import json
import time
from typing import List, Optional

import torch


def main(argv: Optional[List[str]] = None) -> int:
    from kdhybrid.decode.acoustic import iter_feature_batches, load_scorer
    from kdhybrid.decode.graph import read_graph_info, read_words_table
    from kdhybrid.decode.k2_backend import load_k2_graph, path_words, search
    from kdhybrid.decode.kaldi_backend import DecoderOptions, KaldiDecoder
    from kdhybrid.decode.scoring import wer_counts
    from kdhybrid.gmm.model import GmmHmm
    from kdhybrid.io.tables import read_text_table

    p = argparse.ArgumentParser(prog="python -m kdhybrid.bench decode-rtf", description=__doc__)
    p.add_argument("--graph", required=True)
    p.add_argument("--data", required=True)
    p.add_argument("--model", required=True, help="model dir (final.pt, final.pkl or ensemble.json)")
    p.add_argument("--acwt", type=float, default=0.1)
    p.add_argument("--beam", type=float, default=13.0)
    p.add_argument("--lattice-beam", type=float, default=6.0)
    p.add_argument("--max-active", type=int, default=7000)
    p.add_argument("--max-utts", type=int, default=0, help="0: all")
    a = p.parse_args(argv)
    import k2

    torch.set_num_threads(1)
    info = read_graph_info(a.graph)
    scorer = load_scorer(a.model)
    words = read_words_table(a.graph)
    refs = dict(read_text_table(f"{a.data}/text", min_fields=1))
    t = time.time()
    graph = load_k2_graph(f"{a.graph}/HCLG.k2.pt")
    t_k2_load = time.time() - t
    t = time.time()
    kd = KaldiDecoder(f"{a.graph}/HCLG.fst", DecoderOptions(a.acwt, a.beam, a.lattice_beam, a.max_active))
    t_kaldi_load = time.time() - t
    gm = GmmHmm.load(info["model_dir"])
    t2p = gm.tid2pdf()
    t_am = t_k2 = t_kaldi = 0.0
    frames = 0
    hyp_k2, hyp_kaldi = {}, {}
    for utts, feats, cmvn in iter_feature_batches(a.data):
        if a.max_utts and len(hyp_k2) >= a.max_utts:
            break
        t = time.time()
        scores = [a.acwt * s for s in scorer.loglikes(feats, cmvn)]
        t_am += time.time() - t
        t = time.time()
        lat, _ = search(graph, scores, a.beam, a.lattice_beam, 200, a.max_active)
        best = path_words(k2.shortest_path(lat, use_double_scores=True))
        t_k2 += time.time() - t
        t = time.time()
        kw = [kd.decode_scores(s.numpy(), gm.tm, t2p, u)[2] for u, s in zip(utts, scores)]
        t_kaldi += time.time() - t
        for u, w1, w2 in zip(utts, best, kw):
            hyp_k2[u] = " ".join(words[i] for i in w1)
            hyp_kaldi[u] = " ".join(words[i] for i in w2)
        frames += sum(len(f) for f in feats)
    audio = frames * 0.01
    refs = {u: refs[u] for u in hyp_k2}
    w_k2, w_kaldi = wer_counts(refs, hyp_k2), wer_counts(refs, hyp_kaldi)
    same = sum(hyp_k2[u] == hyp_kaldi[u] for u in hyp_k2)
    out = {
        "model": scorer.description, "graph": a.graph, "graph_arcs_k2": info.get("k2_arcs"), "utts": len(hyp_k2), "audio_seconds": round(audio, 1),
        "beam": a.beam, "lattice_beam": a.lattice_beam, "max_active": a.max_active, "acwt": a.acwt,
        "rtf_acoustic": round(t_am / audio, 4),
        "rtf_k2_search": round(t_k2 / audio, 4), "rtf_k2_total": round((t_am + t_k2) / audio, 4),
        "rtf_kaldi_search": round(t_kaldi / audio, 4), "rtf_kaldi_total": round((t_am + t_kaldi) / audio, 4),
        "kaldi_over_k2_search_time": round(t_kaldi / max(t_k2, 1e-9), 2),
        "graph_load_seconds": {"k2": round(t_k2_load, 1), "kaldi": round(t_kaldi_load, 1)},
        "wer_k2": w_k2["wer"], "wer_kaldi": w_kaldi["wer"], "same_best_path_utts": same,
    }
    print(json.dumps(out, indent=1))
    return 0

"""Sequence-training costs, the two ratios of issue #18's targets:

* one sequence-training step against one cross-entropy step of the same model on the same
  batches (frames/s of each; goal: sequence training at most 3x the CE time), the lattice
  preparation and rescoring included, feature loading excluded from both;
* making denominator lattices of the training data (the unigram graph and the beams of the
  lattice dir) against decoding the same utterances (the decoding graph and beams), both with
  the network's forward pass (goal: lattices cost no more than decoding).

e.g.: python -m kdhybrid.bench sequence --cuts exp/tdnn_smbr/cuts_train --ali exp/tdnn_ali --denlats exp/tdnn_denlats \\
          --model exp/tdnn --data data/train --graph exp/tri1/graph_tgsmall
"""
from __future__ import annotations

import argparse
import copy
import json
import time
from pathlib import Path
from typing import List, Optional

import torch


def main(argv: Optional[List[str]] = None) -> int:
    from kdhybrid.bench.train_throughput import _step
    from kdhybrid.train.data import CutDataset, global_batches
    from kdhybrid.train.sequence import SequenceConfig
    from kdhybrid.train.sequence_trainer import SequenceTrainConfig, load_batch, load_inputs, sequence_step

    p = argparse.ArgumentParser(prog="python -m kdhybrid.bench sequence", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--cuts", required=True, help="cuts dir or file of the training data (with the numerator's labels)")
    p.add_argument("--ali", required=True, help="the numerator ali dir")
    p.add_argument("--denlats", required=True, help="the denominator lattice dir (steps/make_denlats.sh)")
    p.add_argument("--model", required=True, help="the model dir (final.pt) the lattices were made with")
    p.add_argument("--criterion", default="smbr", choices=["smbr", "mmi", "bmmi"])
    p.add_argument("--max-duration", type=float, default=60.0)
    p.add_argument("--batches", type=int, default=20)
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--data", help="training data dir, for lattices against decoding (with --graph)")
    p.add_argument("--graph", help="the decoding graph dir")
    p.add_argument("--max-utts", type=int, default=200, help="utterances for lattices against decoding (0: all)")
    a = p.parse_args(argv)
    cuts_file = Path(a.cuts) / "cuts.jsonl.gz" if Path(a.cuts).is_dir() else Path(a.cuts)
    store, phones, alis, cuts, model, priors = load_inputs(cuts_file, a.ali, a.denlats, Path(a.model) / "final.pt")
    acwt = float(store.info["acwt"])
    cfg = SequenceTrainConfig(sequence=SequenceConfig(a.criterion, acwt=acwt), max_duration=a.max_duration, lr=1e-5)
    ds = CutDataset(cuts, int(model.cfg.num_pdfs))
    batches = global_batches(cuts, a.max_duration, True, 1, 1)[: a.warmup + a.batches]
    loaded = [ds[b] for b in batches]
    out = {"model": str(a.model), "criterion": a.criterion, "batches": len(batches) - a.warmup, "threads": torch.get_num_threads()}

    ce_model = copy.deepcopy(model).train()
    opt = torch.optim.AdamW(ce_model.parameters(), lr=1e-5)
    t_ce, f_ce = 0.0, 0
    for i, b in enumerate(loaded):
        t = time.perf_counter()
        n = _step(ce_model, opt, b["feats"], b["lengths"], b["labels"])
        if i >= a.warmup:
            t_ce += time.perf_counter() - t
            f_ce += n
    seq_model = copy.deepcopy(model).train()
    opt = torch.optim.AdamW(seq_model.parameters(), lr=cfg.lr)
    t_seq, f_seq, skipped = 0.0, 0, 0
    for i, ids in enumerate(batches):
        t = time.perf_counter()
        den, batch, sk = load_batch(ids, store, alis, phones, ds, cfg.sequence, a.ali)
        if den is not None:
            sequence_step(seq_model, opt, den, batch, priors, cfg)
        if i >= a.warmup:
            t_seq += time.perf_counter() - t
            f_seq += den.num_frames if den is not None else 0
            skipped += len(sk)
    out.update(ce_frames_per_second=round(f_ce / max(t_ce, 1e-9), 1), sequence_frames_per_second=round(f_seq / max(t_seq, 1e-9), 1),
               skipped_utts=skipped)
    out["sequence_over_ce_time"] = round(out["ce_frames_per_second"] / max(out["sequence_frames_per_second"], 1e-9), 2)

    if a.data and a.graph:
        from kdhybrid.decode.acoustic import NnetScorer, iter_feature_batches
        from kdhybrid.decode.k2_backend import load_k2_graph, search

        info = store.info
        scorer = NnetScorer(Path(a.model) / "final.pt")
        den_graph = load_k2_graph(Path(info["graph_dir"]) / "HCLG.k2.pt")
        dec_graph = load_k2_graph(Path(a.graph) / "HCLG.k2.pt")
        t_den = t_dec = 0.0
        frames = n = 0
        for utts, feats, cmvn in iter_feature_batches(a.data):
            if a.max_utts and n >= a.max_utts:
                break
            for graph, beams, which in ((den_graph, (info["beam"], info["lattice_beam"], info["min_active"], info["max_active"]), "den"),
                                        (dec_graph, (13.0, 6.0, 200, 7000), "dec")):
                t = time.perf_counter()
                scores = [acwt * s for s in scorer.loglikes(feats, cmvn)]
                search(graph, scores, *beams)
                dt = time.perf_counter() - t
                t_den, t_dec = (t_den + dt, t_dec) if which == "den" else (t_den, t_dec + dt)
            frames += sum(len(f) for f in feats)
            n += len(utts)
        audio = max(frames * 0.01, 1e-9)
        out.update(utts=n, rtf_denlats=round(t_den / audio, 4), rtf_decode=round(t_dec / audio, 4),
                   denlats_over_decode_time=round(t_den / max(t_dec, 1e-9), 2))
    print(json.dumps(out, indent=1))
    print(f"sequence training / CE training time per frame: {out['sequence_over_ce_time']:.2f} (goal <= 3)")
    if "denlats_over_decode_time" in out:
        print(f"making lattices / decoding time: {out['denlats_over_decode_time']:.2f} (goal <= 1)")
    return 0

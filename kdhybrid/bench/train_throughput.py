"""Training throughput: the default model on real data through the full loader (lhotse
cuts -> features + CMVN + labels -> DataLoader workers; the config's batches: whole
utterances, or chunks with ``chunk_frames``) against the same model on random tensors of the
same batch shapes with no loader. Prints labelled 10 ms frames/s of both and the ratio
(goal >= 0.85: the loader costs under 15%).
"""
from __future__ import annotations

import argparse
import time
from typing import List, Optional

import torch


def _step(model, opt, feats, lengths, labels, valid: bool = False) -> int:
    """One update; returns the labelled input (10 ms) frames of the batch."""
    from kdhybrid.train.trainer import frame_ce

    out, _ = model(feats, lengths, valid=valid)
    ce, n, _ = frame_ce(out["main"], labels, model.cfg.subsampling)
    loss = ce / n.clamp(min=1)
    opt.zero_grad()
    loss.backward()
    opt.step()
    return int((labels >= 0).sum())


def main(argv: Optional[List[str]] = None) -> int:
    import yaml
    from lhotse import CutSet

    from kdhybrid.nnet.models import build_model
    from kdhybrid.train.data import ChunkDataset, CutDataset, RankShardedBatches, chunk_batches, global_batches
    from kdhybrid.train.trainer import TrainConfig, chunk_context

    p = argparse.ArgumentParser(prog="python -m kdhybrid.bench train-throughput", description=__doc__)
    p.add_argument("--cuts", required=True, help="cuts dir or file (kdhybrid.bin.make_cuts)")
    p.add_argument("--config", default="conf/tdnn.yaml")
    p.add_argument("--batches", type=int, default=30)
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--num-workers", type=int, default=None)
    a = p.parse_args(argv)
    from pathlib import Path

    from kdhybrid.data.cuts import read_cuts_info

    path = Path(a.cuts)
    cuts_file = path / "cuts.jsonl.gz" if path.is_dir() else path
    cfg = TrainConfig.from_dict(yaml.safe_load(Path(a.config).read_text()) or {})
    made = read_cuts_info(cuts_file)
    cfg.model.num_pdfs = made["num_pdfs"]
    cfg.model.feat_dim = made.get("feat_dim", cfg.model.feat_dim)
    if a.num_workers is not None:
        cfg.num_workers = a.num_workers
    torch.set_num_threads(cfg.threads or torch.get_num_threads())
    cuts = CutSet.from_file(cuts_file).to_eager()
    ds = CutDataset(cuts, cfg.model.num_pdfs, None, False, cfg.seed)
    torch.manual_seed(0)
    model = build_model(cfg.model)
    if cfg.chunk_frames > 0:
        ds = ChunkDataset(ds, [c.id for c in cuts], chunk_context(model, cfg), valid=model.supports_valid and cfg.chunk_context < 0)
        batches = chunk_batches(ds.lengths, cfg.chunk_frames, cfg.batch_frames, cfg.seed, 1)[: a.batches + a.warmup]
        what = f"chunks of {cfg.chunk_frames} frames, {cfg.batch_frames} labelled frames a batch"
    else:
        batches = global_batches(cuts, cfg.max_duration, True, cfg.seed, 1)[: a.batches + a.warmup]
        what = f"~{cfg.max_duration:.0f} s of utterances a batch"
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
    loader = torch.utils.data.DataLoader(ds, sampler=RankShardedBatches(batches), batch_size=None, num_workers=cfg.num_workers,
                                         prefetch_factor=4 if cfg.num_workers else 2)
    shapes = []
    frames_real = 0
    t0 = None
    for i, b in enumerate(loader):
        if i == a.warmup:
            t0 = time.perf_counter()
        valid = b.get("valid", False)
        n = _step(model, opt, b["feats"], b["lengths"], b["labels"], valid)
        if i >= a.warmup:
            frames_real += n
            shapes.append((tuple(b["feats"].shape), b["lengths"].clone(), tuple(b["labels"].shape)))
    t_real = time.perf_counter() - t0
    # The same batch shapes, random tensors, no loader.
    ctx = sum(chunk_context(model, cfg)) if valid else 0
    synth = [(torch.randn(*s), l, torch.randint(0, cfg.model.num_pdfs, ys)) for s, l, ys in shapes]
    for s, l, y in synth:
        y[torch.arange(y.shape[1])[None, :] >= (l - ctx)[:, None]] = -100
    frames_syn = 0
    for s, l, y in synth[: a.warmup]:
        _step(model, opt, s, l, y, valid)
    t0 = time.perf_counter()
    for s, l, y in synth:
        frames_syn += _step(model, opt, s, l, y, valid)
    t_syn = time.perf_counter() - t0
    fr, fs = frames_real / t_real, frames_syn / t_syn
    print(f"train-throughput: {cfg.model.arch}, {model.num_params() / 1e6:.2f} M params, subsampling {cfg.model.subsampling}, "
          f"{len(shapes)} batches ({what}), {torch.get_num_threads()} threads, {cfg.num_workers} loader workers")
    print(f"  real data through the loader  {fr:10,.0f} labelled frames/s")
    print(f"  random tensors, no loader     {fs:10,.0f} labelled frames/s")
    print(f"  ratio                         {fr / fs:.3f}  (goal >= 0.85)")
    return 0

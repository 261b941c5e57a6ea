"""Teacher dump speed and size: the ensemble's pure forward throughput (frames/s, features
already in memory, no I/O), the dump's end to end throughput (features read, forward, top-k,
Posterior archive written), their ratio (goal >= 0.85), and bytes per frame on disk against
dense float32 posteriors. One process, one thread, the same utterances for both. The dump's
own forward time within its pass is printed too (``dump_forward_share``): the ratio without
the order of the two passes in it.

e.g.: python -m kdhybrid.bench dump --data data/train --teacher exp/ensemble_logit --topk 10
"""
from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path
from typing import List, Optional

import torch


def main(argv: Optional[List[str]] = None) -> int:
    from kdhybrid.decode.acoustic import BATCH_FRAMES, iter_feature_batches
    from kdhybrid.distill.dump import DumpConfig, dump_job, load_teacher
    from kdhybrid.io.datadir import read_data_dir, subset_data_dir

    p = argparse.ArgumentParser(prog="python -m kdhybrid.bench dump", description=__doc__)
    p.add_argument("--data", required=True)
    p.add_argument("--teacher", required=True)
    p.add_argument("--topk", type=int, default=10)
    p.add_argument("--max-utts", type=int, default=400, help="0: all")
    p.add_argument("--batch-frames", type=int, default=BATCH_FRAMES)
    a = p.parse_args(argv)
    torch.set_num_threads(1)
    teacher = load_teacher(a.teacher)
    with tempfile.TemporaryDirectory() as tmp:
        utts = read_data_dir(a.data).utts
        sub = subset_data_dir(a.data, utts[: a.max_utts] if a.max_utts else utts, Path(tmp) / "data")
        batches = list(iter_feature_batches(sub, a.batch_frames))
        frames = sum(len(f) for _, fs, _ in batches for f in fs)
        teacher.log_posteriors(batches[0][1], batches[0][2])  # warm-up: one whole batch
        t = time.time()
        for _, feats, cmvn in batches:
            teacher.log_posteriors(feats, cmvn)
        t_fwd = time.time() - t
        del batches
        out = Path(tmp) / "post"
        out.mkdir()
        t = time.time()
        s = dump_job(sub, teacher, out, 1, DumpConfig(topk=a.topk, batch_frames=a.batch_frames))
        t_dump = time.time() - t
        size = (out / "post.1.ark").stat().st_size
    res = {
        "teacher": teacher.description, "utts": s["utts"], "frames": frames, "topk": a.topk, "num_pdfs": teacher.num_pdfs,
        "forward_frames_per_second": round(frames / t_fwd, 1), "dump_frames_per_second": round(frames / t_dump, 1),
        "dump_over_forward": round(t_fwd / t_dump, 3), "goal": ">= 0.85",
        "dump_forward_share": round(s["seconds_forward"] / t_dump, 3),
        "bytes_per_frame": round(size / frames, 2), "dense_float32_bytes_per_frame": 4 * teacher.num_pdfs,
        "size_ratio_vs_dense": round(size / frames / (4 * teacher.num_pdfs), 4),
    }
    print(json.dumps(res, indent=1))
    return 0

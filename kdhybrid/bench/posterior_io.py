"""Posterior archive write/read throughput: ours (vectorised numpy) vs kaldi_native_io.

Writes and reads ``--frames`` frames of top-``--k`` posteriors in utterances of
``--utt-frames`` frames, with both implementations, checks that the archives are
byte-identical, and prints frames per second and the ratios. kaldi_native_io takes
Python lists; building them is not counted in its time.
"""
from __future__ import annotations

import argparse
import os
import tempfile
import time
from typing import List, Optional

import numpy as np


def main(argv: Optional[List[str]] = None) -> int:
    import kaldi_native_io as kio

    from kdhybrid.io.posterior import PosteriorReader, PosteriorWriter, read_posterior_ark

    p = argparse.ArgumentParser(prog="python -m kdhybrid.bench posterior-io", description=__doc__)
    p.add_argument("--frames", type=int, default=1_000_000)
    p.add_argument("--k", type=int, default=10)
    p.add_argument("--utt-frames", type=int, default=500)
    p.add_argument("--num-pdfs", type=int, default=3000)
    args = p.parse_args(argv)

    rng = np.random.default_rng(0)
    n_utts = args.frames // args.utt_frames
    utts = []
    for i in range(n_utts):
        ids = rng.integers(0, args.num_pdfs, (args.utt_frames, args.k)).astype(np.int32)
        probs = rng.dirichlet(np.ones(args.k), args.utt_frames).astype(np.float32)
        utts.append((f"utt{i:06d}", ids, probs))
    frames = n_utts * args.utt_frames

    with tempfile.TemporaryDirectory() as d:
        ours_ark, ours_scp = os.path.join(d, "ours.ark"), os.path.join(d, "ours.scp")
        t0 = time.perf_counter()
        with PosteriorWriter(ours_ark, ours_scp) as w:
            for key, ids, probs in utts:
                w.write_topk(key, ids, probs)
        t_ours_w = time.perf_counter() - t0

        kio_time = 0.0
        kio_ark = os.path.join(d, "kio.ark")
        with kio.PosteriorWriter(f"ark:{kio_ark}") as kw:
            for key, ids, probs in utts:
                value = [list(zip(r_ids, r_p)) for r_ids, r_p in zip(ids.tolist(), probs.tolist())]
                t0 = time.perf_counter()
                kw.write(key, value)
                kio_time += time.perf_counter() - t0
        t_kio_w = kio_time
        identical = open(ours_ark, "rb").read() == open(kio_ark, "rb").read()

        t0 = time.perf_counter()
        n_read = sum(post.num_frames for _, post in read_posterior_ark(ours_ark))
        t_ours_r = time.perf_counter() - t0
        t0 = time.perf_counter()
        reader = PosteriorReader(ours_scp)
        n_rand = sum(reader[k].num_frames for k in reader.keys())
        t_ours_ra = time.perf_counter() - t0
        t0 = time.perf_counter()
        n_kio = sum(len(v) for _, v in kio.SequentialPosteriorReader(f"ark:{kio_ark}"))
        t_kio_r = time.perf_counter() - t0
        size = os.path.getsize(ours_ark)
    assert n_read == n_rand == n_kio == frames

    fps = lambda t: frames / t
    print(f"posterior-io: {frames} frames, k={args.k}, {n_utts} utterances, {size / frames:.1f} bytes/frame")
    print(f"  archives byte-identical (ours vs kaldi_native_io): {identical}")
    print(f"  write  ours {fps(t_ours_w):12,.0f} frames/s   kaldi_native_io {fps(t_kio_w):12,.0f} frames/s   ratio {t_kio_w / t_ours_w:6.1f}x")
    print(f"  read   ours {fps(t_ours_r):12,.0f} frames/s   kaldi_native_io {fps(t_kio_r):12,.0f} frames/s   ratio {t_kio_r / t_ours_r:6.1f}x")
    print(f"  read by scp offset (random access) ours {fps(t_ours_ra):12,.0f} frames/s")
    return 0 if identical else 1

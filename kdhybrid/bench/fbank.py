"""Feature extraction throughput: steps/make_fbank.sh end to end vs kaldi-native-fbank
called directly on the same audio, both using every core.

* ``make_fbank``: ``steps/make_fbank.sh --nj <cores>`` on a copy of the data dir: audio
  read through lhotse from wav.scp (FLAC through sox pipes), fbank, Kaldi archives written.
* ``knf direct``: the same audio, already decoded in memory, through
  ``kaldi_native_fbank.OnlineFbank`` in <cores> processes, features discarded.
* ``ours, compute only``: :func:`kdhybrid.features.fbank.compute_fbank` on that in-memory
  audio, to separate our wrapper's cost from audio decoding and writing.
"""
from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import List, Optional



def _knf_direct(args):
    import kaldi_native_fbank as knf

    audios, num_bins = args
    opts = knf.FbankOptions()
    opts.frame_opts.dither = 0.0
    opts.mel_opts.num_bins = num_bins
    n = 0
    for a in audios:
        fb = knf.OnlineFbank(opts)
        fb.accept_waveform(16000, a)
        fb.input_finished()
        frames = [fb.get_frame(i) for i in range(fb.num_frames_ready)]
        n += len(frames)
    return n


def _ours_compute(args):
    from kdhybrid.features.fbank import FbankConfig, compute_fbank

    audios, conf = args
    cfg = FbankConfig.from_kaldi_conf(conf)
    opts = cfg.to_knf()
    return sum(compute_fbank(a, cfg, opts).shape[0] for a in audios)


def main(argv: Optional[List[str]] = None) -> int:
    from kdhybrid.features.fbank import FbankConfig, iter_data_dir_audio

    p = argparse.ArgumentParser(prog="python -m kdhybrid.bench fbank", description=__doc__)
    p.add_argument("--data-dir", required=True, help="a Kaldi data dir with wav.scp (e.g. data/dev)")
    p.add_argument("--config", default="conf/fbank.conf")
    p.add_argument("--nj", type=int, default=os.cpu_count() or 1)
    a = p.parse_args(argv)
    repo = Path(__file__).resolve().parents[2]
    cfg = FbankConfig.from_kaldi_conf(a.config)

    audios = [x for _, x in iter_data_dir_audio(a.data_dir, 16000)]
    seconds = sum(len(x) for x in audios) / 16000
    chunks = [audios[i :: a.nj] for i in range(a.nj)]

    with tempfile.TemporaryDirectory() as tmp:
        d = Path(tmp) / "data"
        shutil.copytree(a.data_dir, d, ignore=shutil.ignore_patterns("split*", "feats.scp", "cmvn.scp", "utt2num_frames", "data", "log"))
        env = dict(os.environ, PYTHONPATH=str(repo) + os.pathsep + os.environ.get("PYTHONPATH", ""))
        t0 = time.perf_counter()
        r = subprocess.run(
            ["bash", str(repo / "steps/make_fbank.sh"), "--nj", str(a.nj), "--fbank-config", a.config, str(d), f"{tmp}/log", f"{tmp}/fbank"],
            cwd=repo if not Path(a.config).is_absolute() and not Path(a.config).exists() else os.getcwd(),
            env=env, capture_output=True, text=True,
        )
        t_make = time.perf_counter() - t0
        if r.returncode != 0:
            print(r.stdout + r.stderr, file=sys.stderr)
            return 1
        frames = sum(int(l.split()[1]) for l in (d / "utt2num_frames").read_text().splitlines())

    with mp.Pool(a.nj) as pool:
        t0 = time.perf_counter()
        n_knf = sum(pool.map(_knf_direct, [(c, cfg.num_mel_bins) for c in chunks]))
        t_knf = time.perf_counter() - t0
        t0 = time.perf_counter()
        n_ours = sum(pool.map(_ours_compute, [(c, str(Path(a.config).resolve())) for c in chunks]))
        t_ours = time.perf_counter() - t0
    assert n_knf == n_ours == frames, (n_knf, n_ours, frames)
    print(f"fbank: {len(audios)} utterances, {seconds / 3600:.3f} h, {frames} frames, {cfg.num_mel_bins} bins, {a.nj} processes")
    print(f"  make_fbank.sh end to end   {frames / t_make:10,.0f} frames/s  ({t_make:.2f} s, RTF {t_make / seconds:.4f})")
    print(f"  ours, compute only         {frames / t_ours:10,.0f} frames/s  ({t_ours:.2f} s)")
    print(f"  kaldi-native-fbank direct  {frames / t_knf:10,.0f} frames/s  ({t_knf:.2f} s)")
    print(f"  ratio end-to-end / direct  {t_knf / t_make:.3f}   compute-only / direct {t_knf / t_ours:.3f}")
    return 0

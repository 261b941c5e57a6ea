"""The teacher's "essence": top-k senone posteriors of every frame, as Kaldi Posterior archives.

One dump job takes one split of a data dir, runs the teacher (an ensemble dir or a single
model dir) over it in batches, and writes for every utterance a (T, K) Posterior: the K most
probable pdf-ids of each frame, most probable first, with their probabilities after
temperature T (not renormalised: the mass of the top K is what it is; ``K = 0`` writes all
pdfs). It also accumulates the mean cumulative probability of the top 1..100 pdfs (the mass
curve of Yang et al.'s Figure 1).

Jobs are atomic and resumable: ``post.JOB.ark``/``.scp`` are written under temporary names
and renamed when complete, and ``dump.JOB.json`` (the job's statistics) is written last; a
re-run skips the jobs that have it. Each job's output depends only on its split and the
teacher, so a resumed dump is byte-identical to an uninterrupted one.
"""
from __future__ import annotations

import json
import os
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Dict, List, Optional, Tuple, Union

import numpy as np
import torch

from kdhybrid.decode.acoustic import BATCH_FRAMES, iter_feature_batches
from kdhybrid.io.posterior import PosteriorWriter

Pathlike = Union[str, Path]
MASS_K = 100


@dataclass
class DumpConfig:
    topk: int = 10  # 0: the full distribution
    temperature: float = 1.0
    batch_frames: int = BATCH_FRAMES
    source: str = ""  # a finished dump with K >= topk to take the top k from, instead of the teacher


def load_teacher(teacher_dir: Pathlike):
    """An :class:`~kdhybrid.distill.ensemble.EnsembleScorer` for an ensemble dir, or a
    one-member ensemble for a model dir with ``final.pt``."""
    from kdhybrid.distill.ensemble import EnsembleConfig, EnsembleScorer

    d = Path(teacher_dir)
    if (d / "ensemble.json").is_file():
        return EnsembleScorer.load(d)
    if (d / "final.pt").is_file():
        return EnsembleScorer(EnsembleConfig([str(d)]))
    raise FileNotFoundError(f"teacher {d}: no ensemble.json or final.pt")


def topk_posteriors(lp: torch.Tensor, k: int):
    """(T, P) log posteriors -> ids (T, K) int32, probs (T, K) float32, most probable first
    (K = P when k is 0), and the (min(P, 100),) cumulative top-k mass summed over frames."""
    p = lp.exp()
    m = min(MASS_K, p.shape[1])
    top = torch.topk(p, max(k, m), dim=1)
    mass = top.values[:, :m].double().cumsum(1).sum(0).numpy()
    if k:
        return top.indices[:, :k].to(torch.int32).numpy(), top.values[:, :k].numpy(), mass
    ids = torch.arange(p.shape[1], dtype=torch.int32).expand(p.shape[0], -1)
    return ids.numpy(), p.numpy(), mass


def _kept_mass(mass: np.ndarray, topk: int, num_pdfs: int) -> Optional[float]:
    """Mean probability mass a top-``topk`` dump keeps: 1 for the full distribution (``topk``
    0 or >= ``num_pdfs``), else the mass curve's entry (None past the curve's last k)."""
    if not topk or topk >= num_pdfs:
        return 1.0
    return round(float(mass[topk - 1]), 6) if topk <= len(mass) else None


def dump_job(data_dir: Pathlike, teacher, post_dir: Pathlike, job: int, cfg: DumpConfig) -> Dict[str, object]:
    """Write ``post.JOB.ark``/``post.JOB.scp`` and ``dump.JOB.json`` for one data split.

    :raises ValueError: when the data dir's features are not the teacher's
        (:func:`kdhybrid.decode.acoustic.check_input_features`)."""
    from kdhybrid.decode.acoustic import check_input_features

    check_input_features(teacher, data_dir)
    out = Path(post_dir)
    t0 = time.time()
    t_fwd = 0.0
    frames = utts = 0
    mass = np.zeros(min(MASS_K, teacher.num_pdfs))
    with PosteriorWriter(out / f"post.{job}.ark", out / f"post.{job}.scp") as w:
        for keys, feats, cmvn in iter_feature_batches(data_dir, cfg.batch_frames):
            t1 = time.time()
            lps = teacher.log_posteriors(feats, cmvn, cfg.temperature)
            t_fwd += time.time() - t1
            for u, lp in zip(keys, lps):
                ids, probs, m = topk_posteriors(lp, cfg.topk)
                w.write_topk(u, ids, probs)
                mass += m
                frames += lp.shape[0]
                utts += 1
    return job_done(out, dict(job=job, utts=utts, frames=frames, seconds=round(time.time() - t0, 2),
                              seconds_forward=round(t_fwd, 2), mass_sum=mass.tolist()))


def job_done(out: Path, stats: Dict[str, object]) -> Dict[str, object]:
    """Write ``dump.JOB.json`` (atomically, last: it marks the job finished)."""
    tmp = out / f"dump.{stats['job']}.json.tmp"
    tmp.write_text(json.dumps(stats) + "\n")
    os.replace(tmp, out / f"dump.{stats['job']}.json")
    return stats


def truncate_job(data_dir: Pathlike, post_dir: Pathlike, job: int, cfg: DumpConfig) -> Dict[str, object]:
    """Like :func:`dump_job`, but the top ``cfg.topk`` of each frame come from the finished dump
    ``cfg.source`` (same teacher and temperature, K >= topk) instead of a teacher forward pass.
    The top k of a top-K list are the teacher's top k, with the same probabilities, so the
    result equals a dump at k up to the order of pdfs with equal probability."""
    from kdhybrid.io.posterior import PosteriorReader
    from kdhybrid.io.tables import read_text_table

    src = Path(cfg.source)
    info = json.loads((src / "post.json").read_text())
    if not cfg.topk or cfg.topk > info["K"]:
        raise ValueError(f"{src}/post.json: a top-{info['K']} dump cannot give top-{cfg.topk or 'all'}")
    if abs(info["T"] - cfg.temperature) > 1e-9:
        raise ValueError(f"{src}/post.json: temperature {info['T']}, asked for {cfg.temperature}")
    reader = PosteriorReader(src / "post.scp")
    out = Path(post_dir)
    t0 = time.time()
    frames = utts = 0
    feats = Path(data_dir) / "feats.scp"
    with PosteriorWriter(out / f"post.{job}.ark", out / f"post.{job}.scp") as w:
        for u in read_text_table(feats, min_fields=2):
            if u not in reader:
                raise KeyError(f"{src}/post.scp: no entry for utterance '{u}' of {feats}")
            ids, probs = reader[u].to_topk()
            order = np.argsort(-probs, axis=1, kind="stable")
            ids, probs = np.take_along_axis(ids, order, 1), np.take_along_axis(probs, order, 1)
            w.write_topk(u, ids[:, :cfg.topk], probs[:, :cfg.topk])
            frames += len(ids)
            utts += 1
    # no mass sums: the mass curve is the source dump's (finish_dump)
    return job_done(out, dict(job=job, utts=utts, frames=frames, seconds=round(time.time() - t0, 2), seconds_forward=0.0))


def merge_jobs(post_dir: Pathlike, num_jobs: int) -> Tuple[List[dict], int]:
    """Check that every job finished (``dump.JOB.json``) and write ``post.scp`` from the jobs'
    scps. Returns (the jobs' statistics, bytes of their archives)."""
    from kdhybrid.io.tables import atomic_write_text

    out = Path(post_dir)
    jobs = []
    for j in range(1, num_jobs + 1):
        f = out / f"dump.{j}.json"
        if not f.is_file():
            raise FileNotFoundError(f"{f}: missing, job {j} did not finish (see {out}/log/dump.{j}.log); re-run to resume")
        jobs.append(json.loads(f.read_text()))
    atomic_write_text(out / "post.scp", "".join((out / f"post.{j}.scp").read_text() for j in range(1, num_jobs + 1)))
    return jobs, sum((out / f"post.{j}.ark").stat().st_size for j in range(1, num_jobs + 1))


def finish_dump(post_dir: Pathlike, num_jobs: int, teacher_dir: Pathlike, cfg: DumpConfig, num_pdfs: int) -> Dict[str, object]:
    """Merge the jobs: ``post.scp`` and ``post.json`` (K, T, teacher, frames, mass curve, bytes
    per frame against dense float32) and ``mass_curve.png``."""
    from kdhybrid.io.tables import atomic_write_text

    out = Path(post_dir)
    jobs, size = merge_jobs(out, num_jobs)
    frames = sum(s["frames"] for s in jobs)
    if cfg.source:  # the teacher's mass curve, as measured by the source dump (its K may be < 100)
        curve = json.loads((Path(cfg.source) / "post.json").read_text())["mass_curve"]
        mass = np.array([curve[str(k)] for k in range(1, len(curve) + 1)])
    else:
        mass = np.sum([s["mass_sum"] for s in jobs], axis=0) / max(frames, 1)
    tj = Path(teacher_dir) / "ensemble.json"
    if tj.is_file():
        teacher = json.loads(tj.read_text())
    else:
        teacher = {"members": [str(teacher_dir)], "weights": [1.0], "fusion": "single"}
    info = dict(asdict(cfg), K=cfg.topk if cfg.topk else num_pdfs, T=cfg.temperature, teacher=str(teacher_dir),
                members=teacher["members"], weights=teacher["weights"], fusion=teacher["fusion"], num_pdfs=num_pdfs,
                utts=sum(s["utts"] for s in jobs), frames=frames, num_jobs=num_jobs,
                mean_topk_mass=_kept_mass(mass, cfg.topk, num_pdfs),
                bytes=size, bytes_per_frame=round(size / max(frames, 1), 2), dense_float32_bytes_per_frame=4 * num_pdfs,
                size_ratio_vs_dense=round(size / max(frames, 1) / (4 * num_pdfs), 4),
                seconds_jobs=round(sum(s["seconds"] for s in jobs), 1), seconds_forward=round(sum(s["seconds_forward"] for s in jobs), 1),
                mass_curve={str(k + 1): round(float(v), 6) for k, v in enumerate(mass)})
    atomic_write_text(out / "post.json", json.dumps(info, indent=1) + "\n")
    plot_mass_curve(mass, out / "mass_curve.png", f"{teacher['fusion']} teacher, T={cfg.temperature}")
    return info


def plot_mass_curve(mass: np.ndarray, path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    k = np.arange(1, len(mass) + 1)
    fig, ax = plt.subplots(figsize=(5, 3.5))
    ax.plot(k, mass, marker=".", ms=3)
    for kk in (1, 10, 40):
        if kk <= len(mass):
            ax.annotate(f"top-{kk}: {mass[kk - 1]:.3f}", (kk, mass[kk - 1]), textcoords="offset points", xytext=(8, -12), fontsize=8)
    ax.set_xscale("log")
    ax.set_xlabel("k (most probable senones kept)")
    ax.set_ylabel("mean probability mass of the top k")
    ax.set_ylim(0, 1.02)
    ax.grid(alpha=0.3)
    ax.set_title(title, fontsize=9)
    fig.tight_layout()
    tmp = path.with_name(path.stem + ".tmp.png")
    fig.savefig(tmp, dpi=120)
    plt.close(fig)
    os.replace(tmp, path)

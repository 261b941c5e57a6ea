"""Frame-wise LM posteriors: a unit LM's predictions turned into per-frame soft targets.

For an utterance with unit instances ``u_1 .. u_K`` (:mod:`kdhybrid.lm.units`), the LM reads
``<s> u_1 .. u_K`` and instance k gets ``q_k = p(. | <s>, u_<k)``, the LM's distribution of
the current unit given the units before it; every frame of instance k gets ``q_k``
("rearrangement"). So a frame's target depends only on the units before its own (causal).

``q_k`` leaves out the LM's ``</s>`` and is renormalised over the units (our choice: the head
has no ``</s>`` output, and instance k is known to be a unit). Each frame keeps the top-k
units of ``q_k``, most probable first (ties by unit id), not renormalised after the cut, as
the teacher dump does; frames without an instance (silence, noise and OOV words of the
subword head) are written with no pairs: Kaldi's "no target".

Written through the teacher dump's writer (:class:`~kdhybrid.io.posterior.PosteriorWriter`,
``post.JOB.ark``/``.scp``, ``dump.JOB.json`` last, :func:`~kdhybrid.distill.dump.merge_jobs`),
so jobs are atomic and resumable and kaldi_native_io reads the archives; ``post.json`` says
what made them.
"""
from __future__ import annotations

import json
import logging
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Dict, List, Mapping, Optional, Protocol, Sequence, Tuple, Union

import numpy as np

from kdhybrid.distill.dump import job_done, merge_jobs
from kdhybrid.gmm.tree import TidInfo
from kdhybrid.io.posterior import Posterior, PosteriorWriter
from kdhybrid.lm.units import UnitInstances, UnitInventory, UnitPipeline

Pathlike = Union[str, Path]
log = logging.getLogger("kdhybrid.lm")


class UnitLm(Protocol):
    """What the frame-wise posteriors need of a unit LM (the LSTM or an ARPA n-gram)."""

    num_units: int

    def next_unit_logprobs(self, seqs: Sequence[np.ndarray], batch_tokens: int = ...) -> List[np.ndarray]:
        ...


def instance_targets(logprobs: np.ndarray, num_instances: int, topk: int) -> Tuple[np.ndarray, np.ndarray]:
    """Top-k targets of each instance from the LM's scores of a sentence.

    :param logprobs: (K + 1, V + 1) float log-probabilities (row k: ``log p(. | <s>, u_1..u_k)``,
        column V: ``</s>``), as ``next_unit_logprobs`` gives them.
    :param num_instances: K. :param topk: units kept (0 or >= V: all).
    :return: ids (K, k) int32 and probs (K, k) float32: row k the top units of
        ``q_k = p(. | <s>, u_<k)`` renormalised over the V units, most probable first.
    """
    if logprobs.ndim != 2 or logprobs.shape[0] < num_instances:
        raise ValueError(f"instance_targets: {num_instances} instances need at least that many rows, got {logprobs.shape}")
    lp = logprobs[:num_instances, :-1].astype(np.float64)
    v = lp.shape[1]
    p = np.exp(lp - lp.max(1, keepdims=True)) if num_instances else np.zeros((0, v))
    p /= np.maximum(p.sum(1, keepdims=True), 1e-300)
    k = v if not topk or topk >= v else topk
    order = np.argsort(-p, axis=1, kind="stable")[:, :k]
    return order.astype(np.int32), np.take_along_axis(p, order, 1).astype(np.float32)


def frame_posterior(inst: UnitInstances, ids: np.ndarray, probs: np.ndarray, num_frames: int) -> Posterior:
    """Every frame of instance k gets row k of (ids, probs); frames of no instance get no pairs.

    :param ids: (K, k) int32. :param probs: (K, k) float32.
    """
    fi = inst.frame_instance(num_frames)
    return frame_posterior_from_index(fi, ids, probs)


def frame_posterior_from_index(frame_instance: np.ndarray, ids: np.ndarray, probs: np.ndarray) -> Posterior:
    """As :func:`frame_posterior`, from the (T,) int64 instance of every frame (-1: none)."""
    has = frame_instance >= 0
    k = ids.shape[1] if ids.ndim == 2 else 0
    rows = frame_instance[has]
    return Posterior(np.where(has, k, 0).astype(np.int32), ids[rows].reshape(-1), probs[rows].reshape(-1))


def fit_frames(frame_instance: np.ndarray, num_frames: int, utt: str) -> np.ndarray:
    """The frame-instance map fitted to the features' ``num_frames`` as the cuts fit the labels
    (:func:`kdhybrid.data.cuts.make_cuts`): one frame more repeats the last, one fewer drops it.

    :raises ValueError: naming ``utt`` when they differ by more than one frame."""
    t = len(frame_instance)
    if abs(t - num_frames) > 1:
        raise ValueError(f"utterance '{utt}': {t} alignment frames but {num_frames} feature frames")
    if t < num_frames:
        return np.concatenate([frame_instance, frame_instance[-1:]])[:num_frames]
    return frame_instance[:num_frames]


@dataclass
class LmDumpConfig:
    unit: str = "monophone"
    topk: int = 16
    batch_tokens: int = 20000  # units a batch of the LM pass


def lm_dump_job(
    utts: Sequence[str],
    alis: Mapping[str, np.ndarray],
    texts: Mapping[str, Sequence[str]],
    info: TidInfo,
    pipeline: UnitPipeline,
    lm: UnitLm,
    post_dir: Pathlike,
    job: int,
    cfg: LmDumpConfig,
    num_frames: Optional[Mapping[str, int]] = None,
) -> Dict[str, object]:
    """Write ``post.JOB.ark``/``.scp`` (frame-wise LM posteriors of ``utts``, in that order) and
    ``dump.JOB.json``. Utterances without an alignment are left out and counted.

    :param alis: utterance -> (T,) int32 transition-ids. :param texts: utterance -> words.
    :param num_frames: utterance -> feature frames, to fit the targets to (as the cuts' labels).
    """
    if len(pipeline.inventory) != lm.num_units:
        raise ValueError(f"the LM has {lm.num_units} units but the {pipeline.inventory.kind} inventory {len(pipeline.inventory)}")
    out = Path(post_dir)
    t0 = time.time()
    t_lm = 0.0
    st = dict(job=job, utts=0, frames=0, target_frames=0, instances=0, without_alignment=0, mass_sum=0.0)
    todo = [u for u in utts if u in alis]
    missing = [u for u in utts if u not in alis]
    with PosteriorWriter(out / f"post.{job}.ark", out / f"post.{job}.scp") as w:
        start = 0
        while start < len(todo):
            batch: List[Tuple[str, UnitInstances]] = []
            tokens = 0
            while start < len(todo) and (not batch or tokens < cfg.batch_tokens):
                u = todo[start]
                if u not in texts:
                    raise KeyError(f"utterance '{u}' has an alignment but no transcript")
                inst = pipeline.instances(alis[u], info, texts[u], u)
                batch.append((u, inst))
                tokens += len(inst) + 1
                start += 1
            t1 = time.time()
            lps = lm.next_unit_logprobs([b.units for _, b in batch], cfg.batch_tokens)
            t_lm += time.time() - t1
            for (u, inst), lp in zip(batch, lps):
                ids, probs = instance_targets(lp, len(inst), cfg.topk)
                fi = inst.frame_instance(len(alis[u]))
                if num_frames is not None:
                    if u not in num_frames:
                        raise KeyError(f"utterance '{u}' has an alignment but no frame count to fit its targets to (not in the cuts?)")
                    fi = fit_frames(fi, int(num_frames[u]), u)
                post = frame_posterior_from_index(fi, ids, probs)
                w.write(u, post)
                has = fi >= 0
                st["utts"] += 1
                st["frames"] += len(fi)
                st["target_frames"] += int(has.sum())
                st["instances"] += len(inst)
                st["mass_sum"] += float(probs.sum(1).astype(np.float64)[fi[has]].sum())
    st["without_alignment"] = len(missing)
    st["missing_examples"] = missing[:5]
    st["seconds"] = round(time.time() - t0, 2)
    st["seconds_lm"] = round(t_lm, 2)
    return job_done(out, st)


def finish_lm_dump(post_dir: Pathlike, num_jobs: int, cfg: LmDumpConfig, lm_path: Pathlike, inventory: UnitInventory,
                   extra: Optional[dict] = None) -> Dict[str, object]:
    """Merge the jobs: ``post.scp``, ``units.txt`` (the head's outputs) and ``post.json`` (K, T,
    the LM, units, frames with and without a target, mean top-k mass of the frames with one,
    bytes per frame)."""
    from kdhybrid.io.tables import atomic_write_text

    out = Path(post_dir)
    jobs, size = merge_jobs(out, num_jobs)
    frames = sum(s["frames"] for s in jobs)
    target = sum(s["target_frames"] for s in jobs)
    inventory.write(out / "units.txt")
    k = cfg.topk if cfg.topk and cfg.topk < len(inventory) else len(inventory)
    info = dict(asdict(cfg), K=k, T=1.0, teacher=str(lm_path), members=[str(lm_path)], weights=[1.0], fusion="unit_lm",
                num_units=len(inventory), utts=sum(s["utts"] for s in jobs), frames=frames, target_frames=target,
                masked_frames=frames - target, instances=sum(s["instances"] for s in jobs),
                without_alignment=sum(s["without_alignment"] for s in jobs), num_jobs=num_jobs,
                mean_topk_mass=round(sum(s["mass_sum"] for s in jobs) / max(target, 1), 6),
                bytes=size, bytes_per_frame=round(size / max(frames, 1), 2),
                seconds_jobs=round(sum(s["seconds"] for s in jobs), 1), seconds_lm=round(sum(s["seconds_lm"] for s in jobs), 1),
                **(extra or {}))
    atomic_write_text(out / "post.json", json.dumps(info, indent=1) + "\n")
    return info

"""Sequence-discriminative objectives on denominator lattices: MMI, boosted MMI and sMBR.

Each training step rescores the stored denominator lattices (:mod:`kdhybrid.decode.denlats`)
with the current network, as Kaldi's ``nnet3-discriminative-train`` does: an acoustic arc of
utterance ``n`` at frame ``t`` with pdf ``j`` scores

    graph score + a[n, t, j],   a = acwt * (max(log p(j | x_t), floor) - log prior(j))

(the floor, Kaldi's -20 ln 10 on log posteriors, passes the gradient straight through as
Kaldi's derivatives do). Sums over paths are k2's, in the log semiring and double precision
(arc scores themselves are k2's float32); gradients come from k2's autograd.

* **MMI**: ``num - den`` with ``den = log sum over lattice paths exp(path score)`` and ``num``
  the same sum over the paths whose pdf at every frame is the alignment's (the numerator):
  the alignment's acoustic score plus the log-sum of those paths' graph scores. Kaldi's
  numerator is the acoustic score alone, so its objective is lower by that graph term, a
  constant of the utterance: the gradients are identical, and here a lattice that holds only
  the reference path scores exactly 0 (in general MMI <= 0). Gradient with respect to
  ``a[n, t, j]``: numerator one-hot minus denominator posterior of pdf ``j`` at frame ``t``.
  Utterances whose lattice lacks the reference path are skipped (``skip_without_reference``);
  kept, they get Kaldi's numerator (graph term 0), and frame dropping handles the frames where
  the lattice lacks the reference pdf.
* **Boosted MMI** (``bmmi``): Kaldi's ``LatticeBoost``: each denominator arc's score gains
  ``boost * error``, error 1 when the arc's phone differs from the alignment's phone at that
  frame, except 0 when the arc's phone is a silence phone (Kaldi's max_silence_error 0 in
  nnet3); paths with more errors are boosted, so the model must beat them by a margin.
  Boost 0 is MMI exactly.
* **MMI frame dropping** (``drop_frames``, Kaldi's drop_frames): frames where the denominator
  gives the alignment's pdf a posterior below ``drop_threshold`` get no gradient (the
  objective is still summed over all frames, as Kaldi reports it). Kaldi drops frames whose
  reference pdf is missing from its single-precision posteriors, i.e. below 2^-150 (rounds to
  0 in float32): the default. Where lattices must hold the reference path (the default),
  a frame is dropped only where the reference's posterior underflows.
* **sMBR**: the expected frame accuracy ``sum over acoustic arcs of posterior * accuracy``;
  accuracy 1 where the arc's pdf is the alignment's, or, with ``one_silence_class`` (Kaldi's
  default), where both the arc's and the alignment's phones are silence phones (without it:
  only non-silence arcs with the right pdf). Its gradient with respect to an arc's score is
  ``posterior * (expected accuracy of the paths through the arc - expected accuracy)``
  (Kaldi's LatticeForwardBackwardMpeVariants), here by autograd through k2's arc posteriors.

The loss to minimise is ``-objective / acwt``: gradients with respect to the network's log
posteriors then equal Kaldi's derivatives (not multiplied by the acoustic scale), plus
``xent_regularize`` times the frame cross-entropy of the alignment's pdfs (Kaldi's
``--xent-regularize``, here on the main output). Per frame, the sequence gradient sums to 0,
so it passes through the log-softmax unchanged.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Dict, List, Mapping, Optional, Sequence, Tuple, Union

import numpy as np
import torch

from kdhybrid.decode.denlats import ArcIndex, add_frames, check_arcs, lattice_frames, select
from kdhybrid.decode.k2_backend import num_arcs_per_fsa

Pathlike = Union[str, Path]
CRITERIA = ("smbr", "mmi", "bmmi")
LOG_POST_FLOOR = -20 * math.log(10)  # Kaldi's floor on log posteriors (discriminative-training.cc)
KALDI_ZERO_POSTERIOR = 2.0 ** -150  # below this a posterior is 0 in single precision


@dataclass
class SequenceConfig:
    criterion: str = "smbr"  # smbr | mmi | bmmi
    acwt: float = 0.1
    boost: float = 0.1  # bmmi only
    drop_frames: bool = True  # mmi and bmmi
    drop_threshold: float = KALDI_ZERO_POSTERIOR
    one_silence_class: bool = True  # smbr
    skip_without_reference: bool = True  # False: Kaldi's acoustic-only numerator for those utterances
    xent_regularize: float = 0.1
    log_post_floor: float = LOG_POST_FLOOR

    def __post_init__(self) -> None:
        if self.criterion not in CRITERIA:
            raise ValueError(f"criterion must be one of {CRITERIA}, got {self.criterion!r}")
        if self.acwt <= 0:
            raise ValueError(f"acwt must be positive, got {self.acwt}")
        if self.criterion == "bmmi" and self.boost < 0:
            raise ValueError(f"boost must be >= 0, got {self.boost}")
        if self.xent_regularize < 0:
            raise ValueError(f"xent_regularize must be >= 0, got {self.xent_regularize}")

    @property
    def is_mmi(self) -> bool:
        return self.criterion in ("mmi", "bmmi")

    @property
    def effective_boost(self) -> float:
        return self.boost if self.criterion == "bmmi" else 0.0

    def to_dict(self) -> dict:
        return asdict(self)


def silence_phones(lang_dir: Pathlike) -> List[int]:
    """The silence phones of a lang dir (``phones/silence.csl``), as Kaldi's scripts pass them."""
    csl = Path(lang_dir) / "phones" / "silence.csl"
    if not csl.is_file():
        raise FileNotFoundError(f"{csl}: missing (not a lang dir?)")
    return [int(x) for x in csl.read_text().strip().split(":") if x]


@dataclass
class PhoneSets:
    """What the objectives need from the transition model and the lang dir.

    ``tid2pdf``, ``tid2phone``: (num_tids + 1,) int (index 0 unused); ``silence``: phone ids."""

    tid2pdf: np.ndarray
    tid2phone: np.ndarray
    silence: Sequence[int]

    @classmethod
    def load(cls, model: Pathlike, silence: Sequence[int]) -> "PhoneSets":
        """From a Kaldi ``final.mdl`` (an ali dir's, ours or Kaldi's) and the silence phones
        (:func:`silence_phones`)."""
        from kdhybrid.gmm.kaldi_model import read_transition_model

        tables = read_transition_model(model)
        return cls(tables.tid2pdf, tables.tid2phone, list(silence))

    @property
    def num_tids(self) -> int:
        return len(self.tid2pdf) - 1

    @property
    def num_pdfs(self) -> int:
        return int(np.max(self.tid2pdf)) + 1

    def tid_tables(self) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(pdf, phone, is-silence) of each transition-id, (num_tids + 1,) int64/int64/bool."""
        t2p = torch.from_numpy(np.asarray(self.tid2pdf, dtype=np.int64))
        t2ph = torch.from_numpy(np.asarray(self.tid2phone, dtype=np.int64))
        sil = torch.from_numpy(np.isin(np.asarray(self.tid2phone), np.asarray(list(self.silence), dtype=np.int64)))
        return t2p, t2ph, sil


@dataclass
class DenominatorBatch:
    """Utterances' denominator lattices with what every step needs, computed once.

    ``lattice`` is a working copy whose scores each evaluation overwrites. Per acoustic arc
    (``index``): ``accuracy`` (sMBR frame accuracy), ``error`` (boosting phone error) as float64,
    ``on_reference`` (its pdf is the alignment's at its frame). Per utterance: ``lengths`` (N,)
    int64 frames, ``num_graph`` (N,) float64 log-sum of the numerator paths' graph scores;
    ``ref_pdf`` (N, T) int64 alignment pdfs, -1 on padding; ``without_reference``: utterances
    kept although their lattice lacks the reference path (numerator graph term 0)."""

    utts: List[str]
    lengths: torch.Tensor
    lattice: object
    index: ArcIndex
    graph: torch.Tensor
    accuracy: torch.Tensor
    error: torch.Tensor
    on_reference: torch.Tensor
    num_graph: torch.Tensor
    ref_pdf: torch.Tensor
    without_reference: List[str] = field(default_factory=list)

    @property
    def num_frames(self) -> int:
        return int(self.lengths.sum())


def prepare_batch(
    lat, utts: Sequence[str], alignments: Mapping[str, np.ndarray], phones: PhoneSets, one_silence_class: bool = True,
    skip_without_reference: bool = True,
) -> Tuple[Optional[DenominatorBatch], List[Tuple[str, str]]]:
    """Denominator lattices and numerator alignments of utterances, checked.

    :param lat: k2 FsaVec, one denominator lattice per utterance of ``utts`` (labels pdf+1,
        ``tid``, ``graph_scores``; ``frame`` is computed and added when missing).
    :param alignments: utterance -> (T,) int transition-ids (the numerator).
    :param skip_without_reference: skip an utterance whose lattice has no path with the
        alignment's pdfs; otherwise keep it with Kaldi's numerator, the alignment's acoustic
        score alone (its graph term 0; listed in ``without_reference``).
    :return: (the batch of the usable utterances, or None when none is; the skipped ones as
        (utterance, reason): no alignment, an empty lattice, or a lattice without the
        reference path).
    :raises ValueError: a lattice and its alignment of different lengths (naming both), or
        transition-ids outside the transition model or not mapping to their arcs' pdfs
        (:func:`kdhybrid.decode.denlats.check_arcs`)."""
    import k2

    if lat.shape[0] != len(utts):
        raise ValueError(f"{lat.shape[0]} lattices for {len(utts)} utterances")
    t2p, t2ph, t2sil = phones.tid_tables()
    skipped: List[Tuple[str, str]] = []
    lat = add_frames(lat)
    narcs = num_arcs_per_fsa(lat)
    keep = []
    for i, u in enumerate(utts):
        if u not in alignments:
            skipped.append((u, "no alignment"))
        elif narcs[i] == 0:
            skipped.append((u, "empty lattice"))
        else:
            keep.append(i)
    if not keep:
        return None, skipped
    lat = select(lat, keep)
    kutts = [utts[i] for i in keep]
    alis = [np.asarray(alignments[u], dtype=np.int64) for u in kutts]
    for u, a in zip(kutts, alis):
        if a.size and (a.min() < 1 or a.max() > phones.num_tids):
            raise ValueError(f"utterance '{u}': alignment has transition-ids outside [1, {phones.num_tids}] (another model?)")
    check_arcs(lat, phones.tid2pdf)
    lat_len = torch.tensor(lattice_frames(lat), dtype=torch.int64)
    for i, (u, a) in enumerate(zip(kutts, alis)):
        if int(lat_len[i]) != len(a):
            raise ValueError(f"utterance '{u}': its lattice has {int(lat_len[i])} frames but its alignment {len(a)}")
    n, tmax = len(kutts), max(len(a) for a in alis)
    ref_tid = torch.zeros(n, tmax, dtype=torch.int64)
    for i, a in enumerate(alis):
        ref_tid[i, : len(a)] = torch.from_numpy(a)
    pad = torch.arange(tmax)[None, :] >= lat_len[:, None]
    ref_pdf = t2p[ref_tid].masked_fill(pad, -1)
    index = ArcIndex.of(lat)
    tids = lat.tid.long()[index.acoustic]
    r_tid = ref_tid[index.utt, index.frame]
    on_ref = index.pdf == t2p[r_tid]
    sil, r_sil = t2sil[tids], t2sil[r_tid]
    if one_silence_class:
        acc = on_ref | (sil & r_sil)
    else:
        acc = on_ref & ~sil
    err = (t2ph[tids] != t2ph[r_tid]) & ~sil
    # numerator: the lattice's paths that follow the alignment's pdfs
    num = k2.Fsa(lat.arcs.clone())
    num_scores = torch.full((lat.num_arcs,), float("-inf"))
    allowed = lat.labels == -1
    allowed[index.acoustic] = on_ref
    num_scores[allowed] = lat.graph_scores[allowed]
    num.scores = num_scores
    num_graph = num.get_tot_scores(log_semiring=True, use_double_scores=True)
    missing = [i for i in range(n) if not math.isfinite(float(num_graph[i]))]
    if missing and skip_without_reference:
        skipped += [(kutts[i], "no reference path in the lattice") for i in missing]
        ok = [i for i in range(n) if i not in set(missing)]
        if not ok:
            return None, skipped
        batch, more = prepare_batch(select(lat, ok), [kutts[i] for i in ok], alignments, phones, one_silence_class)
        return batch, skipped + more
    num_graph[missing] = 0.0
    return DenominatorBatch(
        utts=kutts, lengths=lat_len, lattice=lat, index=index, graph=lat.graph_scores.to(torch.float64),
        accuracy=acc.to(torch.float64), error=err.to(torch.float64), on_reference=on_ref, num_graph=num_graph.detach(),
        ref_pdf=ref_pdf, without_reference=[kutts[i] for i in missing],
    ), skipped


def scaled_loglikes(log_posts: torch.Tensor, log_priors: torch.Tensor, acwt: float, floor: float = LOG_POST_FLOOR) -> torch.Tensor:
    """``acwt * (max(log_posts, floor) - log_priors)`` in float64; the floor passes gradients through.

    :param log_posts: (N, T, P) log posteriors. :param log_priors: (P,)."""
    lp = log_posts.to(torch.float64)
    floored = lp + (lp.clamp(min=floor) - lp).detach()
    return acwt * (floored - log_priors.to(torch.float64))


def sequence_objective(
    batch: DenominatorBatch, log_posts: torch.Tensor, log_priors: torch.Tensor, cfg: SequenceConfig,
) -> Dict[str, torch.Tensor]:
    """The criterion of ``cfg`` on a batch, differentiable with respect to ``log_posts``.

    :param log_posts: (N, T, P) log posteriors of the batch's utterances, in its order, padded
        (T >= the longest utterance); any float dtype.
    :param log_priors: (P,) log priors of the pdfs.
    :return: ``loss`` (scalar float64 to minimise: -objective / acwt + xent_regularize * CE),
        ``objective`` (sum over the batch: MMI in log units, sMBR in expected correct frames),
        ``per_utt`` (N,) objectives, ``xent`` (summed frame cross-entropy of the alignment),
        ``frames`` and ``dropped_frames`` (int64 scalars); all but ``loss`` detached."""
    n, t, p = log_posts.shape
    if n != len(batch.utts):
        raise ValueError(f"{n} utterances of network output for a batch of {len(batch.utts)}")
    if t < int(batch.lengths.max()):
        raise ValueError(f"network output has {t} frames, the longest lattice {int(batch.lengths.max())}")
    if batch.index.pdf.numel() and int(batch.index.pdf.max()) >= p:
        raise ValueError(f"lattice pdf {int(batch.index.pdf.max())} but the network has {p} outputs")
    a = scaled_loglikes(log_posts, log_priors, cfg.acwt, cfg.log_post_floor)  # (N, T, P) float64
    lat, idx = batch.lattice, batch.index
    acoustic = a[idx.utt, idx.frame, idx.pdf]
    scores = batch.graph.index_add(0, idx.acoustic, acoustic)
    if cfg.effective_boost:
        scores = scores.index_add(0, idx.acoustic, cfg.effective_boost * batch.error)
    lat.scores = scores.to(torch.float32)
    valid = batch.ref_pdf >= 0
    ref = batch.ref_pdf.clamp(min=0)
    dropped = torch.zeros((), dtype=torch.int64)
    if cfg.is_mmi:
        den = lat.get_tot_scores(log_semiring=True, use_double_scores=True)  # (N,)
        num = (a.gather(2, ref.unsqueeze(2)).squeeze(2) * valid).sum(1) + batch.num_graph
        per_utt = num - den
        if cfg.drop_frames and a.requires_grad:
            post = lat.get_arc_post(use_double_scores=True, log_semiring=True).detach()[idx.acoustic].exp()
            ref_post = torch.zeros(n, t, dtype=torch.float64)
            on = batch.on_reference
            ref_post.index_put_((idx.utt[on], idx.frame[on]), post[on], accumulate=True)
            drop = valid & (ref_post < cfg.drop_threshold)
            dropped = drop.sum()
            if bool(drop.any()):
                keep = (~drop).to(torch.float64).unsqueeze(2)
                a.register_hook(lambda g: g * keep)
    else:
        post = lat.get_arc_post(use_double_scores=True, log_semiring=True)[idx.acoustic].exp()
        per_utt = torch.zeros(n, dtype=torch.float64).index_add(0, idx.utt, post * batch.accuracy)
    objective = per_utt.sum()
    loss = -objective / cfg.acwt
    lp_ref = log_posts.gather(2, ref.unsqueeze(2)).squeeze(2).to(torch.float64)
    xent = -(lp_ref * valid).sum()
    if cfg.xent_regularize:
        loss = loss + cfg.xent_regularize * xent
    return {"loss": loss, "objective": objective.detach(), "per_utt": per_utt.detach(), "xent": xent.detach(),
            "frames": batch.lengths.sum(), "dropped_frames": dropped}

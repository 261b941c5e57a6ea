"""Student objectives: hard senone labels and the teacher's soft labels, together.

Soft labels come per frame as the teacher dump's top-k pdf-ids and probabilities ``q``
(K = all pdfs for full distillation). With the student's log posteriors ``log p`` on a head:

* ``multitask`` (Yang et al., 2019): ``hard_weight * CE(y, p_main) + soft_weight * sum_k -q_k log p_h(k)``
  where ``h`` is the main output or a separate ``distill`` head (decoding uses the main one);
  ``renormalize`` rescales each frame's top-k to sum to one;
* ``full`` (Chebotar & Waters, 2016): the same with the full distribution (a K = all dump),
  ``hard_weight`` 0 for pure distillation;
* ``interpolation`` (the baseline of Lee & Chang): one target, ``(1 - alpha) onehot(y) + alpha q``,
  cross-entropy on the main output.

(On a single output layer the cross-entropy against the interpolated target equals the
(1 - alpha, alpha) weighted sum of the two cross-entropies; the difference from multitask is
the weighting convention and that multitask may put the soft term on its own head.)

LM-to-AM distillation (Lee & Chang) adds one output head per unit LM (senones, monophones,
subwords; :mod:`kdhybrid.lm`) on the shared top layer: :func:`lm_heads_loss` is
``CE(y, p_main) + sum_u alpha_u * sum_k -q_u,k log p_u(k)`` with ``q_u`` the frame-wise LM
posteriors of unit kind u (frames without a target, e.g. silence for the subword head, have
probability 0 and add nothing). Decoding and priors use the main head only. Its label
interpolation baseline is ``interpolation`` above with the senone LM's dump as ``posts``
(:func:`interpolation_targets` writes that target out).
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Dict, Optional, Tuple

import torch
import torch.nn.functional as F

OBJECTIVES = ("none", "multitask", "full", "interpolation")


@dataclass
class DistillConfig:
    objective: str = "none"  # none: hard labels only
    posts: str = ""  # post.scp of the teacher dump of the training data
    hard_weight: float = 1.0
    soft_weight: float = 1.0
    head: str = "main"  # main | distill (a separate output layer for the soft labels)
    renormalize: bool = False
    alpha: float = 0.5  # interpolation weight of the soft label

    def __post_init__(self) -> None:
        if self.objective not in OBJECTIVES:
            raise ValueError(f"distill.objective must be one of {OBJECTIVES}, got {self.objective!r}")
        if self.objective != "none" and not self.posts:
            raise ValueError(f"distill.objective {self.objective!r} needs distill.posts (a post.scp)")
        if self.head not in ("main", "distill"):
            raise ValueError(f"distill.head must be 'main' or 'distill', got {self.head!r}")
        if not 0.0 <= self.alpha <= 1.0:
            raise ValueError(f"distill.alpha must be in [0, 1], got {self.alpha}")

    def to_dict(self) -> dict:
        return asdict(self)


def subsample_targets(out: Dict[str, torch.Tensor], batch: Dict[str, object], subsampling: int) -> Tuple[Dict[str, torch.Tensor], Dict[str, object]]:
    """A model with frame subsampling (outputs every ``subsampling``-th frame, 30 ms with 3)
    learns the targets of the frames its outputs land on: the batch's frame-rate ``labels``,
    ``soft_ids``/``soft_probs`` and ``lm_soft`` taken every ``subsampling``-th frame, and both
    sides cut to the same length (as the trainer's frame cross-entropy does).

    :param out: {head: (N, T', dim) logits}. :param batch: frame-rate targets (N, T, ...).
    :return: (out, batch) with every target and head (N, min(T', ceil(T / subsampling)), ...)."""
    if subsampling == 1:
        return out, batch
    t = min(out["main"].shape[1], -(-batch["labels"].shape[1] // subsampling))
    sub = dict(batch)
    sub["labels"] = batch["labels"][:, ::subsampling][:, :t]
    for k in ("soft_ids", "soft_probs"):
        if k in batch:
            sub[k] = batch[k][:, ::subsampling][:, :t]
    if "lm_soft" in batch:
        sub["lm_soft"] = {u: (a[:, ::subsampling][:, :t], b[:, ::subsampling][:, :t]) for u, (a, b) in batch["lm_soft"].items()}
    return {k: v[:, :t] for k, v in out.items()}, sub


def soft_ce(logp: torch.Tensor, ids: torch.Tensor, probs: torch.Tensor, renormalize: bool = False) -> torch.Tensor:
    """Sum over frames of ``-sum_k q_k log p(id_k)``.

    :param logp: (N, T, P) float32 log posteriors. :param ids: (N, T, K) int64 pdf-ids.
    :param probs: (N, T, K) float32 teacher probabilities, 0 on padding frames."""
    if renormalize:
        probs = probs / probs.sum(-1, keepdim=True).clamp(min=1e-20)
    return -(logp.gather(-1, ids) * probs).sum()


def student_loss(out: Dict[str, torch.Tensor], batch: Dict[str, torch.Tensor], cfg: DistillConfig) -> Dict[str, torch.Tensor]:
    """Summed (not averaged) loss terms of a batch.

    :param out: the model's {head: (N, T, P) logits} (no subsampling).
    :param batch: with ``labels`` (N, T) int64 (-100 padding), ``soft_ids`` (N, T, K) int64 and
        ``soft_probs`` (N, T, K) float32.
    :return: {"loss", "hard_ce", "soft_ce"} summed over frames."""
    labels = batch["labels"]
    logp_main = out["main"].log_softmax(-1)
    mask = labels >= 0
    hard = -(logp_main.gather(-1, labels.clamp(min=0).unsqueeze(-1)).squeeze(-1) * mask).sum()
    if cfg.objective == "none":
        return {"loss": hard, "hard_ce": hard.detach(), "soft_ce": torch.zeros(())}
    ids, probs = batch["soft_ids"], batch["soft_probs"]
    if cfg.objective == "interpolation":
        soft = soft_ce(logp_main, ids, probs, True)
        return {"loss": (1 - cfg.alpha) * hard + cfg.alpha * soft, "hard_ce": hard.detach(), "soft_ce": soft.detach()}
    logp_soft = logp_main if cfg.head == "main" else out["distill"].log_softmax(-1)
    soft = soft_ce(logp_soft, ids, probs, cfg.renormalize)
    return {"loss": cfg.hard_weight * hard + cfg.soft_weight * soft, "hard_ce": hard.detach(), "soft_ce": soft.detach()}


LM_UNITS = ("senone", "monophone", "subword")


def lm_head_name(unit: str) -> str:
    """The output head of a unit LM's targets: ``lm_senone``, ``lm_monophone``, ``lm_subword``."""
    return f"lm_{unit}"


@dataclass
class LmHeadsConfig:
    """Auxiliary heads of LM-to-AM distillation, one per unit kind.

    :param posts: unit -> post.scp of its frame-wise LM posteriors (:mod:`kdhybrid.lm.posteriors`).
    :param weights: unit -> head weight alpha_u (0: the head's term is left out entirely).
    :param dims: unit -> number of units (the head's outputs); a unit not given here takes
        ``num_units`` of the post.json beside its post.scp (:meth:`with_dumps`).
    :param topk: unit -> K of its dump (frames have K pairs or none), from post.json likewise.
    """

    posts: Dict[str, str] = field(default_factory=dict)
    weights: Dict[str, float] = field(default_factory=dict)
    dims: Dict[str, int] = field(default_factory=dict)
    topk: Dict[str, int] = field(default_factory=dict)
    renormalize: bool = False

    def __post_init__(self) -> None:
        for name, d in (("posts", self.posts), ("weights", self.weights), ("dims", self.dims), ("topk", self.topk)):
            bad = sorted(set(d) - set(LM_UNITS))
            if bad:
                raise ValueError(f"lm_heads.{name}: unknown unit kinds {bad}; known: {LM_UNITS}")
        if set(self.posts) != set(self.weights) or not set(self.dims) <= set(self.posts) or not set(self.topk) <= set(self.posts):
            raise ValueError(f"lm_heads: posts {sorted(self.posts)} and weights {sorted(self.weights)} must name the same units "
                             f"(dims {sorted(self.dims)}, topk {sorted(self.topk)}: some of them)")
        for u, w in self.weights.items():
            if not w >= 0.0:
                raise ValueError(f"lm_heads.weights[{u!r}] must be >= 0, got {w}")
        for u, d in self.dims.items():
            if d <= 0:
                raise ValueError(f"lm_heads.dims[{u!r}] must be > 0, got {d}")

    def with_dumps(self) -> "LmHeadsConfig":
        """A copy with ``dims`` and ``topk`` of every unit, read from the post.json beside each
        post.scp where not given (``num_units`` and ``K``, as :func:`kdhybrid.lm.posteriors.finish_lm_dump` writes)."""
        import json
        from pathlib import Path

        dims, topk = dict(self.dims), dict(self.topk)
        for u in self.units:
            if u in dims and u in topk:
                continue
            pj = Path(self.posts[u]).parent / "post.json"
            if not pj.is_file():
                raise FileNotFoundError(f"{pj}: missing; the {u} head's size and K are read from it (or give lm_heads.dims and lm_heads.topk)")
            info = json.loads(pj.read_text())
            if "num_units" not in info:
                raise ValueError(f"{pj}: no num_units (not a dump of kdhybrid.lm.posteriors?)")
            dims.setdefault(u, int(info["num_units"]))
            topk.setdefault(u, int(info["K"]))
        return LmHeadsConfig(dict(self.posts), dict(self.weights), dims, topk, self.renormalize)

    @property
    def units(self) -> Tuple[str, ...]:
        """The configured unit kinds, in :data:`LM_UNITS` order."""
        return tuple(u for u in LM_UNITS if u in self.posts)

    @property
    def active(self) -> bool:
        return bool(self.posts)

    def to_dict(self) -> dict:
        return asdict(self)


def lm_heads_loss(out: Dict[str, torch.Tensor], batch: Dict[str, object], cfg: LmHeadsConfig,
                  base: Optional[torch.Tensor] = None) -> Dict[str, torch.Tensor]:
    """Summed (not averaged) loss of the main head and the LM heads.

    ``loss = CE(y, main) + sum over units with alpha_u > 0 of alpha_u * soft CE(q_u, lm_<u>)``.
    The hard term is computed as the trainer's frame cross-entropy (``F.cross_entropy``, sum,
    padding -100), and zero-weight units add no term at all, so with every weight 0 the loss
    and its gradients are the baseline's, bit for bit. With ``base`` (e.g. a distillation
    student's :func:`student_loss`) the LM terms are added to it instead of to the frame CE.

    :param out: {head: (N, T, dim) logits} with ``main`` and ``lm_<unit>`` (no subsampling).
    :param batch: ``labels`` (N, T) int64 (-100 padding) and ``lm_soft``: {unit: (ids (N, T, K)
        int64, probs (N, T, K) float32)}, probabilities 0 on padding and on frames without a target.
    :return: {"loss", "hard_ce", "soft_ce_<unit>", "frames_<unit>"} (the last two detached;
        frames_<unit>: frames with a target).
    """
    if base is None:
        labels = batch["labels"]
        logits = out["main"]
        hard = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), labels.reshape(-1), ignore_index=-100, reduction="sum")
        res: Dict[str, torch.Tensor] = {"hard_ce": hard.detach()}
        loss = hard
    else:
        res, loss = {}, base
    for u in cfg.units:
        w = float(cfg.weights[u])
        ids, probs = batch["lm_soft"][u]
        res[f"frames_{u}"] = (probs.sum(-1) > 0).sum()
        if w == 0.0:
            continue
        soft = soft_ce(out[lm_head_name(u)].log_softmax(-1), ids, probs, cfg.renormalize)
        loss = loss + w * soft
        res[f"soft_ce_{u}"] = soft.detach()
    res["loss"] = loss
    return res


def interpolation_targets(labels: torch.Tensor, ids: torch.Tensor, probs: torch.Tensor, alpha: float) -> Tuple[torch.Tensor, torch.Tensor]:
    """The label-interpolation target ``(1 - alpha) onehot(y) + alpha q`` as (K + 1)-entry lists,
    ``q`` the top-k soft labels renormalised to sum to one (as the ``interpolation`` objective).
    The label is the last entry (its id may also be among the first K: the entries add up).

    :param labels: (..., T) int64, -100 on padding. :param ids: (..., T, K) int64.
    :param probs: (..., T, K) float32.
    :return: ids (..., T, K + 1) int64 and probs (..., T, K + 1) float32; all 0 on padding.
    """
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"alpha must be in [0, 1], got {alpha}")
    q = probs / probs.sum(-1, keepdim=True).clamp(min=1e-20)
    valid = (labels >= 0).unsqueeze(-1)
    out_ids = torch.cat([ids, labels.clamp(min=0).unsqueeze(-1)], -1)
    out_p = torch.cat([alpha * q, torch.full_like(q[..., :1], 1.0 - alpha)], -1) * valid
    return out_ids, out_p

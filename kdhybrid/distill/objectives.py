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
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Dict

import torch

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

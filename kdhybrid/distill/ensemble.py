"""A teacher ensemble of hybrid acoustic models, fused two ways.

* ``posterior`` (Chebotar & Waters, 2016): ``p(s|x) = sum_i w_i softmax(z_i / T)``, the
  weighted average of the members' posteriors;
* ``logit`` (Yang et al., 2019): ``p(s|x) = softmax(sum_i w_i z_i / T)``, one softmax over
  the weighted average of the members' logits.

``z_i`` are member i's output logits at the input frame rate (subsampled models repeat
theirs), ``w_i`` the weights (normalised to sum to one), ``T`` the temperature. Members
must share the pdf set (same ``num_pdfs``, trained on one alignment), the input features
and the output frame rate. An ensemble dir holds ``ensemble.json`` (:class:`EnsembleConfig`)
and decodes like any model dir (``steps/decode.sh`` on ``<ensemble-dir>/decode_*``).
"""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Union

import numpy as np
import torch

from kdhybrid.decode.acoustic import BATCH_FRAMES, AcousticScorer, NnetScorer, nnet_inputs

Pathlike = Union[str, Path]
FUSIONS = ("posterior", "logit")


@dataclass
class EnsembleConfig:
    members: List[str]  # exp dirs, each with final.pt
    weights: List[float] = field(default_factory=list)  # default: uniform
    fusion: str = "posterior"
    selection: dict = field(default_factory=dict)  # how the weights were chosen (grid search record)

    def __post_init__(self) -> None:
        if not self.members:
            raise ValueError("an ensemble needs at least one member")
        if not self.weights:
            self.weights = [1.0 / len(self.members)] * len(self.members)
        if len(self.weights) != len(self.members):
            raise ValueError(f"{len(self.weights)} weights for {len(self.members)} members")
        if any(w < 0 for w in self.weights) or sum(self.weights) <= 0:
            raise ValueError(f"weights must be >= 0 and not all 0: {self.weights}")
        if self.fusion not in FUSIONS:
            raise ValueError(f"fusion must be one of {FUSIONS}, got {self.fusion!r}")

    def save(self, exp_dir: Pathlike) -> None:
        d = Path(exp_dir)
        d.mkdir(parents=True, exist_ok=True)
        tmp = d / "ensemble.json.tmp"
        tmp.write_text(json.dumps(asdict(self), indent=1) + "\n")
        tmp.replace(d / "ensemble.json")

    @classmethod
    def load(cls, exp_dir: Pathlike) -> "EnsembleConfig":
        return cls(**json.loads((Path(exp_dir) / "ensemble.json").read_text()))


def fuse(logits: Sequence[torch.Tensor], weights: Sequence[float], fusion: str, temperature: float = 1.0) -> torch.Tensor:
    """Fused log posteriors.

    :param logits: per member (..., P) float32 logits (same shape).
    :param weights: per member, >= 0 (normalised here).
    :return: (..., P) float32 log probabilities."""
    w = torch.tensor(weights, dtype=torch.float32)
    w = w / w.sum()
    if fusion == "logit":
        z = sum(wi * zi for wi, zi in zip(w.tolist(), logits))
        return (z / temperature).log_softmax(-1)
    if fusion == "posterior":
        lps = torch.stack([(zi / temperature).log_softmax(-1) for zi in logits])  # (M, ..., P)
        logw = torch.log(w).view(-1, *([1] * (lps.dim() - 1)))
        return torch.logsumexp(lps + logw, dim=0)
    raise ValueError(f"unknown fusion {fusion!r} (one of {FUSIONS})")


def load_members(members: Sequence[Pathlike]) -> List[NnetScorer]:
    """The members' models; checks they can be fused (errors name the member)."""
    out = []
    for m in members:
        f = Path(m) / "final.pt"
        if not f.is_file():
            raise FileNotFoundError(f"ensemble member {m}: no final.pt")
        out.append(NnetScorer(f))
    first = out[0]
    for m, s in zip(members[1:], out[1:]):
        for what, a, b in (("pdf count", first.num_pdfs, s.num_pdfs),
                           ("frame subsampling", first.model.cfg.subsampling, s.model.cfg.subsampling),
                           ("feature dim", first.model.cfg.feat_dim, s.model.cfg.feat_dim),
                           ("input features", first.input_features, s.input_features)):
            if a != b:
                raise ValueError(f"ensemble members disagree on {what}: {members[0]} has {a}, {m} has {b}")
    return out


class EnsembleScorer(AcousticScorer):
    """Fused members as one acoustic model: log-likelihood = fused log posterior - log prior."""

    def __init__(self, cfg: EnsembleConfig, members: Optional[List[NnetScorer]] = None):
        self.cfg = cfg
        self.members = members if members is not None else load_members(cfg.members)
        self.num_pdfs = self.members[0].num_pdfs
        self.input_features = self.members[0].input_features  # the members agree (load_members)
        w = torch.tensor(cfg.weights) / sum(cfg.weights)
        # The members' priors are the label priors of one alignment; averaged all the same.
        self.log_priors = torch.log(sum(wi * m.log_priors.exp() for wi, m in zip(w.tolist(), self.members)))
        self.description = f"ensemble ({cfg.fusion} fusion) of {', '.join(cfg.members)}, weights {[round(x, 3) for x in cfg.weights]}"

    @classmethod
    def load(cls, exp_dir: Pathlike) -> "EnsembleScorer":
        return cls(EnsembleConfig.load(exp_dir))

    @torch.no_grad()
    def member_logits(self, feats, cmvn, members: Optional[Sequence[int]] = None) -> List[torch.Tensor]:
        """(M, N, T, P) float32 logits of the members (all, or those indexed) on a padded batch,
        and (N,) lengths."""
        x, lengths = nnet_inputs(feats, cmvn)
        idx = range(len(self.members)) if members is None else members
        return torch.stack([self.members[i].model.frame_logits(x, lengths) for i in idx]), lengths

    @torch.no_grad()
    def log_posteriors(self, feats, cmvn, temperature: float = 1.0) -> List[torch.Tensor]:
        used = [i for i, w in enumerate(self.cfg.weights) if w > 0]  # a zero-weight member changes nothing
        z, lengths = self.member_logits(feats, cmvn, used)
        lp = fuse(list(z), [self.cfg.weights[i] for i in used], self.cfg.fusion, temperature)
        return [lp[i, : int(n)] for i, n in enumerate(lengths)]

    def loglikes(self, feats, cmvn, utts=None):
        return [lp - self.log_priors[None, :] for lp in self.log_posteriors(feats, cmvn)]


def simplex_grid(num_members: int, step: float) -> List[List[float]]:
    """All weight vectors with entries in multiples of ``step`` summing to one."""
    n = int(round(1.0 / step))
    out: List[List[float]] = []

    def rec(prefix: List[int], left: int) -> None:
        if len(prefix) == num_members - 1:
            out.append([round(k / n, 6) for k in prefix + [left]])
            return
        for k in range(left + 1):
            rec(prefix + [k], left - k)

    rec([], n)
    return out


def share_candidates(results: Sequence[dict], last: int) -> List[dict]:
    """The best weight vector by dev CE at each total weight of the ``last`` members (e.g. the
    sequence-trained ones, listed last): one candidate a share, by share (0 first). Dev frame
    CE alone would never mix criteria (a sequence-trained member's frame CE is worse, so its
    CE-best weight is 0); decoding one candidate a share lets dev WER decide how much of them
    to mix in (Chebotar & Waters' CE + sMBR ensembles). ``results``: dicts with "weights"
    and "ce" (:func:`frame_ce_grid`)."""
    if not 0 < last < len(results[0]["weights"]):
        raise ValueError(f"share_candidates: the share of the last {last} of {len(results[0]['weights'])} members: need 0 < last < members")
    best: Dict[float, dict] = {}
    for r in results:
        share = round(sum(r["weights"][-last:]), 6)
        if share not in best or r["ce"] < best[share]["ce"]:
            best[share] = r
    return [best[k] for k in sorted(best)]


@torch.no_grad()
def frame_ce_grid(members: List[NnetScorer], cuts, grid: Sequence[Sequence[float]], fusions: Sequence[str] = FUSIONS,
                  max_frames: int = BATCH_FRAMES) -> List[dict]:
    """Dev frame cross-entropy and accuracy of every (fusion, weights) of ``grid``, the cheap
    criterion of the weight search. The members' logits are computed once per batch.

    Scored on the frames the members' outputs land on (every ``subsampling``-th input frame,
    as the trainer's dev evaluation scores them): a single member's row is its dev CE and
    accuracy in the training history, so ensemble and members compare on one measure.
    Counting the repeated outputs at the input rate instead would score each output against
    its neighbours' labels too (a 30 ms TDNN: 2.84 instead of 2.06 nats).

    :param cuts: lhotse CutSet with features, CMVN and ``pdf_ali`` labels (make_cuts)."""
    from kdhybrid.train.data import load_example

    scorer = EnsembleScorer(EnsembleConfig([f"m{i}" for i in range(len(members))]), members)
    sub = members[0].model.cfg.subsampling  # the members agree (load_members)
    acc = {(f, tuple(w)): np.zeros(3) for f in fusions for w in grid}
    batch_x, batch_y, frames = [], [], 0

    def flush():
        z, lengths = scorer.member_logits(batch_x, [None] * len(batch_x))  # (M, N, T, P) at the input rate
        t = torch.arange(z.shape[2])
        mask = (t[None, :] < lengths[:, None]) & (t[None, :] % sub == 0)  # (N, T): the output frames
        zf = z[:, mask]  # (M, F, P)
        y = torch.from_numpy(np.concatenate([yi[::sub] for yi in batch_y])).long()
        ps = zf.softmax(-1) if "posterior" in fusions else None  # (M, F, P) member posteriors
        for f in fusions:
            for w in grid:
                wt = torch.tensor(w, dtype=torch.float32) / sum(w)
                if f == "logit":
                    lp = torch.einsum("m,mfp->fp", wt, zf).log_softmax(-1)
                else:  # a weighted sum of probabilities (3x faster than a logsumexp of log posteriors)
                    lp = torch.einsum("m,mfp->fp", wt, ps).clamp(min=1e-30).log()
                nll = -lp.gather(-1, y.unsqueeze(-1)).squeeze(-1)
                acc[(f, tuple(w))] += [float(nll.sum()), float(len(y)), float((lp.argmax(-1) == y).sum())]

    for cut in cuts:
        x, y = load_example(cut, members[0].num_pdfs)
        batch_x.append(x)
        batch_y.append(y)
        frames += len(x)
        if frames >= max_frames:
            flush()
            batch_x, batch_y, frames = [], [], 0
    if batch_x:
        flush()
    return [{"fusion": f, "weights": list(w), "ce": v[0] / max(v[1], 1), "acc": v[2] / max(v[1], 1), "frames": int(v[1])}
            for (f, w), v in acc.items()]

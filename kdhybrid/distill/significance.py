"""Paired significance and power of a WER comparison between two systems, seeds pooled.

Each side of a comparison may hold several seeds of one system. Per utterance, the errors of
a side are its seeds' mean; the difference between the sides is resampled over utterances
(the paired bootstrap of Bisani & Ney, 2004), so the p-value tests the utterance sample and
the seeds enter through their mean. The minimum detectable effect is the relative WER
difference that a two-sided test at ``alpha`` would find with probability ``power``, given
the spread of this pair's per-utterance differences (normal approximation of the bootstrap:
``(z_{1-alpha/2} + z_power) * sqrt(U) * sd(d_u)`` errors).

A claim's verdict (:func:`verdict`) needs at least ``min_seeds`` seeds on both sides:
reproduced when the difference is significant in the paper's direction, not reproduced when it
is significant the other way, or when it is not significant although the paper's own effect
would have been detectable; inconclusive otherwise.
"""
from __future__ import annotations

from dataclasses import dataclass
from statistics import NormalDist
from typing import Optional, Sequence

import numpy as np


@dataclass
class Comparison:
    """``new`` against ``ref`` on one test set (WERs in %, relative changes in % of ``ref``'s
    WER, positive when ``new`` is better)."""
    ref_wer: float  # mean over ref's seeds of the WER (%)
    new_wer: float
    ref_sd: Optional[float]  # sample sd over seeds (None for one seed)
    new_sd: Optional[float]
    ref_n: int  # seeds
    new_n: int
    relative: float  # 100 * (ref - new) / ref
    p: float  # two-sided paired bootstrap p-value
    mde: float  # minimum detectable effect, relative (%)


def pooled_errors(errors: Sequence[np.ndarray]) -> np.ndarray:
    """Per-utterance errors of a system's seeds (each (U,) int, the same utterances in the same
    order) -> their mean (U,) float64."""
    if not errors:
        raise ValueError("pooled_errors: no seeds")
    shapes = {e.shape for e in errors}
    if len(shapes) != 1:
        raise ValueError(f"pooled_errors: the seeds' error vectors differ in length: {sorted(shapes)}")
    return np.mean(np.stack([np.asarray(e, dtype=np.float64) for e in errors]), axis=0)


def bootstrap_p(d: np.ndarray, n: int = 10000, seed: int = 0) -> float:
    """Two-sided p-value that the per-utterance differences ``d`` (U,) sum to 0: utterances
    resampled with replacement ``n`` times; p = 2 * min(P(sum <= 0), P(sum >= 0))."""
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, len(d), size=(n, len(d)))
    sums = d[idx].sum(1)
    return float(min(1.0, 2 * min((sums <= 0).mean(), (sums >= 0).mean())))


def minimum_detectable_effect(d: np.ndarray, ref_errors: float, alpha: float = 0.05, power: float = 0.8) -> float:
    """The relative WER difference (% of ``ref_errors``, the reference side's total errors)
    that a two-sided paired test at ``alpha`` detects with probability ``power``, given the
    per-utterance differences ``d`` (U,): ``(z_{1-alpha/2} + z_power) * sqrt(U) * sd(d)``
    errors (sd with ddof 0: the bootstrap's own spread)."""
    if ref_errors <= 0:
        return float("inf")
    z = NormalDist().inv_cdf(1 - alpha / 2) + NormalDist().inv_cdf(power)
    return float(100 * z * np.sqrt(len(d)) * np.std(d) / ref_errors)


def compare(ref_errors: Sequence[np.ndarray], new_errors: Sequence[np.ndarray], words: np.ndarray,
            n: int = 10000, seed: int = 0) -> Comparison:
    """``new`` against ``ref``: per-seed error vectors (each (U,) int, utterances in the same
    order on both sides) and the reference words per utterance ``words`` (U,)."""
    total = float(np.sum(words))
    if total <= 0:
        raise ValueError("compare: the test set has no reference words")
    ref, new = pooled_errors(ref_errors), pooled_errors(new_errors)
    if ref.shape != new.shape or ref.shape != np.shape(words):
        raise ValueError(f"compare: utterance counts differ: ref {ref.shape}, new {new.shape}, words {np.shape(words)}")
    wers = lambda es: [100 * float(np.sum(e)) / total for e in es]  # noqa: E731
    rw, nw = wers(ref_errors), wers(new_errors)
    sd = lambda v: float(np.std(v, ddof=1)) if len(v) > 1 else None  # noqa: E731
    ref_wer, new_wer = float(np.mean(rw)), float(np.mean(nw))
    d = new - ref
    return Comparison(ref_wer, new_wer, sd(rw), sd(nw), len(rw), len(nw),
                      100 * (ref_wer - new_wer) / ref_wer if ref_wer else 0.0,
                      bootstrap_p(d, n, seed), minimum_detectable_effect(d, float(np.sum(ref))))


def verdict(c: Comparison, paper_relative: Optional[float] = None, min_seeds: int = 3, alpha: float = 0.05) -> str:
    """'reproduced', 'not reproduced' or 'inconclusive' (with the reason) for a claim that
    ``new`` is better than ``ref``; ``paper_relative``: the paper's own relative gain (%), where
    it gives one (its detectability turns a non-significant result into 'not reproduced')."""
    if min(c.ref_n, c.new_n) < min_seeds:
        return f"inconclusive (seeds {c.new_n} vs {c.ref_n}; {min_seeds} needed)"
    if c.p < alpha:
        return "reproduced" if c.relative > 0 else "not reproduced (significantly worse)"
    if paper_relative is not None and c.mde <= paper_relative:
        return f"not reproduced (the paper's {paper_relative:g}% was detectable)"
    return "inconclusive (not significant)"

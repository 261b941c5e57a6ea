"""Paired significance and power of a WER comparison between two systems, seeds included.

Each side of a comparison may hold several seeds of one system. The test is a two-level
bootstrap: each replicate draws the seeds of both sides with replacement (their deviations from
the side's mean scaled by sqrt(n / (n - 1)), so that the seeds' spread is not shrunk by the
draw) and then the utterances (the paired bootstrap of Bisani & Ney, 2004, on the difference of
the drawn seeds' mean errors). A seed that is worse across the board thus counts as seed noise,
not as an effect. With one seed a side it is the plain paired bootstrap.

The minimum detectable effect is the relative WER difference that a two-sided test at
``alpha`` finds with probability ``power``: ``(z_{1-alpha/2} + z_power)`` times the replicates'
standard deviation, over the reference side's errors. The 95% interval of the relative
difference comes from the replicates' percentiles.

A claim's verdict (:func:`verdict`) needs at least ``min_seeds`` seeds on both sides:
reproduced when the difference is significant in the paper's direction; not reproduced when it
is significant the other way, or when the 95% interval excludes the paper's own relative gain
(where it gives one; a gain on another corpus and baseline, so a loose yardstick); inconclusive
otherwise.
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
    p: float  # two-sided bootstrap p-value
    mde: float  # minimum detectable effect, relative (%)
    low: float = float("nan")  # 95% interval of ``relative`` (%)
    high: float = float("nan")


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
    return _p(_resampled_sums(d[None], np.zeros((1, len(d))), n, seed))


def _p(sums: np.ndarray) -> float:
    return float(min(1.0, 2 * min((sums <= 0).mean(), (sums >= 0).mean())))


def _resampled_sums(a: np.ndarray, b: np.ndarray, n: int, seed: int, chunk: int = 500) -> np.ndarray:
    """``n`` two-level bootstrap replicates (n,) of the summed difference in errors between
    sides ``a`` (seeds, U) and ``b`` (seeds, U): seeds drawn with replacement (deviations
    scaled by sqrt(k / (k - 1))), then utterances; in chunks of ``chunk`` replicates (memory
    ~ 8 * chunk * U bytes)."""
    rng = np.random.default_rng(seed)
    sides = []
    for x in (a, b):
        m = x.mean(0)
        sides.append(m + (x - m) * np.sqrt(len(x) / (len(x) - 1)) if len(x) > 1 else x)
    (a, b), u = sides, a.shape[1]
    out = np.empty(n)
    for i in range(0, n, chunk):
        k = min(chunk, n - i)
        ia, ib = rng.integers(0, len(a), (k, len(a))), rng.integers(0, len(b), (k, len(b)))
        d = a[ia].mean(1) - b[ib].mean(1)  # (k, U)
        idx = rng.integers(0, u, (k, u))
        out[i:i + k] = np.take_along_axis(d, idx, 1).sum(1)
    return out


def compare(ref_errors: Sequence[np.ndarray], new_errors: Sequence[np.ndarray], words: np.ndarray,
            n: int = 10000, seed: int = 0, alpha: float = 0.05, power: float = 0.8) -> Comparison:
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
    stack = lambda es: np.stack([np.asarray(e, dtype=np.float64) for e in es])  # noqa: E731
    sums = _resampled_sums(stack(ref_errors), stack(new_errors), n, seed)  # ref - new: positive when new is better
    ref_total = float(np.sum(ref))
    z = NormalDist().inv_cdf(1 - alpha / 2) + NormalDist().inv_cdf(power)
    rel = lambda x: 100 * x / ref_total if ref_total else 0.0  # noqa: E731
    return Comparison(ref_wer, new_wer, sd(rw), sd(nw), len(rw), len(nw),
                      100 * (ref_wer - new_wer) / ref_wer if ref_wer else 0.0, _p(sums),
                      rel(z * float(np.std(sums))) if ref_total else float("inf"),
                      rel(float(np.percentile(sums, 2.5))), rel(float(np.percentile(sums, 97.5))))


def verdict(c: Comparison, paper_relative: Optional[float] = None, min_seeds: int = 3, alpha: float = 0.05,
            no_worse: bool = False) -> str:
    """'reproduced', 'not reproduced' or 'inconclusive' (with the reason) for a claim that
    ``new`` is better than ``ref`` (``no_worse``: that it is not worse: reproduced unless
    significantly worse). ``paper_relative``: the paper's own relative gain (%), where it gives
    one: a non-significant result whose 95% interval lies below it is 'not reproduced'."""
    if min(c.ref_n, c.new_n) < min_seeds:
        return f"inconclusive (seeds {c.new_n} vs {c.ref_n}; {min_seeds} needed)"
    if c.p < alpha:
        return "reproduced" if c.relative > 0 else "not reproduced (significantly worse)"
    if no_worse:
        return "reproduced (not significantly worse)"
    if paper_relative is not None and c.high < paper_relative:
        return f"not reproduced (the 95% interval, {c.low:+.1f}% to {c.high:+.1f}%, lies below the paper's {paper_relative:g}%)"
    return "inconclusive (not significant)"

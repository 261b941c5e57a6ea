"""Cepstral mean and variance normalisation in Kaldi's format.

Kaldi's CMVN statistics of a speaker are a (2, D+1) float64 matrix: row 0 holds the sum
of the feature vectors with the frame count in the last column; row 1 the sum of their
squares (last column 0). ``compute-cmvn-stats --spk2utt`` writes one per speaker to
``cmvn.scp``; ``apply-cmvn`` normalises each utterance with its speaker's stats.
"""
from __future__ import annotations

import numpy as np


def accumulate_cmvn_stats(feats_list) -> np.ndarray:
    """Stats of a sequence of (T, D) feature matrices -> (2, D+1) float64."""
    stats = None
    for f in feats_list:
        f = np.asarray(f, dtype=np.float64)
        if stats is None:
            stats = np.zeros((2, f.shape[1] + 1), dtype=np.float64)
        if f.shape[1] != stats.shape[1] - 1:
            raise ValueError(f"accumulate_cmvn_stats: feature dim {f.shape[1]} != {stats.shape[1] - 1}")
        stats[0, :-1] += f.sum(axis=0)
        stats[1, :-1] += (f * f).sum(axis=0)
        stats[0, -1] += f.shape[0]
    if stats is None:
        raise ValueError("accumulate_cmvn_stats: no features")
    return stats


def apply_cmvn(feats: np.ndarray, stats: np.ndarray, norm_vars: bool = False) -> np.ndarray:
    """Kaldi's ``apply-cmvn``: subtract the mean (and divide by the std with ``norm_vars``).

    :param feats: (T, D) float32.
    :param stats: (2, D+1) float64 CMVN stats.
    :return: (T, D) float32.
    """
    stats = np.asarray(stats, dtype=np.float64)
    d = feats.shape[1]
    if stats.shape != (2, d + 1):
        raise ValueError(f"apply_cmvn: stats shape {stats.shape} does not match feature dim {d}")
    count = stats[0, -1]
    if count < 1:
        raise ValueError(f"apply_cmvn: CMVN stats have count {count}")
    mean = stats[0, :-1] / count
    out = feats.astype(np.float64) - mean
    if norm_vars:
        var = stats[1, :-1] / count - mean * mean
        var = np.maximum(var, 1.0e-20)
        out /= np.sqrt(var)
    return out.astype(np.float32)

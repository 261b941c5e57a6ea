"""Features for the GMM-HMM systems: fbank -> per-speaker CMVN -> cepstra -> deltas.

Kaldi's GMM recipes use MFCCs with deltas. An MFCC is the DCT of the log-mel filterbank
(Kaldi's compute-mfcc-feats: DCT-II, orthonormal, liftering 22), so the cepstra here are
computed from the fbank features the neural models use, instead of extracting MFCCs a
second time. CMVN (mean normalisation, per speaker) is applied to the fbank first; as the
DCT is linear this equals mean-normalising the cepstra. ``cmvn_opts`` and the other
options are recorded in the exp dir, like Kaldi's ``cmvn_opts`` file.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Optional, Tuple, Union

import numpy as np

from kdhybrid.features.cmvn import apply_cmvn
from kdhybrid.io.datadir import iter_utterance_features

Pathlike = Union[str, Path]


@dataclass
class GmmFeatConfig:
    num_ceps: int = 13
    cepstral_lifter: float = 22.0
    delta_order: int = 2  # 0: static only; 2: + deltas + delta-deltas (train_deltas)
    delta_window: int = 2
    norm_vars: bool = False


def dct_matrix(num_bins: int, num_ceps: int) -> np.ndarray:
    """(num_bins, num_ceps) orthonormal DCT-II, as Kaldi's ComputeDctMatrix."""
    n = np.arange(num_bins)
    k = np.arange(num_ceps)
    m = np.sqrt(2.0 / num_bins) * np.cos(np.pi / num_bins * (n[:, None] + 0.5) * k[None, :])
    m[:, 0] = np.sqrt(1.0 / num_bins)
    return m.astype(np.float32)


def lifter(num_ceps: int, q: float) -> np.ndarray:
    i = np.arange(num_ceps)
    return (1.0 + 0.5 * q * np.sin(np.pi * i / q)).astype(np.float32) if q else np.ones(num_ceps, np.float32)


def add_deltas(x: np.ndarray, order: int = 2, window: int = 2) -> np.ndarray:
    """Kaldi's add-deltas: (T, D) -> (T, D * (order + 1)), edges replicated."""
    outs = [x]
    cur = x
    denom = 2 * sum(i * i for i in range(1, window + 1))
    for _ in range(order):
        pad = np.pad(cur, ((window, window), (0, 0)), mode="edge")
        t = cur.shape[0]
        d = sum(i * (pad[window + i : window + i + t] - pad[window - i : window - i + t]) for i in range(1, window + 1)) / denom
        outs.append(d.astype(np.float32))
        cur = d
    return np.concatenate(outs, axis=1).astype(np.float32)


def gmm_features(fbank: np.ndarray, cmvn_stats: Optional[np.ndarray], cfg: GmmFeatConfig) -> np.ndarray:
    """(T, num_bins) fbank -> (T, num_ceps * (delta_order + 1)) float32."""
    x = apply_cmvn(fbank, cmvn_stats, cfg.norm_vars) if cmvn_stats is not None else fbank
    c = (x @ dct_matrix(x.shape[1], cfg.num_ceps)) * lifter(cfg.num_ceps, cfg.cepstral_lifter)
    return add_deltas(c, cfg.delta_order, cfg.delta_window) if cfg.delta_order else c.astype(np.float32)


def iter_gmm_features(data_dir: Pathlike, cfg: GmmFeatConfig) -> Iterator[Tuple[str, np.ndarray]]:
    """(utt, features) for every utterance of a data dir with feats.scp and cmvn.scp."""
    for utt, f, c in iter_utterance_features(data_dir, require_cmvn=True):
        yield utt, gmm_features(f, c, cfg)

"""Small LSTM language models over units (senones, monophones, subwords) on CPU.

A unit LM reads ``<s> u_1 .. u_K`` and predicts ``u_1 .. u_K </s>``; one symbol, the
sentence boundary (id ``num_units``), is both ``<s>`` and ``</s>``. Sentences are batched by
length and packed (``pack_sequence``), so padding never enters the LSTM or the loss, and a
sentence's scores do not depend on its batch.

Training is against a wall-clock budget as well as an epoch count, with a progress bar, the
held-out perplexity after every epoch (the best epoch is kept) and tokens per second.
Perplexity follows SRILM's ``ppl`` (what :func:`kdhybrid.lang.ngram.perplexity` reports for
the n-gram floor): ``exp`` of the mean negative log-probability over units and ``</s>``,
empty sentences skipped.
"""
from __future__ import annotations

import copy
import logging
import math
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Dict, Iterator, List, Optional, Sequence, Tuple, Union

import numpy as np
import torch
import torch.nn as nn

Pathlike = Union[str, Path]
log = logging.getLogger("kdhybrid.lm")


@dataclass
class LstmLmConfig:
    embed_dim: int = 128
    hidden_dim: int = 256
    num_layers: int = 1
    dropout: float = 0.1
    lr: float = 3e-3
    weight_decay: float = 0.0
    grad_clip: float = 1.0
    batch_tokens: int = 4000  # units (with the boundary) a batch
    max_epochs: int = 20
    max_seconds: float = 600.0  # wall-clock budget of the training
    max_train_tokens: int = 0  # subsample the training sentences to about this many units (0: all)
    patience: int = 3  # epochs without held-out improvement before stopping
    seed: int = 1
    threads: int = 0  # torch threads while training (0: as set); small LSTMs run best on 1 on a busy machine

    def to_dict(self) -> dict:
        return asdict(self)


class LstmLm(nn.Module):
    """Embedding -> LSTM -> linear over ``num_units + 1`` outputs (units and ``</s>``)."""

    def __init__(self, num_units: int, cfg: LstmLmConfig):
        super().__init__()
        if num_units <= 0:
            raise ValueError("an LM needs at least one unit")
        self.num_units, self.cfg = num_units, cfg
        v = num_units + 1
        self.embed = nn.Embedding(v, cfg.embed_dim)
        self.lstm = nn.LSTM(cfg.embed_dim, cfg.hidden_dim, num_layers=cfg.num_layers, batch_first=True,
                            dropout=cfg.dropout if cfg.num_layers > 1 else 0.0)
        self.drop = nn.Dropout(cfg.dropout)
        self.out = nn.Linear(cfg.hidden_dim, v)

    @property
    def boundary(self) -> int:
        return self.num_units

    def packed_logits(self, seqs: Sequence[torch.Tensor]) -> Tuple[torch.Tensor, torch.Tensor]:
        """Logits of every position of every sentence, packed.

        :param seqs: sentences as (K_i,) int64 unit ids (without boundaries).
        :return: (logits (sum(K_i + 1), V + 1) float32 in packed order, targets (same,) int64).
        """
        b = torch.tensor([self.boundary], dtype=torch.int64)
        inputs = [torch.cat([b, s]) for s in seqs]
        targets = [torch.cat([s, b]) for s in seqs]
        packed_in = nn.utils.rnn.pack_sequence(inputs, enforce_sorted=False)
        packed_tg = nn.utils.rnn.pack_sequence(targets, enforce_sorted=False)
        emb = self.drop(self.embed(packed_in.data))
        h, _ = self.lstm(nn.utils.rnn.PackedSequence(emb, packed_in.batch_sizes, packed_in.sorted_indices, packed_in.unsorted_indices))
        return self.out(self.drop(h.data)), packed_tg.data

    @torch.no_grad()
    def next_unit_logprobs(self, seqs: Sequence[np.ndarray], batch_tokens: int = 20000) -> List[np.ndarray]:
        """The LM's distribution of every unit given the units before it, from a sentence start.

        :param seqs: sentences as (K_i,) integer unit ids.
        :return: per sentence (K_i + 1, V + 1) float32 log-probabilities: row k is
            ``log p(. | <s>, u_1 .. u_k)``, so row k - 1 is the distribution of unit k (row K is
            where ``</s>`` is predicted); column V is ``</s>``.
        """
        was = self.training
        self.eval()
        out: List[Optional[np.ndarray]] = [None] * len(seqs)
        for idx in _batches([len(s) + 1 for s in seqs], batch_tokens, shuffle=None):
            ts = [torch.as_tensor(np.asarray(seqs[i]), dtype=torch.int64) for i in idx]
            b = torch.tensor([self.boundary], dtype=torch.int64)
            packed = nn.utils.rnn.pack_sequence([torch.cat([b, t]) for t in ts], enforce_sorted=False)
            h, _ = self.lstm(nn.utils.rnn.PackedSequence(self.embed(packed.data), packed.batch_sizes, packed.sorted_indices, packed.unsorted_indices))
            lp = self.out(h.data).log_softmax(-1)
            padded, lengths = nn.utils.rnn.pad_packed_sequence(
                nn.utils.rnn.PackedSequence(lp, packed.batch_sizes, packed.sorted_indices, packed.unsorted_indices), batch_first=True)
            for j, i in enumerate(idx):
                out[i] = padded[j, : int(lengths[j])].numpy()
        self.train(was)
        return out  # type: ignore[return-value]


def _batches(lengths: Sequence[int], batch_tokens: int, shuffle: Optional[np.random.Generator]) -> Iterator[List[int]]:
    """Indices of sentences in batches of about ``batch_tokens`` tokens, similar lengths together
    (sorted by length; the batches shuffled when ``shuffle`` is a generator)."""
    order = np.argsort(np.asarray(lengths), kind="stable")
    batches: List[List[int]] = []
    cur: List[int] = []
    tokens = 0
    for i in order.tolist():
        if cur and tokens + lengths[i] > batch_tokens:
            batches.append(cur)
            cur, tokens = [], 0
        cur.append(i)
        tokens += lengths[i]
    if cur:
        batches.append(cur)
    if shuffle is not None:
        shuffle.shuffle(batches)
    yield from batches


@torch.no_grad()
def perplexity(model: LstmLm, seqs: Sequence[np.ndarray], batch_tokens: int = 20000) -> Dict[str, float]:
    """SRILM-style perplexity of ``seqs`` (units and ``</s>`` counted, empty sentences skipped):
    {ppl, tokens, sentences, logprob}."""
    seqs = [s for s in seqs if len(s)]
    was = model.training
    model.eval()
    nll, n = 0.0, 0
    for idx in _batches([len(s) + 1 for s in seqs], batch_tokens, None):
        logits, tg = model.packed_logits([torch.as_tensor(np.asarray(seqs[i]), dtype=torch.int64) for i in idx])
        nll += float(nn.functional.cross_entropy(logits, tg, reduction="sum"))
        n += int(tg.shape[0])
    model.train(was)
    return {"ppl": round(math.exp(nll / max(n, 1)), 3), "tokens": n, "sentences": len(seqs), "logprob": -nll}


def unit_lm_perplexity(lm, seqs: Sequence[np.ndarray], batch_tokens: int = 20000) -> Dict[str, float]:
    """SRILM-style perplexity of ``seqs`` from any unit LM's ``next_unit_logprobs`` (an
    :class:`LstmLm` or an :class:`~kdhybrid.lm.ngram.ArpaUnitLm`; empty sentences skipped, as
    SRILM and kaldingram do): {ppl, tokens, sentences, logprob}."""
    seqs = [s for s in seqs if len(s)]
    nll, n = 0.0, 0
    for s, lp in zip(seqs, lm.next_unit_logprobs(seqs, batch_tokens)):
        target = np.r_[np.asarray(s, np.int64), lp.shape[1] - 1]
        nll -= float(lp[np.arange(len(target)), target].astype(np.float64).sum())
        n += len(target)
    return {"ppl": round(math.exp(nll / max(n, 1)), 3), "tokens": n, "sentences": len(seqs), "logprob": -nll}


def subsample_sentences(seqs: Sequence[np.ndarray], max_tokens: int, seed: int) -> List[np.ndarray]:
    """A random subset of the sentences with about ``max_tokens`` units (all when 0 or fewer)."""
    if not max_tokens or sum(len(s) + 1 for s in seqs) <= max_tokens:
        return list(seqs)
    order = np.random.default_rng(seed).permutation(len(seqs))
    out, n = [], 0
    for i in order.tolist():
        if n >= max_tokens:
            break
        out.append(seqs[i])
        n += len(seqs[i]) + 1
    return out


def train_lstm_lm(
    train: Sequence[np.ndarray], heldout: Sequence[np.ndarray], num_units: int, cfg: LstmLmConfig, progress: bool = True,
    name: str = "unit",
) -> Tuple[LstmLm, List[dict]]:
    """Train a unit LSTM LM; returns (the model of the best held-out epoch, the history:
    per epoch train/held-out perplexity, tokens per second, seconds)."""
    threads = torch.get_num_threads()
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    try:
        return _train(train, heldout, num_units, cfg, progress, name)
    finally:
        torch.set_num_threads(threads)


def _train(train, heldout, num_units: int, cfg: LstmLmConfig, progress: bool, name: str) -> Tuple[LstmLm, List[dict]]:
    torch.manual_seed(cfg.seed)
    rng = np.random.default_rng(cfg.seed)
    train = subsample_sentences(train, cfg.max_train_tokens, cfg.seed)
    model = LstmLm(num_units, cfg)
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    history: List[dict] = []
    best, best_state, bad = float("inf"), copy.deepcopy(model.state_dict()), 0
    t_start = time.time()
    total_tokens = sum(len(s) + 1 for s in train)
    out_of_time = False
    for epoch in range(1, cfg.max_epochs + 1):
        t0 = time.time()
        model.train()
        nll, n = 0.0, 0
        bar = None
        if progress:
            from tqdm import tqdm

            bar = tqdm(total=total_tokens, desc=f"{name} LM epoch {epoch}", unit="tok",
                       unit_scale=True, mininterval=5, leave=False)
        for idx in _batches([len(s) + 1 for s in train], cfg.batch_tokens, rng):
            logits, tg = model.packed_logits([torch.as_tensor(np.asarray(train[i]), dtype=torch.int64) for i in idx])
            loss = nn.functional.cross_entropy(logits, tg, reduction="sum")
            opt.zero_grad()
            (loss / tg.shape[0]).backward()
            if cfg.grad_clip:
                nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
            opt.step()
            nll += float(loss)
            n += int(tg.shape[0])
            if bar is not None:
                bar.update(int(tg.shape[0]))
            if time.time() - t_start > cfg.max_seconds:
                out_of_time = True
                break
        if bar is not None:
            bar.close()
        dev = perplexity(model, heldout)
        secs = time.time() - t0
        rec = {"epoch": epoch, "train_ppl": round(math.exp(nll / max(n, 1)), 3), "heldout_ppl": dev["ppl"],
               "tokens": n, "tokens_per_second": round(n / max(secs, 1e-9), 1), "seconds": round(secs, 1),
               "complete": not out_of_time}
        history.append(rec)
        log.info("%s LM epoch %d: train ppl %.2f, held-out ppl %.2f, %.0f tokens/s", name, epoch, rec["train_ppl"], rec["heldout_ppl"], rec["tokens_per_second"])
        if dev["ppl"] < best:
            best, best_state, bad = dev["ppl"], copy.deepcopy(model.state_dict()), 0
        else:
            bad += 1
        if out_of_time or bad >= cfg.patience:
            break
    model.load_state_dict(best_state)
    model.eval()
    return model, history


def save_lm(path: Pathlike, model: LstmLm, extra: Optional[dict] = None) -> None:
    """One file that loads the model: config, unit count, weights and ``extra`` (history, units)."""
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    torch.save({"config": model.cfg.to_dict(), "num_units": model.num_units, "state_dict": model.state_dict(), **(extra or {})}, tmp)
    tmp.replace(path)


def load_lm(path: Pathlike) -> Tuple[LstmLm, dict]:
    """(the model in eval mode, the whole checkpoint)."""
    ck = torch.load(path, map_location="cpu")
    model = LstmLm(ck["num_units"], LstmLmConfig(**ck["config"]))
    model.load_state_dict(ck["state_dict"])
    model.eval()
    return model, ck

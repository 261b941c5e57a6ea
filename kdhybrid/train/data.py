"""Training data: lhotse cuts -> padded batches of CMVN'd features and senone labels.

A batch is ``{"feats": (N, T, F) float32, "lengths": (N,) int64, "labels": (N, T) int64
(-100 on padding), "ids": [cut ids]}``, and with a teacher dump (``posts``, a post.scp read
by random access) also ``"soft_ids"`` (N, T, K) int64 and ``"soft_probs"`` (N, T, K)
float32 (0 on padding), checked frame for frame against the hard labels; with LM-distillation
dumps (``lm_posts``, one per unit kind) ``"lm_soft"``: {unit: (ids (N, T, K_u) int64, probs
(N, T, K_u) float32)}, probabilities 0 on padding and on frames without a target. Batches come from lhotse's
``DynamicBucketingSampler`` (similar durations together, ``max_duration`` seconds a batch);
for data-parallel training every *global* batch is split across ranks
(:class:`RankShardedBatches`), so N processes see exactly the batches one process would.

Or, as Kaldi's nnet3 egs, batches of *chunks* (:class:`ChunkDataset`): every utterance held
in memory and cut into pieces of a few dozen frames at a phase that moves each epoch, the
pieces of the whole training set shuffled together, so every minibatch mixes many speakers,
conditions and sentences; each piece carries the model's context frames around it, unlabelled.

Checks on every cut, with errors that name it: labels and features of different lengths, a
label beyond the model's outputs, NaN/inf in the features. With ``skip_bad`` such cuts are
skipped and counted instead.
"""
from __future__ import annotations

import logging
import zlib
from dataclasses import dataclass
from typing import Dict, Iterator, List, NamedTuple, Optional, Sequence, Tuple

import numpy as np
import torch

log = logging.getLogger("kdhybrid.train")


class BadCutError(ValueError):
    pass


@dataclass
class SpecAugment:
    """SpecAugment-style masking of (T, F) features: ``num_time`` masks of up to
    ``max_time`` frames and ``num_freq`` masks of up to ``max_freq`` bins, set to 0 (the mean
    after CMVN)."""

    num_time: int = 2
    max_time: int = 20
    num_freq: int = 2
    max_freq: int = 8

    def __call__(self, x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        x = x.copy()
        t, f = x.shape
        for _ in range(self.num_freq):
            w = int(rng.integers(0, self.max_freq + 1))
            s = int(rng.integers(0, max(f - w, 1)))
            x[:, s : s + w] = 0.0
        for _ in range(self.num_time):
            w = int(rng.integers(0, min(self.max_time, max(t // 5, 1)) + 1))
            s = int(rng.integers(0, max(t - w, 1)))
            x[s : s + w] = 0.0
        return x


def load_example(cut, num_pdfs: Optional[int] = None, norm_vars: bool = False, need_labels: bool = True):
    """(features (T, F) float32 after CMVN, labels (T,) int64 or None) of one cut, checked."""
    from kdhybrid.data.cuts import CMVN_FIELD, LABEL_FIELD
    from kdhybrid.features.cmvn import apply_cmvn

    x = cut.load_features()
    if not np.isfinite(x).all():
        raise BadCutError(f"cut '{cut.id}': features contain NaN or inf")
    if cut.has_custom(CMVN_FIELD):
        x = apply_cmvn(x, cut.load_custom(CMVN_FIELD), norm_vars)
    y = None
    if need_labels:
        if not cut.has_custom(LABEL_FIELD):
            raise BadCutError(f"cut '{cut.id}': no '{LABEL_FIELD}' labels (make the cuts with --ali-dir)")
        y = cut.load_custom(LABEL_FIELD).astype(np.int64)
        if len(y) != len(x):
            raise BadCutError(f"cut '{cut.id}': {len(y)} label frames but {len(x)} feature frames")
        if num_pdfs is not None and y.size and (y.min() < 0 or y.max() >= num_pdfs):
            raise BadCutError(f"cut '{cut.id}': label {int(y.max())} outside the model's {num_pdfs} outputs")
    return x.astype(np.float32), y


def _pad_soft(soft: Sequence, n: int, t: int) -> Tuple[torch.Tensor, torch.Tensor]:
    """[(ids (T_i, K), probs (T_i, K))] -> ids (n, t, K) int64, probs (n, t, K) float32, zero-padded."""
    k = soft[0][0].shape[1]
    sid = torch.zeros(n, t, k, dtype=torch.int64)
    spr = torch.zeros(n, t, k)
    for i, (a, b) in enumerate(soft):
        sid[i, : len(a)] = torch.from_numpy(a.astype(np.int64))
        spr[i, : len(b)] = torch.from_numpy(b)
    return sid, spr


def collate(examples: Sequence, ids: Sequence[str], soft: Optional[Sequence] = None,
            lm_soft: Optional[Dict[str, Sequence]] = None) -> Dict[str, object]:
    n = len(examples)
    t = max(x.shape[0] for x, _ in examples)
    f = examples[0][0].shape[1]
    feats = torch.zeros(n, t, f)
    labels = torch.full((n, t), -100, dtype=torch.int64)
    lengths = torch.zeros(n, dtype=torch.int64)
    for i, (x, y) in enumerate(examples):
        feats[i, : len(x)] = torch.from_numpy(x)
        lengths[i] = len(x)
        if y is not None:
            labels[i, : len(y)] = torch.from_numpy(y)
    out = {"feats": feats, "lengths": lengths, "labels": labels, "ids": list(ids)}
    if soft is not None:
        sid, spr = _pad_soft(soft, n, t)
        out.update(soft_ids=sid, soft_probs=spr)
    if lm_soft:
        out["lm_soft"] = {u: _pad_soft(v, n, t) for u, v in lm_soft.items()}
    return out


def load_soft_labels(posts, scp: str, cut_id: str, num_frames: int, num_pdfs: Optional[int], masked_k: Optional[int] = None):
    """(ids (T, K) int32, probs (T, K) float32) of a cut from a teacher dump, checked.

    :param masked_k: for dumps whose frames may have no pairs (Kaldi's "no target": the LM
        dumps' silence on the subword head), the dump's K: every frame must have K pairs or
        none, and a frame with none becomes K pairs of probability 0. Without it (teacher
        dumps) every frame must have the same number of pairs.
    """
    if cut_id not in posts:
        raise BadCutError(f"cut '{cut_id}': no soft labels in {scp}")
    post = posts[cut_id]
    if post.num_frames != num_frames:
        raise BadCutError(f"cut '{cut_id}': {post.num_frames} soft-label frames in {scp} but {num_frames} label frames")
    if masked_k is not None:
        has = post.counts > 0
        if (post.counts[has] != masked_k).any():
            raise BadCutError(f"cut '{cut_id}': soft labels in {scp} have frames with neither {masked_k} pairs nor none")
        ids = np.zeros((post.num_frames, masked_k), np.int32)
        probs = np.zeros((post.num_frames, masked_k), np.float32)
        ids[has] = post.ids.reshape(-1, masked_k)
        probs[has] = post.probs.reshape(-1, masked_k)
    elif not post.is_fixed_k():
        raise BadCutError(f"cut '{cut_id}': soft labels in {scp} do not have the same k on every frame")
    else:
        ids, probs = post.to_topk()
    if num_pdfs is not None and ids.size and ids.max() >= num_pdfs:
        raise BadCutError(f"cut '{cut_id}': soft label pdf {int(ids.max())} outside the model's {num_pdfs} outputs")
    return ids, probs


class CutDataset(torch.utils.data.Dataset):
    """Map-style dataset over a CutSet, indexed by a list of cut ids (a batch)."""

    def __init__(self, cuts, num_pdfs: int, spec_augment: Optional[SpecAugment] = None, skip_bad: bool = False, seed: int = 0,
                 posts_scp: Optional[str] = None, lm_posts: Optional[Dict[str, Tuple[str, int, int]]] = None):
        """:param lm_posts: unit -> (post.scp of its LM dump, number of units, K)."""
        self.posts_scp = posts_scp
        self._posts = None  # opened lazily, in the process that reads (DataLoader workers)
        self.lm_posts = dict(lm_posts or {})
        self._lm: Dict[str, object] = {}
        self.cuts = cuts
        self.num_pdfs = num_pdfs
        self.spec_augment = spec_augment
        self.skip_bad = skip_bad
        self.num_skipped = 0
        self.seed = seed
        self.epoch = 0

    def _open(self) -> None:
        if self.posts_scp and self._posts is None:
            from kdhybrid.io.posterior import PosteriorReader

            self._posts = PosteriorReader(self.posts_scp)
        if self.lm_posts and not self._lm:
            from kdhybrid.io.posterior import PosteriorReader

            self._lm = {u: PosteriorReader(scp) for u, (scp, _, _) in self.lm_posts.items()}

    def load(self, cid: str) -> Optional[Example]:
        """One cut's checked :class:`Example`; None (counted, logged) for a bad cut with ``skip_bad``."""
        self._open()
        cut = self.cuts[cid]
        try:
            x, y = load_example(cut, self.num_pdfs)
            soft_one = load_soft_labels(self._posts, self.posts_scp, cid, len(y), self.num_pdfs) if self._posts is not None else None
            lm_one = {u: load_soft_labels(self._lm[u], scp, cid, len(y), dim, masked_k=k) for u, (scp, dim, k) in self.lm_posts.items()}
        except BadCutError:
            if not self.skip_bad:
                raise
            self.num_skipped += 1
            log.warning("skipping bad cut %s", cid)
            return None
        return Example(cid, x, y, soft_one, lm_one)

    def batch_rng(self, key: str) -> np.random.Generator:
        """The SpecAugment masks' generator of a batch, seeded by the batch itself (crc32, not
        Python's per-process salted hash), so the masks are the same in every process and
        after a resume."""
        return np.random.default_rng([self.seed, self.epoch, zlib.crc32(key.encode())])

    def collate(self, examples: Sequence["Example"], rng: np.random.Generator) -> Dict[str, object]:
        if not examples:
            return {"feats": torch.zeros(0, 0, 0), "lengths": torch.zeros(0, dtype=torch.int64), "labels": torch.zeros(0, 0, dtype=torch.int64), "ids": []}
        if self.spec_augment is not None:
            examples = [e._replace(x=self.spec_augment(e.x, rng)) for e in examples]
        soft = [e.soft for e in examples] if self.posts_scp else None
        lm_soft = {u: [e.lm[u] for e in examples] for u in self.lm_posts}
        return collate([(e.x, e.y) for e in examples], [e.id for e in examples], soft, lm_soft)

    def __getitem__(self, batch_ids: Sequence[str]) -> Dict[str, object]:
        rng = self.batch_rng(" ".join(batch_ids))
        return self.collate([e for e in map(self.load, batch_ids) if e is not None], rng)


class Example(NamedTuple):
    """One cut's training material: ``x`` (T, F) float32 features after CMVN, ``y`` (T,) int64
    senone labels (-100: no label), ``soft`` the teacher's (ids (T, K), probs (T, K)) or None,
    ``lm`` {unit: (ids (T, K_u), probs (T, K_u))}."""

    id: str
    x: np.ndarray
    y: np.ndarray
    soft: Optional[Tuple[np.ndarray, np.ndarray]]
    lm: Dict[str, Tuple[np.ndarray, np.ndarray]]

    def span(self, start: int, end: int, left: int, right: int, valid: bool = False) -> "Example":
        """Frames [start, end) with up to ``left``/``right`` frames of context, as far as the
        utterance goes (beyond it the model pads its layers itself, as in the whole
        utterance); the context frames get no labels (-100) and no soft targets (probability 0).

        With ``valid`` (for a model's ``forward(valid=True)``), exactly ``left``/``right``
        context frames, the utterance's first/last frame repeated beyond its edges, and labels
        and soft targets of [start, end) only."""
        t = len(self.x)
        if valid:
            idx = np.clip(np.arange(start - left, end + right), 0, t - 1)
            return Example(f"{self.id}:{start}-{end}", self.x[idx], self.y[start:end],
                           (self.soft[0][start:end], self.soft[1][start:end]) if self.soft is not None else None,
                           {u: (v[0][start:end], v[1][start:end]) for u, v in self.lm.items()})
        left, right = min(left, start), min(right, t - end)
        idx = np.arange(start - left, end + right)
        inside = np.zeros(len(idx), bool)
        inside[left : left + end - start] = True
        y = np.where(inside, self.y[idx], -100)

        def cut_soft(s):
            ids, probs = s
            return ids[idx], np.where(inside[:, None], probs[idx], 0.0).astype(np.float32)

        return Example(f"{self.id}:{start}-{end}", self.x[idx], y, cut_soft(self.soft) if self.soft is not None else None,
                       {u: cut_soft(v) for u, v in self.lm.items()})


def chunk_spans(lengths: Sequence[int], chunk: int, rng: np.random.Generator) -> List[Tuple[int, int, int]]:
    """Every frame of every utterance in exactly one span (utterance index, start, end): the
    utterance cut into ``chunk``-frame pieces from a random phase, so the chunk boundaries move
    from epoch to epoch (the first and last piece may be shorter)."""
    spans = []
    for u, t in enumerate(lengths):
        phase = int(rng.integers(0, chunk)) if t > chunk else 0
        starts = [0] + list(range(phase, t, chunk)) if phase else list(range(0, t, chunk))
        for s, e in zip(starts, starts[1:] + [t]):
            if e > s:
                spans.append((u, s, e))
    return spans


def chunk_batches(lengths: Sequence[int], chunk: int, frames_per_batch: int, seed: int, epoch: int) -> List[List[Tuple[int, int, int]]]:
    """The epoch's batches of chunks (Kaldi's egs: pieces of many utterances in each
    minibatch), made deterministic by (seed, epoch): spans from :func:`chunk_spans`, shuffled,
    grouped until a batch holds ``frames_per_batch`` labelled frames."""
    rng = np.random.default_rng([seed, epoch, 7])
    spans = chunk_spans(lengths, chunk, rng)
    order = rng.permutation(len(spans))
    batches, cur, n = [], [], 0
    for i in order:
        u, s, e = spans[i]
        cur.append((u, s, e))
        n += e - s
        if n >= frames_per_batch:
            batches.append(cur)
            cur, n = [], 0
    if cur:
        batches.append(cur)
    return batches


class ChunkDataset(torch.utils.data.Dataset):
    """Batches of chunks (:func:`chunk_batches`) of utterances held in memory.

    Every cut is loaded and checked once (:meth:`CutDataset.load`), in the process that builds
    this (the DataLoader's workers share the arrays); a batch is a list of spans (utterance
    index, start, end), each given ``context`` = (left, right) frames of the utterance around
    it (unlabelled), which the model needs to see the chunk's first and last frames as it
    would in the whole utterance.
    """

    def __init__(self, base: CutDataset, cut_ids: Sequence[str], context: Tuple[int, int], valid: bool = False):
        """:param valid: chunks for ``forward(valid=True)`` (:meth:`Example.span`): the batch's
        ``labels`` and soft targets cover the chunks' own frames only, and ``"valid": True``."""
        self.base = base
        self.context = context
        self.valid = valid
        self.examples = [e for e in map(base.load, cut_ids) if e is not None]
        self.lengths = [len(e.x) for e in self.examples]

    @property
    def epoch(self) -> int:
        return self.base.epoch

    @epoch.setter
    def epoch(self, v: int) -> None:
        self.base.epoch = v

    @property
    def num_skipped(self) -> int:
        return self.base.num_skipped

    def __getitem__(self, spans: Sequence[Tuple[int, int, int]]) -> Dict[str, object]:
        left, right = self.context
        parts = [self.examples[u].span(s, e, left, right, self.valid) for u, s, e in spans]
        batch = self.base.collate(parts, self.base.batch_rng(" ".join(p.id for p in parts)))
        if self.valid and parts:
            n = max(e - s for _, s, e in spans)  # the targets: the chunks' frames, not their context
            batch["labels"] = batch["labels"][:, :n]
            for k in ("soft_ids", "soft_probs"):
                if k in batch:
                    batch[k] = batch[k][:, :n]
            if "lm_soft" in batch:
                batch["lm_soft"] = {u: (a[:, :n], b[:, :n]) for u, (a, b) in batch["lm_soft"].items()}
            batch["valid"] = True
        return batch


def global_batches(cuts, max_duration: float, shuffle: bool, seed: int, epoch: int, num_buckets: int = 10) -> List[List[str]]:
    """The epoch's batches (lists of cut ids) from lhotse's DynamicBucketingSampler, made
    deterministic by (seed, epoch): the same list in every process."""
    import warnings

    from lhotse.dataset import DynamicBucketingSampler

    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*eagerly read CutSet.*")
        sampler = DynamicBucketingSampler(
            cuts, max_duration=max_duration, shuffle=shuffle, seed=seed, num_buckets=max(2, min(num_buckets, len(cuts) // 4)),
            drop_last=False, world_size=1, rank=0,
        )
    sampler.set_epoch(epoch)
    return [[c.id for c in batch] for batch in sampler]


class RankShardedBatches(torch.utils.data.Sampler):
    """Yields this rank's share of every global batch (cut ids ``i`` with ``i % world == rank``),
    from ``start`` on (resuming mid-epoch is by whole epochs here)."""

    def __init__(self, batches: List[List[str]], world_size: int = 1, rank: int = 0):
        self.batches = batches
        self.world_size, self.rank = world_size, rank

    def __iter__(self) -> Iterator[List[str]]:
        for b in self.batches:
            part = b[self.rank :: self.world_size]
            yield part if part else b[:1]

    def __len__(self) -> int:
        return len(self.batches)

"""Kaldi Posterior archives: the sparse soft-label format.

A Kaldi ``Posterior`` is ``vector<vector<pair<int32, float>>>``: for every frame, a
list of (id, probability) pairs. The teacher dump writes top-k pdf-id posteriors in
this format, by the hundred million frames, so reading and writing are vectorised
with numpy instead of looping over frames in Python.

Binary layout of one archive entry (Kaldi's ``WritePosterior`` with ``binary=true``)::

    <key> ' ' '\\0' 'B'  '\\4' int32 T  { '\\4' int32 n  { '\\4' int32 id  '\\4' float32 p } * n } * T

that is 5 + 10 n bytes a frame. The text form is ``<key> [ id p id p ] [ ] ...\\n``.
An ``scp`` line ``<key> <ark-path>:<offset>`` points at the ``\\0B`` of the entry.

Note that kaldiio cannot read this format (it misreads the header as an int vector);
kaldi_native_io's ``SequentialPosteriorReader`` can, and the tests use it as the
independent check of this module.

In memory an utterance's posterior is a :class:`Posterior`: ``counts`` (T,) int32 pairs a
frame, ``ids`` (N,) int32 and ``probs`` (N,) float32 with N = counts.sum(), frame-major.
Fixed-k posteriors (every frame has k pairs) convert to and from (T, k) arrays.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, Iterator, List, Optional, Sequence, Tuple, Union

import numpy as np

from kdhybrid.io.tables import AtomicArkWriter, KaldiFormatError, parse_rxspecifier, read_scp

Pathlike = Union[str, Path]

_FRAME_DT = np.dtype([("m", "u1"), ("n", "<i4")])  # 5 bytes: '\4' int32 n
_PAIR_DT = np.dtype([("m1", "u1"), ("id", "<i4"), ("m2", "u1"), ("p", "<f4")])  # 10 bytes


@dataclass
class Posterior:
    """One utterance's posterior in ragged (CSR-like) form.

    :param counts: (T,) int32, number of (id, prob) pairs of each frame.
    :param ids: (N,) int32, ids (pdf-ids or transition-ids), frame-major, N = counts.sum().
    :param probs: (N,) float32, the probabilities matching ``ids``.
    """

    counts: np.ndarray
    ids: np.ndarray
    probs: np.ndarray

    def __post_init__(self) -> None:
        self.counts = np.ascontiguousarray(self.counts, dtype=np.int32)
        self.ids = np.ascontiguousarray(self.ids, dtype=np.int32)
        self.probs = np.ascontiguousarray(self.probs, dtype=np.float32)
        if self.counts.ndim != 1 or self.ids.ndim != 1 or self.probs.ndim != 1:
            raise ValueError("Posterior: counts, ids and probs must be 1-D")
        if (self.counts < 0).any():
            raise ValueError("Posterior: negative pair count")
        n = int(self.counts.sum())
        if self.ids.shape[0] != n or self.probs.shape[0] != n:
            raise ValueError(
                f"Posterior: counts sum to {n} but ids has {self.ids.shape[0]} "
                f"and probs {self.probs.shape[0]} entries"
            )

    @property
    def num_frames(self) -> int:
        return int(self.counts.shape[0])

    @classmethod
    def from_topk(cls, ids: np.ndarray, probs: np.ndarray) -> "Posterior":
        """From fixed-k arrays: ``ids`` (T, k) integer, ``probs`` (T, k) float."""
        ids = np.asarray(ids)
        probs = np.asarray(probs)
        if ids.ndim != 2 or ids.shape != probs.shape:
            raise ValueError(f"from_topk: ids {ids.shape} and probs {probs.shape} must both be (T, k)")
        t, k = ids.shape
        return cls(np.full(t, k, dtype=np.int32), ids.reshape(-1), probs.reshape(-1))

    def is_fixed_k(self) -> bool:
        return self.num_frames > 0 and bool((self.counts == self.counts[0]).all())

    def to_topk(self) -> Tuple[np.ndarray, np.ndarray]:
        """(ids (T, k) int32, probs (T, k) float32); requires the same k on every frame."""
        if self.num_frames == 0:
            return np.zeros((0, 0), np.int32), np.zeros((0, 0), np.float32)
        if not self.is_fixed_k():
            raise ValueError("to_topk: frames have different numbers of pairs")
        k = int(self.counts[0])
        return self.ids.reshape(-1, k), self.probs.reshape(-1, k)

    def to_dense(self, dim: int) -> np.ndarray:
        """(T, dim) float32 matrix with the probabilities scattered (repeated ids add up)."""
        if self.ids.size and (self.ids.min() < 0 or self.ids.max() >= dim):
            raise ValueError(f"to_dense: ids span [{self.ids.min()}, {self.ids.max()}], outside [0, {dim})")
        out = np.zeros((self.num_frames, dim), dtype=np.float32)
        rows = np.repeat(np.arange(self.num_frames), self.counts)
        np.add.at(out, (rows, self.ids), self.probs)
        return out

    def frame(self, t: int) -> List[Tuple[int, float]]:
        start = int(self.counts[:t].sum())
        n = int(self.counts[t])
        return list(zip(self.ids[start : start + n].tolist(), self.probs[start : start + n].tolist()))

    def to_list(self) -> List[List[Tuple[int, float]]]:
        """Kaldi's nested form, as kaldi_native_io returns it (slow; for tests)."""
        ends = np.cumsum(self.counts)
        starts = ends - self.counts
        ids, probs = self.ids.tolist(), self.probs.tolist()
        return [list(zip(ids[s:e], probs[s:e])) for s, e in zip(starts.tolist(), ends.tolist())]

    @classmethod
    def from_list(cls, post: Sequence[Sequence[Tuple[int, float]]]) -> "Posterior":
        counts = np.array([len(f) for f in post], dtype=np.int32)
        flat = [pair for f in post for pair in f]
        ids = np.array([p[0] for p in flat], dtype=np.int32)
        probs = np.array([p[1] for p in flat], dtype=np.float32)
        return cls(counts, ids, probs)


# --------------------------------------------------------------------------- encoding


def encode_posterior(post: Posterior) -> bytes:
    """The binary body of one entry (from ``\\0B`` on), vectorised.

    Fixed-k posteriors are laid out with one packed structured dtype; ragged ones by
    interleaving frame headers and pair records with a byte mask.
    """
    t = post.num_frames
    head = np.empty(1, dtype=[("b0", "u1"), ("b1", "u1"), ("m", "u1"), ("t", "<i4")])
    head[0] = (0, ord("B"), 4, t)
    if t == 0:
        return head.tobytes()
    if post.is_fixed_k():
        k = int(post.counts[0])
        rec_dt = np.dtype([("m", "u1"), ("n", "<i4"), ("pairs", _PAIR_DT, (k,))]) if k else _FRAME_DT
        rec = np.empty(t, dtype=rec_dt)
        rec["m"] = 4
        rec["n"] = k
        if k:
            pairs = rec["pairs"]
            pairs["m1"] = 4
            pairs["m2"] = 4
            pairs["id"] = post.ids.reshape(t, k)
            pairs["p"] = post.probs.reshape(t, k)
        return head.tobytes() + rec.tobytes()
    frames = np.empty(t, dtype=_FRAME_DT)
    frames["m"] = 4
    frames["n"] = post.counts
    pairs = np.empty(post.ids.shape[0], dtype=_PAIR_DT)
    pairs["m1"] = 4
    pairs["m2"] = 4
    pairs["id"] = post.ids
    pairs["p"] = post.probs
    seg = np.empty(2 * t, dtype=np.int64)
    seg[0::2] = _FRAME_DT.itemsize
    seg[1::2] = _PAIR_DT.itemsize * post.counts.astype(np.int64)
    is_head = np.repeat(np.tile(np.array([True, False]), t), seg)
    body = np.empty(is_head.shape[0], dtype=np.uint8)
    body[is_head] = frames.view(np.uint8)
    body[~is_head] = pairs.view(np.uint8)
    return head.tobytes() + body.tobytes()


def format_posterior_text(post: Posterior) -> str:
    """Kaldi's text form of the value, ``[ id p id p ] [ ] ... `` (no key, no newline).

    Byte-identical to Kaldi's text ``WritePosterior``: every frame is ``[ `` + ``id p ``
    per pair + ``] ``, and probabilities print like C++ streams do (6 significant digits).
    """
    ends = np.cumsum(post.counts).tolist()
    ids = post.ids.tolist()
    probs = post.probs.tolist()
    out = []
    start = 0
    for end in ends:
        out.append("[ " + "".join(f"{ids[i]} {probs[i]:g} " for i in range(start, end)) + "] ")
        start = end
    return "".join(out)


# --------------------------------------------------------------------------- decoding


def decode_posterior(buf: Union[bytes, memoryview], pos: int, key: str, path: str) -> Tuple[Posterior, int]:
    """Parse one binary entry starting at ``buf[pos]`` (the ``\\0B``).

    :return: (posterior, position just after the entry).
    :raises KaldiFormatError: naming ``path``, ``key`` and the byte offset of the problem,
        for a truncated or corrupted entry.
    """
    mv = memoryview(buf)
    total = len(mv)

    def fail(off: int, what: str) -> KaldiFormatError:
        return KaldiFormatError(f"{path}: entry '{key}' at byte {off}: {what}")

    if total - pos < 7:
        raise fail(pos, f"truncated: {total - pos} bytes left where a posterior header (7 bytes) was expected")
    if bytes(mv[pos : pos + 2]) != b"\0B":
        raise fail(pos, f"expected binary marker \\0B, found {bytes(mv[pos:pos + 2])!r} (text archives: use read mode text)")
    if mv[pos + 2] != 4:
        raise fail(pos + 2, f"expected int32 size marker 4, found {mv[pos + 2]}")
    t = int(np.frombuffer(mv[pos + 3 : pos + 7], dtype="<i4")[0])
    if t < 0:
        raise fail(pos + 3, f"negative frame count {t}")
    pos += 7
    if t == 0:
        return Posterior(np.zeros(0, np.int32), np.zeros(0, np.int32), np.zeros(0, np.float32)), pos
    # Fast path: every frame has the same k as the first one.
    if total - pos < 5:
        raise fail(pos, f"truncated inside frame 0 of {t}")
    if mv[pos] != 4:
        raise fail(pos, f"frame 0: expected int32 size marker 4, found {mv[pos]}")
    k = int(np.frombuffer(mv[pos + 1 : pos + 5], dtype="<i4")[0])
    if k < 0:
        raise fail(pos + 1, f"frame 0: negative pair count {k}")
    rec_dt = np.dtype([("m", "u1"), ("n", "<i4"), ("pairs", _PAIR_DT, (k,))]) if k else _FRAME_DT
    nbytes = t * rec_dt.itemsize
    if total - pos >= nbytes:
        rec = np.frombuffer(mv[pos : pos + nbytes], dtype=rec_dt)
        if (rec["m"] == 4).all() and (rec["n"] == k).all():
            if k == 0:
                return Posterior(np.zeros(t, np.int32), np.zeros(0, np.int32), np.zeros(0, np.float32)), pos + nbytes
            pairs = rec["pairs"]
            if (pairs["m1"] == 4).all() and (pairs["m2"] == 4).all():
                counts = np.full(t, k, dtype=np.int32)
                return Posterior(counts, pairs["id"].reshape(-1), pairs["p"].reshape(-1)), pos + nbytes
    # General path: frame offsets are sequential (each depends on the previous count),
    # so walk the frame headers, then gather all pairs with one structured view each.
    counts = np.empty(t, dtype=np.int32)
    starts = np.empty(t, dtype=np.int64)
    p = pos
    for f in range(t):
        if total - p < 5:
            raise fail(p, f"truncated inside frame {f} of {t}")
        if mv[p] != 4:
            raise fail(p, f"frame {f}: expected int32 size marker 4, found {mv[p]}")
        n = int.from_bytes(mv[p + 1 : p + 5], "little", signed=True)
        if n < 0:
            raise fail(p + 1, f"frame {f}: negative pair count {n}")
        counts[f] = n
        starts[f] = p + 5
        p += 5 + 10 * n
        if p > total:
            raise fail(starts[f], f"truncated inside frame {f} of {t}: {n} pairs need {10 * n} bytes, {total - starts[f]} left")
    nz = counts > 0
    chunks = [np.frombuffer(mv[s : s + 10 * n], dtype=_PAIR_DT) for s, n in zip(starts[nz].tolist(), counts[nz].tolist())]
    pairs = np.concatenate(chunks) if chunks else np.zeros(0, dtype=_PAIR_DT)
    bad = np.flatnonzero((pairs["m1"] != 4) | (pairs["m2"] != 4))
    if bad.size:
        frame_of = np.repeat(np.arange(t), counts)[bad[0]]
        raise fail(int(starts[frame_of]), f"frame {frame_of}: corrupted (id, prob) pair markers")
    return Posterior(counts, pairs["id"], pairs["p"]), p


def _check_values(post: Posterior, key: str, path: str) -> None:
    if post.ids.size and post.ids.min() < 0:
        raise KaldiFormatError(f"{path}: entry '{key}': negative id {post.ids.min()} (corrupted archive?)")
    if post.probs.size and not np.isfinite(post.probs).all():
        raise KaldiFormatError(f"{path}: entry '{key}': non-finite probability (corrupted archive?)")


def parse_posterior_text(value: str, key: str, path: str) -> Posterior:
    """Parse the text form ``[ id p ... ] [ ] ...`` of one entry's value."""
    toks = value.split()
    counts: List[int] = []
    ids: List[int] = []
    probs: List[float] = []
    i = 0
    while i < len(toks):
        if toks[i] != "[":
            raise KaldiFormatError(f"{path}: entry '{key}': expected '[' at token {i}, found {toks[i]!r}")
        i += 1
        n = 0
        while i < len(toks) and toks[i] != "]":
            if i + 1 >= len(toks) or toks[i + 1] == "]":
                raise KaldiFormatError(f"{path}: entry '{key}': frame {len(counts)} has an id without a probability")
            try:
                ids.append(int(toks[i]))
                probs.append(float(toks[i + 1]))
            except ValueError:
                raise KaldiFormatError(
                    f"{path}: entry '{key}': frame {len(counts)}: bad pair {toks[i]!r} {toks[i + 1]!r}"
                ) from None
            n += 1
            i += 2
        if i >= len(toks):
            raise KaldiFormatError(f"{path}: entry '{key}': frame {len(counts)} is not closed with ']'")
        counts.append(n)
        i += 1
    return Posterior(np.array(counts, np.int32), np.array(ids, np.int32), np.array(probs, np.float32))


# --------------------------------------------------------------------------- archives


class PosteriorWriter(AtomicArkWriter):
    """Writes a Posterior archive (and optionally its scp) atomically.

    Entries go to ``<ark>.tmp`` / ``<scp>.tmp``; :meth:`close` renames both into place,
    so a killed writer never leaves a half-written archive under the final name.

    :param ark: output archive path.
    :param scp: optional scp path (binary mode only): ``key ark:offset`` per entry.
    :param binary: Kaldi binary (default) or text form.
    """

    def write(self, key: str, post: Posterior) -> None:
        if self.binary:
            self.write_binary_entry(key, encode_posterior(post))
        else:
            self.write_text_entry(key, format_posterior_text(post))

    def write_topk(self, key: str, ids: np.ndarray, probs: np.ndarray) -> None:
        """Write fixed-k arrays: ``ids`` (T, k) int, ``probs`` (T, k) float."""
        self.write(key, Posterior.from_topk(ids, probs))


def read_posterior_ark(path: Pathlike) -> Iterator[Tuple[str, Posterior]]:
    """Iterate (key, Posterior) over a binary or text archive (detected per entry)."""
    path = str(path)
    with open(path, "rb") as f:
        data = f.read()
    pos = 0
    total = len(data)
    while pos < total:
        sp = data.find(b" ", pos)
        if sp < 0 or sp - pos > 4096:
            raise KaldiFormatError(f"{path}: no key at byte {pos} (truncated or not an archive)")
        key = data[pos:sp].decode("utf-8", errors="replace")
        if not key or any(c in key for c in "\n\t\0"):
            raise KaldiFormatError(f"{path}: bad key {key!r} at byte {pos}")
        if data[sp + 1 : sp + 3] == b"\0B":
            post, pos = decode_posterior(data, sp + 1, key, path)
        else:
            nl = data.find(b"\n", sp)
            end = total if nl < 0 else nl
            post = parse_posterior_text(data[sp + 1 : end].decode(), key, path)
            pos = end + 1
        _check_values(post, key, path)
        yield key, post


def read_posterior_scp(scp: Pathlike) -> Iterator[Tuple[str, Posterior]]:
    """Iterate (key, Posterior) in scp order, by random access (``ark:offset``)."""
    reader = PosteriorReader(scp)
    for key in reader.keys():
        yield key, reader[key]


class PosteriorReader:
    """Random access to a Posterior archive through its scp (``key ark:offset``).

    Each ark file is memory-mapped once; reading an entry parses only its bytes.
    """

    def __init__(self, scp: Pathlike):
        self.scp = str(scp)
        self._index: Dict[str, Tuple[str, Optional[int]]] = {}
        for key, rx in read_scp(self.scp).items():
            self._index[key] = parse_rxspecifier(rx, self.scp, key)
        self._maps: Dict[str, np.memmap] = {}

    def keys(self) -> List[str]:
        return list(self._index)

    def __contains__(self, key: str) -> bool:
        return key in self._index

    def __len__(self) -> int:
        return len(self._index)

    def _map(self, ark: str) -> np.ndarray:
        m = self._maps.get(ark)
        if m is None:
            if not os.path.exists(ark):
                raise FileNotFoundError(f"{self.scp}: archive {ark} does not exist")
            m = np.memmap(ark, dtype=np.uint8, mode="r") if os.path.getsize(ark) else np.zeros(0, np.uint8)
            self._maps[ark] = m
        return m

    def __getitem__(self, key: str) -> Posterior:
        try:
            ark, offset = self._index[key]
        except KeyError:
            raise KeyError(f"{self.scp}: no entry '{key}'") from None
        if offset is None:
            raise KaldiFormatError(f"{self.scp}: entry '{key}' has no byte offset (expected ark:offset)")
        buf = self._map(ark)
        if offset >= len(buf):
            raise KaldiFormatError(f"{ark}: entry '{key}' at byte {offset}: offset beyond the end ({len(buf)} bytes)")
        post, _ = decode_posterior(buf, offset, key, ark)
        _check_values(post, key, ark)
        return post

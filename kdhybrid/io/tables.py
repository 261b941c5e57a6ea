"""Kaldi tables: scp files, archives written atomically, matrices and vectors.

Kaldi stores per-utterance objects in archives (``.ark``: ``<key> <object>`` one after
the other) indexed by scp files (``<key> <ark-path>:<byte-offset>``). The offset points
at the object, just after ``<key> ``. This module holds what every table type shares:

* :func:`read_scp` / :func:`write_text_table` for ``key value`` text tables,
* :class:`AtomicArkWriter`, which writes ``<ark>.tmp`` and renames on success,
* float matrices and vectors in Kaldi's binary form (``FM``/``FV``/``DM``/``DV``),
  written here and read through kaldiio (which reads them well), including single matrix
  files (``final.mat``) and per-speaker transform archives (``trans.N``).
"""
from __future__ import annotations

import gzip
import os
from collections import OrderedDict
from pathlib import Path
from typing import Iterable, Iterator, Mapping, Optional, Tuple, Union

import numpy as np

Pathlike = Union[str, Path]


class KaldiFormatError(ValueError):
    """A Kaldi file is malformed; the message names the file, the entry and where."""


# --------------------------------------------------------------------------- text tables


def read_text_table(path: Pathlike, min_fields: int = 2, unique: bool = True) -> "OrderedDict[str, str]":
    """Read a ``key rest-of-line`` table (text, utt2spk, wav.scp, feats.scp ...).

    :param min_fields: minimum whitespace-separated fields a line must have (key included).
    :param unique: a repeated key is an error.
    :raises KaldiFormatError: naming the file and line number of a bad line.
    """
    path = str(path)
    out: "OrderedDict[str, str]" = OrderedDict()
    with open(path, encoding="utf-8") as f:
        for lineno, line in enumerate(f, 1):
            line = line.rstrip("\n")
            if not line.strip():
                raise KaldiFormatError(f"{path}:{lineno}: empty line")
            parts = line.split(maxsplit=1)
            key = parts[0]
            rest = parts[1].strip() if len(parts) > 1 else ""
            if len(line.split()) < min_fields:
                raise KaldiFormatError(f"{path}:{lineno}: expected at least {min_fields} fields, got {line!r}")
            if unique and key in out:
                raise KaldiFormatError(f"{path}:{lineno}: duplicate key '{key}'")
            out[key] = rest
    return out


def read_scp(path: Pathlike) -> "OrderedDict[str, str]":
    """Read an scp file: ``key rxfilename`` per line."""
    return read_text_table(path, min_fields=2)


def atomic_write_text(path: Pathlike, text: str) -> None:
    """Write ``text`` to ``path`` through ``path.tmp`` + rename."""
    path = str(path)
    tmp = path + ".tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        f.write(text)
    os.replace(tmp, path)


def write_text_table(path: Pathlike, table: Mapping[str, object], sort: bool = True) -> None:
    """Write ``key value`` lines atomically; keys sorted in C (byte) order like Kaldi's."""
    keys = sorted(table, key=kaldi_sort_key) if sort else list(table)
    lines = []
    for k in keys:
        v = table[k]
        if isinstance(v, (list, tuple)):
            v = " ".join(str(x) for x in v)
        lines.append(f"{k} {v}".rstrip() + "\n")
    atomic_write_text(path, "".join(lines))


def kaldi_sort_key(key: str) -> bytes:
    """Sort key matching ``LC_ALL=C sort`` (byte order), which Kaldi tables require."""
    return key.encode("utf-8")


def parse_rxspecifier(rx: str, scp: str, key: str) -> Tuple[str, Optional[int]]:
    """Split ``path:offset`` (or ``path``) from an scp line into (path, offset)."""
    rx = rx.strip()
    if rx.endswith("|"):
        raise KaldiFormatError(f"{scp}: entry '{key}': pipes ({rx!r}) are not supported here")
    head, sep, tail = rx.rpartition(":")
    if sep and tail.isdigit():
        return head, int(tail)
    return rx, None


# --------------------------------------------------------------------------- archives


class AtomicArkWriter:
    """Base for archive writers: ``<ark>.tmp`` (+ ``<scp>.tmp``) renamed on :meth:`close`.

    A ``.gz`` ark name writes a gzipped archive (no scp then: offsets would be
    meaningless). On an exception inside a ``with`` block the temporary files are
    removed and nothing under the final names changes.
    """

    def __init__(self, ark: Pathlike, scp: Optional[Pathlike] = None, binary: bool = True):
        self.ark = str(ark)
        self.scp = None if scp is None else str(scp)
        self.binary = binary
        self.gz = self.ark.endswith(".gz")
        if self.gz and self.scp:
            raise ValueError(f"{self.ark}: a gzipped archive cannot have an scp")
        self._raw = open(self.ark + ".tmp", "wb")
        self._f = gzip.GzipFile(fileobj=self._raw, mode="wb", mtime=0) if self.gz else self._raw
        self._scp_f = open(self.scp + ".tmp", "w", encoding="utf-8") if self.scp else None
        self._pos = 0
        self.num_written = 0
        self._closed = False

    def _check_key(self, key: str) -> bytes:
        if not key or any(c.isspace() for c in key):
            raise ValueError(f"{self.ark}: invalid key {key!r} (must be non-empty, no whitespace)")
        return key.encode("utf-8")

    def write_binary_entry(self, key: str, body: bytes) -> None:
        """Write ``<key> <body>``, where ``body`` starts with ``\\0B``."""
        if not self.binary:
            raise ValueError("write_binary_entry on a text writer")
        k = self._check_key(key)
        self._f.write(k + b" ")
        offset = self._pos + len(k) + 1
        self._f.write(body)
        self._pos = offset + len(body)
        if self._scp_f:
            self._scp_f.write(f"{key} {self.ark}:{offset}\n")
        self.num_written += 1

    def write_text_entry(self, key: str, value: str) -> None:
        k = self._check_key(key)
        data = k + b" " + value.encode("utf-8") + b"\n"
        self._f.write(data)
        self._pos += len(data)
        if self._scp_f:
            self._scp_f.write(f"{key} {self.ark}\n")
        self.num_written += 1

    def close(self) -> None:
        """Finish and rename into place."""
        if self._closed:
            return
        self._closed = True
        if self.gz:
            self._f.close()
        self._raw.close()
        if self._scp_f:
            self._scp_f.close()
        os.replace(self.ark + ".tmp", self.ark)
        if self.scp:
            os.replace(self.scp + ".tmp", self.scp)

    def abort(self) -> None:
        """Drop what was written; the final names are untouched."""
        if self._closed:
            return
        self._closed = True
        try:
            if self.gz:
                self._f.close()
            self._raw.close()
            if self._scp_f:
                self._scp_f.close()
        finally:
            for p in (self.ark + ".tmp", (self.scp + ".tmp") if self.scp else None):
                if p and os.path.exists(p):
                    os.remove(p)

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, tb):
        if exc_type is None:
            self.close()
        else:
            self.abort()
        return False


# --------------------------------------------------------------------------- matrices


def encode_matrix(mat: np.ndarray) -> bytes:
    """Binary Kaldi matrix (``FM``/``DM``) or vector (``FV``/``DV``) body from ``\\0B`` on.

    :param mat: (R, C) or (D,) array, float32 or float64.
    """
    mat = np.asarray(mat)
    if mat.dtype == np.float64:
        tag = "D"
    else:
        mat = mat.astype(np.float32, copy=False)
        tag = "F"
    if mat.ndim == 2:
        head = np.empty(1, dtype=[("b", "S2"), ("t", "S3"), ("m1", "u1"), ("r", "<i4"), ("m2", "u1"), ("c", "<i4")])
        head[0] = (b"\0B", f"{tag}M ".encode(), 4, mat.shape[0], 4, mat.shape[1])
    elif mat.ndim == 1:
        head = np.empty(1, dtype=[("b", "S2"), ("t", "S3"), ("m1", "u1"), ("d", "<i4")])
        head[0] = (b"\0B", f"{tag}V ".encode(), 4, mat.shape[0])
    else:
        raise ValueError(f"encode_matrix: expected 1-D or 2-D, got shape {mat.shape}")
    return head.tobytes() + np.ascontiguousarray(mat, dtype=mat.dtype.newbyteorder("<")).tobytes()


class MatrixWriter(AtomicArkWriter):
    """Writes float matrices/vectors as a binary Kaldi archive + scp (kaldiio reads them)."""

    def write(self, key: str, mat: np.ndarray) -> None:
        self.write_binary_entry(key, encode_matrix(mat))


def read_matrix(rxfilename: str) -> np.ndarray:
    """Read one matrix/vector by rxfilename (``ark:offset``), via kaldiio."""
    import kaldiio

    return kaldiio.load_mat(rxfilename)


def read_matrix_scp(scp: Pathlike) -> Iterator[Tuple[str, np.ndarray]]:
    """Iterate (key, matrix) over an scp (feats.scp, cmvn.scp), via kaldiio, in scp order."""
    import kaldiio

    for key, rx in read_scp(scp).items():
        try:
            yield key, kaldiio.load_mat(rx)
        except Exception as e:  # kaldiio's messages do not name the utterance
            raise KaldiFormatError(f"{scp}: entry '{key}' ({rx}): {e}") from e


def write_kaldi_matrix(path: Pathlike, mat: np.ndarray) -> None:
    """One float matrix in Kaldi's binary form (``\\0BFM `` then rows, cols and the float32
    data), as Kaldi writes ``final.mat`` (est-lda, compose-transforms); atomically, through
    ``<path>.tmp``.

    :param mat: (R, C) array; stored as float32 (Kaldi's BaseFloat).
    """
    mat = np.asarray(mat)
    if mat.ndim != 2:
        raise ValueError(f"{path}: expected a matrix, got shape {mat.shape}")
    path = str(path)
    with open(path + ".tmp", "wb") as f:
        f.write(encode_matrix(mat.astype(np.float32)))
    os.replace(path + ".tmp", path)


def read_kaldi_matrix(path: Pathlike) -> np.ndarray:
    """Read one matrix file (binary or text, as Kaldi's ``final.mat``), via kaldiio.

    :return: (R, C) float32 (float64 for a double matrix).
    """
    import kaldiio

    try:
        mat = kaldiio.load_mat(str(path))
    except Exception as e:  # kaldiio's messages do not name the file
        raise KaldiFormatError(f"{path}: not a Kaldi matrix: {e}") from e
    if np.ndim(mat) != 2:
        raise KaldiFormatError(f"{path}: expected a matrix, got shape {np.shape(mat)}")
    return mat


def write_transform_ark(path: Pathlike, transforms: Mapping[str, np.ndarray]) -> int:
    """Per-speaker transforms as Kaldi's ``trans.N``: a binary archive of float matrices,
    keys in C (byte) order, written atomically. Returns the number written.

    :param transforms: speaker -> (D, D+1) (or any 2-D) array, stored as float32.
    """
    with MatrixWriter(path) as w:
        for spk in sorted(transforms, key=kaldi_sort_key):
            mat = np.asarray(transforms[spk])
            if mat.ndim != 2:
                raise ValueError(f"{path}: transform of '{spk}' has shape {mat.shape}, expected a matrix")
            w.write(spk, mat.astype(np.float32))
    return w.num_written


def read_transform_ark(path: Pathlike) -> "OrderedDict[str, np.ndarray]":
    """Read a ``trans.N`` archive (speaker -> matrix, in archive order), via kaldiio.

    :return: speaker -> (D, D+1) float32 (float64 for double matrices).
    """
    import kaldiio

    out: "OrderedDict[str, np.ndarray]" = OrderedDict()
    try:
        for key, mat in kaldiio.load_ark(str(path)):
            if key in out:
                raise KaldiFormatError(f"{path}: duplicate key '{key}'")
            out[key] = mat
    except KaldiFormatError:
        raise
    except Exception as e:
        raise KaldiFormatError(f"{path}: bad transform archive after {len(out)} entries: {e}") from e
    return out


# --------------------------------------------------------------------------- int32 vectors


_INT_DT = np.dtype([("m", "u1"), ("v", "<i4")])


def encode_int32_vector(vec: np.ndarray) -> bytes:
    """Binary Kaldi ``vector<int32>`` body: ``\\0B \\4 n { \\4 int32 } * n``."""
    vec = np.asarray(vec)
    if vec.ndim != 1:
        raise ValueError(f"encode_int32_vector: expected 1-D, got shape {vec.shape}")
    head = np.empty(1, dtype=[("b", "S2"), ("m", "u1"), ("n", "<i4")])
    head[0] = (b"\0B", 4, vec.shape[0])
    body = np.empty(vec.shape[0], dtype=_INT_DT)
    body["m"] = 4
    body["v"] = vec
    return head.tobytes() + body.tobytes()


def decode_int32_vector(buf: Union[bytes, memoryview], pos: int, key: str, path: str) -> Tuple[np.ndarray, int]:
    """Parse a binary ``vector<int32>`` at ``buf[pos]``; returns (values int32, end position)."""
    mv = memoryview(buf)
    total = len(mv)
    if total - pos < 7 or bytes(mv[pos : pos + 2]) != b"\0B" or mv[pos + 2] != 4:
        raise KaldiFormatError(f"{path}: entry '{key}' at byte {pos}: not a binary int32 vector header")
    n = int(np.frombuffer(mv[pos + 3 : pos + 7], dtype="<i4")[0])
    if n < 0:
        raise KaldiFormatError(f"{path}: entry '{key}' at byte {pos + 3}: negative length {n}")
    pos += 7
    end = pos + 5 * n
    if end > total:
        raise KaldiFormatError(f"{path}: entry '{key}' at byte {pos}: truncated ({n} values need {5 * n} bytes, {total - pos} left)")
    body = np.frombuffer(mv[pos:end], dtype=_INT_DT)
    bad = np.flatnonzero(body["m"] != 4)
    if bad.size:
        raise KaldiFormatError(f"{path}: entry '{key}' at byte {pos + 5 * int(bad[0])}: corrupted int32 size marker")
    return body["v"].astype(np.int32), end


class Int32VectorWriter(AtomicArkWriter):
    """Writes ``vector<int32>`` archives (alignments: ``ali.N.gz``), binary or text."""

    def write(self, key: str, vec: np.ndarray) -> None:
        if self.binary:
            self.write_binary_entry(key, encode_int32_vector(vec))
        else:
            self.write_text_entry(key, "".join(f"{int(x)} " for x in np.asarray(vec).tolist()))


def _open_bytes(path: str) -> bytes:
    with open(path, "rb") as f:
        data = f.read()
    if data[:2] == b"\x1f\x8b":
        try:
            data = gzip.decompress(data)
        except (OSError, EOFError) as e:
            raise KaldiFormatError(f"{path}: corrupted gzip stream: {e}") from e
    return data


def read_int32_vector_ark(path: Pathlike) -> Iterator[Tuple[str, np.ndarray]]:
    """Iterate (key, int32 vector) over a plain or gzipped archive, binary or text entries."""
    path = str(path)
    data = _open_bytes(path)
    pos, total = 0, len(data)
    while pos < total:
        sp = data.find(b" ", pos)
        if sp < 0:
            raise KaldiFormatError(f"{path}: no key at byte {pos} (truncated?)")
        key = data[pos:sp].decode("utf-8", errors="replace")
        if not key or "\n" in key:
            raise KaldiFormatError(f"{path}: bad key {key!r} at byte {pos}")
        if data[sp + 1 : sp + 3] == b"\0B":
            vec, pos = decode_int32_vector(data, sp + 1, key, path)
        else:
            nl = data.find(b"\n", sp)
            end = total if nl < 0 else nl
            try:
                vec = np.array(data[sp + 1 : end].split(), dtype=np.int32)
            except ValueError as e:
                raise KaldiFormatError(f"{path}: entry '{key}': {e}") from e
            pos = end + 1
        yield key, vec


def write_int32_vector_ark(path: Pathlike, table: Mapping[str, np.ndarray] | Iterable[Tuple[str, np.ndarray]]) -> int:
    """Write all entries at once (atomically); returns the number written."""
    items = table.items() if isinstance(table, Mapping) else table
    with Int32VectorWriter(path) as w:
        for k, v in items:
            w.write(k, v)
    return w.num_written

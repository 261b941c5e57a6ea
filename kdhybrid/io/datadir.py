"""Kaldi data directories: read, write, validate and split.

A data dir holds per-utterance tables keyed by utterance id (``text``, ``utt2spk``,
``wav.scp`` or ``segments`` + ``wav.scp`` keyed by recording, ``feats.scp``,
``utt2dur``, ``utt2num_frames``) and per-speaker ones (``spk2utt``, ``cmvn.scp``).
Kaldi's rules, checked by :func:`validate_data_dir` as ``utils/validate_data_dir.sh``
does: every table sorted in C byte order, utterance ids consistent across tables,
``spk2utt`` the inverse of ``utt2spk``, and utterance ids sorted consistently with
speaker ids (each speaker id a prefix of its utterance ids is the usual way).

:func:`split_data` makes ``split<N>/<job>`` like ``utils/split_data.sh``: contiguous
chunks of utterances, or of whole speakers with ``per_speaker=True``.
"""
from __future__ import annotations

import os
import shutil
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, Iterator, List, Optional, Tuple, Union

import numpy as np

from kdhybrid.io.tables import KaldiFormatError, kaldi_sort_key, read_matrix, read_text_table, write_text_table

Pathlike = Union[str, Path]

# Tables keyed by utterance id, and those keyed by speaker id.
UTT_TABLES = ("text", "utt2spk", "feats.scp", "utt2dur", "utt2num_frames", "segments", "utt2lang")
SPK_TABLES = ("spk2utt", "cmvn.scp", "spk2gender")
REC_TABLES = ("wav.scp", "reco2dur", "reco2file_and_channel")


@dataclass
class DataDir:
    """The tables of a Kaldi data dir, in memory (values kept as strings, as in the files)."""

    utt2spk: "OrderedDict[str, str]"
    wav_scp: "OrderedDict[str, str]" = field(default_factory=OrderedDict)
    text: Optional["OrderedDict[str, str]"] = None
    segments: Optional["OrderedDict[str, str]"] = None
    feats_scp: Optional["OrderedDict[str, str]"] = None
    cmvn_scp: Optional["OrderedDict[str, str]"] = None
    utt2dur: Optional["OrderedDict[str, str]"] = None
    utt2num_frames: Optional["OrderedDict[str, str]"] = None
    spk2gender: Optional["OrderedDict[str, str]"] = None

    @property
    def utts(self) -> List[str]:
        return list(self.utt2spk)

    @property
    def spk2utt(self) -> "OrderedDict[str, List[str]]":
        return spk2utt_from_utt2spk(self.utt2spk)

    _FILES = {
        "wav_scp": "wav.scp",
        "text": "text",
        "segments": "segments",
        "feats_scp": "feats.scp",
        "cmvn_scp": "cmvn.scp",
        "utt2dur": "utt2dur",
        "utt2num_frames": "utt2num_frames",
        "spk2gender": "spk2gender",
    }


def spk2utt_from_utt2spk(utt2spk: Dict[str, str]) -> "OrderedDict[str, List[str]]":
    out: "OrderedDict[str, List[str]]" = OrderedDict()
    for utt in sorted(utt2spk, key=kaldi_sort_key):
        out.setdefault(utt2spk[utt], []).append(utt)
    return OrderedDict((s, out[s]) for s in sorted(out, key=kaldi_sort_key))


def read_data_dir(path: Pathlike, validate: bool = True) -> DataDir:
    """Read a data dir (``utt2spk`` is required; the other tables when present)."""
    path = Path(path)
    if not (path / "utt2spk").is_file():
        raise FileNotFoundError(f"{path}: not a Kaldi data dir (no utt2spk)")
    dd = DataDir(utt2spk=read_text_table(path / "utt2spk", min_fields=2))
    min_fields = {"text": 1, "segments": 4}
    for attr, name in DataDir._FILES.items():
        f = path / name
        if f.is_file():
            setattr(dd, attr, read_text_table(f, min_fields=min_fields.get(name, 2)))
    if validate:
        validate_data_dir(path)
    return dd


def write_data_dir(dd: DataDir, path: Pathlike, validate: bool = True) -> None:
    """Write the tables of ``dd`` into ``path`` (sorted; spk2utt derived), then validate."""
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    write_text_table(path / "utt2spk", dd.utt2spk)
    write_text_table(path / "spk2utt", dd.spk2utt)
    for attr, name in DataDir._FILES.items():
        table = getattr(dd, attr)
        if table:
            write_text_table(path / name, table)
    if validate:
        validate_data_dir(path)


def _check_sorted(path: Path, keys: List[str]) -> None:
    for i in range(1, len(keys)):
        if kaldi_sort_key(keys[i]) <= kaldi_sort_key(keys[i - 1]):
            raise KaldiFormatError(
                f"{path}:{i + 1}: not sorted in C byte order ('{keys[i - 1]}' before '{keys[i]}'); "
                f"fix with: LC_ALL=C sort -k1,1 -u {path}"
            )


def validate_data_dir(path: Pathlike, require_text: bool = False, require_feats: bool = False) -> Dict[str, int]:
    """Check a data dir the way ``utils/validate_data_dir.sh`` does.

    :return: counts ``{"utterances": U, "speakers": S}``.
    :raises KaldiFormatError: naming the file and line of the first problem.
    """
    path = Path(path)
    u2s_path = path / "utt2spk"
    if not u2s_path.is_file():
        raise FileNotFoundError(f"{path}: not a Kaldi data dir (no utt2spk)")
    utt2spk = read_text_table(u2s_path, min_fields=2)
    for lineno, (u, s) in enumerate(utt2spk.items(), 1):
        if len(s.split()) != 1:
            raise KaldiFormatError(f"{u2s_path}:{lineno}: expected 'utt spk', got '{u} {s}'")
    utts = list(utt2spk)
    _check_sorted(u2s_path, utts)
    uttset = set(utts)

    # spk2utt must exist and be the inverse of utt2spk.
    s2u_path = path / "spk2utt"
    if not s2u_path.is_file():
        raise KaldiFormatError(f"{s2u_path}: missing (make it from utt2spk)")
    spk2utt = read_text_table(s2u_path, min_fields=2)
    _check_sorted(s2u_path, list(spk2utt))
    expected = spk2utt_from_utt2spk(utt2spk)
    for lineno, (s, us) in enumerate(spk2utt.items(), 1):
        if s not in expected:
            raise KaldiFormatError(f"{s2u_path}:{lineno}: speaker '{s}' has no utterance in utt2spk")
        if us.split() != expected[s]:
            raise KaldiFormatError(f"{s2u_path}:{lineno}: utterances of speaker '{s}' disagree with utt2spk")
    if len(spk2utt) != len(expected):
        missing = next(s for s in expected if s not in spk2utt)
        raise KaldiFormatError(f"{s2u_path}: speaker '{missing}' of utt2spk is missing")

    # Sorting utterances must also sort speakers (Kaldi requires this for split_data).
    finished = set()
    prev = None
    for i, u in enumerate(utts):
        s = utt2spk[u]
        if s != prev:
            if s in finished:
                raise KaldiFormatError(
                    f"{u2s_path}:{i + 1}: utterances of speaker '{s}' are not contiguous when sorted; "
                    f"make the speaker id a prefix of the utterance id"
                )
            if prev is not None:
                finished.add(prev)
            prev = s

    def check_utt_table(name: str, min_fields: int, required: bool, must_cover: bool = True) -> Optional[OrderedDict]:
        f = path / name
        if not f.is_file():
            if required:
                raise KaldiFormatError(f"{f}: missing")
            return None
        t = read_text_table(f, min_fields=min_fields)
        keys = list(t)
        _check_sorted(f, keys)
        for lineno, k in enumerate(keys, 1):
            if k not in uttset:
                raise KaldiFormatError(f"{f}:{lineno}: utterance '{k}' is not in utt2spk")
        if must_cover and len(keys) != len(utts):
            missing = next(u for u in utts if u not in t)
            raise KaldiFormatError(f"{f}: utterance '{missing}' of utt2spk is missing")
        return t

    check_utt_table("text", 1, require_text)
    check_utt_table("feats.scp", 2, require_feats)
    for name in ("utt2dur", "utt2num_frames"):
        t = check_utt_table(name, 2, False)
        if t:
            for lineno, (k, v) in enumerate(t.items(), 1):
                try:
                    ok = float(v) >= 0
                except ValueError:
                    ok = False
                if not ok:
                    raise KaldiFormatError(f"{path / name}:{lineno}: bad value '{v}' for '{k}'")

    # wav.scp: keyed by recording (= utterance without segments).
    wav_path = path / "wav.scp"
    seg_path = path / "segments"
    if wav_path.is_file():
        wav = read_text_table(wav_path, min_fields=2)
        _check_sorted(wav_path, list(wav))
        if seg_path.is_file():
            segs = check_utt_table("segments", 4, True)
            for lineno, (u, v) in enumerate(segs.items(), 1):
                rec, start, end = v.split()[:3]
                if rec not in wav:
                    raise KaldiFormatError(f"{seg_path}:{lineno}: recording '{rec}' of '{u}' is not in wav.scp")
                try:
                    s_, e_ = float(start), float(end)
                except ValueError:
                    raise KaldiFormatError(f"{seg_path}:{lineno}: bad times '{start} {end}'") from None
                if not (0 <= s_ < e_ or e_ == -1):
                    raise KaldiFormatError(f"{seg_path}:{lineno}: segment '{u}' has start {s_} >= end {e_}")
        else:
            for lineno, k in enumerate(wav, 1):
                if k not in uttset:
                    raise KaldiFormatError(f"{wav_path}:{lineno}: utterance '{k}' is not in utt2spk (and no segments)")
            if len(wav) != len(utts):
                missing = next(u for u in utts if u not in wav)
                raise KaldiFormatError(f"{wav_path}: utterance '{missing}' of utt2spk is missing")
    elif not (path / "feats.scp").is_file():
        raise KaldiFormatError(f"{path}: neither wav.scp nor feats.scp")

    cmvn = path / "cmvn.scp"
    if cmvn.is_file():
        t = read_text_table(cmvn, min_fields=2)
        _check_sorted(cmvn, list(t))
        for lineno, k in enumerate(t, 1):
            if k not in expected:
                raise KaldiFormatError(f"{cmvn}:{lineno}: speaker '{k}' is not in spk2utt")
        missing = [s for s in expected if s not in t]
        if missing:
            raise KaldiFormatError(f"{cmvn}: speaker '{missing[0]}' of spk2utt has no CMVN stats")
    return {"utterances": len(utts), "speakers": len(expected)}


def split_data(path: Pathlike, num_jobs: int, per_speaker: bool = False) -> List[Path]:
    """Split a data dir into ``<path>/split<N>/{1..N}`` (``splitNutt`` unless per speaker).

    Like Kaldi's ``utils/split_data.sh``: contiguous, nearly equal chunks in sorted
    order; with ``per_speaker`` a speaker never straddles two jobs (so per-speaker CMVN
    stays valid), and the split dir is ``split<N>``; otherwise ``split<N>utt``.
    An up-to-date split (newer than every source table) is reused.

    :return: the N job dirs.
    """
    path = Path(path)
    if num_jobs < 1:
        raise ValueError(f"split_data: num_jobs must be >= 1, got {num_jobs}")
    validate_data_dir(path)
    utt2spk = read_text_table(path / "utt2spk")
    spk2utt = spk2utt_from_utt2spk(utt2spk)
    if per_speaker and num_jobs > len(spk2utt):
        raise ValueError(f"split_data: {path} has {len(spk2utt)} speakers, cannot split per speaker into {num_jobs} jobs")
    if not per_speaker and num_jobs > len(utt2spk):
        raise ValueError(f"split_data: {path} has {len(utt2spk)} utterances, cannot split into {num_jobs} jobs")
    split_root = path / (f"split{num_jobs}" if per_speaker else f"split{num_jobs}utt")
    job_dirs = [split_root / str(j) for j in range(1, num_jobs + 1)]
    sources = [p for p in path.iterdir() if p.is_file()]
    newest = max(p.stat().st_mtime for p in sources)
    dir_files = [n for n in DIR_FILES if (path / n).is_file()]
    if all((d / "utt2spk").is_file() and (d / ".done").is_file() and all((d / n).is_file() for n in dir_files) for d in job_dirs) and (
        (split_root / ".done").is_file() and (split_root / ".done").stat().st_mtime >= newest
    ):
        return job_dirs

    if per_speaker:
        units = [us for us in spk2utt.values()]
    else:
        units = [[u] for u in utt2spk]
    # Balance by utterance count, keeping order: job j gets units until its share is met.
    total = sum(len(u) for u in units)
    chunks: List[List[str]] = [[] for _ in range(num_jobs)]
    j, acc = 0, 0
    for i, unit in enumerate(units):
        remaining_units = len(units) - i
        remaining_jobs = num_jobs - j
        if j < num_jobs - 1 and chunks[j] and (acc >= total * (j + 1) / num_jobs or remaining_units <= remaining_jobs - 1):
            j += 1
        chunks[j].extend(unit)
        acc += len(unit)

    tmp_root = split_root.with_name(split_root.name + ".tmp")
    if tmp_root.exists():
        shutil.rmtree(tmp_root)
    tables = _read_tables(path)
    for jdx, utts in enumerate(chunks, 1):
        _write_subset(tables, utt2spk, utts, tmp_root / str(jdx), path)
        (tmp_root / str(jdx) / ".done").touch()
    (tmp_root / ".done").touch()
    if split_root.exists():
        shutil.rmtree(split_root)
    os.replace(tmp_root, split_root)
    return job_dirs


def _read_tables(path: Path) -> Dict[str, "OrderedDict[str, str]"]:
    """The per-utterance, per-speaker and per-recording tables of a data dir, by file name."""
    return {p.name: read_text_table(p, min_fields=1) for p in path.iterdir()
            if p.is_file() and p.name in UTT_TABLES + SPK_TABLES + REC_TABLES}


# Files that describe a whole data dir, copied as they are into its subsets and splits
# (``feats_origin.json``: what its features are, :func:`feature_kind`).
DIR_FILES = ("feats_origin.json",)


def _write_subset(tables: Dict[str, "OrderedDict[str, str]"], utt2spk: Dict[str, str], utts: List[str], out: Path, src: Path) -> None:
    """Write the tables restricted to ``utts``, their speakers and recordings, into ``out``,
    and ``src``'s :data:`DIR_FILES`."""
    out.mkdir(parents=True)
    for name in DIR_FILES:
        if (src / name).is_file():
            shutil.copyfile(src / name, out / name)
    segs = tables.get("segments")
    us = set(utts)
    spks = {utt2spk[u] for u in utts}
    for name, t in tables.items():
        if name in REC_TABLES:
            keep = {segs[u].split()[0] for u in utts} if segs else us
        elif name in SPK_TABLES:
            keep = spks
        else:
            keep = us
        if name == "spk2utt":
            sub = OrderedDict((s, " ".join(u for u in v.split() if u in us)) for s, v in t.items() if s in keep)
        else:
            sub = OrderedDict((k, v) for k, v in t.items() if k in keep)
        write_text_table(out / name, sub, sort=False)


def subset_data_dir(path: Pathlike, utts: List[str], out: Pathlike) -> Path:
    """A new data dir ``out`` with only ``utts`` of ``path`` (and their speakers' and
    recordings' entries), like Kaldi's ``utils/subset_data_dir.sh --utt-list``."""
    path = Path(path)
    utt2spk = read_text_table(path / "utt2spk")
    missing = [u for u in utts if u not in utt2spk]
    if missing:
        raise KeyError(f"{path}/utt2spk: no utterance '{missing[0]}' ({len(missing)} of the subset missing)")
    _write_subset(_read_tables(path), utt2spk, utts, Path(out), path)
    return Path(out)


def feature_kind(path: Pathlike) -> str:
    """What a data dir's ``feats.scp`` holds, as models record it (``ModelConfig.input_features``):
    ``fmllr(<gmm>)`` / ``lda_mllt(<gmm>)`` for a GMM's features written by
    steps/make_fmllr_feats.sh (its ``feats_origin.json``; ``<gmm>`` the GMM dir's name), else
    ``fbank`` (the data dir's own features with its per-speaker CMVN; fbank in the recipes)."""
    import json

    origin = Path(path) / "feats_origin.json"
    if not origin.is_file():
        return "fbank"
    o = json.loads(origin.read_text())
    return f"{'fmllr' if o.get('transform_dir') else 'lda_mllt'}({Path(o['gmm_dir']).name})"


def iter_utterance_features(path: Pathlike, require_cmvn: bool = False) -> Iterator[Tuple[str, np.ndarray, Optional[np.ndarray]]]:
    """(utt, features (T, F), the speaker's CMVN stats (2, F+1) or None) for every utterance of
    a data dir with ``feats.scp``, in the data dir's order; each speaker's stats read once.

    :raises KaldiFormatError: naming the data dir and the utterance when ``feats.scp`` (or,
        with ``require_cmvn``, ``cmvn.scp``) is missing, an utterance has no features or
        none of its frames, or its speaker has no CMVN stats."""
    dd = read_data_dir(path)
    if not dd.feats_scp:
        raise KaldiFormatError(f"{path}/feats.scp: missing, the data dir has no features (run steps/make_fbank.sh)")
    if require_cmvn and not dd.cmvn_scp:
        raise KaldiFormatError(f"{path}/cmvn.scp: missing (run steps/compute_cmvn_stats.sh)")
    cmvn: Dict[str, np.ndarray] = {}
    for utt in dd.utts:
        if utt not in dd.feats_scp:
            raise KaldiFormatError(f"{path}/feats.scp: no features for utterance '{utt}'")
        f = read_matrix(dd.feats_scp[utt])
        if f.ndim != 2 or f.shape[0] == 0:
            raise KaldiFormatError(f"{path}/feats.scp: utterance '{utt}' has no feature frames (shape {tuple(f.shape)})")
        c = None
        if dd.cmvn_scp:
            spk = dd.utt2spk[utt]
            if spk not in cmvn:
                if spk not in dd.cmvn_scp:
                    raise KaldiFormatError(f"{path}/cmvn.scp: no stats for speaker '{spk}' of utterance '{utt}'")
                cmvn[spk] = read_matrix(dd.cmvn_scp[spk])
            c = cmvn[spk]
        yield utt, f, c

"""Speed perturbation of a Kaldi data dir (Kaldi's utils/data/perturb_data_dir_speed.sh and
perturb_data_dir_speed_3way.sh).

A copy of the data dir whose every utterance, speaker and recording id gets the prefix
``sp<factor>-`` and whose audio is the original through ``sox ... speed <factor>`` (tempo and
pitch both change, as Kaldi's): durations and segment times divided by the factor, text,
genders and the corpus's per-utterance tables (``utt2condition``, ``utt2voice``) carried
over; features, CMVN and frame counts are left out (they are computed again, and the copy
is aligned again with the GMM: the Kaldi way, never the original's labels stretched). Each
perturbed speaker is a new speaker, so speaker-adapted (fMLLR) alignment estimates its own
transform.
"""
from __future__ import annotations

import shutil
from collections import OrderedDict
from pathlib import Path
from typing import Dict, List, Sequence, Union

from kdhybrid.io.datadir import REC_TABLES, SPK_TABLES, UTT_TABLES, validate_data_dir
from kdhybrid.io.tables import read_text_table, write_text_table

Pathlike = Union[str, Path]

CORPUS_UTT_TABLES = ("utt2condition", "utt2voice")
DROPPED = ("feats.scp", "cmvn.scp", "utt2num_frames")  # recomputed for the perturbed audio


def _fmt(x: float) -> str:
    """Seconds to 3 decimals, trailing zeros dropped (2.700 -> 2.7, 3.000 -> 3)."""
    return f"{x:.3f}".rstrip("0").rstrip(".")


def _fresh_tmp(dst: Path) -> Path:
    """An empty ``<dst>.tmp`` to write into and rename to ``dst`` when complete."""
    tmp = dst.with_name(dst.name + ".tmp")
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir(parents=True)
    return tmp


def speed_perturb_data_dir(src: Pathlike, dst: Pathlike, factor: float) -> Path:
    """Write ``dst``: ``src`` at ``factor`` times the speed (0.9: slower and longer).

    :raises ValueError: a factor that is not positive, or ``dst`` that exists.
    """
    src, dst = Path(src), Path(dst)
    if factor <= 0:
        raise ValueError(f"speed factor must be positive, got {factor}")
    if dst.exists():
        raise ValueError(f"{dst} exists: remove it first")
    prefix = f"sp{factor:g}-" if factor != 1 else "sp1.0-"
    tables = {p.name: read_text_table(p, min_fields=1) for p in src.iterdir()
              if p.is_file() and p.name in UTT_TABLES + SPK_TABLES + REC_TABLES + CORPUS_UTT_TABLES and p.name not in DROPPED}
    if "wav.scp" not in tables:
        raise ValueError(f"{src}: no wav.scp: speed perturbation needs the audio")
    out: Dict[str, "OrderedDict[str, str]"] = {}
    for name, t in tables.items():
        new = OrderedDict()
        for k, v in t.items():
            if name == "wav.scp":
                v = f"{v} sox -t wav - -t wav - speed {factor:g} |" if v.rstrip().endswith("|") else f"sox {v} -t wav - speed {factor:g} |"
            elif name in ("utt2dur", "reco2dur"):
                v = _fmt(float(v) / factor)
            elif name == "segments":
                rec, start, end = v.split()
                v = f"{prefix}{rec} {_fmt(float(start) / factor)} {_fmt(float(end) / factor)}"
            elif name == "utt2spk":
                v = prefix + v
            elif name == "spk2utt":
                v = " ".join(prefix + u for u in v.split())
            elif name == "reco2file_and_channel":
                f, ch = v.split()
                v = f"{prefix}{f} {ch}"
            new[prefix + k] = v
        out[name] = new
    tmp = _fresh_tmp(dst)
    for name, t in out.items():
        write_text_table(tmp / name, t, sort=False)
    tmp.rename(dst)
    return dst


def combine_data_dirs(dst: Pathlike, srcs: Sequence[Pathlike]) -> Path:
    """Kaldi's utils/combine_data.sh: the tables of ``srcs`` (disjoint ids) concatenated and
    sorted into ``dst``; a table is kept only when every source has it.

    :raises ValueError: an utterance or speaker id in two sources, naming it and both dirs.
    """
    dst = Path(dst)
    srcs = [Path(s) for s in srcs]
    names = None
    for s in srcs:
        have = {p.name for p in s.iterdir() if p.is_file() and p.name in UTT_TABLES + SPK_TABLES + REC_TABLES + CORPUS_UTT_TABLES}
        names = have if names is None else names & have
    seen: Dict[str, Path] = {}
    for s in srcs:
        for u in read_text_table(s / "utt2spk"):
            if u in seen:
                raise ValueError(f"combine_data_dirs: utterance '{u}' is in both {seen[u]} and {s}")
            seen[u] = s
    tmp = _fresh_tmp(dst)
    for name in sorted(names or ()):
        merged: "OrderedDict[str, str]" = OrderedDict()
        for s in srcs:
            for k, v in read_text_table(s / name, min_fields=1).items():
                if name in SPK_TABLES and k in merged:
                    raise ValueError(f"combine_data_dirs: speaker '{k}' is in {s} and another source ({name})")
                merged[k] = v
        write_text_table(tmp / name, merged, sort=True)
    validate_data_dir(tmp)  # before it takes the final name, so a failure leaves no dir that looks done
    if dst.exists():
        raise ValueError(f"{dst} exists: remove it first")
    tmp.rename(dst)
    return dst


def speed_perturb_3way(src: Pathlike, dst: Pathlike, factors: Sequence[float] = (0.9, 1.0, 1.1)) -> List[Path]:
    """Kaldi's perturb_data_dir_speed_3way.sh: ``dst`` = the copies of ``src`` at each factor
    (1.0 included, prefixed ``sp1.0-``), combined; the single copies are removed."""
    dst = Path(dst)
    for f in factors:  # leftovers of an interrupted run
        shutil.rmtree(dst.with_name(f"{dst.name}.part{f:g}"), ignore_errors=True)
    parts = [speed_perturb_data_dir(src, dst.with_name(f"{dst.name}.part{f:g}"), f) for f in factors]
    combine_data_dirs(dst, parts)
    for p in parts:
        shutil.rmtree(p)
    return parts

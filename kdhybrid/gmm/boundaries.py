"""Phone-boundary agreement between an alignment and a reference (the synthesiser's timings).

flite and festival report the phone timings they synthesised; the corpus builder stores
them (shifted by the leading silence, scaled by the speed change) in
``meta/<split>.utts.jsonl``. Here both phone sequences are aligned with kaldialign
(edit distance over phone labels, word-position suffixes dropped, SIL/SPN as SIL) and, for
every matched phone, the start times are compared.

Time of a boundary before frame ``i``: ``i * shift + (length - shift) / 2``, the midpoint of
the centres of frames ``i - 1`` and ``i`` (Kaldi frames are ``length`` long, ``shift`` apart).
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Dict, List, Sequence, Tuple, Union

import numpy as np

from kdhybrid.gmm.tree import TidInfo, phone_instances

Pathlike = Union[str, Path]


def base_phone(name: str) -> str:
    b = name.split("_")[0] if name[-2:] in ("_B", "_E", "_I", "_S") else name
    return "SIL" if b in ("SIL", "SPN") else b


def hyp_segments(ali: np.ndarray, info: TidInfo, phone_names: Dict[int, str], shift: float = 0.01, length: float = 0.025) -> List[Tuple[str, float]]:
    """(phone, start time) of each phone instance, consecutive silences merged."""
    phones, starts = phone_instances(ali, info)
    out: List[Tuple[str, float]] = []
    for p, s in zip(phones.tolist(), starts.tolist()):
        lab = base_phone(phone_names[p])
        t = 0.0 if s == 0 else s * shift + (length - shift) / 2
        if out and out[-1][0] == "SIL" and lab == "SIL":
            continue
        out.append((lab, t))
    return out


def ref_segments(phones: Sequence[Sequence]) -> List[Tuple[str, float]]:
    out: List[Tuple[str, float]] = []
    for lab, s, _e in phones:
        lab = "SIL" if lab in ("SIL", "SPN", "?") else lab
        if out and out[-1][0] == "SIL" and lab == "SIL":
            continue
        out.append((lab, float(s)))
    return out


def matched_boundary_errors(hyp: List[Tuple[str, float]], ref: List[Tuple[str, float]]) -> np.ndarray:
    """|hyp start - ref start| (seconds) of phones matched by the edit-distance alignment,
    the utterance-initial phone excluded (its start is 0 in both)."""
    import kaldialign

    eps = "<eps>"
    pairs = kaldialign.align([p for p, _ in ref], [p for p, _ in hyp], eps)
    errs = []
    i = j = 0
    for r, h in pairs:
        if r != eps and h != eps:
            if r == h and i > 0 and j > 0:
                errs.append(abs(hyp[j][1] - ref[i][1]))
            i += 1
            j += 1
        elif r != eps:
            i += 1
        else:
            j += 1
    return np.asarray(errs)


def boundary_agreement(
    alis: Dict[str, np.ndarray], info: TidInfo, phones_txt: Pathlike, meta_jsonl: Sequence[Pathlike]
) -> dict:
    """Share of matched phone boundaries within 20 ms and 50 ms of the synthesiser's, over
    all utterances of voices that report timings, and per voice."""
    names = {int(l.split()[1]): l.split()[0] for l in Path(phones_txt).read_text().splitlines()}
    meta = {}
    for f in meta_jsonl:
        for line in Path(f).read_text().splitlines():
            r = json.loads(line)
            if r.get("phones"):
                meta[r["utt_id"]] = r
    per_voice: Dict[str, List[np.ndarray]] = {}
    for u, a in alis.items():
        if u not in meta:
            continue
        e = matched_boundary_errors(hyp_segments(a, info, names), ref_segments(meta[u]["phones"]))
        per_voice.setdefault(meta[u]["voice"], []).append(e)
    def summ(arrs: List[np.ndarray]) -> dict:
        e = np.concatenate(arrs) if arrs else np.zeros(0)
        return {
            "utterances": len(arrs),
            "boundaries": int(e.size),
            "within_20ms": round(float((e <= 0.020).mean()), 4) if e.size else None,
            "within_50ms": round(float((e <= 0.050).mean()), 4) if e.size else None,
            "median_ms": round(float(np.median(e) * 1000), 1) if e.size else None,
        }
    return {"all": summ([x for v in per_voice.values() for x in v]), "per_voice": {v: summ(x) for v, x in sorted(per_voice.items())}}

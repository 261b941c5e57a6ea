"""Kaldi lang dirs from dict dirs: ``utils/prepare_lang.sh`` in Python.

Input, a Kaldi dict dir: ``lexicon.txt`` (``WORD p1 p2 ...``; or ``lexiconp.txt`` with a
probability after the word), ``silence_phones.txt``, ``nonsilence_phones.txt`` (one line
per base phone, or per set of phones sharing a tree root), ``optional_silence.txt``,
optionally ``extra_questions.txt``.

Output, the lang dir Kaldi's tools expect: ``phones.txt``, ``words.txt``, ``topo``
(3-state left-to-right phones, 5-state silence), ``L.fst``, ``L_disambig.fst``,
``oov.txt``/``oov.int`` and ``phones/*.{txt,int,csl}`` (silence, nonsilence,
optional_silence, disambig, context_indep, sets, roots, extra_questions,
word_boundary, align_lexicon). With word-position-dependent phones (the default), each
phone gets ``_B``/``_I``/``_E``/``_S`` variants by its place in the word.
"""
from __future__ import annotations

import math
import os
import shutil
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple, Union

from kdhybrid.io.tables import KaldiFormatError, atomic_write_text

Pathlike = Union[str, Path]
POSITIONS = ("_B", "_E", "_I", "_S")


@dataclass
class DictDir:
    lexicon: List[Tuple[str, float, List[str]]]  # (word, pron prob, phones)
    silence_phones: List[str]
    nonsilence_sets: List[List[str]]  # each line of nonsilence_phones.txt
    optional_silence: str
    extra_questions: List[List[str]] = field(default_factory=list)

    @property
    def nonsilence_phones(self) -> List[str]:
        return [p for s in self.nonsilence_sets for p in s]


def _read_phone_lines(path: Path) -> List[List[str]]:
    out = []
    for lineno, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        toks = line.split()
        if not toks:
            raise KaldiFormatError(f"{path}:{lineno}: empty line")
        for t in toks:
            if t.startswith("#") or t in ("<eps>",) or any(t.endswith(pos) for pos in POSITIONS):
                raise KaldiFormatError(f"{path}:{lineno}: reserved phone name '{t}'")
        out.append(toks)
    return out


def read_dict_dir(dict_dir: Pathlike) -> DictDir:
    """Read and check a dict dir. Errors name the file and line: a word with no
    pronunciation, a phone in no phone list, a duplicate entry, a phone listed twice."""
    d = Path(dict_dir)
    for name in ("silence_phones.txt", "nonsilence_phones.txt", "optional_silence.txt"):
        if not (d / name).is_file():
            raise FileNotFoundError(f"{d / name}: missing from the dict dir")
    sil = [p for line in _read_phone_lines(d / "silence_phones.txt") for p in line]
    nonsil = _read_phone_lines(d / "nonsilence_phones.txt")
    seen: Dict[str, str] = {}
    for name, phones in (("silence_phones.txt", sil), ("nonsilence_phones.txt", [p for s in nonsil for p in s])):
        for p in phones:
            if p in seen:
                raise KaldiFormatError(f"{d / name}: phone '{p}' is also in {seen[p]}")
            seen[p] = name
    opt = (d / "optional_silence.txt").read_text().split()
    if len(opt) != 1 or opt[0] not in sil:
        raise KaldiFormatError(f"{d / 'optional_silence.txt'}: must hold one phone of silence_phones.txt, got {opt}")
    extra = _read_phone_lines(d / "extra_questions.txt") if (d / "extra_questions.txt").is_file() else []
    for lineno, q in enumerate(extra, 1):
        for p in q:
            if p not in seen:
                raise KaldiFormatError(f"{d / 'extra_questions.txt'}:{lineno}: phone '{p}' is in no phone list")

    with_probs = (d / "lexiconp.txt").is_file()
    lex_path = d / ("lexiconp.txt" if with_probs else "lexicon.txt")
    if not lex_path.is_file():
        raise FileNotFoundError(f"{d}: neither lexicon.txt nor lexiconp.txt")
    lexicon: List[Tuple[str, float, List[str]]] = []
    entries: Dict[Tuple[str, Tuple[str, ...]], int] = {}
    for lineno, line in enumerate(lex_path.read_text(encoding="utf-8").splitlines(), 1):
        toks = line.split()
        if not toks:
            raise KaldiFormatError(f"{lex_path}:{lineno}: empty line")
        word = toks[0]
        if word in ("<eps>", "<s>", "</s>") or word.startswith("#"):
            raise KaldiFormatError(f"{lex_path}:{lineno}: reserved word '{word}'")
        prob = 1.0
        phones = toks[1:]
        if with_probs:
            try:
                prob = float(toks[1])
            except (ValueError, IndexError):
                raise KaldiFormatError(f"{lex_path}:{lineno}: expected a pronunciation probability after '{word}'") from None
            if not 0.0 < prob <= 1.0:
                raise KaldiFormatError(f"{lex_path}:{lineno}: pronunciation probability {prob} not in (0, 1]")
            phones = toks[2:]
        if not phones:
            raise KaldiFormatError(f"{lex_path}:{lineno}: word '{word}' has no pronunciation")
        for p in phones:
            if p not in seen:
                raise KaldiFormatError(f"{lex_path}:{lineno}: phone '{p}' of word '{word}' is in no phone list")
        key = (word, tuple(phones))
        if key in entries:
            raise KaldiFormatError(f"{lex_path}:{lineno}: duplicate entry '{line.strip()}' (first at line {entries[key]})")
        entries[key] = lineno
        lexicon.append((word, prob, phones))
    if not lexicon:
        raise KaldiFormatError(f"{lex_path}: empty lexicon")
    return DictDir(lexicon, sil, nonsil, opt[0], extra)


def position_dependent(phones: Sequence[str]) -> List[str]:
    if len(phones) == 1:
        return [phones[0] + "_S"]
    return [phones[0] + "_B"] + [p + "_I" for p in phones[1:-1]] + [phones[-1] + "_E"]


def add_disambig(prons: Sequence[Tuple[str, ...]]) -> Tuple[List[Optional[int]], int]:
    """Disambiguation symbol per pronunciation, as Kaldi's add_lex_disambig.pl gives them:
    a pronunciation that occurs more than once or is a proper prefix of another gets
    ``#1``, ``#2``... (numbered per pronunciation). Returns (numbers or None, the largest)."""
    count = Counter(prons)
    prefixes = set()
    for p in count:
        for i in range(1, len(p)):
            prefixes.add(p[:i])
    last: Dict[Tuple[str, ...], int] = defaultdict(int)
    out: List[Optional[int]] = []
    for p in prons:
        if count[p] > 1 or p in prefixes:
            last[p] += 1
            out.append(last[p])
        else:
            out.append(None)
    return out, max([n for n in out if n] or [0])


def make_topo(nonsil_ids: Sequence[int], sil_ids: Sequence[int], num_nonsil_states: int = 3, num_sil_states: int = 5) -> str:
    """Kaldi HMM topology text: left-to-right phones, ergodic-middle silence (gen_topo.pl)."""
    lines = ["<Topology>", "<TopologyEntry>", "<ForPhones>", " ".join(map(str, nonsil_ids)), "</ForPhones>"]
    for s in range(num_nonsil_states):
        lines.append(f"<State> {s} <PdfClass> {s} <Transition> {s} 0.75 <Transition> {s + 1} 0.25 </State>")
    lines += [f"<State> {num_nonsil_states} </State>", "</TopologyEntry>"]
    lines += ["<TopologyEntry>", "<ForPhones>", " ".join(map(str, sil_ids)), "</ForPhones>"]
    n = num_sil_states
    if n > 1:
        p = 1.0 / (n - 1)
        lines.append("<State> 0 <PdfClass> 0 " + " ".join(f"<Transition> {t} {p:g}" for t in range(n - 1)) + " </State>")
        for s in range(1, n - 1):
            lines.append(f"<State> {s} <PdfClass> {s} " + " ".join(f"<Transition> {t} {p:g}" for t in range(1, n)) + " </State>")
        lines.append(f"<State> {n - 1} <PdfClass> {n - 1} <Transition> {n - 1} 0.75 <Transition> {n} 0.25 </State>")
    else:
        lines.append("<State> 0 <PdfClass> 0 <Transition> 0 0.75 <Transition> 1 0.25 </State>")
    lines += [f"<State> {n} </State>", "</TopologyEntry>", "</Topology>"]
    return "\n".join(lines) + "\n"


def lexicon_fst_text(
    lexicon: Sequence[Tuple[int, float, List[int]]],
    sil_prob: float,
    sil_phone: int,
    sil_disambig: Optional[int] = None,
) -> str:
    """OpenFst text of L (phone ids in, word ids out) with optional silence between
    words (``sil_prob``), as Kaldi's make_lexicon_fst: word-end arcs go back to the loop
    state (no silence) or to a silence state that emits the silence phone."""
    lines: List[str] = []
    if sil_prob <= 0.0:
        loop, nxt = 0, 1
        start = loop
    else:
        start, loop, sil_state, nxt = 0, 1, 2, 3
        sil_cost, nosil_cost = -math.log(sil_prob), -math.log(1.0 - sil_prob)
        lines.append(f"{start}\t{loop}\t0\t0\t{nosil_cost}")
        lines.append(f"{start}\t{sil_state}\t0\t0\t{sil_cost}")
        if sil_disambig is None:
            lines.append(f"{sil_state}\t{loop}\t{sil_phone}\t0\t0")
        else:
            dstate, nxt = nxt, nxt + 1
            lines.append(f"{sil_state}\t{dstate}\t{sil_phone}\t0\t0")
            lines.append(f"{dstate}\t{loop}\t{sil_disambig}\t0\t0")
    for word, prob, pron in lexicon:
        pcost = -math.log(prob)
        cur = loop
        for i, ph in enumerate(pron[:-1]):
            lines.append(f"{cur}\t{nxt}\t{ph}\t{word if i == 0 else 0}\t{pcost if i == 0 else 0}")
            cur, nxt = nxt, nxt + 1
        last_word = word if len(pron) == 1 else 0
        last_cost = pcost if len(pron) == 1 else 0.0
        if sil_prob <= 0.0:
            lines.append(f"{cur}\t{loop}\t{pron[-1]}\t{last_word}\t{last_cost}")
        else:
            lines.append(f"{cur}\t{loop}\t{pron[-1]}\t{last_word}\t{last_cost + nosil_cost}")
            lines.append(f"{cur}\t{sil_state}\t{pron[-1]}\t{last_word}\t{last_cost + sil_cost}")
    lines.append(f"{loop}\t0")
    return "\n".join(lines) + "\n"


@dataclass
class LangConfig:
    position_dependent_phones: bool = True
    sil_prob: float = 0.5
    num_sil_states: int = 5
    num_nonsil_states: int = 3


def _write(path: Path, text: str) -> None:
    atomic_write_text(path, text)


def prepare_lang(dict_dir: Pathlike, oov_word: str, lang_dir: Pathlike, config: Optional[LangConfig] = None) -> Dict[str, int]:
    """Make a Kaldi lang dir from a dict dir. Returns sizes (phones, words, disambig symbols).

    The lang dir is written under ``<lang_dir>.tmp`` and renamed into place when complete.
    """
    from kdhybrid.kaldi_libs import kaldifst

    cfg = config or LangConfig()
    dd = read_dict_dir(dict_dir)
    if oov_word not in {w for w, _, _ in dd.lexicon}:
        raise KaldiFormatError(f"{dict_dir}/lexicon.txt: the OOV word '{oov_word}' has no entry")
    lang_dir = Path(lang_dir)
    tmp = lang_dir.with_name(lang_dir.name + ".tmp")
    if tmp.exists():
        shutil.rmtree(tmp)
    (tmp / "phones").mkdir(parents=True)

    # Phone inventory: silence phones with all variants, nonsilence with position variants.
    pos = cfg.position_dependent_phones
    variants: Dict[str, List[str]] = {}
    for p in dd.silence_phones:
        variants[p] = [p] + ([p + s for s in POSITIONS] if pos else [])
    for p in dd.nonsilence_phones:
        variants[p] = [p + s for s in POSITIONS] if pos else [p]
    lex = [(w, prob, position_dependent(ph) if pos else list(ph)) for w, prob, ph in dd.lexicon]
    disambig_of, max_disambig = add_disambig([tuple(ph) for _, _, ph in lex])
    n_disambig = max_disambig + 1  # one more for the optional silence in L_disambig
    phones = ["<eps>"] + [v for p in dd.silence_phones for v in variants[p]] + [v for p in dd.nonsilence_phones for v in variants[p]]
    disambig = [f"#{i}" for i in range(n_disambig + 1)]
    phone_id = {p: i for i, p in enumerate(phones + disambig)}
    words = ["<eps>"] + sorted({w for w, _, _ in lex}, key=lambda x: x.encode()) + ["#0", "<s>", "</s>"]
    word_id = {w: i for i, w in enumerate(words)}

    _write(tmp / "phones.txt", "".join(f"{p} {i}\n" for p, i in phone_id.items()))
    _write(tmp / "words.txt", "".join(f"{w} {i}\n" for i, w in enumerate(words)))
    _write(tmp / "oov.txt", oov_word + "\n")
    _write(tmp / "oov.int", f"{word_id[oov_word]}\n")

    sil_all = [v for p in dd.silence_phones for v in variants[p]]
    nonsil_all = [v for p in dd.nonsilence_phones for v in variants[p]]

    def write_set(name: str, lines: List[List[str]], csl: bool = False) -> None:
        _write(tmp / "phones" / f"{name}.txt", "".join(" ".join(l) + "\n" for l in lines))
        _write(tmp / "phones" / f"{name}.int", "".join(" ".join(str(phone_id[p]) for p in l) + "\n" for l in lines))
        if csl:
            _write(tmp / "phones" / f"{name}.csl", ":".join(str(phone_id[p]) for l in lines for p in l) + "\n")

    write_set("silence", [[p] for p in sil_all], csl=True)
    write_set("nonsilence", [[p] for p in nonsil_all], csl=True)
    write_set("optional_silence", [[dd.optional_silence]], csl=True)
    write_set("disambig", [[d] for d in disambig], csl=True)
    write_set("context_indep", [[p] for p in sil_all], csl=True)
    sets = [variants[p] for p in dd.silence_phones] + [[v for p in s for v in variants[p]] for s in dd.nonsilence_sets]
    write_set("sets", sets)
    _write(tmp / "phones" / "roots.txt", "".join("shared split " + " ".join(s) + "\n" for s in sets))
    _write(tmp / "phones" / "roots.int", "".join("shared split " + " ".join(str(phone_id[p]) for p in s) + "\n" for s in sets))
    extra = [[v for p in q for v in variants[p]] for q in dd.extra_questions]
    if pos:  # questions about word position, as prepare_lang.sh adds
        for s in POSITIONS:
            extra.append([p + s for p in dd.nonsilence_phones] + [p + s for p in dd.silence_phones])
        extra.append(list(dd.silence_phones))
    write_set("extra_questions", extra)
    wb = {"_B": "begin", "_E": "end", "_I": "internal", "_S": "singleton"}
    if pos:
        wb_lines = [[p, "nonword"] for p in dd.silence_phones] + [
            [v, wb[v[-2:]]] for p in dd.silence_phones + dd.nonsilence_phones for v in variants[p] if v[-2:] in wb
        ]
        _write(tmp / "phones" / "word_boundary.txt", "".join(f"{a} {b}\n" for a, b in wb_lines))
        _write(tmp / "phones" / "word_boundary.int", "".join(f"{phone_id[a]} {b}\n" for a, b in wb_lines))
    _write(tmp / "phones" / "align_lexicon.txt", "".join(f"{w} {w} {' '.join(ph)}\n" for w, _, ph in lex))
    _write(tmp / "phones" / "align_lexicon.int", "".join(
        f"{word_id[w]} {word_id[w]} {' '.join(str(phone_id[p]) for p in ph)}\n" for w, _, ph in lex))

    nonsil_ids = [phone_id[p] for p in nonsil_all]
    sil_ids = [phone_id[p] for p in sil_all]
    _write(tmp / "topo", make_topo(nonsil_ids, sil_ids, cfg.num_nonsil_states, cfg.num_sil_states))

    # L.fst and L_disambig.fst.
    sil_phone = phone_id[dd.optional_silence]
    plain = [(word_id[w], prob, [phone_id[p] for p in ph]) for w, prob, ph in lex]
    L = kaldifst.compile(lexicon_fst_text(plain, cfg.sil_prob, sil_phone))
    kaldifst.arcsort(L, sort_type="olabel")
    L.write(str(tmp / "L.fst"))
    with_disambig = [
        (wid, prob, pron + ([phone_id[f"#{d}"]] if d else [])) for (wid, prob, pron), d in zip(plain, disambig_of)
    ]
    Ld = kaldifst.compile(lexicon_fst_text(with_disambig, cfg.sil_prob, sil_phone, phone_id[f"#{n_disambig}"]))
    kaldifst.add_self_loops(Ld, [phone_id["#0"]], [word_id["#0"]])
    kaldifst.arcsort(Ld, sort_type="olabel")
    Ld.write(str(tmp / "L_disambig.fst"))
    _write(tmp / "lang.json", __import__("json").dumps(dict(cfg.__dict__, oov=oov_word, dict_dir=str(dict_dir)), indent=1) + "\n")

    if lang_dir.exists():
        shutil.rmtree(lang_dir)
    os.replace(tmp, lang_dir)
    return {"phones": len(phones) - 1, "words": len(words), "disambig": len(disambig), "lexicon_entries": len(lex)}

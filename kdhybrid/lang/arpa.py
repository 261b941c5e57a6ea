"""Exact sentence scores of a backoff n-gram LM in ARPA format (for n-best LM rescoring).

``log10 P(w | h)`` is the n-gram's probability when ``h w`` is listed, else the backoff
weight of ``h`` plus ``log10 P(w | h[1:])`` (Katz backoff, as SRILM and Kaldi's arpa2fst
read ARPA files). A sentence is scored from ``<s>`` through ``</s>``.
"""
from __future__ import annotations

import gzip
import math
from pathlib import Path
from typing import Dict, Sequence, Tuple, Union

Pathlike = Union[str, Path]
LN10 = math.log(10.0)


class ArpaLm:
    """An ARPA LM in memory: ``probs[n][ngram] = (log10 prob, log10 backoff)``."""

    def __init__(self, path: Pathlike):
        self.path = str(path)
        self.probs: Dict[Tuple[str, ...], Tuple[float, float]] = {}
        self.order = 0
        opener = gzip.open if str(path).endswith(".gz") else open
        section = 0
        with opener(path, "rt", encoding="utf-8") as f:
            for lineno, line in enumerate(f, 1):
                line = line.strip()
                if not line or line.startswith("ngram ") or line == "\\data\\":
                    continue
                if line.startswith("\\") and line.endswith("-grams:"):
                    section = int(line[1:].split("-")[0])
                    self.order = max(self.order, section)
                    continue
                if line == "\\end\\":
                    break
                if section == 0:
                    continue
                parts = line.split()
                if len(parts) < section + 1:
                    raise ValueError(f"{path}:{lineno}: malformed {section}-gram line: {line[:80]!r}")
                bow = float(parts[section + 1]) if len(parts) > section + 1 else 0.0
                self.probs[tuple(parts[1 : section + 1])] = (float(parts[0]), bow)
        if not self.order:
            raise ValueError(f"{path}: no n-gram sections (not an ARPA file)")

    def word_logprob(self, hist: Sequence[str], w: str) -> float:
        """log10 P(w | hist) with backoff (``hist`` the most recent order-1 words at most)."""
        bo = 0.0
        h = tuple(hist[-(self.order - 1):]) if self.order > 1 else ()
        while True:
            e = self.probs.get(h + (w,))
            if e is not None:
                return bo + e[0]
            if not h:
                unk = self.probs.get(("<unk>",)) or self.probs.get(("<UNK>",))
                return bo + (unk[0] if unk else -99.0)
            b = self.probs.get(h)
            bo += b[1] if b else 0.0
            h = h[1:]

    def sentence_logprob(self, words: Sequence[str]) -> float:
        """log10 P(words </s> | <s>)."""
        hist = ["<s>"]
        tot = 0.0
        for w in list(words) + ["</s>"]:
            tot += self.word_logprob(hist, w)
            hist.append(w)
        return tot

    def sentence_score(self, words: Sequence[str]) -> float:
        """Natural-log score (what G.fst's weights are, negated): ln P(words </s> | <s>)."""
        return LN10 * self.sentence_logprob(words)

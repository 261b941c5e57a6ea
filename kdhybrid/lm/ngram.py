"""The n-gram floor of a unit LM: a Kneser-Ney n-gram of the same units (kaldingram, through
:mod:`kdhybrid.lang.ngram`), whose held-out perplexity the LSTM must beat, and an ARPA LM
over units as a next-unit distribution (a hand-written bigram gives hand-checkable targets).

Units are written to the n-gram's text by name (:class:`~kdhybrid.lm.units.UnitInventory`),
one sentence a line; the boundary is ARPA's ``<s>``/``</s>``.
"""
from __future__ import annotations

from pathlib import Path
from typing import Dict, List, Sequence, Union

import numpy as np

from kdhybrid.lang.arpa import LN10, ArpaLm
from kdhybrid.lm.units import UnitInventory

Pathlike = Union[str, Path]


def unit_sentences(seqs: Sequence[np.ndarray], inventory: UnitInventory) -> List[str]:
    """Sentences of unit names, for n-gram training and perplexity."""
    names = inventory.names
    return [" ".join(names[int(u)] for u in s) for s in seqs]


def train_unit_ngram(seqs: Sequence[np.ndarray], inventory: UnitInventory, order: int, arpa: Pathlike) -> Dict[str, int]:
    """Kneser-Ney ``order``-gram of the unit sentences into ``arpa`` (its text beside it, as
    ``<arpa>.txt``). Returns the n-gram counts per order."""
    from kdhybrid.io.tables import atomic_write_text
    from kdhybrid.lang.ngram import train_arpa

    text = Path(str(arpa) + ".txt")
    atomic_write_text(text, "".join(s + "\n" for s in unit_sentences(seqs, inventory)))
    return train_arpa(text, order, arpa)


def ngram_perplexity(arpa: Pathlike, seqs: Sequence[np.ndarray], inventory: UnitInventory) -> Dict[str, float]:
    """SRILM ``ppl`` of unit sentences under an ARPA LM (units never seen in training are OOVs,
    left out of the perplexity and counted)."""
    from kdhybrid.lang.ngram import perplexity

    return perplexity(arpa, unit_sentences(seqs, inventory))


class ArpaUnitLm:
    """An ARPA LM over units, scored like :meth:`kdhybrid.lm.lstm.LstmLm.next_unit_logprobs`."""

    def __init__(self, arpa: Pathlike, inventory: UnitInventory):
        self.lm = ArpaLm(arpa)
        self.inventory = inventory
        self.symbols = list(inventory.names) + ["</s>"]
        self.num_units = len(inventory)

    def next_unit_logprobs(self, seqs: Sequence[np.ndarray], batch_tokens: int = 0) -> List[np.ndarray]:
        """Per sentence (K_i + 1, V + 1) float32 natural-log probabilities; row k is
        ``log p(. | <s>, u_1 .. u_k)``, column V is ``</s>``."""
        names = self.inventory.names
        out = []
        cache: Dict[tuple, np.ndarray] = {}
        ctx = max(self.lm.order - 1, 0)
        for s in seqs:
            hist = ["<s>"] + [names[int(u)] for u in s]
            rows = []
            for k in range(len(s) + 1):
                h = tuple(hist[max(0, k + 1 - ctx) : k + 1]) if ctx else ()
                row = cache.get(h)
                if row is None:
                    row = np.array([LN10 * self.lm.word_logprob(h, w) for w in self.symbols], np.float32)
                    cache[h] = row
                rows.append(row)
            out.append(np.stack(rows) if rows else np.zeros((0, len(self.symbols)), np.float32))
        return out


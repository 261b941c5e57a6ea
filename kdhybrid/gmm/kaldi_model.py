"""Reading Kaldi's model files without Kaldi: the transition model part of ``final.mdl``.

Later steps need, for an alignment dir made by real Kaldi or by kdhybrid, the map from
transition-ids to pdf-ids and phones (what ``ali-to-pdf``/``ali-to-phones`` use). Both are
defined by the ``<TransitionModel>`` section: the topology (transitions per HMM state) and
the tuples (phone, HMM state, forward pdf, self-loop pdf) in transition-state order;
transition-ids number the transitions of each transition-state in turn, from 1.
Both Kaldi's binary models (its default) and text models (kdhybrid's ``final.mdl``,
``gmm-copy --binary=false``) are read; for HMM topologies written by older and newer Kaldi.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Tuple, Union

import numpy as np

Pathlike = Union[str, Path]


@dataclass
class TransitionTables:
    """(num_transition_ids + 1,) int32 arrays; index 0 unused."""

    tid2pdf: np.ndarray
    tid2phone: np.ndarray
    num_pdfs: int


def read_transition_model(path: Pathlike) -> TransitionTables:
    """Parse the ``<TransitionModel>`` of a text ``final.mdl``.

    :raises ValueError: naming the file for a binary or malformed model.
    """
    data = Path(path).read_bytes()
    if data[:2] == b"\0B":
        return _read_binary(data, str(path))
    text = data.decode("utf-8", errors="replace")
    m = re.search(r"<Topology>(.*?)</Topology>", text, re.S)
    if not m:
        raise ValueError(f"{path}: no <Topology> section (not a Kaldi model?)")
    ntrans: Dict[Tuple[int, int], int] = {}
    self_loop_dest: Dict[Tuple[int, int], List[int]] = {}
    for entry in re.findall(r"<TopologyEntry>(.*?)</TopologyEntry>", m.group(1), re.S):
        phones = [int(x) for x in re.search(r"<ForPhones>(.*?)</ForPhones>", entry, re.S).group(1).split()]
        for st in re.findall(r"<State>(.*?)</State>", entry, re.S):
            toks = st.split()
            s = int(toks[0])
            dests = [int(toks[i + 1]) for i, t in enumerate(toks) if t == "<Transition>"]
            for p in phones:
                ntrans[(p, s)] = len(dests)
                self_loop_dest[(p, s)] = dests
    tm = re.search(r"<(Tuples|Triples)>\s*(\d+)(.*?)</\1>", text, re.S)
    if not tm:
        raise ValueError(f"{path}: no <Tuples> or <Triples> section")
    width = 4 if tm.group(1) == "Tuples" else 3
    nums = [int(x) for x in tm.group(3).split()]
    n = int(tm.group(2))
    if len(nums) != n * width:
        raise ValueError(f"{path}: <{tm.group(1)}> declares {n} entries but holds {len(nums) / width}")
    tid2pdf, tid2phone = [0], [0]
    for i in range(n):
        row = nums[i * width : (i + 1) * width]
        phone, hmm_state, fpdf = row[0], row[1], row[2]
        slpdf = row[3] if width == 4 else fpdf
        for dest in self_loop_dest[(phone, hmm_state)]:
            tid2pdf.append(slpdf if dest == hmm_state else fpdf)
            tid2phone.append(phone)
    t2p = np.asarray(tid2pdf, dtype=np.int32)
    return TransitionTables(t2p, np.asarray(tid2phone, dtype=np.int32), int(t2p[1:].max()) + 1)


class _BinReader:
    """Kaldi binary primitives: tokens end with a space; int32/float carry a size byte."""

    def __init__(self, data: bytes, path: str):
        self.d, self.pos, self.path = data, 2, path

    def fail(self, what: str) -> ValueError:
        return ValueError(f"{self.path}: at byte {self.pos}: {what}")

    def token(self) -> str:
        end = self.d.find(b" ", self.pos)
        if end < 0:
            raise self.fail("truncated (expected a token)")
        t = self.d[self.pos : end].decode("latin-1")
        self.pos = end + 1
        return t

    def expect(self, tok: str) -> None:
        t = self.token()
        if t != tok:
            raise self.fail(f"expected {tok}, found {t!r}")

    def need(self, n: int) -> None:
        if self.pos + n > len(self.d):
            raise self.fail(f"truncated ({n} bytes needed, {len(self.d) - self.pos} left)")

    def int32(self) -> int:
        self.need(5)
        if self.d[self.pos] != 4:
            raise self.fail(f"expected an int32 size byte 4, found {self.d[self.pos]}")
        v = int.from_bytes(self.d[self.pos + 1 : self.pos + 5], "little", signed=True)
        self.pos += 5
        return v

    def float32(self) -> float:
        self.need(5)
        if self.d[self.pos] != 4:
            raise self.fail(f"expected a float size byte 4, found {self.d[self.pos]}")
        v = float(np.frombuffer(self.d[self.pos + 1 : self.pos + 5], dtype="<f4")[0])
        self.pos += 5
        return v

    def int_vector(self) -> List[int]:
        self.need(5)
        if self.d[self.pos] != 4:
            raise self.fail("expected an int32 vector")
        n = int.from_bytes(self.d[self.pos + 1 : self.pos + 5], "little", signed=True)
        self.need(5 + 4 * n)
        v = np.frombuffer(self.d[self.pos + 5 : self.pos + 5 + 4 * n], dtype="<i4").tolist()
        self.pos += 5 + 4 * n
        return v


def _read_binary(data: bytes, path: str) -> TransitionTables:
    r = _BinReader(data, path)
    r.expect("<TransitionModel>")
    r.expect("<Topology>")
    r.int_vector()  # the phones (their entries are found through phone2idx)
    phone2idx = r.int_vector()
    n = r.int32()
    extended = n == -1  # newer Kaldi: separate forward and self-loop pdf-classes
    if extended:
        n = r.int32()
    entries: List[List[List[int]]] = []  # entry -> state -> transition destinations
    for _ in range(n):
        states = []
        for _ in range(r.int32()):
            r.int32()
            if extended:
                r.int32()
            dests = []
            for _ in range(r.int32()):
                dests.append(r.int32())
                r.float32()
            states.append(dests)
        entries.append(states)
    r.expect("</Topology>")
    tok = r.token()
    if tok not in ("<Tuples>", "<Triples>"):
        raise r.fail(f"expected <Tuples> or <Triples>, found {tok!r}")
    width = 4 if tok == "<Tuples>" else 3
    tid2pdf, tid2phone = [0], [0]
    for _ in range(r.int32()):
        row = [r.int32() for _ in range(width)]
        phone, hmm_state, fpdf = row[0], row[1], row[2]
        slpdf = row[3] if width == 4 else fpdf
        if phone >= len(phone2idx) or phone2idx[phone] < 0:
            raise r.fail(f"phone {phone} has no topology entry")
        for dest in entries[phone2idx[phone]][hmm_state]:
            tid2pdf.append(slpdf if dest == hmm_state else fpdf)
            tid2phone.append(phone)
    r.expect("</" + tok[1:])
    t2p = np.asarray(tid2pdf, dtype=np.int32)
    return TransitionTables(t2p, np.asarray(tid2phone, dtype=np.int32), int(t2p[1:].max()) + 1)

"""Reading Kaldi's model files without Kaldi: the transition model part of ``final.mdl``.

Later steps need, for an alignment dir made by real Kaldi or by kdhybrid, the map from
transition-ids to pdf-ids and phones (what ``ali-to-pdf``/``ali-to-phones`` use). Both are
defined by the ``<TransitionModel>`` section: the topology (transitions per HMM state) and
the tuples (phone, HMM state, forward pdf, self-loop pdf) in transition-state order;
transition-ids number the transitions of each transition-state in turn, from 1.
Text models (``gmm-copy --binary=false``, and kdhybrid's ``final.mdl``) are read here.
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
        raise ValueError(f"{path}: binary Kaldi model; convert it with: gmm-copy --binary=false {path} {path}.txt")
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

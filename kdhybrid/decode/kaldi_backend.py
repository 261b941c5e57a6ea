"""Kaldi's LatticeFasterDecoder (kaldi-hmm-gmm) over an HCLG: best paths of utterances.

The acoustic scores come from a Kaldi decodable; kdhybrid passes every model's scores the
same way, as a (T, num_transition_ids) matrix of scaled log-likelihoods (``DecodableCtc``,
column ``tid - 1`` holding the score of the transition-id's pdf).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import List, Optional, Tuple


from kdhybrid.kaldi_libs import kaldi_hmm_gmm as khg
from kdhybrid.kaldi_libs import kaldifst


@dataclass
class DecoderOptions:
    acwt: float = 0.1
    beam: float = 13.0
    lattice_beam: float = 6.0
    max_active: int = 7000
    min_active: int = 200


class KaldiDecoder:
    def __init__(self, hclg_path: str, opts: Optional[DecoderOptions] = None):
        self.opts = opts or DecoderOptions()
        self.fst = kaldifst.StdVectorFst.read(hclg_path)
        cfg = khg.LatticeFasterDecoderConfig()
        cfg.beam = self.opts.beam
        cfg.lattice_beam = self.opts.lattice_beam
        cfg.max_active = self.opts.max_active
        cfg.min_active = self.opts.min_active
        self.decoder = khg.LatticeFasterDecoderStdVectorFst(self.fst, cfg)

    def decode(self, decodable, tm, utt: str) -> Tuple[bool, List[int], List[int], float]:
        """(reached a final state, transition-ids, word-ids, log-likelihood) of the best path."""
        ok, ali, words, like = khg.decode_utterance_lattice_faster(self.decoder, decodable, tm, utt, True)
        return ok, list(ali), list(words), like

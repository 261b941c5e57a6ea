"""Kaldi's LatticeFasterDecoder (kaldi-hmm-gmm) over an HCLG: best paths of utterances.

The acoustic scores come from a Kaldi decodable; kdhybrid passes every model's scores the
same way, as a (T, num_transition_ids) matrix of scaled log-likelihoods (``DecodableCtc``,
column ``tid - 1`` holding the score of the transition-id's pdf).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import List, Optional, Tuple

import numpy as np


from kdhybrid.kaldi_libs import kaldi_hmm_gmm as khg
from kdhybrid.kaldi_libs import kaldifst


def tid_decodable(scores: np.ndarray, tid2pdf: np.ndarray) -> "khg.DecodableCtc":
    """A Kaldi decodable of (T, num_pdfs) float32 scores (already scaled by acwt): column
    ``tid - 1`` of its (T, num_tids) matrix holds the score of the transition-id's pdf.

    :param tid2pdf: (num_tids + 1,) pdf of each transition-id (index 0 unused)."""
    return khg.DecodableCtc(np.ascontiguousarray(np.asarray(scores, dtype=np.float32)[:, tid2pdf[1:]]))


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

    def decode_scores(self, scores: np.ndarray, tm, tid2pdf: np.ndarray, utt: str) -> Tuple[bool, List[int], List[int], float, float]:
        """Best path of one utterance's scores.

        :param scores: (T, num_pdfs) float32, already scaled by acwt.
        :param tid2pdf: (num_tids + 1,) pdf of each transition-id (index 0 unused).
        :return: (reached a final state, transition-ids, word-ids, acoustic score, graph score)
            of the best path; acoustic + graph is its total score."""
        ok, ali, words, like = self.decode(tid_decodable(scores, tid2pdf), tm, utt)
        pdfs = np.asarray(tid2pdf)[np.asarray(ali, dtype=np.int64)] if ali else None
        am = float(np.asarray(scores, dtype=np.float32)[np.arange(len(ali)), pdfs].sum()) if ali else 0.0
        return ok, ali, words, am, float(like) - am

"""Viterbi alignment of transcribed utterances with any acoustic model (Kaldi's
steps/nnet3/align.sh): the training graph of each transcript (the tree and transition model
of a GMM dir, the lang dir's lexicon) against the model's scaled log-likelihoods, as a
decodable of transition-ids (:func:`kdhybrid.decode.kaldi_backend.tid_decodable`).

The numerators of sequence training are such alignments by the model being fine-tuned.
"""
from __future__ import annotations

from pathlib import Path
from typing import Dict, Iterator, Optional, Tuple, Union

import numpy as np

from kdhybrid.decode.acoustic import BATCH_FRAMES, AcousticScorer, iter_feature_batches
from kdhybrid.decode.kaldi_backend import tid_decodable
from kdhybrid.gmm.align import AlignOptions, Lang, align_decodable, graph_compiler
from kdhybrid.gmm.model import GmmHmm

Pathlike = Union[str, Path]


def align_with_scorer(scorer: AcousticScorer, tree_model: GmmHmm, lang: Lang, data_dir: Pathlike, transcripts: Dict[str, str],
                      opts: AlignOptions, batch_frames: int = BATCH_FRAMES) -> Iterator[Tuple[str, Optional[np.ndarray], float, bool, str]]:
    """Align every utterance of a data dir.

    :param tree_model: the GMM-HMM whose tree and transition model the scorer's pdfs follow.
    :param opts: beams and scales; ``acoustic_scale`` scales the scorer's log-likelihoods.
    :return: per utterance (utt, transition-ids (T,) int32 or None, log-likelihood, retried,
        why it failed: "" when aligned, "no transcript", or "no alignment within the beams")."""
    if scorer.num_pdfs != tree_model.num_pdfs:
        raise ValueError(f"the model has {scorer.num_pdfs} pdfs but the tree {tree_model.num_pdfs}: align with the tree it was trained on")
    gc = graph_compiler(tree_model, lang)
    tid2pdf = tree_model.tid2pdf()
    for utts, feats, cmvn in iter_feature_batches(data_dir, batch_frames):
        for utt, ll in zip(utts, scorer.loglikes(feats, cmvn, utts)):
            if utt not in transcripts:
                yield utt, None, 0.0, False, "no transcript"
                continue
            graph = gc.compile_graph_from_text(lang.word_ids(transcripts[utt].split()))
            dec = tid_decodable(opts.acoustic_scale * ll.numpy(), tid2pdf)
            ali, like, retried = align_decodable(tree_model.tm, graph, dec, ll.shape[0], utt, opts)
            yield utt, ali, like, retried, "" if ali is not None else "no alignment within the beams"

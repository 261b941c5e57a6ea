"""LM-to-AM distillation (Lee & Chang): unit LMs and their frame-wise posteriors.

* :mod:`kdhybrid.lm.units`: monophone, senone and subword units of text and of alignments
  (deduplication into unit instances, rearrangement back to frames);
* :mod:`kdhybrid.lm.lstm`: small LSTM LMs over units (training, perplexity, next-unit scores);
* :mod:`kdhybrid.lm.ngram`: the Kneser-Ney n-gram floor of the same units (kaldingram);
* :mod:`kdhybrid.lm.posteriors`: frame-wise top-k LM posteriors as Kaldi Posterior archives;
* :mod:`kdhybrid.lm.build`: the unit LM dir the steps make and read.

The heads that learn these targets are :class:`kdhybrid.distill.objectives.LmHeadsConfig`.
"""

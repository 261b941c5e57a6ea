"""Import the Kaldi-on-PyPI extensions in the one order that does not hang.

With the pinned versions, importing ``kaldilm`` before ``kaldifst`` or ``kaldi_hmm_gmm``
makes the later import hang forever (each ships its own OpenFst). Every module of
kdhybrid takes them from here, so the order is always kaldifst, kaldi_hmm_gmm, kaldilm::

    from kdhybrid.kaldi_libs import kaldifst, kaldi_hmm_gmm, kaldilm
"""
import kaldifst  # noqa: F401  (first)
import kaldi_hmm_gmm  # noqa: F401  (second)
import kaldilm  # noqa: F401  (last)

__all__ = ["kaldifst", "kaldi_hmm_gmm", "kaldilm"]

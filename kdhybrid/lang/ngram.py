"""Word n-gram LMs: Kneser-Ney ARPA training, entropy pruning and perplexity with
kaldingram; ``G.fst`` from ARPA with kaldilm (Kaldi's arpa2fst).

Words of the LM text that the lexicon lacks are mapped to the OOV word (``<UNK>``)
before training, so every word of the ARPA file is in ``words.txt`` and G compiles.
"""
from __future__ import annotations

import gzip
import os
import shutil
from pathlib import Path
from typing import Dict, Iterable, List, Optional, Sequence, Set, Tuple, Union


Pathlike = Union[str, Path]


def read_words(words_txt: Pathlike) -> Set[str]:
    return {line.split()[0] for line in Path(words_txt).read_text(encoding="utf-8").splitlines() if line.strip()}


def map_oov(sentences: Iterable[str], vocab: Set[str], oov: str) -> List[str]:
    return [" ".join(w if w in vocab else oov for w in s.split()) for s in sentences]


def train_arpa(text: Pathlike, order: int, arpa: Pathlike, prune_threshold: float = 0.0, num_workers: int = 1) -> Dict[str, int]:
    """Train a Kneser-Ney ``order``-gram on ``text`` (one sentence a line) into ``arpa``,
    entropy-pruned when ``prune_threshold`` > 0. Returns the n-gram counts per order.
    Order 1 is :func:`unigram_arpa` (kaldingram's order-1 output drops words)."""
    if order == 1:
        return unigram_arpa(text, arpa)
    from kaldingram import prune as kprune
    from kaldingram import train as ktrain

    arpa = str(arpa)
    raw = arpa + ".unpruned.tmp" if prune_threshold > 0 else arpa + ".tmp"
    ktrain.run(ktrain.build_parser().parse_args(
        ["--ngram-order", str(order), "--text", str(text), "--lm", raw, "--num-workers", str(num_workers)]))
    if prune_threshold > 0:
        kprune.run(kprune.build_parser().parse_args(
            ["--lm", raw, "--write-lm", arpa + ".tmp", "--threshold", str(prune_threshold), "--verbose", "3"]))
        os.remove(raw)
    os.replace(arpa + ".tmp", arpa)
    return arpa_counts(arpa)


def prune_arpa(arpa: Pathlike, threshold: float, out_arpa: Pathlike) -> Dict[str, int]:
    """Relative-entropy pruning (SRILM's ``-prune``, kaldingram) of ``arpa`` into ``out_arpa``.
    Returns the n-gram counts per order of the pruned LM."""
    from kaldingram import prune as kprune

    tmp = str(out_arpa) + ".tmp"
    kprune.run(kprune.build_parser().parse_args(["--lm", str(arpa), "--write-lm", tmp, "--threshold", str(threshold)]))
    os.replace(tmp, out_arpa)
    return arpa_counts(out_arpa)


def train_lms(
    lm_text: Pathlike, vocab: Set[str], oov: str, order: int, arpa: Pathlike, prune: float = 0.0,
    pruned: Sequence[Tuple[float, Pathlike]] = (), eval_texts: Optional[Dict[str, Sequence[str]]] = None,
    num_workers: int = 1,
) -> dict:
    """Train a Kneser-Ney ``order``-gram on ``lm_text`` (one sentence a line; words outside
    ``vocab`` mapped to ``oov``) into ``arpa`` (entropy-pruned at ``prune`` when > 0), prune it
    further into each ``(threshold, arpa)`` of ``pruned``, and measure every LM on
    ``eval_texts`` (name -> sentences) with :func:`perplexity`.

    :return: ``{"lm_text", "sentences", "words", "vocabulary", "lms": {name: {"arpa", "order",
        "prune", "ngrams", "seconds", "eval": {name: perplexity}}}}``, LMs named by their
        file name without ``.arpa`` (``tglarge``, ``tgsmall``), the trained one first.
    """
    import time

    from kdhybrid.lang.arpa import ArpaLm

    with open(lm_text, encoding="utf-8") as f:
        sents = [line.strip() for line in f if line.strip()]
    mapped = Path(str(arpa) + ".text.tmp")
    with open(mapped, "w", encoding="utf-8") as f:
        f.write("".join(s + "\n" for s in map_oov(sents, vocab, oov)))
    t0 = time.time()
    train_arpa(mapped, order, arpa, prune, num_workers)
    mapped.unlink()
    made = [(Path(arpa), prune, time.time() - t0)]
    for threshold, out in pruned:
        t0 = time.time()
        prune_arpa(arpa, threshold, out)
        made.append((Path(out), threshold, time.time() - t0))
    report: dict = {"lm_text": str(lm_text), "sentences": len(sents), "words": sum(len(s.split()) for s in sents),
                    "vocabulary": len(vocab), "lms": {}}
    for path, threshold, seconds in made:
        name = path.name[: -len(".arpa")] if path.name.endswith(".arpa") else path.name
        lm = ArpaLm(path)
        report["lms"][name] = {
            "arpa": str(path), "order": order, "prune": threshold, "ngrams": arpa_counts(path),
            "seconds": round(seconds, 1), "eval": {k: perplexity(lm, v) for k, v in (eval_texts or {}).items()},
        }
        del lm
    return report


def unigram_arpa(text: Pathlike, arpa: Pathlike) -> Dict[str, int]:
    """The maximum-likelihood unigram of ``text`` (one sentence a line) as an ARPA file: each
    word's and ``</s>``'s relative frequency, as Kaldi's ``utils/make_unigram_grammar.pl`` makes
    the denominator-lattice grammar (no smoothing: only words of the text)."""
    import math
    from collections import Counter

    counts: Counter = Counter()
    with open(text, encoding="utf-8") as f:
        for line in f:
            if line.strip():
                counts.update(line.split())
                counts["</s>"] += 1
    if not counts:
        raise ValueError(f"{text}: no sentences")
    tot = sum(counts.values())
    lines = ["\\data\\", f"ngram 1={len(counts) + 1}", "", "\\1-grams:", "-99\t<s>"]
    lines += [f"{math.log10(c / tot):.7f}\t{w}" for w, c in sorted(counts.items())]
    tmp = str(arpa) + ".tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        f.write("\n".join(lines + ["", "\\end\\", ""]))
    os.replace(tmp, arpa)
    return {"1": len(counts) + 1}


def arpa_counts(arpa: Pathlike) -> Dict[str, int]:
    """``{"1": n1, "2": n2, ...}`` from the ARPA header."""
    out = {}
    opener = gzip.open if str(arpa).endswith(".gz") else open
    with opener(arpa, "rt", encoding="utf-8", errors="replace") as f:
        for line in f:
            if line.startswith("ngram "):
                k, v = line[6:].strip().split("=")
                out[k] = int(v)
            elif line.startswith("\\1-grams:"):
                break
    return out


def perplexity(arpa: Pathlike, sentences: Sequence[str]) -> Dict[str, float]:
    """Perplexity and OOV rate of ``sentences`` under a closed-vocabulary ARPA LM, SRILM's
    ``ngram -ppl`` convention: every word and one ``</s>`` a sentence are scored; a word the
    LM lacks (its OOV word ``<UNK>`` included, which stands for many words) is an OOV, left
    out of the perplexity, and the words after it are scored with the history they have
    (backing off past it); empty sentences are skipped.

    :return: ``ppl`` (``</s>`` counted), ``ppl1`` (without), ``sentences``, ``words``,
        ``oov``, ``oov_rate`` (OOV words / words).
    """
    from kdhybrid.lang.arpa import ArpaLm

    lm = arpa if isinstance(arpa, ArpaLm) else ArpaLm(arpa)
    vocab = {k[0] for k in lm.probs if len(k) == 1} - {"<s>", "<UNK>", "<unk>"}
    logprob, n_sent, n_words, n_oov = 0.0, 0, 0, 0
    for s in sentences:
        words = s.split()
        if not words:
            continue
        n_sent += 1
        n_words += len(words)
        hist = ["<s>"]
        for w in words + ["</s>"]:
            if w != "</s>" and w not in vocab:
                n_oov += 1
            else:
                logprob += lm.word_logprob(hist, w)
            hist.append(w)
    scored = n_words - n_oov
    return {
        "ppl": round(10 ** (-logprob / max(scored + n_sent, 1)), 2),
        "ppl1": round(10 ** (-logprob / max(scored, 1)), 2),
        "sentences": n_sent,
        "words": n_words,
        "oov": n_oov,
        "oov_rate": round(n_oov / max(n_words, 1), 4),
    }


def format_lm(lang_dir: Pathlike, arpa: Pathlike, lang_test_dir: Pathlike) -> None:
    """Copy ``lang_dir`` to ``lang_test_dir`` and add ``G.fst`` compiled from ``arpa``
    (``#0`` on backoff arcs, ``<s>``/``</s>`` as epsilons, ilabel-sorted) and the ARPA file
    itself as ``G.arpa.gz`` (what LM rescoring reads, the role of Kaldi's ``G.carpa``)."""
    from kdhybrid.kaldi_libs import kaldilm

    lang_dir, lang_test_dir = Path(lang_dir), Path(lang_test_dir)
    tmp = lang_test_dir.with_name(lang_test_dir.name + ".tmp")
    if tmp.exists():
        shutil.rmtree(tmp)
    shutil.copytree(lang_dir, tmp)
    kaldilm.arpa2fst(
        input_arpa=str(arpa),
        output_fst=str(tmp / "G.fst"),
        disambig_symbol="#0",
        read_symbol_table=str(lang_dir / "words.txt"),
        max_arpa_warnings=10,
    )
    with open(arpa, "rb") as src, open(tmp / "G.arpa.gz", "wb") as raw, gzip.GzipFile(fileobj=raw, mode="wb", compresslevel=1, mtime=0) as dst:
        shutil.copyfileobj(src, dst, 1 << 20)
    if lang_test_dir.exists():
        shutil.rmtree(lang_test_dir)
    os.replace(tmp, lang_test_dir)

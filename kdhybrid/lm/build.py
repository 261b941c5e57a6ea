"""A unit LM dir: what ``steps/train_unit_lm.sh`` makes and ``steps/dump_lm_posteriors.sh`` reads.

:func:`train_unit_lm` turns the recipe's LM text (never dev or test text) into unit sentences
(:mod:`kdhybrid.lm.units`), holds out every n-th sentence, trains the LSTM
(:mod:`kdhybrid.lm.lstm`) and its n-gram floor (:mod:`kdhybrid.lm.ngram`) and writes::

    <lm-dir>/unit_lm.json   config, silence rates, sizes, held-out perplexities (LSTM and floor),
                            tokens per second, seconds; what the dump reads back
    <lm-dir>/units.txt      the units (the head's outputs)
    <lm-dir>/lm.pt          the LSTM (one file loads it)
    <lm-dir>/floor.arpa     the n-gram floor (its text as floor.arpa.txt)
    <lm-dir>/sp.model       subwords only: the sentencepiece model

The silence rates come from the training alignments (``<ali-dir>/ali.*.gz``), the tree and
transition model from ``<ali-dir>/final.pkl`` (a kdhybrid ali dir). For senones the LM text is
joined by the training alignments' own senone-instance sequences (``add_alignments``), so the
LM also sees silence's non-canonical state sequences and the pronunciations the alignments chose.
"""
from __future__ import annotations

import gzip
import json
import logging
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Dict, Iterator, List, Optional, Sequence, Tuple, Union

import numpy as np

from kdhybrid.gmm.tree import TidInfo, phone_instances
from kdhybrid.io.tables import atomic_write_text
from kdhybrid.lm.lstm import LstmLm, LstmLmConfig, load_lm, save_lm, train_lstm_lm, unit_lm_perplexity
from kdhybrid.lm.ngram import ngram_perplexity, train_unit_ngram
from kdhybrid.lm.units import (
    UNIT_KINDS,
    LangInfo,
    MonophonePipeline,
    SenoneMap,
    SenonePipeline,
    SilenceRates,
    SubwordModel,
    SubwordPipeline,
    UnitInventory,
    UnitPipeline,
    estimate_silence_rates,
    train_subword_model,
)

Pathlike = Union[str, Path]
log = logging.getLogger("kdhybrid.lm")


@dataclass
class UnitLmConfig:
    unit: str = "monophone"
    ngram_order: int = 3  # the n-gram floor
    vocab_size: int = 500  # subword pieces
    heldout_every: int = 100  # every n-th LM-text sentence is held out (perplexity)
    add_alignments: bool = True  # senones: the training alignments' senone-instance sequences join the LM text
    silence_utts: int = 2000  # training alignments the silence rates are estimated on (0: all)
    seed: int = 1
    lstm: LstmLmConfig = field(default_factory=LstmLmConfig)

    def __post_init__(self) -> None:
        if self.unit not in UNIT_KINDS:
            raise ValueError(f"unit must be one of {UNIT_KINDS}, got {self.unit!r}")
        if self.heldout_every < 2:
            raise ValueError(f"heldout_every must be >= 2, got {self.heldout_every}")
        if isinstance(self.lstm, dict):
            self.lstm = LstmLmConfig(**self.lstm)


def read_lm_text(path: Pathlike) -> Iterator[List[str]]:
    """Sentences (word lists) of an LM text file, one a line, gzipped or not; empty lines skipped."""
    opener = gzip.open if str(path).endswith(".gz") else open
    with opener(path, "rt", encoding="utf-8") as f:
        for line in f:
            words = line.split()
            if words:
                yield words


def load_alignment_model(ali_dir: Pathlike):
    """(GmmHmm, TidInfo) of a kdhybrid ali dir (``final.pkl``)."""
    from kdhybrid.gmm.model import GmmHmm

    model = GmmHmm.load(ali_dir)
    return model, TidInfo.of(model.tm)


def make_pipeline(unit: str, lang: LangInfo, rates: SilenceRates, model=None, sp_model: Optional[Pathlike] = None) -> UnitPipeline:
    """The pipeline of one unit kind (senones need the alignment model's tree, subwords the sentencepiece model)."""
    if unit == "monophone":
        return MonophonePipeline(lang, rates)
    if unit == "senone":
        return SenonePipeline(lang, rates, SenoneMap(model.tree, lang.num_pdf_classes))
    sp = SubwordModel(sp_model)
    return SubwordPipeline(lang, sp, sp.names)


def train_unit_lm(lm_text: Pathlike, lang_dir: Pathlike, ali_dir: Pathlike, lm_dir: Pathlike, cfg: UnitLmConfig,
                  progress: bool = True) -> dict:
    """Make a unit LM dir (see the module docstring). Returns the report written to unit_lm.json."""
    from kdhybrid.gmm.train import read_alignments

    t0 = time.time()
    out = Path(lm_dir)
    out.mkdir(parents=True, exist_ok=True)
    lang = LangInfo.from_dir(lang_dir)
    model, info = load_alignment_model(ali_dir)
    alis = read_alignments(ali_dir)
    keys = sorted(alis)
    if cfg.silence_utts and len(keys) > cfg.silence_utts:
        keys = sorted(np.random.default_rng(cfg.seed).choice(keys, cfg.silence_utts, replace=False).tolist())
    rates = estimate_silence_rates([phone_instances(alis[u], info)[0] for u in keys], lang)
    log.info("silence rates from %d alignments: begin %.3f, between words %.3f, end %.3f", len(keys), rates.begin, rates.between, rates.end)
    sp_path = None
    if cfg.unit == "subword":
        plain = out / "sp_text.txt"
        atomic_write_text(plain, "".join(" ".join(w) + "\n" for w in read_lm_text(lm_text)))
        train_subword_model(plain, out / "sp", cfg.vocab_size)
        plain.unlink()
        sp_path = out / "sp.model"
    pipe = make_pipeline(cfg.unit, lang, rates, model, sp_path)
    rng = np.random.default_rng(cfg.seed)
    train, heldout = [], []
    for i, words in enumerate(read_lm_text(lm_text), 1):
        (heldout if i % cfg.heldout_every == 0 else train).append(pipe.text_units(words, rng))
    text_sentences = len(train) + len(heldout)
    if cfg.unit == "senone" and cfg.add_alignments:
        from kdhybrid.lm.units import senone_instances

        train += [senone_instances(a, info).units for a in alis.values()]
    if not heldout:
        raise ValueError(f"{lm_text}: {text_sentences} sentences leave none held out at heldout_every={cfg.heldout_every}")
    inv = pipe.inventory
    inv.write(out / "units.txt")
    counts = train_unit_ngram(train, inv, cfg.ngram_order, out / "floor.arpa")
    floor = ngram_perplexity(out / "floor.arpa", heldout, inv)
    lm, history = train_lstm_lm(train, heldout, len(inv), cfg.lstm, progress=progress, name=cfg.unit)
    lstm_ppl = unit_lm_perplexity(lm, heldout)
    save_lm(out / "lm.pt", lm, {"history": history, "units": inv.names, "kind": inv.kind})
    report = {
        "config": asdict(cfg), "lang_dir": str(lang_dir), "ali_dir": str(ali_dir), "lm_text": str(lm_text),
        "silence_rates": asdict(rates), "num_units": len(inv), "text_sentences": text_sentences,
        "train_sentences": len(train), "train_tokens": int(sum(len(s) + 1 for s in train)),
        "heldout_sentences": len(heldout), "heldout_tokens": lstm_ppl["tokens"],
        "heldout_ppl": lstm_ppl["ppl"], "floor_heldout_ppl": floor["ppl"], "floor_oov": floor["oov"], "floor_ngrams": counts,
        "beats_floor": bool(lstm_ppl["ppl"] < floor["ppl"]),
        "tokens_per_second": round(float(np.mean([h["tokens_per_second"] for h in history])), 1),
        "epochs": len(history), "seconds": round(time.time() - t0, 1),
    }  # fmt: skip
    atomic_write_text(out / "unit_lm.json", json.dumps(report, indent=1) + "\n")
    return report


def load_unit_lm(lm_dir: Pathlike, lang_dir: Pathlike, ali_dir: Pathlike) -> Tuple[UnitPipeline, LstmLm, TidInfo, dict]:
    """(pipeline, LSTM, the alignments' TidInfo, unit_lm.json) of a unit LM dir, for the dump."""
    d = Path(lm_dir)
    report = json.loads((d / "unit_lm.json").read_text())
    unit = report["config"]["unit"]
    lang = LangInfo.from_dir(lang_dir)
    model, info = load_alignment_model(ali_dir)
    rates = SilenceRates(**{k: v for k, v in report["silence_rates"].items() if k != "counts"})
    pipe = make_pipeline(unit, lang, rates, model, d / "sp.model" if unit == "subword" else None)
    lm, _ = load_lm(d / "lm.pt")
    if lm.num_units != len(pipe.inventory) or UnitInventory.read(d / "units.txt") != pipe.inventory:
        raise ValueError(f"{d}: the LM's units differ from the {unit} units of {lang_dir} and {ali_dir}")
    return pipe, lm, info, report


def fitted_num_frames(cuts: Optional[Pathlike]) -> Optional[Dict[str, int]]:
    """Utterance -> feature frames of a cuts file or dir (what the trainer's labels have), or None."""
    if not cuts:
        return None
    from lhotse import CutSet

    p = Path(cuts)
    return {c.id: c.num_frames for c in CutSet.from_file(p / "cuts.jsonl.gz" if p.is_dir() else p)}


def utterances_of(text: Pathlike) -> Tuple[List[str], Dict[str, Sequence[str]]]:
    """(utterance ids in order, utterance -> words) of a Kaldi ``text`` file."""
    from kdhybrid.io.tables import read_text_table

    t = read_text_table(text, min_fields=1)
    return list(t), {u: v.split() for u, v in t.items()}

"""Units of the LM-to-AM distillation (Lee & Chang): monophones, senones and subwords.

Each unit kind has two directions, which must give the same kind of sequence:

* **text -> units** (the unit LMs' training data): words -> the lang dir's lexicon ->
  position-dependent phones, with optional silence between words at the rates the training
  alignments show -> monophones (one per line of ``phones/sets.txt``: word position stripped,
  and stress where the dict dir puts a phone's stress variants on one line of
  ``nonsilence_phones.txt``, as Kaldi's LibriSpeech recipe does), senones (the tree's pdf of every phone in its context, one canonical
  HMM state sequence per phone), or sentencepiece pieces of the words;
* **alignment -> unit instances** ("deduplication"): the frames of an utterance split into
  instances ``u_1 .. u_K`` with frame spans, split on instance boundaries and never merely
  where the label changes, so two neighbouring instances of the same unit stay two. Phone
  instances are Kaldi's SplitToPhones (:func:`kdhybrid.gmm.tree.phone_instances`); senone
  instances are the runs of (phone instance, HMM state); subword instances split each word's
  frames among its pieces along phone boundaries (:func:`split_word_frames`).

The reverse of deduplication, "rearrangement", is :meth:`UnitInstances.frame_instance`:
every frame of instance k gets instance k's target. Frames outside every instance (silence,
noise and OOV words for subwords) get none.

Our choices where the paper is silent: pronunciation variants are drawn uniformly in the LM
text; the silence rates are estimated from alignments (begin, between words, end); a bare
"▁" piece counts as one letter when splitting frames; the pieces of a masked (OOV or noise)
word stay in the LM's history but get no frames.
"""
from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Optional, Protocol, Sequence, Set, Tuple, Union

import numpy as np

from kdhybrid.gmm.tree import TidInfo, phone_instances
from kdhybrid.io.tables import KaldiFormatError, atomic_write_text

Pathlike = Union[str, Path]
UNIT_KINDS = ("senone", "monophone", "subword")
POSITION_SUFFIXES = ("_B", "_E", "_I", "_S")


# ------------------------------------------------------------------ inventories


@dataclass
class UnitInventory:
    """The units of one kind: unit id ``i`` is named ``names[i]``.

    Unit LMs add one symbol, the sentence boundary, with id ``len(names)`` (``<s>`` as input,
    ``</s>`` as output); the acoustic model's head for this kind has ``len(names)`` outputs.
    """

    kind: str
    names: List[str]

    def __post_init__(self) -> None:
        if self.kind not in UNIT_KINDS:
            raise ValueError(f"unit kind must be one of {UNIT_KINDS}, got {self.kind!r}")
        if len(set(self.names)) != len(self.names):
            raise ValueError(f"{self.kind} units: duplicate names")

    def __len__(self) -> int:
        return len(self.names)

    @property
    def boundary(self) -> int:
        """The sentence-boundary id of the unit LMs (one past the units)."""
        return len(self.names)

    def write(self, path: Pathlike) -> None:
        """``units.txt``: ``name id`` per line (Kaldi symbol-table style), kind in the first line's comment."""
        atomic_write_text(path, f"#kind {self.kind}\n" + "".join(f"{n} {i}\n" for i, n in enumerate(self.names)))

    @classmethod
    def read(cls, path: Pathlike) -> "UnitInventory":
        lines = Path(path).read_text(encoding="utf-8").splitlines()
        if not lines or not lines[0].startswith("#kind "):
            raise KaldiFormatError(f"{path}: first line must be '#kind <{'|'.join(UNIT_KINDS)}>'")
        names = []
        for lineno, line in enumerate(lines[1:], 2):
            name, i = line.rsplit(" ", 1)
            if int(i) != len(names):
                raise KaldiFormatError(f"{path}:{lineno}: expected id {len(names)}, found {i}")
            names.append(name)
        return cls(lines[0].split()[1], names)


# ------------------------------------------------------------------ the lang dir


@dataclass
class LangInfo:
    """What the unit pipelines read from a Kaldi lang dir.

    :param phones: phone name -> id (``phones.txt``, without disambiguation symbols).
    :param prons: word -> its pronunciations as position-dependent phone-id tuples
        (``phones/align_lexicon.txt``).
    :param silence: ids of the silence-class phones (``phones/silence.csl``: silence, noise, SPN).
    :param optional_silence: the phone inserted between words (``phones/optional_silence.int``).
    :param phone_set: phone id -> monophone id (the line of ``phones/sets.int`` it is on).
    :param monophones: monophone names (each set's first phone, position suffix stripped).
    :param word_position: phone id -> begin/end/internal/singleton/nonword
        (``phones/word_boundary.int``; empty without position-dependent phones).
    :param num_pdf_classes: phone id -> number of pdf-classes (the ``topo``).
    """

    phones: Dict[str, int]
    prons: Dict[str, List[Tuple[int, ...]]]
    oov: str
    silence: Set[int]
    optional_silence: int
    phone_set: Dict[int, int]
    monophones: List[str]
    word_position: Dict[int, str]
    num_pdf_classes: Dict[int, int]

    @classmethod
    def from_dir(cls, lang_dir: Pathlike) -> "LangInfo":
        from kdhybrid.kaldi_libs import kaldi_hmm_gmm as khg

        d = Path(lang_dir)
        for name in ("phones.txt", "oov.txt", "topo", "phones/sets.int", "phones/silence.csl", "phones/optional_silence.int", "phones/align_lexicon.txt"):
            if not (d / name).is_file():
                raise FileNotFoundError(f"{d / name}: missing from the lang dir")
        phones = {}
        for line in (d / "phones.txt").read_text(encoding="utf-8").splitlines():
            name, i = line.split()
            if not name.startswith("#") and name != "<eps>":
                phones[name] = int(i)
        prons: Dict[str, List[Tuple[int, ...]]] = defaultdict(list)
        for lineno, line in enumerate((d / "phones/align_lexicon.txt").read_text(encoding="utf-8").splitlines(), 1):
            toks = line.split()
            try:
                pron = tuple(phones[p] for p in toks[2:])
            except KeyError as e:
                raise KaldiFormatError(f"{d}/phones/align_lexicon.txt:{lineno}: phone {e} not in phones.txt") from None
            if pron not in prons[toks[0]]:
                prons[toks[0]].append(pron)
        phone_set, monophones = {}, []
        names = {i: n for n, i in phones.items()}
        for line in (d / "phones/sets.int").read_text().splitlines():
            ids = [int(x) for x in line.split()]
            for p in ids:
                phone_set[p] = len(monophones)
            monophones.append(strip_position(names[ids[0]]))
        word_position = {}
        if (d / "phones/word_boundary.int").is_file():
            for line in (d / "phones/word_boundary.int").read_text().splitlines():
                p, what = line.split()
                word_position[int(p)] = what
        topo = khg.HmmTopology()
        topo.read((d / "topo").read_text())
        npc = topo.get_phone_to_num_pdf_classes()
        return cls(
            phones=phones, prons=dict(prons), oov=(d / "oov.txt").read_text().split()[0],
            silence={int(x) for x in (d / "phones/silence.csl").read_text().strip().split(":")},
            optional_silence=int((d / "phones/optional_silence.int").read_text().split()[0]),
            phone_set=phone_set, monophones=monophones, word_position=word_position,
            num_pdf_classes={p: int(npc[p]) for p in phones.values() if p < len(npc) and npc[p] > 0},
        )  # fmt: skip

    @property
    def phone_names(self) -> Dict[int, str]:
        return {i: n for n, i in self.phones.items()}

    def monophone_table(self) -> np.ndarray:
        """(max phone id + 1,) int32: monophone id of every phone id (-1 for ids that are no phone)."""
        out = np.full(max(self.phones.values()) + 1, -1, np.int32)
        for p, s in self.phone_set.items():
            out[p] = s
        return out

    def word_spans(self, phones: Sequence[int], utt: str = "") -> List[Tuple[int, int]]:
        """(first, end) phone-instance indices of each word of a phone-instance sequence, from
        the word-position phones; nonword phones (optional silence) are between words.

        :raises ValueError: naming ``utt`` for a sequence that does not parse into words.
        """
        if not self.word_position:
            raise ValueError("the lang dir has no phones/word_boundary.int (word-position-dependent phones are needed)")
        spans: List[Tuple[int, int]] = []
        start = -1
        for i, p in enumerate(phones):
            what = self.word_position.get(int(p), "nonword")
            if what in ("begin", "singleton"):
                if start >= 0:
                    raise ValueError(f"utterance '{utt}': word starting at phone {start} not closed before phone {i}")
                start = i
            elif what != "nonword" and start < 0:
                raise ValueError(f"utterance '{utt}': {what} phone {i} outside a word")
            elif what == "nonword" and start >= 0:
                raise ValueError(f"utterance '{utt}': nonword phone {i} inside a word")
            if what in ("end", "singleton"):
                spans.append((start, i + 1))
                start = -1
        if start >= 0:
            raise ValueError(f"utterance '{utt}': last word not closed")
        return spans


def strip_position(name: str) -> str:
    """``AH0_B`` -> ``AH0`` (the word-position suffix, if any)."""
    return name[:-2] if name[-2:] in POSITION_SUFFIXES else name


# ------------------------------------------------------------------ silence


@dataclass
class SilenceRates:
    """How often the optional silence occurs: before the first word, between two words, after
    the last word (Kaldi's lexicon FST uses one rate, 0.5 by default, for all three)."""

    begin: float = 0.5
    between: float = 0.5
    end: float = 0.5
    counts: Dict[str, int] = field(default_factory=dict)


def silence_flags(phones: Sequence[int], lang: LangInfo, utt: str = "") -> List[bool]:
    """For an alignment's phone-instance sequence of W words: W + 1 flags, True where a gap
    (before word 1, between words, after word W) holds silence."""
    spans = lang.word_spans(phones, utt)
    flags = []
    prev_end = 0
    for s, e in spans + [(len(phones), len(phones))]:
        flags.append(s > prev_end)
        prev_end = e
    return flags


def estimate_silence_rates(phone_seqs: Sequence[Sequence[int]], lang: LangInfo) -> SilenceRates:
    """Silence rates of training alignments (their phone-instance sequences)."""
    n = {"begin": 0, "between": 0, "end": 0, "begin_sil": 0, "between_sil": 0, "end_sil": 0}
    for phones in phone_seqs:
        f = silence_flags(phones, lang)
        if len(f) < 2:
            continue
        n["begin"] += 1
        n["end"] += 1
        n["begin_sil"] += f[0]
        n["end_sil"] += f[-1]
        n["between"] += len(f) - 2
        n["between_sil"] += sum(f[1:-1])
    rate = lambda k: n[k + "_sil"] / n[k] if n[k] else 0.5  # noqa: E731
    return SilenceRates(rate("begin"), rate("between"), rate("end"), n)


def sample_silences(num_words: int, rates: SilenceRates, rng: np.random.Generator) -> List[bool]:
    """num_words + 1 silence flags drawn at ``rates``."""
    p = [rates.begin] + [rates.between] * max(num_words - 1, 0) + [rates.end]
    return (rng.random(num_words + 1) < np.asarray(p)).tolist()


def word_phones(words: Sequence[str], lang: LangInfo, silences: Sequence[bool], rng: Optional[np.random.Generator] = None) -> List[int]:
    """Position-dependent phone ids of ``words`` (OOV words as ``lang.oov``), with the optional
    silence in the gaps flagged by ``silences`` (len(words) + 1). A word with several
    pronunciations takes one drawn uniformly by ``rng``, or the first without one."""
    if len(silences) != len(words) + 1:
        raise ValueError(f"{len(words)} words need {len(words) + 1} silence flags, got {len(silences)}")
    out: List[int] = []
    for i, w in enumerate(words):
        if silences[i]:
            out.append(lang.optional_silence)
        prons = lang.prons.get(w) or lang.prons[lang.oov]
        out.extend(prons[int(rng.integers(len(prons)))] if rng is not None and len(prons) > 1 else prons[0])
    if silences[len(words)]:
        out.append(lang.optional_silence)
    return out


# ------------------------------------------------------------------ instances


@dataclass
class UnitInstances:
    """An utterance's unit instances, in order.

    :param units: (K,) int32 unit ids.
    :param starts: (K,) int64 first frame of each instance.
    :param ends: (K,) int64 one past its last frame; ``starts[k] == ends[k]`` for an instance
        with no frames (in the LM's history, no target). Spans do not overlap and are in order.
    """

    units: np.ndarray
    starts: np.ndarray
    ends: np.ndarray

    def __post_init__(self) -> None:
        self.units = np.asarray(self.units, dtype=np.int32)
        self.starts = np.asarray(self.starts, dtype=np.int64)
        self.ends = np.asarray(self.ends, dtype=np.int64)
        if not (self.units.shape == self.starts.shape == self.ends.shape) or self.units.ndim != 1:
            raise ValueError("UnitInstances: units, starts and ends must be 1-D of one length")
        if (self.ends < self.starts).any() or (self.starts[1:] < self.ends[:-1]).any():
            raise ValueError("UnitInstances: spans must be ordered and must not overlap")

    def __len__(self) -> int:
        return int(self.units.shape[0])

    @property
    def lengths(self) -> np.ndarray:
        """(K,) int64 frames of each instance."""
        return self.ends - self.starts

    def frame_instance(self, num_frames: int) -> np.ndarray:
        """(num_frames,) int64: the instance of every frame, -1 where none ("rearrangement")."""
        if len(self) and self.ends[-1] > num_frames:
            raise ValueError(f"instances reach frame {self.ends[-1]} but the utterance has {num_frames}")
        out = np.full(num_frames, -1, np.int64)
        lengths = self.lengths
        idx = np.repeat(np.arange(len(self)), lengths)
        offset = np.arange(idx.shape[0]) - np.repeat(np.cumsum(lengths) - lengths, lengths)
        out[self.starts[idx] + offset] = idx
        return out

    def expand(self, num_frames: int, fill: int = -1) -> np.ndarray:
        """(num_frames,) int32 unit of every frame, ``fill`` where none."""
        inst = self.frame_instance(num_frames)
        return np.where(inst >= 0, self.units[np.maximum(inst, 0)] if len(self) else fill, fill).astype(np.int32)


def _spans_from_starts(starts: np.ndarray, num_frames: int) -> Tuple[np.ndarray, np.ndarray]:
    starts = np.asarray(starts, np.int64)
    return starts, np.r_[starts[1:], num_frames].astype(np.int64)


def phone_unit_instances(ali: np.ndarray, info: TidInfo, phone_to_unit: np.ndarray) -> UnitInstances:
    """Monophone instances: the alignment's phone instances, each mapped by ``phone_to_unit``
    ((max phone + 1,) int32, e.g. :meth:`LangInfo.monophone_table`).

    :param ali: (T,) int32 transition-ids."""
    phones, starts = phone_instances(ali, info)
    s, e = _spans_from_starts(starts, len(ali))
    units = phone_to_unit[phones]
    if (units < 0).any():
        raise ValueError(f"phone {int(phones[np.argmax(units < 0)])} has no unit")
    return UnitInstances(units, s, e)


def senone_instances(ali: np.ndarray, info: TidInfo) -> UnitInstances:
    """Senone instances: runs of (phone instance, HMM state), labelled with their pdf-id. Two
    neighbouring states with one shared pdf stay two instances.

    :param ali: (T,) int32 transition-ids."""
    _, pstarts = phone_instances(ali, info)
    state = info.hmm_state[ali]
    new = np.zeros(len(ali), bool)
    new[pstarts] = True
    new[1:] |= state[1:] != state[:-1]
    starts = np.flatnonzero(new)
    s, e = _spans_from_starts(starts, len(ali))
    return UnitInstances(info.pdf[ali[starts]], s, e)


# ------------------------------------------------------------------ senones of text


class SenoneMap:
    """Phone sequences -> senone (pdf-id) sequences through the tree, one canonical state
    sequence per phone (pdf-classes 0 .. n-1, as the left-to-right topologies; silence's
    ergodic states are taken in order too). Context: the neighbouring phones of the
    sequence, silence included, phone 0 beyond the ends (as Kaldi)."""

    def __init__(self, tree, num_pdf_classes: Dict[int, int]):
        self.tree = tree
        self.num_pdf_classes = num_pdf_classes
        self.width, self.central = int(tree.context_width), int(tree.central_position)
        self._cache: Dict[Tuple[Tuple[int, ...], int], int] = {}

    @property
    def num_pdfs(self) -> int:
        return int(self.tree.num_pdfs)

    def pdf(self, context: Tuple[int, ...], pdf_class: int) -> int:
        key = (context, pdf_class)
        v = self._cache.get(key)
        if v is None:
            ok, v = self.tree.compute(list(context), pdf_class)
            if not ok:
                raise ValueError(f"the tree has no pdf for phone context {context}, pdf-class {pdf_class}")
            self._cache[key] = v
        return v

    def sequence(self, phones: Sequence[int]) -> np.ndarray:
        """(sum of the phones' pdf-class counts,) int32 pdf-ids."""
        n = len(phones)
        out: List[int] = []
        for i, c in enumerate(phones):
            ctx = tuple(int(phones[j]) if 0 <= j < n else 0 for j in range(i - self.central, i - self.central + self.width))
            out.extend(self.pdf(ctx, pc) for pc in range(self.num_pdf_classes[int(c)]))
        return np.asarray(out, np.int32)


# ------------------------------------------------------------------ subwords


class WordSegmenter(Protocol):
    """Splits a word into pieces: what :class:`SubwordModel` does with sentencepiece."""

    def word_pieces(self, word: str) -> Tuple[List[int], List[int]]:
        """(piece ids, letters of each piece)."""
        ...


def split_word_frames(phone_lengths: Sequence[int], piece_letters: Sequence[int]) -> np.ndarray:
    """Frames of each piece of a word: the word's frames split along phone boundaries in
    proportion to the pieces' letters, at least one phone a piece; with more pieces than
    phones, the frames are split in proportion instead (at least one frame a piece while
    there are frames enough). Letters 0 count as 1.

    :param phone_lengths: (P,) frames of the word's phones. :param piece_letters: (M,).
    :return: (M,) int64 frames of each piece, summing to sum(phone_lengths).
    """
    lens = np.asarray(phone_lengths, np.int64)
    m = len(piece_letters)
    if m == 0:
        raise ValueError("a word with no pieces")
    w = np.maximum(np.asarray(piece_letters, np.float64), 1.0)
    cum = np.cumsum(w) / w.sum()
    if m <= len(lens):
        n, edges = len(lens), np.r_[0, np.cumsum(lens)]
    else:
        n, edges = int(lens.sum()), np.arange(int(lens.sum()) + 1)
    bounds = [0]
    for j in range(m - 1):
        lo = bounds[-1] + 1 if n - bounds[-1] >= m - j else bounds[-1]  # one unit each while enough are left
        hi = max(n - (m - 1 - j), lo)
        bounds.append(min(max(int(math.floor(n * cum[j] + 0.5)), lo), hi))
    bounds.append(n)
    return np.diff(edges[np.asarray(bounds)]).astype(np.int64)


class SubwordModel:
    """A sentencepiece model as a :class:`WordSegmenter` (pieces of each word, cached)."""

    def __init__(self, model_file: Pathlike):
        import sentencepiece as spm

        self.model_file = str(model_file)
        self.sp = spm.SentencePieceProcessor(model_file=self.model_file)
        self._cache: Dict[str, Tuple[List[int], List[int]]] = {}

    @property
    def names(self) -> List[str]:
        return [self.sp.id_to_piece(i) for i in range(self.sp.get_piece_size())]

    def word_pieces(self, word: str) -> Tuple[List[int], List[int]]:
        r = self._cache.get(word)
        if r is None:
            ids = self.sp.encode(word)
            r = (list(ids), [len(self.sp.id_to_piece(i).replace("\u2581", "")) for i in ids])
            self._cache[word] = r
        return r


def train_subword_model(text: Pathlike, model_prefix: Pathlike, vocab_size: int, model_type: str = "unigram") -> SubwordModel:
    """A sentencepiece model of at most ``vocab_size`` pieces on ``text`` (one sentence a line), with
    ``<unk>`` as piece 0 and no ``<s>``/``</s>`` pieces (the unit LMs add their own boundary).
    Every sentence of the text is used (no sampling), so the model depends on the text only."""
    import sentencepiece as spm

    spm.SentencePieceTrainer.train(
        input=str(text), model_prefix=str(model_prefix), vocab_size=vocab_size, model_type=model_type,
        character_coverage=1.0, bos_id=-1, eos_id=-1, unk_id=0, hard_vocab_limit=False,
        input_sentence_size=0, num_threads=1, minloglevel=2,
    )  # fmt: skip
    return SubwordModel(f"{model_prefix}.model")


def subword_instances(
    ali: np.ndarray, info: TidInfo, words: Sequence[str], lang: LangInfo, segmenter: WordSegmenter, utt: str = ""
) -> UnitInstances:
    """Subword instances of an utterance: every word's frames (its span of word-position phones)
    split among its pieces (:func:`split_word_frames`). Silence between words has no instance;
    the pieces of an OOV word or of a word made of silence-class phones (noise, ``<UNK>``'s SPN)
    are instances with no frames.

    :param ali: (T,) int32 transition-ids. :param words: the transcript, one word per word span.
    """
    phones, pstarts = phone_instances(ali, info)
    pends = np.r_[pstarts[1:], len(ali)]
    spans = lang.word_spans(phones, utt)
    if len(spans) != len(words):
        raise ValueError(f"utterance '{utt}': {len(words)} words in the transcript but {len(spans)} in the alignment")
    units: List[int] = []
    starts: List[int] = []
    ends: List[int] = []
    for w, (a, b) in zip(words, spans):
        ids, letters = segmenter.word_pieces(w)
        f0 = int(pstarts[a])
        if w not in lang.prons or all(int(p) in lang.silence for p in phones[a:b]):
            units += ids
            starts += [f0] * len(ids)
            ends += [f0] * len(ids)
            continue
        frames = split_word_frames(pends[a:b] - pstarts[a:b], letters)
        e = f0 + np.cumsum(frames)
        units += ids
        starts += np.r_[f0, e[:-1]].tolist()
        ends += e.tolist()
    return UnitInstances(np.asarray(units, np.int32), np.asarray(starts, np.int64), np.asarray(ends, np.int64))


# ------------------------------------------------------------------ the three kinds


class UnitPipeline:
    """One unit kind: its inventory, its LM-text sequences and its instances in an alignment."""

    inventory: UnitInventory

    def text_units(self, words: Sequence[str], rng: np.random.Generator) -> np.ndarray:
        """(K,) int32 unit ids of a sentence of the LM text (silence drawn by ``rng``)."""
        raise NotImplementedError

    def instances(self, ali: np.ndarray, info: TidInfo, words: Sequence[str], utt: str = "") -> UnitInstances:
        raise NotImplementedError


class MonophonePipeline(UnitPipeline):
    def __init__(self, lang: LangInfo, rates: SilenceRates):
        self.lang, self.rates = lang, rates
        self.table = lang.monophone_table()
        self.inventory = UnitInventory("monophone", list(lang.monophones))

    def text_units(self, words, rng):
        phones = word_phones(words, self.lang, sample_silences(len(words), self.rates, rng), rng)
        return self.table[np.asarray(phones, np.int64)]

    def instances(self, ali, info, words, utt=""):
        return phone_unit_instances(ali, info, self.table)


class SenonePipeline(UnitPipeline):
    def __init__(self, lang: LangInfo, rates: SilenceRates, senones: SenoneMap):
        self.lang, self.rates, self.senones = lang, rates, senones
        self.inventory = UnitInventory("senone", [str(i) for i in range(senones.num_pdfs)])

    def text_units(self, words, rng):
        return self.senones.sequence(word_phones(words, self.lang, sample_silences(len(words), self.rates, rng), rng))

    def instances(self, ali, info, words, utt=""):
        return senone_instances(ali, info)


class SubwordPipeline(UnitPipeline):
    def __init__(self, lang: LangInfo, segmenter: WordSegmenter, names: Sequence[str]):
        self.lang, self.segmenter = lang, segmenter
        self.inventory = UnitInventory("subword", list(names))

    def text_units(self, words, rng):
        return np.asarray([i for w in words for i in self.segmenter.word_pieces(w)[0]], np.int32)

    def instances(self, ali, info, words, utt=""):
        return subword_instances(ali, info, words, self.lang, self.segmenter, utt)



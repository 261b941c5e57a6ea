"""Corpus preparation: lhotse manifests -> Kaldi data dirs, lexicon (dict dir), LM text.

The corpus is in LibriSpeech's layout, so :func:`prepare_manifests` calls lhotse's own
``prepare_librispeech`` (the same function a user with the real corpus would call), fixes
and validates the manifests, and :func:`manifests_to_data_dir` writes a Kaldi data dir
(``wav.scp`` with ``sox ... |`` pipes for FLAC, as Kaldi's LibriSpeech recipe uses a
decoder pipe; ``text``, ``utt2spk``, ``spk2utt``, ``utt2dur``, ``spk2gender``), checked
by the data-dir validator.
"""
from __future__ import annotations

import collections
import json
import logging
import random
import shlex
from pathlib import Path
from typing import Dict, Iterable, List, Optional, Sequence, Union

from kdhybrid.io.datadir import DataDir, validate_data_dir, write_data_dir
from kdhybrid.io.tables import atomic_write_text, read_text_table, write_text_table

Pathlike = Union[str, Path]


def prepare_manifests(
    corpus_dir: Pathlike, manifest_dir: Pathlike, parts: Sequence[str], num_jobs: int = 1, prefix: str = "synth_en"
) -> Dict[str, dict]:
    """lhotse manifests of ``parts`` via ``prepare_librispeech``, fixed and validated.

    Writes ``<manifest_dir>/<prefix>_{recordings,supervisions}_<part>.jsonl.gz``.
    :return: ``{part: {"recordings": RecordingSet, "supervisions": SupervisionSet}}``.
    """
    from lhotse import RecordingSet, SupervisionSet, fix_manifests, validate_recordings_and_supervisions
    from lhotse.recipes import prepare_librispeech

    manifest_dir = Path(manifest_dir)
    manifest_dir.mkdir(parents=True, exist_ok=True)
    out = {}
    todo = []
    for part in parts:
        rec_p = manifest_dir / f"{prefix}_recordings_{part}.jsonl.gz"
        sup_p = manifest_dir / f"{prefix}_supervisions_{part}.jsonl.gz"
        if rec_p.is_file() and sup_p.is_file():
            out[part] = {
                "recordings": RecordingSet.from_file(rec_p).to_eager(),
                "supervisions": SupervisionSet.from_file(sup_p).to_eager(),
            }
        else:
            todo.append(part)
    if todo:
        got = prepare_librispeech(corpus_dir, dataset_parts=todo, output_dir=None, num_jobs=num_jobs)
        for part in todo:
            if part not in got:
                raise ValueError(f"{corpus_dir}: lhotse found no utterances for part '{part}'")
            recs, sups = fix_manifests(got[part]["recordings"], got[part]["supervisions"])
            validate_recordings_and_supervisions(recs, sups)
            for obj, name in ((recs, "recordings"), (sups, "supervisions")):
                final = manifest_dir / f"{prefix}_{name}_{part}.jsonl.gz"
                tmp = final.with_name("tmp." + final.name)
                obj.to_file(tmp)
                tmp.replace(final)
            out[part] = {"recordings": recs, "supervisions": sups}
    return out


def read_speaker_genders(speakers_txt: Pathlike) -> Dict[str, str]:
    """``SPEAKERS.TXT`` (LibriSpeech's ``ID | SEX | ...`` table) -> ``{speaker: 'm'|'f'}``."""
    out = {}
    for line in Path(speakers_txt).read_text().splitlines():
        if line.startswith(";") or "|" not in line:
            continue
        fields = [f.strip() for f in line.split("|")]
        out[fields[0]] = fields[1].lower()
    return out


def manifests_to_data_dir(recordings, supervisions, data_dir: Pathlike, genders: Optional[Dict[str, str]] = None) -> Dict[str, int]:
    """Write a Kaldi data dir for single-segment recordings (one supervision each)."""
    utt2spk, wav, text, utt2dur = {}, {}, {}, {}
    for sup in supervisions:
        rec = recordings[sup.recording_id]
        if abs(sup.start) > 1e-6 or abs(sup.duration - rec.duration) > 1e-3:
            raise ValueError(f"{data_dir}: supervision '{sup.id}' is a segment of its recording; segments are not written here")
        if len(rec.sources) != 1 or rec.sources[0].type != "file":
            raise ValueError(f"{data_dir}: recording '{rec.id}' is not a single audio file")
        src = rec.sources[0].source
        utt2spk[sup.id] = sup.speaker
        wav[sup.id] = src if src.endswith(".wav") else f"sox {shlex.quote(src)} -t wav - |"
        text[sup.id] = sup.text
        # Exact to the sample (16 kHz durations need 7 decimals): readers that trust the
        # duration (lhotse's Kaldi import) then read every sample and nothing more.
        utt2dur[sup.id] = f"{rec.duration:.7f}".rstrip("0").rstrip(".")
    dd = DataDir(utt2spk=utt2spk, wav_scp=wav, text=text, utt2dur=utt2dur)
    if genders:
        dd.spk2gender = {s: genders[s] for s in set(utt2spk.values()) if s in genders}
    write_data_dir(dd, data_dir)
    # reco2dur (= utt2dur without segments) spares readers probing every pipe for its length.
    write_text_table(Path(data_dir) / "reco2dur", utt2dur)
    return validate_data_dir(data_dir, require_text=True)


def prepare_data_dirs(
    corpus_dir: Pathlike, data_root: Pathlike, mapping: Dict[str, str], num_jobs: int = 1, prefix: str = "synth_en",
    genders: Optional[Dict[str, str]] = None,
) -> None:
    """Kaldi data dirs ``<data_root>/<name>`` for the corpus parts of ``mapping`` (part -> name),
    through lhotse manifests. A part whose dir has a ``.done`` marker is skipped; an
    unfinished one is made again from scratch."""
    import shutil

    data_root = Path(data_root)
    todo = [part for part, name in mapping.items() if not (data_root / name / ".done").is_file()]
    if not todo:
        return
    manifests = prepare_manifests(corpus_dir, data_root / "manifests", todo, num_jobs=num_jobs, prefix=prefix)
    for part in todo:
        d = data_root / mapping[part]
        if d.exists():
            shutil.rmtree(d)
        c = manifests_to_data_dir(manifests[part]["recordings"], manifests[part]["supervisions"], d, genders)
        (d / ".done").touch()
        logging.info("%s: %d utterances, %d speakers", d, c["utterances"], c["speakers"])


def write_utt_groups(corpus_dir: Pathlike, data_root: Pathlike, mapping: Dict[str, str]) -> None:
    """``utt2condition`` and ``utt2voice`` in each data dir of ``mapping`` (part -> name), from
    synth_en's ``meta/<part>.utts.jsonl`` (the condition's name, e.g. ``pink+reverb``, and
    the base voice), for the utterances the data dir has: the tables by which
    :func:`kdhybrid.decode.scoring.wer_by_group` breaks errors down."""
    for part, name in mapping.items():
        d = Path(data_root) / name
        utts = read_text_table(d / "utt2spk")
        cond, voice = {}, {}
        with open(Path(corpus_dir) / "meta" / f"{part}.utts.jsonl", encoding="utf-8") as f:
            for line in f:
                m = json.loads(line)
                if m["utt_id"] in utts:
                    cond[m["utt_id"]], voice[m["utt_id"]] = m["condition"]["name"], m["voice"]
        write_text_table(d / "utt2condition", {u: cond[u] for u in utts if u in cond})
        write_text_table(d / "utt2voice", {u: voice[u] for u in utts if u in voice})


# --------------------------------------------------------------------------- text


def read_transcripts(data_dirs: Iterable[Pathlike]) -> List[str]:
    out = []
    for d in data_dirs:
        with open(Path(d) / "text", encoding="utf-8") as f:
            out.extend(line.split(maxsplit=1)[1].strip() for line in f if len(line.split()) > 1)
    return out


def make_lm_text(exclude: Iterable[str], seed: int = 1) -> List[str]:
    """synth_en's LM training sentences: fortunes, WordNet examples and the KJV Bible without
    its held-out books (:data:`kdhybrid.data.synth_corpus.HELDOUT_BOOKS`, whose sentences are
    evaluation prompts), normalised and deduplicated; every sentence in ``exclude`` (the
    evaluation transcripts) removed; in a seeded shuffle.

    WordNet's glosses are left out: measured on the default tier's dev and test text, they
    doubled the text (1.3 -> 2.3 M words) and the training time, and at the same OOV rate
    (vocabulary min count 1 without them, 2 with them) gave no lower perplexity."""
    from kdhybrid.data import text
    from kdhybrid.data.synth_corpus import HELDOUT_BOOKS

    examples, _ = text.wordnet_texts()
    books = text.bible_books()
    unknown = [b for b in HELDOUT_BOOKS if b not in books]
    if unknown:
        raise ValueError(f"make_lm_text: held-out books {unknown} are not in the bible's books {list(books)}")
    bible = [s for b, sents in books.items() if b not in HELDOUT_BOOKS for s in sents]
    heldout = set(text.normalize_all(s for b in HELDOUT_BOOKS for s in books[b]))
    sents = text.normalize_all(text.fortune_sentences() + examples + bible, min_words=1)
    banned = set(exclude) | heldout
    kept = [s for s in sents if s not in banned]
    random.Random(seed).shuffle(kept)
    return kept


def select_vocabulary(lm_sentences: Sequence[str], transcripts: Sequence[str], min_count: int = 2) -> List[str]:
    """The LM's words: those seen at least ``min_count`` times in the LM text, and every word
    of ``transcripts`` (the training transcripts: never the evaluation ones, whose words are
    out of vocabulary unless the LM text has them)."""
    counts = collections.Counter(w for s in lm_sentences for w in s.split())
    vocab = {w for w, c in counts.items() if c >= min_count}
    vocab.update(w for s in transcripts for w in s.split())
    return sorted(vocab)


def oov_rate(sentences: Sequence[str], vocab: Iterable[str]) -> float:
    """Share of the words of ``sentences`` outside ``vocab``."""
    v = set(vocab)
    words = [w for s in sentences for w in s.split()]
    return round(sum(w not in v for w in words) / max(len(words), 1), 4)


def prepare_dict_and_lm_text(
    data_root: Pathlike, train_dirs: Sequence[Pathlike], eval_dirs: Sequence[Pathlike], min_count: int = 2,
    lm_sentences: Optional[Sequence[str]] = None,
) -> dict:
    """Write ``<data_root>/local/lm/lm_text.txt``, the LM vocabulary ``<data_root>/local/lm/vocab.txt``
    and the Kaldi dict dir ``<data_root>/local/dict``.

    The LM vocabulary is chosen without the evaluation text (:func:`select_vocabulary` on the
    LM text and training transcripts); the lexicon has it and the evaluation transcripts'
    words too (so that evaluation data can be aligned), which the LM then does not have.

    :param lm_sentences: the LM text (normalised sentences); default: the Debian text
        sources of synth_en (:func:`make_lm_text`). Evaluation transcripts are removed.
    :return: counts (sentences, words, vocabulary, lexicon, pronunciation sources, OOV rate of
        each evaluation dir's transcripts).
    """
    from kdhybrid.data import text

    data_root = Path(data_root)
    eval_text = read_transcripts(eval_dirs)
    train_text = read_transcripts(train_dirs)
    banned = set(eval_text)
    lm = make_lm_text(eval_text) if lm_sentences is None else [s for s in lm_sentences if s not in banned]
    lm_dir = data_root / "local" / "lm"
    lm_dir.mkdir(parents=True, exist_ok=True)
    atomic_write_text(lm_dir / "lm_text.txt", "".join(s + "\n" for s in lm))
    vocab = select_vocabulary(lm, train_text, min_count)
    lex, src_counts = text.build_lexicon(set(vocab) | {w for s in eval_text for w in s.split()})
    bad = sorted({w for s in train_text + eval_text for w in s.split() if w not in lex})
    if bad:
        raise ValueError(f"transcript words without a pronunciation: {bad[:20]}")
    vocab = [w for w in vocab if w in lex]  # LM-text words festival cannot pronounce: out of the LM too
    atomic_write_text(lm_dir / "vocab.txt", "".join(w + "\n" for w in vocab))
    text.write_dict_dir(lex, str(data_root / "local" / "dict"))
    stats = {
        "lm_sentences": len(lm),
        "lm_words": sum(len(s.split()) for s in lm),
        "min_count": min_count,
        "vocabulary": len(vocab),
        "lexicon": len(lex),
        "pronunciations": src_counts,
        "eval_oov_rate": {Path(d).name: oov_rate(read_transcripts([d]), vocab) for d in eval_dirs},
    }
    atomic_write_text(lm_dir / "lm_text.json", json.dumps(stats, indent=1) + "\n")
    return stats

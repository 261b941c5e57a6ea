"""synth_en: a multi-speaker English corpus built from the Debian TTS engines.

The corpus is written in LibriSpeech's layout, so lhotse's ``prepare_librispeech``
prepares it exactly as it prepares the real corpus::

    <corpus>/<split>/<spk>/<chapter>/<spk>-<chapter>-<nnnn>.flac
    <corpus>/<split>/<spk>/<chapter>/<spk>-<chapter>.trans.txt
    <corpus>/SPEAKERS.TXT                       (LibriSpeech's speaker table)
    <corpus>/meta/speakers.json                 (every speaker's voice and profile)
    <corpus>/meta/<split>.utts.jsonl            (per utterance: condition, duration, phone timings)
    <corpus>/meta/stats.json                    (per split: utterances, hours, speakers, voices, condition mix)

Splits: ``train``, ``dev`` and ``test`` (new speakers of the training voices) and
``test_heldout`` (voices never used in training). Prompts of the four splits are
disjoint. Each split has the condition mix of :data:`kdhybrid.data.degrade.CONDITION_MIX`
(kinds dealt by quota in a seeded order). Every utterance has its own seed derived from the
corpus seed, its split and its index, so one seed gives the same corpus byte for byte, with
any number of workers.
"""
from __future__ import annotations

import hashlib
import json
import logging
import multiprocessing as mp
import os
import random
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

from kdhybrid.data import degrade, text, tts

SPLITS = ("train", "dev", "test", "test_heldout")


@dataclass(frozen=True)
class SplitSize:
    speakers: int
    utts_per_speaker: int


# Sizes of the tiers. Utterances average about 4.3 s with padding.
TIERS: Dict[str, Dict[str, SplitSize]] = {
    "tiny": {
        "train": SplitSize(20, 10),
        "dev": SplitSize(5, 10),
        "test": SplitSize(5, 10),
        "test_heldout": SplitSize(5, 10),
    },
    "default": {
        "train": SplitSize(70, 30),
        "dev": SplitSize(12, 25),
        "test": SplitSize(12, 25),
        "test_heldout": SplitSize(12, 25),
    },
    "large": {
        "train": SplitSize(180, 36),
        "dev": SplitSize(16, 30),
        "test": SplitSize(16, 30),
        "test_heldout": SplitSize(16, 30),
    },
}

BABBLE_POOL_SIZE = 24


def utt_seed(seed: int, *parts: object) -> int:
    """A 63-bit seed from the corpus seed and the parts (split, index ...), stable across runs."""
    h = hashlib.sha256(("/".join([str(seed)] + [str(p) for p in parts])).encode()).digest()
    return int.from_bytes(h[:8], "little") >> 1


# The prompts' design. Half of every split's prompts are King James Bible sentences: those of
# dev/test/test_heldout from the held-out books below, which never enter the LM text nor the
# training prompts (as LibriSpeech holds its dev and test books out of its LM corpus), those of
# train from the other books. The other half are fortunes and WordNet examples (each sentence
# in one split only; the LM text has every one that is not an evaluation prompt). The held-out
# books span narrative (Ruth, Esther, Jonah, Acts), gospel (John: the synoptic gospels, in the
# LM text, run parallel to each other, not to John), wisdom (Job) and epistle (Romans, James).
HELDOUT_BOOKS = ("Ruth", "Est", "Job", "Jonah", "John", "Acts", "Rom", "Jas")
BIBLE_SHARE = 0.5
# Words a prompt. KJV sentences average 13.8 words in 4-20 (fortunes and WordNet examples 8.3):
# at most 14 keeps the prompts at ~8.8 words on average and the corpus's hours as they were.
PROMPT_WORDS = (4, 14)


@dataclass
class PromptPools:
    """Prompt candidates by source, disjoint: every sentence is normalised, has 4-14 words
    (:data:`PROMPT_WORDS`) and every word in CMUdict (the TTS engines and the lexicon pronounce it the same way)."""

    general: List[str]  # fortunes and WordNet examples
    bible: List[str]  # KJV sentences of the books in the LM text: training prompts
    bible_heldout: List[str]  # KJV sentences of HELDOUT_BOOKS: evaluation prompts only


def prompt_candidates(cmu: Dict[str, list]) -> PromptPools:
    """The prompt pools from the Debian text sources (see :data:`HELDOUT_BOOKS`)."""
    def ok(sents: Sequence[str]) -> List[str]:
        return [s for s in text.normalize_all(sents, *PROMPT_WORDS) if all(w in cmu for w in s.split())]

    books = text.bible_books()
    heldout = ok([s for b in HELDOUT_BOOKS for s in books[b]])
    held = set(heldout)
    bible = [s for s in ok([s for b, ss in books.items() if b not in HELDOUT_BOOKS for s in ss]) if s not in held]
    in_bible = held | set(bible)
    examples, _ = text.wordnet_texts()
    general = [s for s in ok(text.fortune_sentences() + examples) if s not in in_bible]
    return PromptPools(general, bible, heldout)


def assign_prompts(pools: PromptPools, sizes: Dict[str, SplitSize], seed: int, bible_share: float = BIBLE_SHARE) -> Dict[str, List[str]]:
    """Disjoint prompt lists per split: ``round(bible_share * n)`` KJV sentences (held-out books for
    the evaluation splits, the other books for train) and the rest from the general pool, each
    pool in a seeded shuffle, evaluation splits served first; the split's list shuffled (seeded)
    so that every speaker reads both kinds."""
    order = {}
    for i, (name, lst) in enumerate((("general", pools.general), ("bible", pools.bible), ("bible_heldout", pools.bible_heldout))):
        order[name] = list(lst)
        random.Random(seed + 1000 * i).shuffle(order[name])
    pos = {name: 0 for name in order}

    def take(name: str, k: int, split: str) -> List[str]:
        if pos[name] + k > len(order[name]):
            raise ValueError(f"not enough prompt sentences in the {name} pool: {len(order[name])} for "
                             f"{pos[name] + k} (up to split {split})")
        out = order[name][pos[name] : pos[name] + k]
        pos[name] += k
        return out

    prompts: Dict[str, List[str]] = {}
    for split in ("dev", "test", "test_heldout", "train"):
        n = sizes[split].speakers * sizes[split].utts_per_speaker
        nb = int(round(bible_share * n))
        lst = take("bible" if split == "train" else "bible_heldout", nb, split) + take("general", n - nb, split)
        random.Random(utt_seed(seed, "prompts", split)).shuffle(lst)
        prompts[split] = lst
    return prompts


def make_speakers(split: str, n: int, seed: int) -> List[tts.SpeakerProfile]:
    """``n`` speakers for ``split``: voices round-robin (training or held-out voices), each with
    a seeded profile. Speaker ids are 4 digits: 1xxx train, 2xxx dev, 3xxx test, 4xxx held out."""
    voices = tts.HELDOUT_VOICES if split == "test_heldout" else tts.TRAIN_VOICES
    names = list(voices)
    base = 1000 * (SPLITS.index(split) + 1)
    out = []
    for i in range(n):
        voice = names[i % len(names)]
        rng = np.random.default_rng(utt_seed(seed, "speaker", split, i))
        out.append(tts.make_profile(str(base + i), voice, voices[voice], rng))
    return out


# --------------------------------------------------------------------------- workers

_BABBLE: List[np.ndarray] = []


def _init_worker(babble_pool: List[np.ndarray]) -> None:
    global _BABBLE
    _BABBLE = babble_pool
    os.environ.setdefault("OMP_NUM_THREADS", "1")


@dataclass
class UttJob:
    utt_id: str
    text: str
    seed: int
    kind: str = "clean"  # condition kind (degrade.ConditionMix)


def _speaker_task(args: Tuple[str, str, tts.SpeakerProfile, List[UttJob]]) -> List[dict]:
    """Synthesise, degrade and write one speaker's utterances; returns their records."""
    import soundfile as sf

    corpus_dir, split, profile, jobs = args
    results = tts.synthesize(profile, [j.text for j in jobs])
    records = []
    for job, (audio, phones, err) in zip(jobs, results):
        rec = {"utt_id": job.utt_id, "split": split, "speaker": profile.speaker_id, "voice": profile.voice, "text": job.text}
        if audio is None or audio.size < 0.3 * tts.SAMPLE_RATE or float(np.max(np.abs(audio))) < 1e-4:
            rec["error"] = err or f"{profile.voice} gave {0 if audio is None else audio.size} samples of (near) silence"
            records.append(rec)
            continue
        rng = np.random.default_rng(job.seed)
        cond = degrade.draw_condition(rng, job.kind)
        x = degrade.apply_condition(audio, cond, rng, _BABBLE)
        spk, chapter, _ = job.utt_id.split("-")
        d = Path(corpus_dir) / split / spk / chapter
        d.mkdir(parents=True, exist_ok=True)
        tmp = d / f"{job.utt_id}.tmp.flac"
        sf.write(str(tmp), x, tts.SAMPLE_RATE, subtype="PCM_16", format="FLAC")
        os.replace(tmp, d / f"{job.utt_id}.flac")
        rec["duration"] = round(len(x) / tts.SAMPLE_RATE, 4)
        rec["condition"] = cond.to_dict()
        if phones:
            rec["phones"] = [(p, round(s + cond.pad_start, 4), round(e + cond.pad_start, 4)) for p, s, e in phones]
        records.append(rec)
    return records


def _babble_pool(sentences: Sequence[str], seed: int, nj: int) -> List[np.ndarray]:
    """Clean utterances of training voices (other speakers, other sentences) for babble."""
    speakers = make_speakers("train", BABBLE_POOL_SIZE, seed + 7919)
    pool: List[np.ndarray] = []
    tasks = [(spk, [s]) for spk, s in zip(speakers, sentences)]
    with mp.Pool(nj) as p:
        for res in p.starmap(tts.synthesize, tasks):
            audio = res[0][0]
            if audio is not None and audio.size:
                pool.append(audio)
    return pool


# --------------------------------------------------------------------------- build


def build_corpus(
    corpus_dir: str,
    tier: str = "default",
    seed: int = 1,
    nj: Optional[int] = None,
    sizes: Optional[Dict[str, SplitSize]] = None,
) -> dict:
    """Build the corpus into ``corpus_dir`` (idempotent: a finished build is not redone).

    :param tier: ``tiny``, ``default`` or ``large`` (ignored when ``sizes`` is given).
    :param seed: corpus seed; one seed gives one corpus, byte for byte.
    :param nj: worker processes (default: the number of cores).
    :return: the statistics (also in ``meta/stats.json``).
    """
    corpus = Path(corpus_dir)
    done = corpus / "meta" / ".complete"
    if done.is_file():
        return json.loads((corpus / "meta" / "stats.json").read_text())
    sizes = sizes or TIERS[tier]
    nj = nj or os.cpu_count() or 1
    tts.check_engines(list(tts.TRAIN_VOICES) + list(tts.HELDOUT_VOICES))
    t0 = time.time()
    for split in SPLITS:
        if (corpus / split).exists():
            shutil.rmtree(corpus / split)  # an unfinished earlier build
    (corpus / "meta").mkdir(parents=True, exist_ok=True)

    cmu = text.load_cmudict()
    pools = prompt_candidates(cmu)
    prompts = assign_prompts(pools, sizes, seed)
    used = {s for lst in prompts.values() for s in lst}
    spare = [s for s in pools.general if s not in used]
    random.Random(seed + 1).shuffle(spare)
    logging.info("synth_en: prompt candidates: %d general, %d KJV (LM-text books), %d KJV (held-out books); building babble pool",
                 len(pools.general), len(pools.bible), len(pools.bible_heldout))
    babble = _babble_pool(spare[:BABBLE_POOL_SIZE], seed, nj)

    tasks = []
    speakers: Dict[str, List[tts.SpeakerProfile]] = {}
    for split in SPLITS:
        sz = sizes[split]
        speakers[split] = make_speakers(split, sz.speakers, seed)
        kinds = degrade.assign_kinds(sz.speakers * sz.utts_per_speaker, utt_seed(seed, "conditions", split))
        for i, prof in enumerate(speakers[split]):
            chapter = f"{prof.speaker_id}{SPLITS.index(split) + 1:02d}"
            jobs = []
            for n in range(sz.utts_per_speaker):
                idx = i * sz.utts_per_speaker + n
                utt = f"{prof.speaker_id}-{chapter}-{n:04d}"
                jobs.append(UttJob(utt, prompts[split][idx], utt_seed(seed, split, idx), kinds[idx]))
            tasks.append((str(corpus), split, prof, jobs))
    # Festival speakers are the slowest: start them first.
    tasks.sort(key=lambda t: t[2].engine != "festival")

    records: Dict[str, List[dict]] = {s: [] for s in SPLITS}
    try:
        from tqdm import tqdm
    except ImportError:  # pragma: no cover
        tqdm = None
    with mp.Pool(nj, initializer=_init_worker, initargs=(babble,)) as p:
        it = p.imap_unordered(_speaker_task, tasks)
        if tqdm is not None:
            it = tqdm(it, total=len(tasks), desc=f"synth_en speakers ({nj} workers)", unit="spk", mininterval=2)
        for recs in it:
            for r in recs:
                records[r["split"]].append(r)

    stats = _write_tables(corpus, records, speakers, sizes, seed, tier)
    stats["build_seconds"] = round(time.time() - t0, 1)
    (corpus / "meta" / "stats.json").write_text(json.dumps(stats, indent=1, sort_keys=True) + "\n")
    done.touch()
    return stats


def _write_tables(corpus: Path, records: Dict[str, List[dict]], speakers, sizes, seed: int, tier: str) -> dict:
    stats: dict = {"tier": tier, "seed": seed, "condition_table": degrade.CONDITION_MIX.to_dict(), "splits": {}}
    spk_lines = [
        "; ID  |SEX| SUBSET       |MINUTES| NAME",
    ]
    all_profiles = {}
    for split in SPLITS:
        recs = sorted(records[split], key=lambda r: r["utt_id"])
        ok = [r for r in recs if "error" not in r]
        skipped = [r for r in recs if "error" in r]
        by_chapter: Dict[Tuple[str, str], List[dict]] = {}
        for r in ok:
            spk, chapter, _ = r["utt_id"].split("-")
            by_chapter.setdefault((spk, chapter), []).append(r)
        for (spk, chapter), rs in by_chapter.items():
            p = corpus / split / spk / chapter / f"{spk}-{chapter}.trans.txt"
            p.write_text("".join(f"{r['utt_id']} {r['text']}\n" for r in rs))
        with open(corpus / "meta" / f"{split}.utts.jsonl", "w") as f:
            for r in recs:
                f.write(json.dumps(r, sort_keys=True) + "\n")
        minutes: Dict[str, float] = {}
        for r in ok:
            minutes[r["speaker"]] = minutes.get(r["speaker"], 0.0) + r["duration"] / 60
        for prof in speakers[split]:
            all_profiles[prof.speaker_id] = dict(prof.to_dict(), split=split)
            spk_lines.append(f"{prof.speaker_id:<5}| {prof.sex} | {split:<13}| {minutes.get(prof.speaker_id, 0.0):5.2f} | {prof.voice}/{prof.variant or '-'}")
        conds: Dict[str, int] = {}
        for r in ok:
            conds[r["condition"]["name"]] = conds.get(r["condition"]["name"], 0) + 1
        stats["splits"][split] = {
            "utterances": len(ok),
            "hours": round(sum(r["duration"] for r in ok) / 3600, 3),
            "speakers": len({r["speaker"] for r in ok}),
            "voices": sorted({r["voice"] for r in ok}),
            "sexes": {s: len({r["speaker"] for r in ok if all_profiles[r["speaker"]]["sex"] == s}) for s in ("F", "M")},
            "conditions": dict(sorted(conds.items())),
            "condition_mix": degrade.summarize_conditions([degrade.Condition(**{k: v for k, v in r["condition"].items()
                                                                                 if k not in ("name", "kind")}) for r in ok]),
            "skipped": len(skipped),
            "skipped_utts": [{"utt_id": r["utt_id"], "error": r["error"]} for r in skipped],
        }
    (corpus / "SPEAKERS.TXT").write_text("\n".join(spk_lines) + "\n")
    (corpus / "meta" / "speakers.json").write_text(json.dumps(all_profiles, indent=1, sort_keys=True) + "\n")
    return stats


def format_stats(stats: dict) -> str:
    """The per-split table the builder prints."""
    lines = [
        f"synth_en tier={stats.get('tier')} seed={stats.get('seed')}"
        + (f" built in {stats['build_seconds']} s" if "build_seconds" in stats else ""),
        f"{'split':<13} {'utts':>6} {'hours':>7} {'spk':>4} {'F/M':>7} {'voices':>6} {'skipped':>7}  conditions (% of utterances)",
    ]
    for split, s in stats["splits"].items():
        mix = s.get("condition_mix")
        order = [k for k, _ in degrade.CONDITION_MIX.kinds]  # the table's order (stats.json sorts keys)
        conds = (", ".join(f"{k} {100 * mix['shares'][k]:.0f}" for k in sorted(mix["shares"], key=lambda k: (order + [k]).index(k))) if mix
                 else ", ".join(f"{k}:{v}" for k, v in s["conditions"].items()))
        fm = f"{s['sexes']['F']}/{s['sexes']['M']}"
        lines.append(f"{split:<13} {s['utterances']:>6} {s['hours']:>7.3f} {s['speakers']:>4} {fm:>7} {len(s['voices']):>6} {s['skipped']:>7}  {conds}")
    return "\n".join(lines)

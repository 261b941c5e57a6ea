"""The synth_en builder: determinism, disjoint splits, real engines, degradations, and the
LibriSpeech-layout -> lhotse -> Kaldi data dir path."""
import hashlib
import json
import subprocess
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from kdhybrid.data import degrade, synth_corpus, tts
from kdhybrid.data.prepare import manifests_to_data_dir, prepare_manifests
from kdhybrid.data.synth_corpus import TIERS, SplitSize, assign_prompts, build_corpus
from kdhybrid.data.text import MissingToolError, normalize_sentence
from kdhybrid.io.datadir import validate_data_dir
from kdhybrid.io.tables import read_text_table

# Every training voice once, every held-out voice once: all engines are exercised.
MICRO = {
    "train": SplitSize(len(tts.TRAIN_VOICES), 1),
    "dev": SplitSize(2, 1),
    "test": SplitSize(2, 1),
    "test_heldout": SplitSize(len(tts.HELDOUT_VOICES), 1),
}


def tree_digest(root: Path) -> dict:
    out = {}
    for p in sorted(root.rglob("*")):
        if p.is_file() and p.name not in ("stats.json", ".complete"):
            out[str(p.relative_to(root))] = hashlib.md5(p.read_bytes()).hexdigest()
    return out


@pytest.fixture(scope="module")
def micro_corpus(tmp_path_factory):
    d = tmp_path_factory.mktemp("synth") / "corpus"
    stats = build_corpus(str(d), sizes=MICRO, seed=3, nj=2)
    return d, stats


def test_same_seed_same_corpus_byte_for_byte(micro_corpus, tmp_path):
    d, stats = micro_corpus
    again = tmp_path / "again"
    build_corpus(str(again), sizes=MICRO, seed=3, nj=1)  # other worker count, same bytes
    a, b = tree_digest(d), tree_digest(again)
    assert len(a) > 20 and a == b
    other = tmp_path / "other"
    build_corpus(str(other), sizes=MICRO, seed=4, nj=2)
    c = tree_digest(other)
    flacs = [k for k in a if k.endswith(".flac")]
    assert sum(a[k] != c.get(k) for k in flacs) == len(flacs)


def test_layout_splits_and_voices(micro_corpus):
    d, stats = micro_corpus
    # LibriSpeech layout: <split>/<spk>/<chapter>/<spk>-<chapter>-<n>.flac + trans.txt
    prompts = {}
    for split in synth_corpus.SPLITS:
        trans = list((d / split).glob("*/*/*.trans.txt"))
        assert trans, split
        lines = [ln.split(maxsplit=1) for t in trans for ln in t.read_text().splitlines()]
        for utt, _ in lines:
            spk, chap, _n = utt.split("-")
            assert (d / split / spk / chap / f"{utt}.flac").is_file()
        prompts[split] = {t for _, t in lines}
        assert stats["splits"][split]["utterances"] == len(lines) == MICRO[split].speakers
    for a in prompts:
        for b in prompts:
            if a < b:
                assert prompts[a].isdisjoint(prompts[b]), (a, b)
    speakers = json.loads((d / "meta" / "speakers.json").read_text())
    voices = {s: {p["voice"] for p in speakers.values() if p["split"] == s} for s in synth_corpus.SPLITS}
    assert voices["train"] == set(tts.TRAIN_VOICES)
    assert voices["test_heldout"] == set(tts.HELDOUT_VOICES)
    assert voices["test_heldout"].isdisjoint(voices["train"] | voices["dev"] | voices["test"])
    assert set(stats["splits"]["train"]["sexes"]) == {"F", "M"} and min(stats["splits"]["train"]["sexes"].values()) >= 1
    # Each utterance has the condition kind its split's quota dealt it, levels within the table's ranges.
    for split in synth_corpus.SPLITS:
        recs = [json.loads(ln) for ln in (d / "meta" / f"{split}.utts.jsonl").read_text().splitlines()]
        want = degrade.assign_kinds(MICRO[split].speakers, synth_corpus.utt_seed(3, "conditions", split))
        assert [r["condition"]["kind"] for r in recs] == want, split
        assert stats["splits"][split]["condition_mix"]["kinds"] == {k: want.count(k) for k, _ in degrade.CONDITION_MIX.kinds}
    # SPEAKERS.TXT in LibriSpeech's format.
    assert (d / "SPEAKERS.TXT").read_text().splitlines()[1].split("|")[2].strip() == "train"


def test_phone_timings_from_flite_and_festival(micro_corpus):
    d, _ = micro_corpus
    recs = [json.loads(ln) for ln in (d / "meta" / "train.utts.jsonl").read_text().splitlines()]
    with_phones = {r["voice"].split(":")[0] for r in recs if r.get("phones")}
    assert with_phones == {"flite", "festival"}
    for r in recs:
        if r.get("phones"):
            starts = [p[1] for p in r["phones"]]
            assert starts == sorted(starts)
            assert r["phones"][0][1] >= r["condition"]["pad_start"] - 1e-3
            assert r["phones"][-1][2] <= r["duration"] + 1e-3
            assert {p[0] for p in r["phones"]} - {"SIL"} <= set(__import__("kdhybrid.data.text", fromlist=["x"]).ARPABET)


def test_prompt_assignment_disjoint_for_real_tiers():
    pools = synth_corpus.PromptPools(general=[f"GENERAL NUMBER {i}" for i in range(20000)],
                                     bible=[f"BIBLE NUMBER {i}" for i in range(10000)],
                                     bible_heldout=[f"HELD OUT NUMBER {i}" for i in range(1000)])
    for tier in ("tiny", "default", "large"):
        p = assign_prompts(pools, TIERS[tier], seed=1)
        seen = set()
        for split, lst in p.items():
            n = TIERS[tier][split].speakers * TIERS[tier][split].utts_per_speaker
            assert len(lst) == n and seen.isdisjoint(lst)
            seen.update(lst)
            kjv = "BIBLE" if split == "train" else "HELD OUT"
            assert sum(s.startswith(kjv) for s in lst) == round(synth_corpus.BIBLE_SHARE * n)
            assert sum(s.startswith("GENERAL") for s in lst) == n - round(synth_corpus.BIBLE_SHARE * n)
            # interleaved: each speaker reads both kinds
            assert 0 < sum(s.startswith(kjv) for s in lst[: n // 2]) < n // 2
        assert p == assign_prompts(pools, TIERS[tier], seed=1)
    small = synth_corpus.PromptPools(pools.general, pools.bible, pools.bible_heldout[:100])
    with pytest.raises(ValueError, match="not enough prompt sentences in the bible_heldout pool"):
        assign_prompts(small, TIERS["default"], seed=1)


def test_prompts_and_lm_text_from_the_real_sources():
    """The default tier's prompts and LM text: no evaluation sentence and no sentence of a
    held-out book in the LM text; every training prompt in it; every prompt word in CMUdict."""
    from kdhybrid.data.prepare import make_lm_text
    from kdhybrid.data.text import load_cmudict

    cmu = load_cmudict()
    pools = synth_corpus.prompt_candidates(cmu)
    assert len(pools.bible_heldout) >= 3 * 16 * 30 * synth_corpus.BIBLE_SHARE  # the large tier's evaluation splits
    assert not set(pools.general) & set(pools.bible) and not set(pools.bible) & set(pools.bible_heldout)
    assert not set(pools.general) & set(pools.bible_heldout)
    prompts = assign_prompts(pools, TIERS["default"], seed=1)
    evals = [s for split in ("dev", "test", "test_heldout") for s in prompts[split]]
    assert all(w in cmu for s in evals + prompts["train"] for w in s.split())
    lm = set(make_lm_text(evals))
    assert len(lm) > 100000
    assert not lm & set(evals) and not lm & set(pools.bible_heldout)
    assert set(prompts["train"]) <= lm
    held = set(pools.bible_heldout)
    for split in ("dev", "test", "test_heldout"):
        assert sum(s in held for s in prompts[split]) == round(synth_corpus.BIBLE_SHARE * len(prompts[split]))


def test_lhotse_prepares_it_like_librispeech(micro_corpus, tmp_path):
    d, _ = micro_corpus
    m = prepare_manifests(d, tmp_path / "manifests", ["train"], num_jobs=1)
    recs, sups = m["train"]["recordings"], m["train"]["supervisions"]
    assert len(recs) == len(sups) == MICRO["train"].speakers
    counts = manifests_to_data_dir(recs, sups, tmp_path / "data" / "train")
    assert counts["utterances"] == MICRO["train"].speakers
    validate_data_dir(tmp_path / "data" / "train", require_text=True)
    # The wav.scp pipe gives the same samples as the FLAC file.
    wav = read_text_table(tmp_path / "data" / "train" / "wav.scp")
    utt, rx = next(iter(wav.items()))
    assert rx.endswith("|")
    pcm = subprocess.run(rx[:-1], shell=True, capture_output=True, check=True).stdout
    import io

    via_pipe, sr = sf.read(io.BytesIO(pcm), dtype="int16")
    direct, sr2 = sf.read(str(recs[utt].sources[0].source), dtype="int16")
    assert sr == sr2 == 16000
    np.testing.assert_array_equal(via_pipe, direct)
    dur = float(read_text_table(tmp_path / "data" / "train" / "utt2dur")[utt])
    assert abs(dur - len(direct) / 16000) < 1e-3


def test_missing_engine_names_the_apt_command(monkeypatch):
    monkeypatch.setenv("PATH", "/nonexistent")
    with pytest.raises(MissingToolError, match=r"apt-get install -y sox"):
        tts.check_engines(["espeak:en-us"])


def test_failed_sentence_is_skipped_and_counted(tmp_path):
    prof = tts.SpeakerProfile("1000", "espeak:en-us", "M", variant="m1")
    jobs = [synth_corpus.UttJob("1000-100001-0000", "HELLO THERE GENERAL KENOBI", 1), synth_corpus.UttJob("1000-100001-0001", "", 2)]
    recs = synth_corpus._speaker_task((str(tmp_path), "train", prof, jobs))
    assert "error" not in recs[0] and recs[0]["duration"] > 1.0
    assert "error" in recs[1]
    assert (tmp_path / "train/1000/100001/1000-100001-0000.flac").is_file()
    assert not (tmp_path / "train/1000/100001/1000-100001-0001.flac").exists()


def _band_power(x, lo, hi):
    spec = np.abs(np.fft.rfft(x)) ** 2
    f = np.fft.rfftfreq(len(x), 1 / 16000)
    return spec[(f >= lo) & (f < hi)].sum()


def test_degradations_do_what_they_say():
    rng = np.random.default_rng(0)
    speech = (0.5 * np.sin(2 * np.pi * 440 * np.arange(32000) / 16000)).astype(np.float32)
    cond = degrade.Condition(pad_start=0.0, pad_end=0.0, noise="white", snr_db=10.0, gain_db=0.0)
    y = degrade.apply_condition(speech, cond, np.random.default_rng(1))
    # Recover the noise: the output is a scaled (speech + noise); project out the sine.
    scale = np.dot(y, speech) / np.dot(speech, speech)
    noise = y - scale * speech
    snr = 10 * np.log10(np.mean((scale * speech) ** 2) / np.mean(noise**2))
    assert abs(snr - 10.0) < 0.5
    # Power spectral density an octave up: white flat, pink -3 dB (1/f), brown -6 dB (1/f^2).
    for kind, slope in (("white", 0.0), ("pink", 3.0), ("brown", 6.0)):
        n = degrade.colored_noise(kind, 160000, rng)
        # band sums over 500 Hz vs 1000 Hz of bandwidth: +3.01 dB turns them into densities
        drop = 10 * np.log10(_band_power(n, 500, 1000) / _band_power(n, 1000, 2000)) + 3.01
        assert abs(drop - slope) < 1.0, (kind, drop)
    # Telephone band: little energy left above 3.4 kHz or below 300 Hz.
    n = degrade.colored_noise("white", 32000, rng)
    t = degrade.telephone_band(n)
    assert 10 * np.log10(_band_power(t, 4000, 8000) / _band_power(t, 500, 3000)) < -30
    assert 10 * np.log10(_band_power(t, 0, 150) / _band_power(t, 500, 3000)) < -20
    # Padding and level.
    cond = degrade.Condition(pad_start=0.25, pad_end=0.5, gain_db=-12.0)
    y = degrade.apply_condition(speech, cond, rng)
    assert len(y) == 32000 + 4000 + 8000 and np.all(y[:4000] == 0)
    assert abs(20 * np.log10(np.abs(y).max() / 0.9) + 12.0) < 0.01


def test_condition_mix_table():
    """The design: 40% clean, single degradations at moderate levels, 10% combinations; every
    split dealt its kinds by quota (within one utterance of the share), in a seeded order."""
    mix = degrade.CONDITION_MIX
    shares = dict(mix.kinds)
    assert sum(shares.values()) == pytest.approx(1.0) and shares["clean"] == pytest.approx(0.40)
    assert sum(v for k, v in shares.items() if "+" in k) == pytest.approx(0.10)
    assert mix.snr_db == (5.0, 20.0) and mix.rt60 == (0.2, 0.6)
    for n in (1, 7, 50, 300, 2100):
        kinds = degrade.assign_kinds(n, seed=5)
        assert len(kinds) == n and kinds == degrade.assign_kinds(n, seed=5)
        for k, share in mix.kinds:
            assert abs(kinds.count(k) - share * n) < 1.0, (n, k, kinds.count(k))
    assert degrade.assign_kinds(300, seed=5) != degrade.assign_kinds(300, seed=6)
    rng = np.random.default_rng(0)
    conds = [degrade.draw_condition(rng, k) for k in degrade.assign_kinds(300, seed=1)]
    summary = degrade.summarize_conditions(conds)
    assert summary["kinds"] == {"clean": 120, "noise": 75, "reverb": 45, "tel": 30, "noise+reverb": 15, "noise+tel": 15}
    assert summary["degraded_twice_or_more"] == pytest.approx(0.10)
    assert 5.0 <= summary["snr_db"]["min"] and summary["snr_db"]["max"] <= 20.0 and summary["snr_db"]["n"] == 105
    assert 0.2 <= summary["rt60"]["min"] and summary["rt60"]["max"] <= 0.6 and summary["rt60"]["n"] == 60
    assert all(c.kind == k for c, k in zip(conds, degrade.assign_kinds(300, seed=1)))
    assert [c.name for c in conds if c.kind == "clean"] == ["clean"] * 120
    with pytest.raises(ValueError, match="bad kind"):
        degrade.ConditionMix(kinds=(("reverb+noise", 1.0),), snr_db=(5, 20), rt60=(0.2, 0.6), noise_types=(("white", 1.0),))
    with pytest.raises(ValueError, match="sum to"):
        degrade.ConditionMix(kinds=(("clean", 0.5),), snr_db=(5, 20), rt60=(0.2, 0.6), noise_types=(("white", 1.0),))


def test_tiny_corpus_condition_mix_in_corpus_stats(tiny_recipe):
    """corpus_stats.json (stage 0) gives every split's condition mix: the table's shares to
    within one utterance a kind, the levels within its ranges."""
    stats = json.loads((tiny_recipe / "data" / "local" / "corpus_stats.json").read_text())
    mix = degrade.CONDITION_MIX
    assert stats["condition_table"] == json.loads(json.dumps(mix.to_dict()))
    for split, s in stats["splits"].items():
        n, m = s["utterances"], s["condition_mix"]
        assert n == TIERS["tiny"][split].speakers * TIERS["tiny"][split].utts_per_speaker
        for k, share in mix.kinds:
            assert abs(m["kinds"][k] - share * n) < 1.0 and m["shares"][k] == pytest.approx(m["kinds"][k] / n, abs=1e-3), (split, k)
        assert sum(m["kinds"].values()) == n
        assert mix.snr_db[0] <= m["snr_db"]["min"] and m["snr_db"]["max"] <= mix.snr_db[1]
        assert mix.rt60[0] <= m["rt60"]["min"] and m["rt60"]["max"] <= mix.rt60[1]
        assert sum(s["conditions"].values()) == n


def test_tiny_recipe_lm_vocabulary_and_text(tiny_recipe):
    """Stage 0's LM files: the LM text has no evaluation sentence, the LM vocabulary (chosen
    without the evaluation text) is in the lexicon, which also has every transcript word; the
    OOV rates in lm_text.json are those of the files."""
    from kdhybrid.data.prepare import oov_rate, read_transcripts

    data = tiny_recipe / "data"
    lm = set((data / "local/lm/lm_text.txt").read_text().splitlines())
    vocab = (data / "local/lm/vocab.txt").read_text().split()
    lexicon = {line.split()[0] for line in (data / "local/dict/lexicon.txt").read_text().splitlines()}
    stats = json.loads((data / "local/lm/lm_text.json").read_text())
    assert stats["lm_sentences"] == len(lm) and stats["vocabulary"] == len(vocab) and set(vocab) <= lexicon
    for split in synth_corpus.SPLITS:
        text = read_transcripts([data / split])
        assert {w for s in text for w in s.split()} <= lexicon
        if split != "train":
            assert not lm & set(text), split
            assert stats["eval_oov_rate"][split] == oov_rate(text, vocab)
    assert 0 < stats["eval_oov_rate"]["dev"] < 0.05


def test_normalize_sentence():
    assert normalize_sentence('"Don\'t panic," he said -- twice.') == "DON'T PANIC HE SAID TWICE"
    assert normalize_sentence("In 1984 it rained.") is None
    assert normalize_sentence("Cost: $5") is None


def test_librispeech_recipe_prepares_a_librispeech_layout_corpus(tiny_recipe, tmp_path, repo, venv_env):
    """egs/librispeech/s5 differs from synth_en only in its data step: run that step on the
    tiny synth_en corpus arranged under LibriSpeech's part names."""
    ls = tmp_path / "LibriSpeech"
    ls.mkdir()
    corpus = tiny_recipe / "corpus" / "synth_en_tiny"
    for part, split in (("train-clean-100", "train"), ("dev-clean", "dev"), ("test-clean", "test"), ("test-other", "test_heldout")):
        (ls / part).symlink_to(corpus / split)
    (ls / "SPEAKERS.TXT").symlink_to(corpus / "SPEAKERS.TXT")
    env = dict(venv_env, KDHYBRID_ROOT=str(repo))
    r = subprocess.run(["bash", str(repo / "egs/librispeech/s5/run.sh"), "--corpus", str(ls), "--stop-stage", "1"],
                       cwd=repo / "egs/librispeech/s5", env=env, capture_output=True, text=True)
    data = repo / "egs/librispeech/s5/data"
    try:
        assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
        for d, n in (("train", 200), ("dev", 50), ("test", 50), ("test_other", 50)):
            assert validate_data_dir(data / d, require_text=True)["utterances"] == n
        assert (data / "lang" / "L_disambig.fst").is_file()
        assert (data / "local/lm/lm_text.txt").read_text().count("\n") > 100
    finally:
        import shutil

        shutil.rmtree(data, ignore_errors=True)

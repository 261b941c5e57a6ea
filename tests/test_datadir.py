"""Kaldi data dirs: validation errors that name file and line, and split_data."""
import pytest

from kdhybrid.io.datadir import DataDir, read_data_dir, split_data, validate_data_dir, write_data_dir
from kdhybrid.io.tables import KaldiFormatError, read_text_table


def make_dir(path, n_spk=3, per_spk=4):
    utt2spk, wav, text = {}, {}, {}
    for s in range(n_spk):
        for u in range(per_spk + s):  # speakers of different sizes
            utt = f"spk{s}-u{u:02d}"
            utt2spk[utt] = f"spk{s}"
            wav[utt] = f"/data/{utt}.wav"
            text[utt] = f"HELLO WORLD {u}"
    dd = DataDir(utt2spk=utt2spk, wav_scp=wav, text=text)
    write_data_dir(dd, path)
    return dd


def test_write_read_validate(tmp_path):
    dd = make_dir(tmp_path / "d")
    stats = validate_data_dir(tmp_path / "d")
    assert stats == {"utterances": 15, "speakers": 3}
    back = read_data_dir(tmp_path / "d")
    assert back.utts == sorted(dd.utt2spk)
    assert (tmp_path / "d" / "spk2utt").read_text().splitlines()[0] == "spk0 spk0-u00 spk0-u01 spk0-u02 spk0-u03"


@pytest.mark.parametrize(
    "file,content,pattern",
    [
        ("utt2spk", "spk0-u01 spk0\nspk0-u00 spk0\n", r"utt2spk:2: not sorted"),
        ("text", "spk0-u00 A\nspk9-u00 B\n", r"text:2: utterance 'spk9-u00' is not in utt2spk"),
        ("spk2utt", "spk0 spk0-u00\n", r"spk2utt:1: utterances of speaker 'spk0' disagree"),
        ("wav.scp", "spk0-u00 a.wav\n", r"wav.scp: utterance 'spk0-u01' of utt2spk is missing"),
        ("utt2dur", "spk0-u00 1.0\nspk0-u01 x\n", r"utt2dur:2: bad value 'x'"),
    ],
)
def test_validation_errors(tmp_path, file, content, pattern):
    d = tmp_path / "d"
    d.mkdir()
    (d / "utt2spk").write_text("spk0-u00 spk0\nspk0-u01 spk0\n")
    (d / "spk2utt").write_text("spk0 spk0-u00 spk0-u01\n")
    (d / "wav.scp").write_text("spk0-u00 a.wav\nspk0-u01 b.wav\n")
    (d / file).write_text(content)
    with pytest.raises(KaldiFormatError, match=pattern):
        validate_data_dir(d)


def test_noncontiguous_speakers_rejected(tmp_path):
    d = tmp_path / "d"
    d.mkdir()
    (d / "utt2spk").write_text("a1 s1\na2 s2\na3 s1\n")
    (d / "spk2utt").write_text("s1 a1 a3\ns2 a2\n")
    (d / "wav.scp").write_text("a1 x\na2 y\na3 z\n")
    with pytest.raises(KaldiFormatError, match=r"utt2spk:3: utterances of speaker 's1' are not contiguous"):
        validate_data_dir(d)


def test_split_per_utterance_and_per_speaker(tmp_path):
    d = tmp_path / "d"
    make_dir(d)  # speakers of 4, 5, 6 utterances
    jobs = split_data(d, 4)
    assert [j.name for j in jobs] == ["1", "2", "3", "4"] and jobs[0].parent.name == "split4utt"
    sizes = [len(read_text_table(j / "utt2spk")) for j in jobs]
    assert sum(sizes) == 15 and max(sizes) - min(sizes) <= 1
    for j in jobs:
        validate_data_dir(j)
    # The union in order is the original.
    allu = [u for j in jobs for u in read_text_table(j / "utt2spk")]
    assert allu == list(read_text_table(d / "utt2spk"))

    jobs = split_data(d, 2, per_speaker=True)
    assert jobs[0].parent.name == "split2"
    spk_sets = [set(read_text_table(j / "spk2utt")) for j in jobs]
    assert spk_sets[0].isdisjoint(spk_sets[1]) and set.union(*spk_sets) == {"spk0", "spk1", "spk2"}
    assert [len(read_text_table(j / "utt2spk")) for j in jobs] == [9, 6]
    with pytest.raises(ValueError, match="3 speakers"):
        split_data(d, 4, per_speaker=True)


def _audio_dir(tmp_path):
    d = tmp_path / "src"
    d.mkdir()
    (d / "wav.scp").write_text("a1 sox x/a1.flac -t wav - |\nb1 x/b1.wav\n")
    (d / "utt2spk").write_text("a1 a\nb1 b\n")
    (d / "spk2utt").write_text("a a1\nb b1\n")
    (d / "text").write_text("a1 HELLO THERE\nb1 GOOD BYE\n")
    (d / "utt2dur").write_text("a1 2.7\nb1 1.1\n")
    (d / "spk2gender").write_text("a f\nb m\n")
    (d / "utt2condition").write_text("a1 clean\nb1 white_snr10\n")
    (d / "feats.scp").write_text("a1 f.ark:1\nb1 f.ark:9\n")
    return d


def test_speed_perturbation_3way_tables(tmp_path):
    from kdhybrid.data.perturb import speed_perturb_3way

    speed_perturb_3way(_audio_dir(tmp_path), tmp_path / "sp")
    sp = tmp_path / "sp"
    u2s = read_text_table(sp / "utt2spk")
    assert list(u2s) == ["sp0.9-a1", "sp0.9-b1", "sp1.0-a1", "sp1.0-b1", "sp1.1-a1", "sp1.1-b1"]
    assert u2s["sp1.1-b1"] == "sp1.1-b"  # every copy's speakers are new speakers (their own fMLLR)
    wav = read_text_table(sp / "wav.scp")
    assert wav["sp0.9-a1"] == "sox x/a1.flac -t wav - | sox -t wav - -t wav - speed 0.9 |"
    assert wav["sp1.1-b1"] == "sox x/b1.wav -t wav - speed 1.1 |"
    dur = read_text_table(sp / "utt2dur")
    assert float(dur["sp0.9-a1"]) == pytest.approx(3.0, abs=1e-3) and float(dur["sp1.1-b1"]) == pytest.approx(1.0, abs=1e-3)
    assert read_text_table(sp / "text")["sp1.0-a1"] == "HELLO THERE"
    assert read_text_table(sp / "utt2condition")["sp0.9-b1"] == "white_snr10"
    assert read_text_table(sp / "spk2gender")["sp0.9-b"] == "m"
    assert not (sp / "feats.scp").exists()  # features are made again from the perturbed audio
    assert validate_data_dir(sp) == {"utterances": 6, "speakers": 6}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["sp", "src"]  # no part dirs left


def test_speed_perturbation_bad_input(tmp_path):
    from kdhybrid.data.perturb import combine_data_dirs, speed_perturb_data_dir

    src = _audio_dir(tmp_path)
    with pytest.raises(ValueError, match="positive"):
        speed_perturb_data_dir(src, tmp_path / "x", 0)
    speed_perturb_data_dir(src, tmp_path / "p9", 0.9)
    with pytest.raises(ValueError, match="exists"):
        speed_perturb_data_dir(src, tmp_path / "p9", 0.9)
    with pytest.raises(ValueError, match="utterance 'sp0.9-a1' is in both"):
        combine_data_dirs(tmp_path / "c", [tmp_path / "p9", tmp_path / "p9"])
    assert not (tmp_path / "c").exists()

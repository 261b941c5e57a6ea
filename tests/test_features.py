"""Features: our make_fbank path equals kaldi-native-fbank on the same audio; CMVN stats in
Kaldi's format, readable by kaldi_native_io; Kaldi-written feats.scp read as is."""
import subprocess

import kaldi_native_fbank as knf
import kaldi_native_io as kio
import numpy as np
import pytest
import soundfile as sf

from kdhybrid.features.cmvn import accumulate_cmvn_stats, apply_cmvn
from kdhybrid.features.fbank import FbankConfig, iter_data_dir_audio, num_frames
from kdhybrid.io.datadir import DataDir, write_data_dir
from kdhybrid.io.tables import read_matrix_scp, read_text_table


@pytest.fixture
def wav_data_dir(tmp_path):
    rng = np.random.default_rng(0)
    utt2spk, wav = {}, {}
    for i, n in enumerate([16000, 8000, 12345]):
        x = (0.3 * np.sin(2 * np.pi * (200 + 100 * i) * np.arange(n) / 16000) + 0.01 * rng.standard_normal(n)).astype(np.float32)
        path = tmp_path / f"u{i}.flac"
        sf.write(str(path), x, 16000, subtype="PCM_16")
        utt = f"spk{i // 2}-u{i}"
        utt2spk[utt] = f"spk{i // 2}"
        wav[utt] = f"sox {path} -t wav - |" if i != 1 else str(path).replace(".flac", ".wav")
        if i == 1:
            sf.write(wav[utt], x, 16000, subtype="PCM_16")
    write_data_dir(DataDir(utt2spk=utt2spk, wav_scp=wav), tmp_path / "data")
    return tmp_path


def test_config_reads_kaldi_option_names(tmp_path):
    conf = tmp_path / "fbank.conf"
    conf.write_text("--num-mel-bins=40  # comment\n--dither=0.0\n--snip-edges=false\n")
    cfg = FbankConfig.from_kaldi_conf(conf)
    assert (cfg.num_mel_bins, cfg.dither, cfg.snip_edges) == (40, 0.0, False)
    opts = cfg.to_knf()
    assert opts.mel_opts.num_bins == 40 and opts.frame_opts.snip_edges is False
    conf.write_text("--num-mel-bin=40\n")
    with pytest.raises(ValueError, match=r"fbank.conf:1: unknown fbank option --num-mel-bin"):
        FbankConfig.from_kaldi_conf(conf)


def test_make_fbank_equals_kaldi_native_fbank(wav_data_dir, repo, venv_env):
    d = wav_data_dir / "data"
    conf = wav_data_dir / "fbank.conf"
    conf.write_text("--num-mel-bins=40\n--dither=0.0\n")
    r = subprocess.run(
        ["bash", str(repo / "steps/make_fbank.sh"), "--nj", "2", "--fbank-config", str(conf), str(d), str(wav_data_dir / "log"), str(wav_data_dir / "fbank")],
        cwd=repo, env=venv_env, capture_output=True, text=True,
    )
    assert r.returncode == 0, r.stdout + r.stderr
    ours = dict(read_matrix_scp(d / "feats.scp"))
    n2f = read_text_table(d / "utt2num_frames")
    opts = knf.FbankOptions()
    opts.frame_opts.dither = 0.0
    opts.mel_opts.num_bins = 40
    wav = read_text_table(d / "wav.scp")
    for utt, rx in wav.items():
        path = rx.split()[1] if rx.endswith("|") else rx
        x, sr = sf.read(path, dtype="int16")
        fb = knf.OnlineFbank(opts)
        fb.accept_waveform(16000, x.astype(np.float32))
        fb.input_finished()
        ref = np.stack([fb.get_frame(i) for i in range(fb.num_frames_ready)])
        assert ours[utt].shape == ref.shape == (num_frames(len(x), FbankConfig()), 40)
        assert int(n2f[utt]) == ref.shape[0]
        np.testing.assert_allclose(ours[utt], ref, rtol=0, atol=1e-5)
    # CMVN stats in Kaldi's format, per speaker.
    r = subprocess.run(["bash", str(repo / "steps/compute_cmvn_stats.sh"), str(d)], cwd=repo, env=venv_env, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    stats = dict(read_matrix_scp(d / "cmvn.scp"))
    assert set(stats) == {"spk0", "spk1"}
    s0 = stats["spk0"]
    assert s0.shape == (2, 41) and s0.dtype == np.float64
    assert s0[0, -1] == ours["spk0-u0"].shape[0] + ours["spk0-u1"].shape[0]
    both = np.concatenate([ours["spk0-u0"], ours["spk0-u1"]]).astype(np.float64)
    np.testing.assert_allclose(s0[0, :-1], both.sum(0), rtol=1e-6)
    # kaldi_native_io reads the double matrices too.
    reader = kio.RandomAccessDoubleMatrixReader(f"scp:{d / 'cmvn.scp'}")  # keep alive: its arrays view its memory
    np.testing.assert_allclose(reader["spk1"], stats["spk1"])
    normed = apply_cmvn(ours["spk1-u2"], stats["spk1"], norm_vars=True)
    np.testing.assert_allclose(normed.mean(0), 0, atol=1e-4)
    np.testing.assert_allclose(normed.std(0), 1, atol=1e-3)


def test_kaldi_written_feats_are_read_as_is(tmp_path):
    """A feats.scp/ark from Kaldi's own writer (kaldi_native_io here) works for CMVN."""
    rng = np.random.default_rng(0)
    feats = {f"s1-u{i}": rng.standard_normal((50 + i, 13)).astype(np.float32) for i in range(3)}
    with kio.FloatMatrixWriter(f"ark,scp:{tmp_path}/feats.ark,{tmp_path}/feats.scp") as w:
        for k, v in feats.items():
            w.write(k, v)
    got = dict(read_matrix_scp(tmp_path / "feats.scp"))
    for k in feats:
        np.testing.assert_array_equal(got[k], feats[k])
    st = accumulate_cmvn_stats(got.values())
    assert st[0, -1] == 50 + 51 + 52


def test_unreadable_audio_names_the_utterance(tmp_path):
    write_data_dir(DataDir(utt2spk={"s-u1": "s"}, wav_scp={"s-u1": str(tmp_path / "missing.wav")}), tmp_path / "d")
    with pytest.raises(Exception, match=r"s-u1.*\(no such file: .*missing.wav\)"):
        list(iter_data_dir_audio(tmp_path / "d", 16000))
    # a pipe from a file that is not there (a recipe dir moved without its corpus): the
    # decoder sees no data; the message gives sox's own complaint (a healthy pipe's warnings are not blamed)
    pipe = f"sox {tmp_path / 'gone.flac'} -t wav - |"
    for dur in (None, "1.0"):  # lhotse probes the entry (no reco2dur) / reads it when the features are made
        d = tmp_path / f"p{dur}"
        write_data_dir(DataDir(utt2spk={"s-u2": "s"}, wav_scp={"s-u2": pipe}), d)
        if dur:
            (d / "reco2dur").write_text(f"s-u2 {dur}\n")
        with pytest.raises(RuntimeError, match=r"s-u2.*the pipe failed: .*gone.flac"):
            list(iter_data_dir_audio(d, 16000))
    from kdhybrid.features.fbank import _source_error

    assert _source_error("echo 'sox WARN dither: clipped' >&2; true |") == ""  # a pipe that works is not blamed
    assert _source_error("true | false |") == " (the pipe exited with status 1)"  # pipefail: any command failing

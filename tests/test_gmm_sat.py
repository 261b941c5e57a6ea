"""tri2 (LDA+MLLT) and tri3 (SAT with fMLLR) on the tiny tier, from the recipe's tri1
alignments: Kaldi's file formats read by independent readers, byte-identical retraining
with another number of jobs, two-pass fMLLR decoding, and the bad-input paths.

The systems are trained with a short schedule (12 EM iterations, MLLT and fMLLR on
iterations 2 and 4, realignment on 10) to keep the suite's time; the recipe runs Kaldi's 35.
"""
import json
import os
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from conftest import REPO, alignment_bytes, copy_recipe, exp_md5s

SCHEDULE = "--num-iters 12 --beam 10 --retry-beam 100"
TRAIN = (f"steps/train_lda_mllt.sh --nj {{nj}} {SCHEDULE} --mllt-iters 2,4 200 1500 data/train data/lang exp/tri1_ali exp/tri2 && "
         f"steps/align.sh --nj {{nj}} --beam 10 --retry-beam 100 data/train data/lang exp/tri2 exp/tri2_ali && "
         f"steps/train_sat.sh --nj {{nj}} {SCHEDULE} --fmllr-iters 2,4 200 1500 data/train data/lang exp/tri2_ali exp/tri3 && "
         f"steps/align_fmllr.sh --nj {{nj}} --beam 10 --retry-beam 100 data/train data/lang exp/tri3 exp/tri3_ali")


def _run(d: Path, cmd: str, fails: bool = False) -> str:
    env = dict(os.environ, KDHYBRID_ROOT=str(REPO))
    r = subprocess.run(["bash", "-c", ". ./path.sh && " + cmd], cwd=d, env=env, capture_output=True, text=True)
    if fails:
        assert r.returncode != 0, r.stdout[-3000:]
        return r.stdout + r.stderr
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    return r.stdout


@pytest.fixture(scope="session")
def sat(gmm, tmp_path_factory):
    """tri2, tri2_ali, tri3, tri3_ali trained with 2 jobs in a copy of the tiny recipe."""
    d, _ = gmm
    s5 = copy_recipe(d, tmp_path_factory.mktemp("sat") / "s5", ["tri1_ali"])
    _run(s5, TRAIN.format(nj=2))
    return s5


def test_lda_mllt_and_fmllr_files_in_kaldi_formats(sat):
    """final.mat: Kaldi's binary float matrix (40 x 13*9), read by kaldiio; equal to the
    last MLLT times the one before ... times the LDA, i.e. its rows span the LDA's; trans.*:
    binary archives read by kaldi_native_io, every training speaker in exactly one file,
    each transform (40, 41) and not the identity; final.alimdl a model of the same tree."""
    import kaldi_native_io
    import kaldiio

    m = kaldiio.load_mat(str(sat / "exp/tri2/final.mat"))
    lda = kaldiio.load_mat(str(sat / "exp/tri2/0.mat"))
    assert m.shape == lda.shape == (40, 117) and m.dtype == np.float32
    assert (sat / "exp/tri2/final.mat").read_bytes()[:5] == b"\0BFM "
    # final.mat = M lda for a square M (the composed MLLTs): least squares recovers it exactly
    M, *_ = np.linalg.lstsq(lda.T.astype(np.float64), m.T.astype(np.float64), rcond=None)
    assert np.allclose(M.T @ lda, m, atol=1e-4) and abs(np.linalg.det(M)) > 1e-3
    assert (sat / "exp/tri3/final.mat").read_bytes() == (sat / "exp/tri2/final.mat").read_bytes()
    spks = set(l.split()[0] for l in (sat / "data/train/spk2utt").read_text().splitlines())
    seen = []
    for f in sorted((sat / "exp/tri3").glob("trans.*")):
        with kaldi_native_io.SequentialFloatMatrixReader(f"ark:{f}") as r:
            for key, mat in r:
                w = np.array(mat, copy=True)
                seen.append(key)
                assert w.shape == (40, 41)
                assert np.abs(w - np.hstack([np.eye(40), np.zeros((40, 1))])).max() > 0.01, key
    assert sorted(seen) == sorted(spks)
    tj = json.loads((sat / "exp/tri3/train.json").read_text())
    assert tj["speakers"] == len(spks) and tj["fmllr_initial"]["fallback"] == {}
    assert [h.get("fmllr_impr_per_frame", 0) > 0 for h in tj["history"] if "fmllr_impr_per_frame" in h] == [True, True]
    t2 = json.loads((sat / "exp/tri2/train.json").read_text())
    assert [h["mllt_impr_per_frame"] > 0 for h in t2["history"] if "mllt_impr_per_frame" in h] == [True, True]
    assert (sat / "exp/tri3/final.alimdl").read_text().startswith("<TransitionModel>")
    assert t2["aligned_utterances"] >= 195 and tj["aligned_utterances"] >= 195


def test_tri2_tri3_are_bit_reproducible(sat, gmm, tmp_path):
    """The same systems with 3 jobs instead of 2: every file but logs and per-job ones is
    byte-identical (final.mat, final.alimdl, models, trees, train.json), the alignments
    hold the same bytes in the same order, and every speaker's fMLLR transform is the same."""
    import kaldiio

    d, _ = gmm
    other = copy_recipe(d, tmp_path / "s5", ["tri1_ali"])
    _run(other, TRAIN.format(nj=3))
    per_job = lambda n: n == "num_jobs" or (n.startswith("ali.") and n.endswith(".gz")) or n.startswith("trans.")
    for e in ("tri2", "tri2_ali", "tri3", "tri3_ali"):
        a, b = sat / "exp" / e, other / "exp" / e
        ma = {k: v for k, v in exp_md5s(a).items() if not per_job(k)}
        mb = {k: v for k, v in exp_md5s(b).items() if not per_job(k)}
        assert ma == mb and {"final.mdl", "final.pkl", "final.mat"} <= ma.keys(), (e, {k for k in ma.keys() | mb.keys() if ma.get(k) != mb.get(k)})
        assert alignment_bytes(a) == alignment_bytes(b), e
    for e in ("tri3", "tri3_ali"):
        ta = {k: v for f in sorted((sat / "exp" / e).glob("trans.*")) for k, v in kaldiio.load_ark(str(f))}
        tb = {k: v for f in sorted((other / "exp" / e).glob("trans.*")) for k, v in kaldiio.load_ark(str(f))}
        assert ta.keys() == tb.keys() and all(np.array_equal(ta[k], tb[k]) for k in ta), e


def test_two_pass_fmllr_decoding(sat, gmm):
    """decode_fmllr.sh on a 3-gram of the tiny tier's transcripts: the first pass (final.alimdl,
    unadapted) and the second (final.mdl on fMLLR-adapted features) are both scored decode
    dirs; adaptation lowers the WER. Decoding is deterministic, so these are fixed numbers of
    the tiny tier (measured 2026-12-01: see the assertion message)."""
    from conftest import ensure_small_graph

    ensure_small_graph(gmm)
    d, _ = gmm
    for x in ("lang_test_small",):
        if not (sat / "data" / x).exists():
            shutil.copytree(d / "data" / x, sat / "data" / x)
    _run(sat, "steps/mkgraph.sh data/lang_test_small exp/tri3 exp/tri3/graph_small")
    out = _run(sat, "steps/decode_fmllr.sh --nj 2 --decode-opts '--beam 10 --max-active 2000' exp/tri3/graph_small data/dev exp/tri3/decode_small_dev")
    assert "est_fmllr:" in out
    si = json.loads((sat / "exp/tri3/decode_small_dev.si/wer.json").read_text())
    ad = json.loads((sat / "exp/tri3/decode_small_dev/wer.json").read_text())
    w_si, w_ad = si["wer"], ad["wer"]
    assert w_ad < w_si, (w_si, w_ad)
    assert sorted(p.name for p in (sat / "exp/tri3/decode_small_dev").glob("trans.*")) == ["trans.1", "trans.2"]


def test_sat_bad_input(sat):
    """A speaker with too little data keeps the identity, named; a SAT model decoded without
    transforms, or with a speaker missing from them, fails naming what is missing."""
    import kaldiio

    # one short utterance per speaker (< 500 frames): every transform falls back
    utt2spk = [l.split() for l in (sat / "data/dev/utt2spk").read_text().splitlines()]
    first = {}
    for u, s in utt2spk:
        first.setdefault(s, u)
    (sat / "short.list").write_text("\n".join(sorted(first.values())) + "\n")
    _run(sat, "python -c \"from kdhybrid.io.datadir import subset_data_dir; "
              "subset_data_dir('data/dev', open('short.list').read().split(), 'data/dev_short')\"")
    _run(sat, "steps/align_fmllr.sh --nj 1 data/dev_short data/lang exp/tri3 exp/tri3_ali_short")
    log = (sat / "exp/tri3_ali_short/log/fmllr.1.log").read_text()
    spk = sorted(first)[0]
    assert "kept the identity" in log and f"{spk}: too few frames" in log, log[-2000:]
    w = dict(kaldiio.load_ark(str(sat / "exp/tri3_ali_short/trans.1")))[spk]
    assert np.array_equal(w, np.hstack([np.eye(40), np.zeros((40, 1))]).astype(np.float32))
    err = _run(sat, "python -m kdhybrid.bin.align_gmm exp/tri3 data/lang data/dev_short /dev/null", fails=True)
    assert "needs fMLLR transforms" in err or "speaker-adapted" in err, err[-1500:]
    os.makedirs(sat / "exp/partial_trans", exist_ok=True)
    from kdhybrid.io.tables import write_transform_ark

    write_transform_ark(sat / "exp/partial_trans/trans.1", {s: np.hstack([np.eye(40), np.zeros((40, 1))]) for s in sorted(first)[1:]})
    err = _run(sat, "python -m kdhybrid.bin.align_gmm --transform-dir exp/partial_trans exp/tri3 data/lang data/dev_short /dev/null", fails=True)
    assert f"no fMLLR transform for speaker '{spk}'" in err, err[-1500:]


def test_kaldi_tri3b_ali_dir_imports_as_labels(sat, tmp_path):
    """A Kaldi-made SAT alignment dir (binary final.mdl, final.mat, trans.*, ali.*.gz, no
    kdhybrid files) gives the neural models the same frame labels as ours: make_cuts reads
    its transition model and alignments."""
    from test_gmm import _kaldi_binary_transition_model

    from kdhybrid.gmm.model import GmmHmm

    kaldi = tmp_path / "tri3b_ali"
    kaldi.mkdir()
    ours = sat / "exp/tri3_ali"
    (kaldi / "final.mdl").write_bytes(_kaldi_binary_transition_model(GmmHmm.load(ours), False))
    for f in ("final.mat", "num_jobs", "tree"):
        shutil.copy(ours / f, kaldi / f)
    for f in list(ours.glob("ali.*.gz")) + list(ours.glob("trans.*")):
        shutil.copy(f, kaldi / f.name)
    _run(sat, f"python -m kdhybrid.bin.make_cuts --ali-dir {kaldi} data/train {tmp_path}/cuts_kaldi")
    _run(sat, f"python -m kdhybrid.bin.make_cuts --ali-dir exp/tri3_ali data/train {tmp_path}/cuts_ours")
    from lhotse import CutSet

    from kdhybrid.data.cuts import LABEL_FIELD

    def labels(d):
        return {c.id: c.load_custom(LABEL_FIELD) if c.has_custom(LABEL_FIELD) else None for c in CutSet.from_file(d / "cuts.jsonl.gz")}

    a, b = labels(tmp_path / "cuts_kaldi"), labels(tmp_path / "cuts_ours")
    assert a.keys() == b.keys() and sum(v is not None for v in a.values()) >= 195
    assert all((a[k] is None and b[k] is None) or np.array_equal(a[k], b[k]) for k in a)


def test_fmllr_features_for_neural_models(sat, tmp_path):
    """steps/make_fmllr_feats.sh writes the SAT system's adapted features as a data dir (Kaldi's
    steps/nnet/make_fmllr_feats.sh): read back by kaldiio they equal the pipeline computed here
    independently (a DCT-II through numpy's FFT, splicing by index, final.mat and trans.* read by kaldiio); the
    dir has the source's tables and no cmvn.scp, and make_cuts takes it as it is. A speaker
    without a transform fails naming it, and leaves no target dir behind."""
    import kaldiio

    def dct(x, n):  # orthonormal DCT-II along the rows from the FFT of the mirrored rows; first n
        m = x.shape[1]
        y = np.fft.fft(np.concatenate([x, x[:, ::-1]], axis=1), axis=1)[:, :m]
        c = np.real(y * np.exp(-1j * np.pi * np.arange(m) / (2 * m))) / 2
        return c[:, :n] * np.r_[np.sqrt(1 / m), np.full(m - 1, np.sqrt(2 / m))][:n]

    out = _run(sat, "steps/make_fmllr_feats.sh --nj 2 --transform-dir exp/tri3_ali data-fmllr-tri3/train data/train exp/tri3 "
                    "exp/make_fmllr/train fmllr")
    assert "make_fmllr_feats: " in out
    tgt, src = sat / "data-fmllr-tri3/train", sat / "data/train"
    assert not (tgt / "cmvn.scp").exists()
    for f in ("text", "utt2spk", "spk2utt", "wav.scp"):
        assert (tgt / f).read_text() == (src / f).read_text(), f
    feats = dict(kaldiio.load_scp(str(tgt / "feats.scp")))
    fbank = dict(kaldiio.load_scp(str(src / "feats.scp")))
    cmvn = dict(kaldiio.load_scp(str(src / "cmvn.scp")))
    utt2spk = dict(l.split() for l in (src / "utt2spk").read_text().splitlines())
    assert feats.keys() == fbank.keys()
    mat = kaldiio.load_mat(str(sat / "exp/tri3/final.mat"))  # (40, 13 * 9)
    trans = {k: v for f in sorted((sat / "exp/tri3_ali").glob("trans.*")) for k, v in kaldiio.load_ark(str(f))}
    lift = 1 + 11 * np.sin(np.pi * np.arange(13) / 22)
    for utt in sorted(feats)[::7]:
        st = cmvn[utt2spk[utt]]
        x = fbank[utt] - st[0, :-1] / st[0, -1]
        c = dct(x, 13) * lift
        idx = np.clip(np.arange(len(c))[:, None] + np.arange(-4, 5)[None], 0, len(c) - 1)
        y = c[idx].reshape(len(c), -1) @ mat.T
        w = trans[utt2spk[utt]]
        want = y @ w[:, :40].T + w[:, 40]
        assert feats[utt].shape == (len(x), 40) and feats[utt].dtype == np.float32
        assert np.allclose(feats[utt], want, atol=2e-3, rtol=1e-4), (utt, np.abs(feats[utt] - want).max())
    nf = dict(l.split() for l in (tgt / "utt2num_frames").read_text().splitlines())
    assert all(int(nf[u]) == len(m) for u, m in feats.items())
    out = _run(sat, f"python -m kdhybrid.bin.make_cuts --ali-dir exp/tri3_ali data-fmllr-tri3/train {tmp_path}/cuts")
    made = json.loads(out.split("cuts.jsonl.gz: ", 1)[1])
    assert made["feat_dim"] == 40 and made["cmvn"] is False and made["cuts"] > 0 and made["features"] == "fmllr(tri3)"
    # a network remembers its features: the fbank data dir (also 40-dim) is refused, naming both
    import torch

    from kdhybrid.decode.acoustic import NnetScorer, check_input_features
    from kdhybrid.nnet.models import ModelConfig, build_model

    net = build_model(ModelConfig(arch="tdnn", num_pdfs=5, hidden=8, num_layers=2, input_features=made["features"]))
    scorer = NnetScorer.from_model(net, torch.zeros(5))
    check_input_features(scorer, tgt)
    from kdhybrid.io.datadir import split_data

    for job in split_data(tgt, 2):  # decode and dump jobs read splits: they keep the kind
        check_input_features(scorer, job)
    with pytest.raises(ValueError, match=r"its features are fbank, but .* was trained on fmllr\(tri3\) features"):
        check_input_features(scorer, src)
    # the teacher dump runs on the fMLLR dir (no cmvn.scp): one posterior a frame, read back by kaldi_native_io
    import kaldi_native_io as kio

    from kdhybrid.train.trainer import save_final

    (tmp_path / "net").mkdir()
    save_final(tmp_path / "net/final.pt", net, torch.zeros(5), {})
    _run(sat, f"steps/dump_teacher_posteriors.sh --nj 2 --topk 3 data-fmllr-tri3/train {tmp_path}/net {tmp_path}/post")
    frames = {u: int(n) for u, n in (l.split() for l in (tgt / "utt2num_frames").read_text().splitlines())}
    got = {u: len(post) for u, post in kio.SequentialPosteriorReader(f"scp:{tmp_path}/post/post.scp")}
    assert got == frames and all(len(f) == 3 for _, post in kio.SequentialPosteriorReader(f"scp:{tmp_path}/post/post.scp") for f in post)
    from lhotse import CutSet

    from kdhybrid.data.cuts import CMVN_FIELD
    from kdhybrid.train.data import load_example

    cut = next(iter(CutSet.from_file(tmp_path / "cuts/cuts.jsonl.gz")))
    assert not cut.has_custom(CMVN_FIELD)
    assert np.array_equal(load_example(cut, need_labels=False)[0], feats[cut.id])
    # fbank features without cmvn.scp are refused; a speaker without a transform names it
    shutil.copytree(src, tmp_path / "nocmvn", ignore=shutil.ignore_patterns("split*", "cmvn.scp"))
    err = _run(sat, f"python -m kdhybrid.bin.make_cuts {tmp_path}/nocmvn {tmp_path}/cuts2", fails=True)
    assert "cmvn.scp is needed" in err, err[-1500:]
    spks = sorted(set(utt2spk.values()))
    from kdhybrid.io.tables import write_transform_ark

    (sat / "exp/trans_partial").mkdir(exist_ok=True)
    write_transform_ark(sat / "exp/trans_partial/trans.1", {s: trans[s] for s in spks[1:]})
    err = _run(sat, "steps/make_fmllr_feats.sh --nj 2 --transform-dir exp/trans_partial data-fmllr-tri3/bad data/train exp/tri3 "
                    "exp/make_fmllr/bad fmllr", fails=True)
    assert not (sat / "data-fmllr-tri3/bad").exists()
    logs = "".join(p.read_text() for p in (sat / "exp/make_fmllr/bad").glob("*.log"))
    assert f"no fMLLR transform for speaker '{spks[0]}'" in logs + err, (logs + err)[-1500:]

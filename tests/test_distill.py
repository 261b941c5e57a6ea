"""Teacher ensembles and the top-k posterior dump, on the tiny tier: two small members of
different architectures trained on tri1's senones, fused both ways, decoded through
steps/decode.sh, dumped to Kaldi Posterior archives read back by kaldi_native_io; a dump
killed mid-way and resumed is byte-identical to an uninterrupted one."""
import json
import os
import signal
import subprocess
import time

import kaldi_native_io as kio
import numpy as np
import pytest
import torch
from conftest import REPO, ensure_small_graph

from kdhybrid.distill.ensemble import EnsembleConfig, EnsembleScorer, fuse, simplex_grid
from kdhybrid.io.tables import read_text_table

# The tiny members are weak (dev WER ~98%): their flat posteriors fill any search to
# --max-active, so the decodes here cost frames x max-active. These tests check what the
# steps do, not how well: 250 active tokens decode dev in about a sixth of the time of
# 2,000 (measured: 500 tokens 30 s, 2,000 about 95 s).
FAST = "--beam 10 --max-active 250"
SMALL = "epochs=1 max_duration=60 warmup_steps=5 spec_augment=false model.hidden=48 model.num_layers=2 model.lstm_hidden=32"


@pytest.fixture(scope="module")
def members(gmm):
    d, run = gmm
    for arch in ("tdnn", "blstm"):
        if not (d / f"exp/{arch}_m/final.pt").is_file():
            run(f"steps/train_nnet.sh --config conf/{arch}.yaml --cuts data/cuts --set-opts '{SMALL}' data/train exp/tri1_ali exp/{arch}_m")
    return d, run


def test_fusions_by_hand():
    """posterior fusion = log of the weighted mean of softmaxes; logit fusion = softmax of the
    weighted mean of logits; temperature divides the logits."""
    z1, z2 = torch.randn(5, 7), torch.randn(5, 7)
    p = fuse([z1, z2], [3.0, 1.0], "posterior")
    torch.testing.assert_close(p.exp(), 0.75 * z1.softmax(-1) + 0.25 * z2.softmax(-1))
    q = fuse([z1, z2], [3.0, 1.0], "logit", temperature=2.0)
    torch.testing.assert_close(q.exp(), ((0.75 * z1 + 0.25 * z2) / 2.0).softmax(-1))
    assert simplex_grid(3, 0.5) == [[0.0, 0.0, 1.0], [0.0, 0.5, 0.5], [0.0, 1.0, 0.0], [0.5, 0.0, 0.5], [0.5, 0.5, 0.0], [1.0, 0.0, 0.0]]
    with pytest.raises(ValueError, match="fusion"):
        EnsembleConfig(["a"], fusion="max")
    # the dump's top-k: most probable first; k = 0 keeps every pdf in id order
    from kdhybrid.distill.dump import topk_posteriors

    lp = torch.randn(4, 150).log_softmax(-1)
    ids, probs, mass = topk_posteriors(lp, 3)
    assert ids.shape == (4, 3) and (np.diff(probs, axis=1) <= 0).all() and mass.shape == (100,)
    np.testing.assert_allclose(probs, lp.exp().sort(-1, descending=True).values[:, :3].numpy())
    np.testing.assert_allclose(mass[2], probs.sum(), rtol=1e-5)
    ids, probs, _ = topk_posteriors(lp, 0)
    assert ids.shape == (4, 150) and (ids == np.arange(150)).all()
    np.testing.assert_allclose(probs.sum(1), 1.0, rtol=1e-5)


def test_ensemble_weights_decode_and_oracle(members):
    d, run = members
    g = ensure_small_graph((d, run))
    for fusion in ("posterior", "logit"):
        crit = f"--criterion wer --candidates 2 --graph {g.relative_to(d)} --decode-opts '{FAST}'" if fusion == "logit" else ""
        run(f"steps/make_ensemble.sh --fusion {fusion} --grid-step 0.25 {crit} exp/ens_{fusion} exp/tdnn_m exp/blstm_m")
        cfg = EnsembleConfig.load(d / f"exp/ens_{fusion}")
        grid = json.loads((d / f"exp/ens_{fusion}/grid.json").read_text())
        assert len(grid) == 5 and grid[0]["ce"] == min(r["ce"] for r in grid)
        if fusion == "posterior":  # chosen by dev CE: no worse than either member alone
            assert cfg.weights == grid[0]["weights"]
            assert cfg.selection["dev_ce"] <= min(cfg.selection["members_dev_ce"].values()) + 1e-6
            # each member alone scores what its training history says (output frames, 30 ms)
            for m, ce in cfg.selection["members_dev_ce"].items():
                best = min(torch.load(d / m / "final.pt")["history"], key=lambda h: h["dev_ce"])
                assert ce == pytest.approx(best["dev_ce"], rel=1e-4)
                assert cfg.selection["members_dev_acc"][m] == pytest.approx(best["dev_acc"], abs=1e-4)
        else:  # chosen by dev WER among the two best by CE
            wers = cfg.selection["candidates"]
            assert len(wers) == 2 and cfg.weights in [grid[0]["weights"], grid[1]["weights"]]
            assert wers[json.dumps(cfg.weights)] == min(wers.values())
    # --share-of 1: the candidates are the CE-best vector at each weight of the last member (1, 0.5, 0 at step 0.5), not
    # the N best (decoding them and choosing by dev WER is the shell step tested above with --candidates)
    run("python -m kdhybrid.bin.make_ensemble --fusion logit --grid-step 0.5 --dev-cuts data/cuts/dev --candidates 1 --share-of 1 "
        "exp/ens_share exp/tdnn_m exp/blstm_m")
    grid = json.loads((d / "exp/ens_share/grid.json").read_text())
    cands = [EnsembleConfig.load(c) for c in sorted((d / "exp/ens_share").glob("cand.*"))]
    assert [c.weights[1] for c in cands] == [0.0, 0.5, 1.0] and all(c.selection["share_of"] == 1 for c in cands)
    for c in cands:
        assert c.selection["dev_ce"] == round(min(r["ce"] for r in grid if r["weights"][1] == c.weights[1]), 4)
    # An ensemble is scored like its members: weights (1, 0) give member 1's log-likelihoods.
    from kdhybrid.decode.acoustic import NnetScorer, iter_feature_batches

    utts, feats, cmvn = next(iter_feature_batches(d / "data/dev", 3000))
    one = EnsembleScorer(EnsembleConfig([str(d / "exp/tdnn_m"), str(d / "exp/blstm_m")], [1.0, 0.0], "posterior"))
    for a, b in zip(one.loglikes(feats, cmvn), NnetScorer(d / "exp/tdnn_m/final.pt").loglikes(feats, cmvn)):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-4)
    for x in ("tdnn_m", "blstm_m", "ens_logit"):
        run(f"steps/decode.sh --nj 2 {FAST} {g.relative_to(d)} data/dev exp/{x}/decode_small_dev")
        w = json.loads((d / f"exp/{x}/decode_small_dev/wer.json").read_text())
        assert w["sentences"] == 50 and w["missing_utts"] == 0 and w["frames"] > 0 and "rtf_total" not in w
        assert json.loads((d / f"exp/{x}/decode_small_dev/log/rtf.json").read_text())["rtf_total"] > 0
    out = run("python -m kdhybrid.bin.oracle --out exp/oracle.json data/dev exp/tdnn_m/decode_small_dev exp/blstm_m/decode_small_dev exp/ens_logit/decode_small_dev")
    rows = json.loads((d / "exp/oracle.json").read_text())
    assert len(rows) == 3 + 1 and "oracle WER" in out
    assert all(r["oracle_wer"] <= r["best_single_wer"] for r in rows)


def test_members_must_agree(members, tmp_path):
    from kdhybrid.nnet.models import ModelConfig, build_model
    from kdhybrid.train.trainer import save_final

    d, _ = members
    other = tmp_path / "other"
    other.mkdir()
    m = build_model(ModelConfig(arch="tdnn", num_pdfs=123, hidden=16, num_layers=2))
    save_final(other / "final.pt", m, torch.zeros(123), {})
    with pytest.raises(ValueError, match=f"disagree on pdf count: {d / 'exp/tdnn_m'} has 200, {other} has 123"):
        EnsembleScorer(EnsembleConfig([str(d / "exp/tdnn_m"), str(other)]))
    # same pdf set, but outputs at another frame rate than the member's (conf/tdnn.yaml: 30 ms)
    sub = torch.load(d / "exp/tdnn_m/final.pt")["model_config"]["subsampling"]
    odd = 1 if sub == 3 else 3
    slow = tmp_path / "slow"
    slow.mkdir()
    m = build_model(ModelConfig(arch="tdnn", num_pdfs=200, hidden=16, num_layers=3, subsampling=odd))
    save_final(slow / "final.pt", m, torch.zeros(200), {})
    with pytest.raises(ValueError, match=f"disagree on frame subsampling: {d / 'exp/tdnn_m'} has {sub}, {slow} has {odd}"):
        EnsembleScorer(EnsembleConfig([str(d / "exp/tdnn_m"), str(slow)]))


def dump_cmd(topk, out, nj=2):
    return f"steps/dump_teacher_posteriors.sh --nj {nj} --topk {topk} --batch-frames 3000 data/train exp/ens_teacher {out}"


def logit_teacher(d, run):
    """exp/ens_teacher: the two members' logit fusion, weights by dev CE (made once per
    module, by whichever test needs it first; test_ensemble_weights_decode_and_oracle makes
    its own ensembles elsewhere, so the dumps' teacher does not depend on the test order)."""
    if not (d / "exp/ens_teacher/ensemble.json").is_file():
        run("steps/make_ensemble.sh --fusion logit --grid-step 0.5 exp/ens_teacher exp/tdnn_m exp/blstm_m")


def teacher_dump_k5(d, run):
    """exp/post_k5: exp/ens_teacher's top-5 dump of data/train (made once per module)."""
    logit_teacher(d, run)
    if not (d / "exp/post_k5/post.json").is_file():
        run(dump_cmd(5, "exp/post_k5"))


def test_dump_is_kaldi_readable_and_matches_labels(members, monkeypatch):
    from lhotse import CutSet

    from kdhybrid.io.posterior import PosteriorReader

    d, run = members
    logit_teacher(d, run)
    run(dump_cmd(5, "exp/post_k5"))
    monkeypatch.chdir(d)  # the cuts' arrays are relative to the recipe dir
    info = json.loads((d / "exp/post_k5/post.json").read_text())
    cuts = CutSet.from_file(d / "data/cuts/train/cuts.jsonl.gz")
    labels = {c.id: c.load_custom("pdf_ali") for c in cuts}
    n2f = {k: int(v) for k, v in read_text_table(d / "data/train/utt2num_frames").items()}
    seen = set()
    for j in (1, 2):
        for key, post in kio.SequentialPosteriorReader(f"ark:{d}/exp/post_k5/post.{j}.ark"):
            assert len(post) == n2f[key] and all(len(f) == 5 for f in post)
            if key in labels:  # utterances that failed alignment have no cut (and no hard labels)
                assert len(post) == len(labels[key])
            probs = [p for _, p in post[0]]
            assert probs == sorted(probs, reverse=True) and 0.0 < sum(probs) <= 1.0 + 1e-5
            seen.add(key)
    assert seen == set(n2f) and info["utts"] == len(n2f) and info["frames"] == sum(n2f.values()) and set(labels) <= seen
    # our reader, by scp offset, agrees with the teacher recomputed here
    teacher = EnsembleScorer.load(d / "exp/ens_teacher")
    r = PosteriorReader(d / "exp/post_k5/post.scp")
    from kdhybrid.decode.acoustic import iter_feature_batches

    utts, feats, cmvn = next(iter_feature_batches(d / "data/train", 2000))
    lp = teacher.log_posteriors(feats[:1], cmvn[:1])[0]
    ids, probs = r[utts[0]].to_topk()
    top = torch.topk(lp.exp(), 5)
    np.testing.assert_array_equal(ids, top.indices.numpy())
    np.testing.assert_allclose(probs, top.values.numpy(), rtol=1e-5, atol=1e-6)
    # mass curve: non-decreasing, top-5 entry is the recorded mean mass, bytes per frame = 5 + 10 k (+ key overhead)
    curve = [info["mass_curve"][str(k)] for k in range(1, 101)]
    assert all(a <= b + 1e-9 for a, b in zip(curve, curve[1:])) and info["mean_topk_mass"] == curve[4]
    assert 55.0 <= info["bytes_per_frame"] < 56.0 and (d / "exp/post_k5/mass_curve.png").stat().st_size > 1000


def test_full_distribution_dump(members, monkeypatch):
    """--topk 0 (the full-distillation baseline): every frame holds all pdfs in pdf order with
    the teacher's probabilities, which sum to 1; post.json says K = num_pdfs and keeps all the
    mass, and its mass curve is the top-5 dump's."""
    from kdhybrid.decode.acoustic import iter_feature_batches
    from kdhybrid.io.posterior import PosteriorReader

    d, run = members
    teacher_dump_k5(d, run)
    run(dump_cmd(0, "exp/post_kall", nj=1))
    info = json.loads((d / "exp/post_kall/post.json").read_text())
    k5 = json.loads((d / "exp/post_k5/post.json").read_text())
    assert info["K"] == 200 and info["mean_topk_mass"] == 1.0 and info["frames"] == k5["frames"]
    assert all(abs(info["mass_curve"][k] - k5["mass_curve"][k]) < 1e-6 for k in k5["mass_curve"])
    assert 2005.0 <= info["bytes_per_frame"] < 2006.0  # 5 + 10 k (+ key overhead), as for k = 5
    monkeypatch.chdir(d)  # feats.scp and post.scp name their archives relative to the recipe dir
    teacher = EnsembleScorer.load(d / "exp/ens_teacher")
    utts, feats, cmvn = next(iter_feature_batches(d / "data/train", 2000))
    r = PosteriorReader(d / "exp/post_kall/post.scp")
    for u, lp in zip(utts[:3], teacher.log_posteriors(feats[:3], cmvn[:3])):
        ids, probs = r[u].to_topk()
        assert ids.shape == (lp.shape[0], 200) and (ids == np.arange(200)).all()
        np.testing.assert_allclose(probs, lp.exp().numpy(), rtol=1e-5, atol=1e-7)
        np.testing.assert_allclose(probs.sum(1), 1.0, atol=1e-4)


def test_dump_resume_after_kill_is_byte_identical(members):
    d, run = members
    teacher_dump_k5(d, run)
    env = dict(os.environ, KDHYBRID_ROOT=str(REPO))
    p = subprocess.Popen(["bash", "-c", ". ./path.sh && " + dump_cmd(5, "exp/post_k5_killed")], cwd=d, env=env,
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    out = d / "exp/post_k5_killed"
    deadline = time.time() + 300
    while time.time() < deadline and not any(f.stat().st_size > 0 for f in out.glob("post.*.ark.tmp")):
        time.sleep(0.02)  # kill while an archive is being written
    os.killpg(p.pid, signal.SIGKILL)
    p.wait()
    done = sorted(x.name for x in out.glob("dump.*.json"))
    assert len(done) < 2 and not (out / "post.json").exists() and list(out.glob("*.tmp")), done  # killed mid-way
    log = run(dump_cmd(5, "exp/post_k5_killed"))
    assert "jobs to run: " + ("2" if done == ["dump.1.json"] else "1 2" if not done else "1") in log
    for f in ("post.1.ark", "post.2.ark", "post.1.scp", "post.2.scp"):
        assert (out / f).read_bytes() == (d / "exp/post_k5" / f).read_bytes().replace(b"post_k5/", b"post_k5_killed/"), f
    assert not list(out.glob("*.tmp"))


def test_dump_cut_from_a_larger_dump_equals_a_direct_dump(members):
    """--from-dump: the top 2 of the top-5 dump are the teacher's top 2 (a direct top-2 dump)."""
    d, run = members
    teacher_dump_k5(d, run)
    run(dump_cmd(2, "exp/post_k2"))
    run("steps/dump_teacher_posteriors.sh --nj 2 --topk 2 --from-dump exp/post_k5 data/train exp/ens_teacher exp/post_k2_cut")
    for j in (1, 2):
        direct = dict(kio.SequentialPosteriorReader(f"ark:{d}/exp/post_k2/post.{j}.ark"))
        cut = dict(kio.SequentialPosteriorReader(f"ark:{d}/exp/post_k2_cut/post.{j}.ark"))
        assert direct.keys() == cut.keys() and len(cut) > 0
        for k in cut:
            assert [[i for i, _ in f] for f in cut[k]] == [[i for i, _ in f] for f in direct[k]], k
            np.testing.assert_allclose([[p for _, p in f] for f in cut[k]], [[p for _, p in f] for f in direct[k]], rtol=1e-6)
    a, b = (json.loads((d / f"exp/{x}/post.json").read_text()) for x in ("post_k2", "post_k2_cut"))
    assert b["K"] == 2 and b["frames"] == a["frames"] and b["mass_curve"] == json.loads((d / "exp/post_k5/post.json").read_text())["mass_curve"]
    assert abs(b["mean_topk_mass"] - a["mean_topk_mass"]) < 1e-5
    err = run("steps/dump_teacher_posteriors.sh --nj 2 --topk 10 --from-dump exp/post_k5 data/train exp/ens_teacher exp/post_k10_bad", fails=True)
    assert "failed, see exp/post_k10_bad/log/dump.1.log" in err  # the job's log says why (run.pl's convention)
    assert "exp/post_k5/post.json: a top-5 dump cannot give top-10" in (d / "exp/post_k10_bad/log/dump.1.log").read_text()


def test_student_step_from_a_member(members):
    """steps/train_student.sh end to end: the top-5 dump, multitask, initialised from the
    TDNN member; the checkpoint says so, and it decodes through steps/decode.sh."""
    d, run = members
    teacher_dump_k5(d, run)
    log = run(f"steps/train_student.sh --config conf/student.yaml --cuts data/cuts --init-from exp/tdnn_m/final.pt "
              f"--set-opts '{SMALL} model.num_layers=2' data/train exp/tri1_ali exp/post_k5 exp/student_m")
    assert "initialised from exp/tdnn_m/final.pt" in (d / "exp/student_m/log/train.log").read_text() + log
    ck = torch.load(d / "exp/student_m/final.pt", map_location="cpu")
    assert ck["init_from"] == "exp/tdnn_m/final.pt" and ck["train_config"]["distill"]["posts"] == "exp/post_k5/post.scp"
    assert ck["train_config"]["distill"]["objective"] == "multitask" and len(ck["history"]) == 1
    # the member's weights were the starting point: closer to them than a fresh model's
    member = torch.load(d / "exp/tdnn_m/final.pt", map_location="cpu")["state_dict"]
    w = "layers.0.conv.weight"
    assert (ck["state_dict"][w] - member[w]).norm() < 0.5 * member[w].norm()
    ensure_small_graph((d, run))
    run(f"steps/decode.sh --nj 1 {FAST} exp/tri1/graph_small data/dev exp/student_m/decode_dev")
    assert json.loads((d / "exp/student_m/decode_dev/wer.json").read_text())["words"] > 0


def test_dump_bad_input(members):
    import shutil

    d, run = members
    logit_teacher(d, run)
    bad = d / "data/train_nofeats"
    shutil.copytree(d / "data/train", bad, dirs_exist_ok=True, ignore=shutil.ignore_patterns("split*"))
    lines = (bad / "feats.scp").read_text().splitlines()
    victim = lines[3].split()[0]
    (bad / "feats.scp").write_text("\n".join(lines[:3] + lines[4:]) + "\n")
    err = run("steps/dump_teacher_posteriors.sh --nj 1 data/train_nofeats exp/ens_teacher exp/post_bad", fails=True)
    job_log = d / "exp/post_bad/log/dump.1.log"
    text = err + (job_log.read_text() if job_log.is_file() else "")
    assert f"no features for utterance '{victim}'" in text or f"'{victim}'" in text, text[-2000:]
    assert not (d / "exp/post_bad/post.1.ark").exists()


def test_share_candidates_one_a_share_of_the_last_members():
    """One candidate at each total weight of the last members, the lowest CE there, by share;
    the CE-best overall (share 0 here) is one of them, not the only one."""
    from kdhybrid.distill.ensemble import share_candidates

    grid = simplex_grid(3, 0.5)  # the last member's weight: 1, 0.5, 0, 0.5, 0, 0 (see above)
    ce = {(0.0, 0.0, 1.0): 3.0, (0.0, 0.5, 0.5): 2.2, (0.0, 1.0, 0.0): 2.5, (0.5, 0.0, 0.5): 2.4, (0.5, 0.5, 0.0): 2.0, (1.0, 0.0, 0.0): 2.1}
    res = [{"weights": w, "ce": ce[tuple(w)]} for w in grid]
    assert [r["weights"] for r in share_candidates(res, 1)] == [[0.5, 0.5, 0.0], [0.0, 0.5, 0.5], [0.0, 0.0, 1.0]]
    assert [r["weights"] for r in share_candidates(res, 2)] == [[1.0, 0.0, 0.0], [0.5, 0.5, 0.0], [0.0, 0.5, 0.5]]
    with pytest.raises(ValueError, match="the last 3 of 3 members"):
        share_candidates(res, 3)

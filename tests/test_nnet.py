"""The acoustic model zoo and its training: shapes, heads, bad input, checkpoint resume
bit for bit, and data-parallel training equal to one process."""
import json
import subprocess
import sys

import numpy as np
import pytest
import torch

from kdhybrid.nnet.models import ARCHS, ModelConfig, build_model
from kdhybrid.train.data import BadCutError, load_example
from kdhybrid.train.trainer import TrainConfig, load_final, train

NUM_PDFS = 12


def make_cuts(path, n=24, seed=0, bad=None):
    """Synthetic cuts: features whose first dims encode the label (learnable), written with
    lhotse's writers, labels as TemporalArray, CMVN stats as an Array."""
    from lhotse import CutSet, MonoCut
    from lhotse.features.io import NumpyFilesWriter
    from lhotse.features.base import Features

    rng = np.random.default_rng(seed)
    cuts = []
    with NumpyFilesWriter(path / "arrays") as w:
        for i in range(n):
            t = int(rng.integers(60, 140))
            lab = np.repeat(rng.integers(0, NUM_PDFS, t // 10 + 1), 10)[:t].astype(np.int32)
            x = rng.standard_normal((t, 40)).astype(np.float32)
            x[np.arange(t), lab] += 3.0
            if bad == "nan" and i == 3:
                x[5, 5] = np.nan
            if bad == "length" and i == 3:
                lab = lab[:-5]
            if bad == "pdf" and i == 3:
                lab[0] = NUM_PDFS + 7
            cid = f"spk{i % 3}-utt{i:03d}"
            info = w.store_array(f"f_{cid}", x)
            feats = Features(type="fbank", num_frames=t, num_features=40, frame_shift=0.01, sampling_rate=16000,
                             start=0, duration=t * 0.01, storage_type=info.storage_type, storage_path=info.storage_path,
                             storage_key=info.storage_key)
            cut = MonoCut(id=cid, start=0, duration=t * 0.01, channel=0, features=feats)
            cut = cut.with_custom("pdf_ali", w.store_array(cid, lab, frame_shift=0.01, temporal_dim=0))
            cut = cut.with_custom("cmvn", w.store_array(f"cmvn_{cid}", np.stack([np.r_[np.zeros(40), 1.0], np.r_[np.ones(40) * 1.0, 0.0]])))
            cuts.append(cut)
    cs = CutSet.from_cuts(cuts)
    cs.to_file(path / "cuts.jsonl.gz")
    return path / "cuts.jsonl.gz"


def small_cfg(**kw):
    m = dict(arch="tdnn", num_pdfs=NUM_PDFS, hidden=48, num_layers=3, dropout=0.0)
    m.update(kw.pop("model", {}))
    base = dict(model=m, epochs=2, max_duration=2.0, lr=3e-3, warmup_steps=2, spec_augment=False, num_workers=0, threads=1, seed=3)
    base.update(kw)
    return TrainConfig.from_dict(base)


@pytest.mark.parametrize("arch", sorted(ARCHS))
@pytest.mark.parametrize("sub", [1, 3])
def test_models_shapes_heads_context(arch, sub):
    m = build_model(ModelConfig(arch=arch, num_pdfs=NUM_PDFS, hidden=32, num_layers=3, lstm_hidden=16, subsampling=sub))
    m.add_head("distill", NUM_PDFS)
    m.add_head("phones", 7)
    x, lengths = torch.randn(3, 50, 40), torch.tensor([50, 31, 10])
    out, ol = m(x, lengths)
    assert out["main"].shape == (3, -(-50 // sub), NUM_PDFS) and out["phones"].shape[-1] == 7
    assert ol.tolist() == [-(-50 // sub), -(-31 // sub), -(-10 // sub)]
    lp = m.log_posteriors(x, lengths)
    assert lp.shape == (3, 50, NUM_PDFS)
    torch.testing.assert_close(lp.exp().sum(-1), torch.ones(3, 50))
    if arch == "tdnn":
        assert m.left_context == m.right_context == 2 + 1 + 1  # 3 layers: {-2..2}, {-1,0,1}, {-1,0,1}
        # Context is what it says: frame 25 does not change when frames far away do.
        x2 = x.clone()
        x2[:, 40:] += 100.0
        if sub == 1:
            a, _ = m.eval()(x, lengths)
            b, _ = m(x2, lengths)
            torch.testing.assert_close(a["main"][0, 25], b["main"][0, 25])


@pytest.mark.parametrize("bad,match", [("nan", "NaN"), ("length", "label frames but"), ("pdf", "outside the model's")])
def test_bad_input_names_the_cut(tmp_path, bad, match):
    from lhotse import CutSet

    cuts = CutSet.from_file(make_cuts(tmp_path, n=5, bad=bad)).to_eager()
    bad_cut = cuts["spk0-utt003"]
    with pytest.raises(BadCutError, match=f"cut 'spk0-utt003': .*{match}"):
        load_example(bad_cut, NUM_PDFS)
    load_example(cuts["spk1-utt001"], NUM_PDFS)
    # With skip_bad the trainer skips and counts it.
    r = train(small_cfg(epochs=1, skip_bad=True), tmp_path / "cuts.jsonl.gz", tmp_path / "cuts.jsonl.gz", tmp_path / "exp")
    assert r["history"][-1]["skipped_cuts"] >= 1
    with pytest.raises(BadCutError):
        train(small_cfg(epochs=1), tmp_path / "cuts.jsonl.gz", tmp_path / "cuts.jsonl.gz", tmp_path / "exp2")


def test_training_learns_and_final_pt_loads(tmp_path):
    cuts = make_cuts(tmp_path)
    r = train(small_cfg(epochs=4), cuts, cuts, tmp_path / "exp")
    h = r["history"]
    assert h[-1]["dev_acc"] > 0.5 and h[-1]["dev_ce"] < h[0]["dev_ce"]
    model, priors, ck = load_final(tmp_path / "exp/final.pt")
    assert priors.shape == (NUM_PDFS,) and abs(priors.exp().sum().item() - 1) < 1e-5
    assert ck["num_pdfs"] == NUM_PDFS and ck["model_config"]["arch"] == "tdnn"
    assert (tmp_path / "exp/learning_curve.png").stat().st_size > 1000
    assert json.loads((tmp_path / "exp/history.json").read_text())[-1]["epoch"] == 4


def test_resume_is_bit_for_bit(tmp_path):
    cuts = make_cuts(tmp_path)
    cfg = small_cfg(epochs=3, spec_augment=True, model={"dropout": 0.2})
    train(cfg, cuts, cuts, tmp_path / "full")
    # Interrupted after epoch 2, then resumed.
    cfg2 = small_cfg(epochs=3, spec_augment=True, model={"dropout": 0.2})
    r = train(cfg2, cuts, cuts, tmp_path / "part", stop_after=2)
    assert r["stopped"] and not (tmp_path / "part/epoch-3.pt").exists()
    train(cfg2, cuts, cuts, tmp_path / "part", resume=True)
    a = torch.load(tmp_path / "full/epoch-3.pt")["state_dict"]
    b = torch.load(tmp_path / "part/epoch-3.pt")["state_dict"]
    for k in a:
        assert torch.equal(a[k], b[k]), k


def check_data_parallel(tmp_path, env, two_ranks):
    """Train the same small model on the same cuts in one process and as 2 data-parallel
    ranks, and check that the results agree. ``two_ranks(config, cuts, exp_dir)`` trains
    ``config`` (YAML) on ``cuts`` (as training and dev set) into ``exp_dir`` as 2 ranks and
    returns the output, which must say 'world size 2'."""
    cuts = make_cuts(tmp_path, n=30)
    cfg_yaml = tmp_path / "c.yaml"
    cfg_yaml.write_text(
        f"model: {{arch: tdnn, hidden: 48, num_layers: 3, dropout: 0.0, num_pdfs: {NUM_PDFS}}}\n"
        "epochs: 2\nmax_duration: 4.0\nlr: 0.003\nwarmup_steps: 2\nspec_augment: false\nnum_workers: 0\nthreads: 1\nseed: 5\n"
    )
    r1 = subprocess.run([sys.executable, "-m", "kdhybrid.bin.train_nnet", "--config", str(cfg_yaml), str(cuts), str(cuts),
                         str(tmp_path / "one")], env=env, capture_output=True, text=True)
    assert r1.returncode == 0, r1.stderr[-2000:]
    assert "world size 2" in two_ranks(cfg_yaml, cuts, tmp_path / "two")
    a = torch.load(tmp_path / "one/epoch-2.pt")["state_dict"]
    b = torch.load(tmp_path / "two/epoch-2.pt")["state_dict"]
    diff = max((a[k] - b[k]).abs().max().item() for k in a)
    assert diff < 1e-4, diff
    h1 = json.loads((tmp_path / "one/history.json").read_text())
    h2 = json.loads((tmp_path / "two/history.json").read_text())
    assert abs(h1[-1]["dev_ce"] - h2[-1]["dev_ce"]) < 1e-4


def test_data_parallel_matches_one_process(tmp_path, venv_env):
    """2 local processes (DistributedDataParallel, gloo) against 1 on the same global batches."""
    def two_ranks(config, cuts, exp_dir):
        r = subprocess.run([sys.executable, "-m", "kdhybrid.bin.launch", "--nproc", "2", "-m", "kdhybrid.bin.train_nnet",
                            "--config", str(config), str(cuts), str(cuts), str(exp_dir)], env=venv_env, capture_output=True, text=True)
        assert r.returncode == 0, r.stderr[-3000:]
        return r.stdout

    check_data_parallel(tmp_path, venv_env, two_ranks)


@pytest.mark.parametrize("arch", sorted(ARCHS))
def test_outputs_do_not_depend_on_batch_padding(arch):
    """An utterance's posteriors are the same alone and padded in a batch (edges repeated per
    utterance): what makes batching, data-parallel training and dumping consistent."""
    torch.manual_seed(0)
    m = build_model(ModelConfig(arch=arch, num_pdfs=NUM_PDFS, hidden=32, num_layers=3, lstm_hidden=16, dropout=0.0)).eval()
    x = torch.randn(2, 60, 40)
    alone = m.log_posteriors(x[1:, :37], torch.tensor([37]))
    batched = m.log_posteriors(x, torch.tensor([60, 37]))[1:, :37]
    torch.testing.assert_close(alone, batched, rtol=1e-5, atol=1e-5)


def test_chunk_spans_cover_every_frame_once():
    from kdhybrid.train.data import chunk_batches, chunk_spans

    lengths = [7, 30, 31, 95, 200, 1]
    rng = np.random.default_rng(0)
    spans = chunk_spans(lengths, 30, rng)
    for u, t in enumerate(lengths):
        mine = sorted((s, e) for v, s, e in spans if v == u)
        assert mine[0][0] == 0 and mine[-1][1] == t
        assert all(a[1] == b[0] for a, b in zip(mine, mine[1:]))  # contiguous, no overlap
        assert all(0 < e - s <= 30 for s, e in mine)
    b1, b1_again, b2 = (chunk_batches(lengths, 30, 64, 3, e) for e in (1, 1, 2))
    assert b1 == b1_again and b1 != b2  # deterministic per (seed, epoch), phases move between epochs
    assert sorted(x for b in b1 for x in b) == sorted(chunk_spans(lengths, 30, np.random.default_rng([3, 1, 7])))
    assert all(sum(e - s for _, s, e in b) >= 64 for b in b1[:-1])


@pytest.mark.parametrize("sub", [1, 3])
def test_chunk_with_context_gives_the_whole_utterance_outputs(sub):
    """A chunk with the model's context around it (chunk_context) gives exactly the outputs
    of its frames in the whole utterance, so chunk training trains the model that decodes."""
    from kdhybrid.train.data import Example
    from kdhybrid.train.trainer import chunk_context

    torch.manual_seed(0)
    model = build_model(ModelConfig(arch="tdnn", num_pdfs=NUM_PDFS, hidden=32, num_layers=6, subsampling=sub, dropout=0.0)).eval()
    left, right = chunk_context(model, small_cfg())
    assert left == right == (13 if sub == 1 else 31)
    t = 150
    x = np.random.default_rng(1).standard_normal((t, 40)).astype(np.float32)
    ex = Example("u", x, np.arange(t) % NUM_PDFS, None, {})
    with torch.no_grad():
        whole = model(torch.from_numpy(x)[None], torch.tensor([t]))[0]["main"][0]
        # spans whose context starts on the outputs' 30 ms grid (sub 3): 0, 61 - 31 = 30, 124 - 31 = 93 (to the end)
        for s, e in [(0, 30), (30, 60), (120, 150), (57, 87)] if sub == 1 else [(0, 30), (61, 91), (124, 150)]:
            piece = ex.span(s, e, left, right)
            off = min(left, s)
            assert (piece.y[:off] == -100).all() and (piece.y[off + e - s :] == -100).all()
            assert (piece.y[off : off + e - s] == ex.y[s:e]).all() and len(piece.x) == off + e - s + min(right, t - e)
            assert (s - off) % sub == 0
            out = model(torch.from_numpy(piece.x)[None], torch.tensor([len(piece.x)]))[0]["main"][0]
            frames = [f for f in range(s, e) if f % sub == 0]  # the frames with an output in both
            got = out[[(f - (s - off)) // sub for f in frames]]
            want = whole[[f // sub for f in frames]]
            assert torch.allclose(got, want, atol=1e-5), (s, e)


def test_chunk_training_learns_and_resumes_bit_for_bit(tmp_path):
    cuts = make_cuts(tmp_path)
    kw = dict(epochs=3, chunk_frames=20, batch_frames=160, spec_augment=True, lr_schedule="newbob", model={"dropout": 0.2})
    r = train(small_cfg(**kw), cuts, cuts, tmp_path / "full")
    h = r["history"]
    assert h[-1]["dev_acc"] > 0.5 and h[-1]["dev_ce"] < h[0]["dev_ce"]
    assert all(abs(x["lr"] - 3e-3 * x["lr_scale"]) < 1e-12 for x in h)
    assert all(a["next_lr_scale"] == b["lr_scale"] for a, b in zip(h, h[1:]))
    assert h[0]["input_frames_per_second"] > h[0]["frames_per_second"] / 2
    train(small_cfg(**kw), cuts, cuts, tmp_path / "part", stop_after=2)
    train(small_cfg(**kw), cuts, cuts, tmp_path / "part", resume=True)
    a = torch.load(tmp_path / "full/epoch-3.pt")["state_dict"]
    b = torch.load(tmp_path / "part/epoch-3.pt")["state_dict"]
    for k in a:
        assert torch.equal(a[k], b[k]), k


def test_newbob_halving_applies_from_the_next_update(tmp_path):
    """Once newbob halves, the optimiser's rate is halved before the next epoch's first
    update (saved so in the epoch's checkpoint), and each epoch's history has the rate it ran at."""
    cuts = make_cuts(tmp_path)
    train(small_cfg(epochs=3, lr_schedule="newbob", newbob_start=10.0, newbob_stop=-1e9), cuts, cuts, tmp_path / "exp")
    h = json.loads((tmp_path / "exp/history.json").read_text())
    # epoch 1 has no gain to judge (no earlier dev CE); from epoch 2 on every epoch halves
    assert [x["lr_scale"] for x in h] == [1.0, 1.0, 0.5] and [x["next_lr_scale"] for x in h] == [1.0, 0.5, 0.25]
    for x in h:
        assert abs(x["lr"] - 3e-3 * x["lr_scale"]) < 1e-12
        ck = torch.load(tmp_path / f"exp/epoch-{x['epoch']}.pt")
        assert ck["optimizer"]["param_groups"][0]["lr"] == pytest.approx(3e-3 * x["next_lr_scale"], rel=1e-12)


def test_newbob_holds_then_halves_then_stops():
    from kdhybrid.train.trainer import Newbob

    nb = Newbob(start=0.01, stop=0.002)
    steps = [(float("inf"), 3.0, 1.0), (3.0, 2.5, 1.0), (2.5, 2.49, 0.5), (2.49, 2.40, 0.25)]
    for best, dev, scale in steps:
        assert not nb.update(best, dev) and nb.scale == scale
    assert nb.update(2.40, 2.3999)  # under 0.2% while halving: converged


@pytest.mark.parametrize("where", ["loss", "dev"])
def test_divergence_stops_naming_epoch_and_batch(tmp_path, monkeypatch, where):
    import kdhybrid.train.trainer as tr
    from kdhybrid.train.data import chunk_batches
    from kdhybrid.train.trainer import TrainingDiverged

    cuts = make_cuts(tmp_path)
    cfg = small_cfg(epochs=4, chunk_frames=20, batch_frames=160)
    from lhotse import CutSet

    n1 = len(chunk_batches([c.num_frames for c in CutSet.from_file(cuts)], 20, 160, cfg.seed, 1))
    calls = {"train": 0, "eval": 0}
    frame_ce, evaluate = tr.frame_ce, tr.evaluate

    def bad_frame_ce(logits, labels, sub):
        ce, n, c = frame_ce(logits, labels, sub)
        if torch.is_grad_enabled():
            calls["train"] += 1
            if where == "loss" and calls["train"] == n1 + 3:
                ce = ce * float("nan")
        return ce, n, c

    def bad_evaluate(*a, **k):
        r = evaluate(*a, **k)
        calls["eval"] += 1
        if where == "dev" and calls["eval"] == 2:
            r["ce"] = r["ce"] * 10
        return r

    monkeypatch.setattr(tr, "frame_ce", bad_frame_ce)
    monkeypatch.setattr(tr, "evaluate", bad_evaluate)
    with pytest.raises(TrainingDiverged, match="epoch 2, batch 3 of" if where == "loss" else "epoch 2: dev cross-entropy") as e:
        train(cfg, cuts, cuts, tmp_path / "exp")
    assert "epoch-1.pt" in str(e.value)
    assert (tmp_path / "exp/epoch-1.pt").is_file() and not (tmp_path / "exp/epoch-2.pt").exists()


@pytest.mark.parametrize("arch,sub", [("dnn", 1), ("dnn", 3), ("tdnn", 1), ("tdnn", 3)])
def test_valid_chunks_compute_only_their_frames(arch, sub):
    """forward(valid=True) on a chunk with exactly the receptive field around it gives the
    whole utterance's outputs of the chunk's frames, one output a frame (a subsampled frame)
    and nothing else; at the utterance's edges the context is the first/last frame repeated."""
    from kdhybrid.train.data import ChunkDataset, Example

    torch.manual_seed(0)
    model = build_model(ModelConfig(arch=arch, num_pdfs=NUM_PDFS, hidden=32, num_layers=6 if arch == "tdnn" else 3,
                                    subsampling=sub, dropout=0.0, splice=5)).eval()
    left, right = model.left_context, model.right_context
    t = 150
    x = np.random.default_rng(1).standard_normal((t, 40)).astype(np.float32)
    ex = Example("u", x, np.arange(t) % NUM_PDFS, None, {})
    with torch.no_grad():
        whole = model(torch.from_numpy(x)[None], torch.tensor([t]))[0]["main"][0]
        # inside the utterance, and at its edges (context beyond them: the edge frame repeated)
        spans = [(33, 63), (66, 97), (45, 48), (48, 49), (0, 30), (3, 9), (123, 150)] if sub == 3 else \
            [(33, 63), (40, 41), (77, 100), (0, 30), (5, 6), (120, 150), (149, 150)]
        for s, e in spans:
            piece = ex.span(s, e, left, right, valid=True)
            assert len(piece.x) == e - s + left + right and (piece.y == ex.y[s:e]).all()
            out, n = model(torch.from_numpy(piece.x)[None], torch.tensor([len(piece.x)]), valid=True)
            assert out["main"].shape[1] == n.item() == -(-(e - s) // sub)
            assert torch.allclose(out["main"][0], whole[s // sub : s // sub + n.item()], atol=1e-5), (s, e)
        edge = ex.span(0, 4, left, right, valid=True)  # the first frame repeated as the left context
        assert (edge.x[:left] == x[0]).all() and (edge.x[left:] == x[: 4 + right]).all()
    # a batch of valid chunks: labels of the chunks' frames only, padded with -100
    ds = ChunkDataset.__new__(ChunkDataset)
    ds.base, ds.context, ds.valid, ds.examples = _Collator(), (left, right), True, [ex]
    b = ds[[(0, 0, 9), (0, 60, 63)]]
    assert b["valid"] and b["labels"].shape == (2, 9) and (b["labels"][1, 3:] == -100).all()
    assert b["feats"].shape[1] == 9 + left + right


class _Collator:
    """The part of CutDataset that ChunkDataset batches with (no cuts needed)."""

    def batch_rng(self, key):
        return np.random.default_rng(0)

    def collate(self, examples, rng):
        from kdhybrid.train.data import collate

        return collate([(e.x, e.y) for e in examples], [e.id for e in examples])


def test_learning_curves_of_several_models(tmp_path, capsys):
    from kdhybrid.bin.plot_learning_curves import main as plot_main

    for name, ces in (("tdnn", [3.0, 2.5, 2.6]), ("blstm", [3.2, 2.4, 2.3, 2.35])):
        (tmp_path / name).mkdir()
        h = [{"epoch": i + 1, "dev_ce": c, "dev_acc": 1 / c, "seconds": 10.0, "input_frames_per_second": 1000.0 * (i + 1)}
             for i, c in enumerate(ces)]
        (tmp_path / name / "history.json").write_text(json.dumps(h))
    import sys as _sys

    argv = _sys.argv
    _sys.argv = ["x", "--out", str(tmp_path / "c.png"), str(tmp_path / "tdnn"), str(tmp_path / "blstm")]
    try:
        assert plot_main() == 0
    finally:
        _sys.argv = argv
    out = capsys.readouterr().out
    assert "tdnn: best epoch 2 of 3, dev CE 2.5000, dev frame acc 40.00%, 30 s, 2,000 training frames/s" in out
    assert "blstm: best epoch 3 of 4, dev CE 2.3000" in out
    assert (tmp_path / "c.png").stat().st_size > 5000 and not list(tmp_path.glob("*.tmp.png"))

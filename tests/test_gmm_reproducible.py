"""GMM training is bit-reproducible: the same corpus and seed give byte-identical models,
trees and alignments, run after run and for any number of jobs; and the seeded mix-up that
makes it so computes what Kaldi's SplitByCount computes."""
from pathlib import Path

import numpy as np
from conftest import alignment_bytes, copy_recipe, exp_md5s

from kdhybrid.gmm.mixup import mix_up, split_gmm, split_targets
from kdhybrid.gmm.model import single_gaussian
from kdhybrid.kaldi_libs import kaldi_hmm_gmm as khg


def _am(num_pdfs: int, dim: int = 3) -> "khg.AmDiagGmm":
    am = khg.AmDiagGmm()
    for p in range(num_pdfs):
        am.add_pdf(single_gaussian(np.arange(dim, dtype=np.float64) + p, np.full(dim, 1.0 + p)))
    return am


def _means(am) -> np.ndarray:
    return np.concatenate([np.asarray(am.get_pdf(p).means).ravel() for p in range(am.num_pdfs)])


def test_kaldi_hmm_gmm_split_is_not_seedable():
    """Why kdhybrid mixes up in numpy: kaldi-hmm-gmm 1.1.4's DiagGmm::Split seeds a fresh
    std::mt19937 from std::random_device for every draw, so two identical calls disagree
    (no torch, numpy or libc seed reaches it)."""
    occs = np.array([400.0, 900.0, 1600.0], np.float32)
    a, b = _am(3), _am(3)
    a.split_by_count(state_occs=occs, target_components=12, perturb_factor=0.01, power=0.25, min_count=20.0)
    b.split_by_count(state_occs=occs, target_components=12, perturb_factor=0.01, power=0.25, min_count=20.0)
    assert a.num_gauss == b.num_gauss == 12
    assert not np.array_equal(_means(a), _means(b))
    # ours: the same seed, the same bits
    c, d = _am(3), _am(3)
    mix_up(c, occs, 12, 0.01, 0.25, 20.0, np.random.default_rng([1, 0, 5]))
    mix_up(d, occs, 12, 0.01, 0.25, 20.0, np.random.default_rng([1, 0, 5]))
    assert np.array_equal(_means(c), _means(d))


def test_split_targets_equal_kaldis():
    """Gaussians per pdf as Kaldi's GetSplitTargets allocates them (occupancy**power,
    min-count, pdfs without counts kept at one)."""
    rs = np.random.RandomState(0)
    for trial in range(4):
        occs = rs.gamma(0.5, 2000, 60).astype(np.float32)
        occs[3], occs[7] = 0.0, 15.0
        am = _am(60)
        am.split_by_count(state_occs=occs, target_components=500, perturb_factor=0.01, power=0.25, min_count=20.0)
        kaldi = np.array([am.get_pdf(p).num_gauss for p in range(60)])
        ours = split_targets(occs, 500, 0.25, 20.0)
        np.testing.assert_array_equal(ours, kaldi)
        assert ours[3] == 1 and ours[7] == 1 and ours.sum() == 500


def test_split_gmm_is_kaldis_split():
    """DiagGmm::Split: the heaviest component halves its weight into a new one with the same
    variances; the two means move apart by the same step, so every split keeps the
    weighted mean and the total weight; the steps are perturb_factor * N(0,1) * stddev."""
    g = khg.DiagGmm(nmix=2, dim=4)
    g.set_weights(np.array([0.7, 0.3], np.float32))
    g.set_means(np.array([[0, 1, 2, 3], [5, 5, 5, 5]], np.float32))
    g.set_invvars(np.array([[1, 4, 16, 64], [1, 1, 1, 1]], np.float32))
    g.compute_gconsts()
    before = (np.asarray(g.weights)[:, None] * np.asarray(g.means)).sum(0)
    split_gmm(g, 3, 0.5, np.random.default_rng(7))
    w, mu, var = np.asarray(g.weights), np.asarray(g.means), np.asarray(g.vars)
    np.testing.assert_allclose(w, [0.35, 0.3, 0.35], rtol=1e-6)
    np.testing.assert_allclose(var[2], var[0], rtol=1e-6)
    np.testing.assert_allclose(var[0], [1, 0.25, 1 / 16, 1 / 64], rtol=1e-5)
    np.testing.assert_allclose((mu[0] + mu[2]) / 2, [0, 1, 2, 3], atol=1e-6)
    z = np.random.default_rng(7).standard_normal(4)
    np.testing.assert_allclose(mu[2] - [0, 1, 2, 3], 0.5 * z * np.sqrt([1, 0.25, 1 / 16, 1 / 64]), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose((w[:, None] * mu).sum(0), before, atol=1e-5)


def test_gmm_training_is_bit_reproducible(gmm, tmp_path):
    """The tiny tier's GMM stages again, in another dir and with three jobs instead of the
    recipe's two: every file of exp/mono, exp/tri1 and exp/tri1_ali but the logs (which
    hold wall times) and the per-job files is byte-identical (models, trees, the
    training's record, settings), and the per-job alignment
    archives hold the same bytes in the same order."""
    d, run = gmm
    other = copy_recipe(d, tmp_path / "s5")
    script = ("steps/train_mono.sh --nj 3 data/train data/lang exp/mono && "
              "steps/train_deltas.sh --nj 3 --beam 10 --retry-beam 100 200 1500 data/train data/lang exp/mono exp/tri1 && "
              "steps/align.sh --nj 3 --beam 10 --retry-beam 100 data/train data/lang exp/tri1 exp/tri1_ali")
    import os
    import subprocess

    env = dict(os.environ, KDHYBRID_ROOT=str(Path(__file__).resolve().parents[1]))
    r = subprocess.run(["bash", "-c", ". ./path.sh && " + script], cwd=other, env=env, capture_output=True, text=True)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    # per-job files, and the boundary report that only the recipe makes
    skip = lambda name: name in ("num_jobs", "boundaries.json") or (name.startswith("ali.") and name.endswith(".gz"))
    for e in ("mono", "tri1", "tri1_ali"):
        a, b = d / "exp" / e, other / "exp" / e
        ma = {k: v for k, v in exp_md5s(a).items() if not skip(k)}
        mb = {k: v for k, v in exp_md5s(b).items() if not skip(k)}
        assert ma == mb and {"final.mdl", "final.pkl", "tree"} <= ma.keys(), (e, {k for k in ma.keys() | mb.keys() if ma.get(k) != mb.get(k)})
        assert (a / "num_jobs").read_text() == "2\n" and (b / "num_jobs").read_text() == "3\n"
        assert alignment_bytes(a) == alignment_bytes(b), e

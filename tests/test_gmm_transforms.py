"""LDA, MLLT and fMLLR (kdhybrid.gmm.lda / mllt / fmllr) and the transform files
(kdhybrid.io.tables), on synthetic data with known answers, in float64."""
import kaldi_native_io as kio
import kaldiio
import numpy as np
import pytest

from kdhybrid.gmm.fmllr import (
    FmllrStats,
    accumulate_fmllr_stats,
    apply_transform,
    compose_affine,
    estimate_fmllr,
    fmllr_gradient,
    fmllr_objective,
)
from kdhybrid.gmm.gauss_post import PdfGaussians
from kdhybrid.gmm.lda import LdaStats, estimate_lda, estimate_lda_with_eigs, splice_frames
from kdhybrid.gmm.mllt import (
    MlltStats,
    accumulate_gauss_scatters,
    accumulate_mllt_stats,
    estimate_mllt,
    mllt_gradient,
    mllt_objective,
    mllt_stats_from_scatters,
    transform_means,
)
from kdhybrid.gmm.model import accumulate_pdf_stats, single_gaussian
from kdhybrid.io.tables import read_kaldi_matrix, read_transform_ark, write_kaldi_matrix, write_transform_ark
from kdhybrid.kaldi_libs import kaldi_hmm_gmm as khg


def random_am(rng, num_pdfs, num_gauss, dim, spread=2.0, var_range=(0.3, 2.0)):
    """An AmDiagGmm with ``num_gauss`` Gaussians per pdf, random weights, means, variances."""
    am = khg.AmDiagGmm()
    for _ in range(num_pdfs):
        g = khg.DiagGmm(nmix=num_gauss, dim=dim)
        w = rng.uniform(0.5, 1.5, num_gauss)
        g.set_weights((w / w.sum()).astype(np.float32))
        g.set_invvars((1.0 / rng.uniform(*var_range, (num_gauss, dim))).astype(np.float32))
        g.set_means((rng.standard_normal((num_gauss, dim)) * spread).astype(np.float32))
        g.compute_gconsts()
        am.add_pdf(g)
    return am


def diag_am(means, vars_):
    am = khg.AmDiagGmm()
    for m, v in zip(means, vars_):
        am.add_pdf(single_gaussian(m, v))
    return am


def class_fit(x, cls, num_classes):
    """ML diagonal Gaussian per class: means, variances (C, D)."""
    return (
        np.stack([x[cls == c].mean(0) for c in range(num_classes)]),
        np.stack([x[cls == c].var(0) for c in range(num_classes)]),
    )


def diag_loglike(x, cls, means, vars_):
    """(T,) log N(x_t; means[c_t], diag(vars[c_t]))."""
    m, v = means[cls], vars_[cls]
    return -0.5 * (np.log(2 * np.pi * v) + (x - m) ** 2 / v).sum(1)


def kaldi_posteriors(am, x, pdfs):
    """(T, M) Gaussian posteriors from Kaldi's own DiagGmm::ComponentPosteriors (float32)."""
    return [np.asarray(am.get_pdf(int(p)).component_posteriors(x[t].astype(np.float32))[1], np.float64) for t, p in enumerate(pdfs)]


# ------------------------------------------------------------------------- splicing and LDA


def test_splice_frames_matches_a_loop():
    rng = np.random.default_rng(0)
    for t_len, c in ((7, 2), (3, 4), (1, 1), (12, 0)):
        x = rng.standard_normal((t_len, 3))
        want = np.array(
            [np.concatenate([x[min(max(t + k, 0), t_len - 1)] for k in range(-c, c + 1)]) for t in range(t_len)]
        )
        got = splice_frames(x, c)
        assert got.dtype == np.float32 and got.shape == (t_len, 3 * (2 * c + 1))
        np.testing.assert_array_equal(got, want.astype(np.float32))
    assert splice_frames(np.zeros((0, 13), np.float32)).shape == (0, 117)


def lda_data(rng, num_classes=10, dim=6, frames=20000):
    means = rng.standard_normal((num_classes, dim)) * rng.uniform(0.5, 3.0, dim)
    mix = rng.standard_normal((dim, dim))
    cls = rng.integers(0, num_classes, frames)
    x = means[cls] + rng.standard_normal((frames, dim)) @ mix.T
    return x, cls


def test_lda_stats_skip_unused_frames_and_add_up():
    rng = np.random.default_rng(1)
    x, cls = lda_data(rng, frames=3000)
    w = rng.uniform(0.5, 2.0, len(x))
    w[::7] = 0.0
    cls_m = cls.copy()
    cls_m[::5] = -1
    a = LdaStats.zeros(10, 6)
    a.accumulate(x[:1000].astype(np.float32), cls_m[:1000], w[:1000])
    b = LdaStats.zeros(10, 6)
    b.accumulate(x[1000:], cls_m[1000:], w[1000:])
    a.add(b)
    # By hand, over the frames that count.
    keep = (cls_m >= 0) & (w != 0)
    xk = np.where(np.arange(len(x))[:, None] < 1000, x.astype(np.float32).astype(np.float64), x)[keep]
    np.testing.assert_allclose(a.count, np.bincount(cls[keep], w[keep], minlength=10), rtol=1e-12)
    for c in range(10):
        sel = cls[keep] == c
        np.testing.assert_allclose(a.sum[c], (w[keep][sel, None] * xk[sel]).sum(0), rtol=1e-10, atol=1e-9)
    np.testing.assert_allclose(a.scatter, (xk * w[keep, None]).T @ xk, rtol=1e-10)
    # Within-class covariance = pooled scatter about the class means / total count.
    _, _, within = a.covariances()
    want = sum(
        ((xk[cls[keep] == c] - a.sum[c] / a.count[c]) * w[keep][cls[keep] == c, None]).T
        @ (xk[cls[keep] == c] - a.sum[c] / a.count[c])
        for c in range(10)
    ) / a.count.sum()
    np.testing.assert_allclose(within, want, rtol=1e-9, atol=1e-12)


def test_lda_whitens_within_class_and_diagonalises_between_class():
    rng = np.random.default_rng(2)
    x, cls = lda_data(rng)
    st = LdaStats.zeros(10, 6)
    st.accumulate(x, cls)
    _, between, within = st.covariances()
    full, eigs = estimate_lda_with_eigs(st, 6)
    lda64 = full.astype(np.float64)
    assert full.dtype == np.float32 and full.shape == (6, 6)
    # Kaldi's order: eigenvalues decreasing; all positive here (10 classes > 6 dims).
    assert np.all(np.diff(eigs) < 0) and eigs[-1] > 0
    np.testing.assert_allclose(lda64 @ within @ lda64.T, np.eye(6), atol=2e-6)
    np.testing.assert_allclose(lda64 @ between @ lda64.T, np.diag(eigs), atol=2e-5 * eigs[0])
    # The generalised eigenproblem B v = d W v solved another way: eig of W^{-1} B,
    # vectors scaled to v^T W v = 1; equal up to the sign of each vector.
    d, v = np.linalg.eig(np.linalg.solve(within, between))
    d, v = d.real, v.real
    order = np.argsort(-d)
    d, v = d[order], v[:, order]
    v /= np.sqrt(np.einsum("ik,ij,jk->k", v, within, v))
    np.testing.assert_allclose(eigs, d, rtol=1e-9)
    for k in range(6):
        ref = v[:, k] * np.sign(v[np.argmax(np.abs(v[:, k])), k])
        np.testing.assert_allclose(lda64[k], ref, rtol=1e-5, atol=1e-5 * np.abs(ref).max())
    # A lower dimension keeps the leading rows; too many dimensions is an error.
    np.testing.assert_array_equal(estimate_lda(st, 3), full[:3])
    with pytest.raises(ValueError, match="below the 5 classes"):
        estimate_lda(LdaStats(st.count[:5], st.sum[:5], st.scatter), 5)


# -------------------------------------------------------------------------------- MLLT


def test_mllt_stats_equal_brute_force_and_posteriors_match_the_em():
    rng = np.random.default_rng(3)
    am = random_am(rng, num_pdfs=3, num_gauss=2, dim=3)
    x = rng.standard_normal((60, 3)) * 2
    pdfs = rng.integers(-1, 3, 60)
    w = rng.uniform(0.2, 1.0, 60)
    w[::9] = 0.0
    st = accumulate_mllt_stats(am, x, pdfs, weights=w)
    # Kaldi's MlltAccs::AccumulateFromPosteriors, frame by frame, with Kaldi's posteriors.
    G, beta = np.zeros((3, 3, 3)), 0.0
    post = kaldi_posteriors(am, x, np.maximum(pdfs, 0))
    for t in range(60):
        if pdfs[t] < 0 or w[t] == 0:
            continue
        g = am.get_pdf(int(pdfs[t]))
        for m in range(2):
            off = x[t] - np.asarray(g.means, np.float64)[m]
            gamma = w[t] * post[t][m]
            G += gamma * np.asarray(g.inv_vars, np.float64)[m][:, None, None] * np.outer(off, off)[None]
            beta += gamma
    assert st.beta == pytest.approx(beta, rel=1e-6)
    np.testing.assert_allclose(st.G, G, rtol=2e-5, atol=1e-6 * np.abs(G).max())
    # The Gaussian occupancies are exactly those of the model's E-step.
    sc = accumulate_gauss_scatters(am, x, pdfs)
    em = accumulate_pdf_stats(am, x, pdfs, np.arange(3))
    for p in range(3):
        np.testing.assert_array_equal(sc["occ"][p], em["occ"][p])
    # Split over pdfs in any way, the statistics are the same numbers.
    parts = [accumulate_gauss_scatters(am, x, pdfs, [2], w), accumulate_gauss_scatters(am, x, pdfs, [0, 1], w)]
    split = mllt_stats_from_scatters(am, parts)
    assert split.beta == st.beta
    np.testing.assert_array_equal(split.G, st.G)
    total = MlltStats.zeros(3)
    total.add(st)
    total.add(split)
    assert total.beta == 2 * st.beta
    np.testing.assert_array_equal(total.G, 2 * st.G)


def semi_tied_data(rng, dim=4, num_classes=6, frames=30000):
    """Frames x = R^{-1} z, z from diagonal Gaussians: covariances full, sharing one R."""
    R = np.linalg.qr(rng.standard_normal((dim, dim)))[0] * rng.uniform(0.5, 2.0, dim)[:, None]
    means = rng.standard_normal((num_classes, dim)) * 2
    vars_ = rng.uniform(0.2, 2.0, (num_classes, dim))
    cls = rng.integers(0, num_classes, frames)
    z = means[cls] + rng.standard_normal((frames, dim)) * np.sqrt(vars_[cls])
    true_ll = float((diag_loglike(z, cls, means, vars_) + np.linalg.slogdet(R)[1]).mean())
    return z @ np.linalg.inv(R).T, cls, R, true_ll


def test_mllt_update_climbs_to_a_stationary_point():
    rng = np.random.default_rng(6)
    x, cls, _, _ = semi_tied_data(rng)
    means, vars_ = class_fit(x, cls, 6)
    st = accumulate_mllt_stats(diag_am(means, vars_), x, cls)
    assert st.beta == 30000
    trace = []
    A, impr = estimate_mllt(st, num_iters=10, objf_trace=trace)
    assert len(trace) == 1 + 10 * 4
    assert np.all(np.diff(trace) >= -1e-12)  # every row update
    assert trace[0] == pytest.approx(mllt_objective(np.eye(4), st) / st.beta, rel=1e-12)
    assert impr == pytest.approx(trace[-1] - trace[0], rel=1e-9)
    assert impr == pytest.approx((mllt_objective(A, st) - mllt_objective(np.eye(4), st)) / st.beta, rel=1e-9)
    # Run to convergence (Kaldi's est-mllt stops at 200 sweeps, close to it here), the
    # gradient beta A^{-T} - [G_i a_i] vanishes.
    A_opt, impr_opt = estimate_mllt(st, num_iters=1000)
    assert impr_opt > impr > 0.3
    assert np.abs(mllt_gradient(A_opt, st)).max() / st.beta < 1e-6
    assert np.abs(mllt_gradient(np.eye(4), st)).max() / st.beta > 0.1


def test_mllt_recovers_the_semi_tied_rotation():
    rng = np.random.default_rng(5)
    x, cls, R, true_ll = semi_tied_data(rng)
    means, vars_ = class_fit(x, cls, 6)
    diag_ll = float(diag_loglike(x, cls, means, vars_).mean())
    # As train_lda_mllt.sh: estimate, transform the model's means, re-estimate the model.
    am = diag_am(means, vars_)
    A_tot, xt = np.eye(4), x
    for _ in range(3):
        st = accumulate_mllt_stats(am, xt, cls)
        A, _ = estimate_mllt(st, num_iters=200)
        transform_means(am, A)
        A_tot = A @ A_tot
        xt = x @ A_tot.T
        am = diag_am(*class_fit(xt, cls, 6))
    # A_tot R^{-1} is a scaled permutation: A_tot undoes the rotation up to order and scale.
    P = np.abs(A_tot @ np.linalg.inv(R))
    assert sorted(np.argmax(P, axis=1)) == [0, 1, 2, 3]
    assert np.max(np.sort(P / P.max(1, keepdims=True), axis=1)[:, -2]) < 0.05
    # The likelihood gained over diagonal covariances is that of the true model (the ML
    # fit is slightly above the truth on its own training data, never much below).
    mllt_ll = float((diag_loglike(xt, cls, *class_fit(xt, cls, 6)) + np.linalg.slogdet(A_tot)[1]).mean())
    assert true_ll - diag_ll > 0.4
    assert mllt_ll - diag_ll == pytest.approx(true_ll - diag_ll, abs=5e-3)
    assert mllt_ll >= true_ll - 1e-3


def test_transform_means_moves_means_and_keeps_variances():
    rng = np.random.default_rng(6)
    am = random_am(rng, num_pdfs=2, num_gauss=3, dim=4)
    before = [(np.asarray(am.get_pdf(p).means, np.float64), np.asarray(am.get_pdf(p).vars, np.float64)) for p in range(2)]
    A = np.eye(4) + 0.2 * rng.standard_normal((4, 4))
    transform_means(am, A)
    x = rng.standard_normal(4).astype(np.float32)
    for p in range(2):
        g = am.get_pdf(p)
        m, v = before[p]
        np.testing.assert_allclose(np.asarray(g.means), m @ A.T, rtol=1e-5, atol=1e-5)
        np.testing.assert_allclose(np.asarray(g.vars), v, rtol=1e-6)
        # gconsts recomputed: Kaldi's likelihood equals the formula with the new means.
        w = np.asarray(g.weights, np.float64)
        ll = np.log(np.sum(w * np.exp(-0.5 * (np.log(2 * np.pi * v) + (x - m @ A.T) ** 2 / v).sum(1))))
        assert g.log_likelihood(x) == pytest.approx(ll, abs=1e-4)
    # An affine transform adds its offset.
    b = rng.standard_normal(4)
    m0 = np.asarray(am.get_pdf(0).means, np.float64)
    transform_means(am, np.hstack([np.eye(4), b[:, None]]))
    np.testing.assert_allclose(np.asarray(am.get_pdf(0).means), m0 + b, rtol=1e-5, atol=1e-5)


# ------------------------------------------------------------------------------- fMLLR


def test_fmllr_stats_equal_brute_force():
    rng = np.random.default_rng(7)
    am = random_am(rng, num_pdfs=4, num_gauss=3, dim=3)
    x = rng.standard_normal((80, 3)) * 2
    pdfs = rng.integers(-1, 4, 80)
    w = rng.uniform(0.2, 1.0, 80)
    w[::6] = 0.0
    st = accumulate_fmllr_stats(am, x, pdfs, weights=w)
    # Kaldi's FmllrDiagGmmAccs, frame by frame, with Kaldi's posteriors.
    K, G, beta = np.zeros((3, 4)), np.zeros((3, 4, 4)), 0.0
    post = kaldi_posteriors(am, x, np.maximum(pdfs, 0))
    for t in range(80):
        if pdfs[t] < 0 or w[t] == 0:
            continue
        g = am.get_pdf(int(pdfs[t]))
        xi = np.append(x[t], 1.0)
        for m in range(3):
            gamma = w[t] * post[t][m]
            K += gamma * np.outer(np.asarray(g.means_invvars, np.float64)[m], xi)
            for i in range(3):
                G[i] += gamma * float(np.asarray(g.inv_vars)[m, i]) * np.outer(xi, xi)
            beta += gamma
    assert st.beta == pytest.approx(beta, rel=1e-6)
    np.testing.assert_allclose(st.K, K, rtol=2e-5, atol=1e-6 * np.abs(K).max())
    np.testing.assert_allclose(st.G, G, rtol=2e-5, atol=1e-6 * np.abs(G).max())
    # Accumulating in two calls (one speaker's utterances) adds up; PdfGaussians = the model.
    st2 = accumulate_fmllr_stats(am, x[:30], pdfs[:30], weights=w[:30])
    accumulate_fmllr_stats(PdfGaussians.from_am(am), x[30:], pdfs[30:], weights=w[30:], stats=st2)
    np.testing.assert_allclose(st2.G, st.G, rtol=1e-12)
    np.testing.assert_allclose(st2.K, st.K, rtol=1e-12, atol=1e-12)
    total = FmllrStats.zeros(3)
    total.add(st)
    total.add(st2)
    np.testing.assert_allclose(total.G, 2 * st.G, rtol=1e-12)


def distorted_speaker(rng, num_gauss=1, dim=5, num_pdfs=16, frames=40000):
    """Frames x from a known model, seen through y = M x + c."""
    am = random_am(rng, num_pdfs, num_gauss, dim, spread=3.0, var_range=(0.1, 0.5))
    gs = PdfGaussians.from_am(am)
    pdfs = rng.integers(0, num_pdfs, frames)
    x = np.empty((frames, dim))
    for p in range(num_pdfs):
        sel = np.flatnonzero(pdfs == p)
        g = am.get_pdf(p)
        w = np.asarray(g.weights, np.float64)
        comp = rng.choice(num_gauss, size=sel.size, p=w / w.sum())
        std = np.sqrt(1.0 / gs.inv_vars[gs.gauss_of_pdf(p)])
        x[sel] = gs.means(p)[comp] + rng.standard_normal((sel.size, dim)) * std[comp]
    M = np.eye(dim) + 0.3 * rng.standard_normal((dim, dim))
    c = rng.standard_normal(dim)
    return am, x, pdfs, x @ M.T + c, M, c


def test_fmllr_update_climbs_to_a_stationary_point():
    rng = np.random.default_rng(8)
    am, _, pdfs, y, _, _ = distorted_speaker(rng, frames=5000)
    st = accumulate_fmllr_stats(am, y, pdfs)
    trace = []
    W, info = estimate_fmllr(st, num_iters=10, objf_trace=trace)
    assert "fallback" not in info and info["frames"] == 5000
    assert len(trace) == 1 + 10 * 5 and np.all(np.diff(trace) >= -1e-12)
    assert np.all(np.diff(info["objf_per_iter"]) >= -1e-12) and len(info["objf_per_iter"]) == 11
    assert info["objf_impr_per_frame"] == pytest.approx(
        (fmllr_objective(W, st) - fmllr_objective(np.eye(5, 6), st)) / 5000, rel=1e-9
    )
    assert info["logdet"] == pytest.approx(np.linalg.slogdet(W[:, :5])[1], rel=1e-12)
    assert info["objf_impr_per_frame"] > 1.0
    W40, info40 = estimate_fmllr(st, num_iters=40)
    # 10 iterations already reach the stationary point: 30 more only move the objective by
    # rounding (a few ulps, either sign, by the CPU's BLAS kernels: 59.260018286264945 after 40
    # against ...499 after 10 on an AMD EPYC), so "no lower" holds to the trace's own 1e-12
    assert info40["objf_impr_per_frame"] >= info["objf_impr_per_frame"] - 1e-12
    assert info40["objf_impr_per_frame"] == pytest.approx(info["objf_impr_per_frame"], rel=1e-10)
    assert np.abs(fmllr_gradient(W40, st)).max() / st.beta < 1e-8
    assert np.abs(fmllr_gradient(np.eye(5, 6), st)).max() / st.beta > 0.1


def test_fmllr_undoes_a_known_affine_distortion():
    rng = np.random.default_rng(9)
    am, x, pdfs, y, M, c = distorted_speaker(rng)
    W, info = estimate_fmllr(accumulate_fmllr_stats(am, y, pdfs))
    Minv = np.linalg.inv(M)
    np.testing.assert_allclose(W, np.hstack([Minv, -(Minv @ c)[:, None]]), atol=0.01)
    assert np.abs(apply_transform(y, W) - x).max() < 0.05
    # Several Gaussians per pdf: the posteriors depend on the transform, so estimate again
    # on the adapted frames and compose (train_sat.sh's fMLLR iterations).
    am, x, pdfs, y, M, c = distorted_speaker(np.random.default_rng(10), num_gauss=2, frames=20000)
    W_tot = np.eye(5, 6)
    for _ in range(4):
        W, _ = estimate_fmllr(accumulate_fmllr_stats(am, apply_transform(y, W_tot), pdfs))
        W_tot = compose_affine(W, W_tot)
    assert np.abs(apply_transform(y, W_tot) - x).max() < 0.1
    assert np.sqrt(np.mean((apply_transform(y, W_tot) - x) ** 2)) < 0.02


def test_fmllr_min_count_falls_back_to_identity():
    rng = np.random.default_rng(11)
    am, _, pdfs, y, _, _ = distorted_speaker(rng, frames=500)
    st = accumulate_fmllr_stats(am, y, pdfs)
    W, info = estimate_fmllr(st)  # Kaldi's --fmllr-min-count=500: needs more than 500
    np.testing.assert_array_equal(W, np.eye(5, 6))
    assert info["fallback"] == "too few frames" and info["frames"] == 500.0
    assert info["objf_impr_per_frame"] == 0.0
    W, info = estimate_fmllr(st, min_count=499.0)
    assert "fallback" not in info and not np.allclose(W, np.eye(5, 6))
    # No frames at all.
    W, info = estimate_fmllr(accumulate_fmllr_stats(am, y[:0], pdfs[:0]), min_count=0.0)
    assert info["fallback"] == "too few frames" and info["frames"] == 0.0


def test_apply_and_compose_transforms():
    rng = np.random.default_rng(12)
    x = rng.standard_normal((20, 5))
    lda = rng.standard_normal((3, 5))  # linear, non-square (as an LDA matrix)
    mllt = rng.standard_normal((3, 3))
    fm1, fm2 = rng.standard_normal((3, 4)), rng.standard_normal((3, 4))
    np.testing.assert_allclose(apply_transform(x, lda), (x @ lda.T).astype(np.float32), rtol=1e-6)
    np.testing.assert_allclose(apply_transform(x[:, :3], fm1), x[:, :3] @ fm1[:, :3].T + fm1[:, 3], rtol=1e-5, atol=1e-6)
    x3 = x[:, :3]
    for a, b, xin, shape in ((mllt, lda, x, (3, 5)), (fm1, lda, x, (3, 6)), (fm1, fm2, x3, (3, 4)), (mllt, fm2, x3, (3, 4))):
        ab = compose_affine(a, b)
        assert ab.shape == shape
        two = apply_transform(apply_transform(xin, b).astype(np.float64), a)
        np.testing.assert_allclose(apply_transform(xin, ab), two, rtol=1e-4, atol=1e-4)
    with pytest.raises(ValueError, match="does not follow"):
        compose_affine(rng.standard_normal((3, 7)), lda)


# ------------------------------------------------------------------------- files


def test_kaldi_matrix_file_round_trip(tmp_path):
    rng = np.random.default_rng(13)
    mat = rng.standard_normal((40, 117))
    p = tmp_path / "final.mat"
    write_kaldi_matrix(p, mat)
    raw = p.read_bytes()
    assert raw[:6] == b"\0BFM \x04" and raw[6:10] == np.int32(40).tobytes() and raw[11:15] == np.int32(117).tobytes()
    assert len(raw) == 15 + 40 * 117 * 4 and not (tmp_path / "final.mat.tmp").exists()
    want = mat.astype(np.float32)
    np.testing.assert_array_equal(kaldiio.load_mat(str(p)), want)
    np.testing.assert_array_equal(kio.FloatMatrix.read(str(p)).numpy(), want)
    got = read_kaldi_matrix(p)
    assert got.dtype == np.float32
    np.testing.assert_array_equal(got, want)
    # kaldi_native_io's writer -> our reader, binary and text.
    for binary in (True, False):
        q = tmp_path / f"k{int(binary)}.mat"
        kio.FloatMatrix(want).write(str(q), binary=binary)
        np.testing.assert_allclose(read_kaldi_matrix(q), want, rtol=1e-6)


def test_transform_archive_round_trip(tmp_path):
    rng = np.random.default_rng(14)
    trans = {spk: rng.standard_normal((4, 5)) for spk in ("spk_b", "SPK_a", "spk-a", "a")}
    p = tmp_path / "trans.1"
    assert write_transform_ark(p, trans) == 4
    order = sorted(trans, key=lambda k: k.encode())  # C order: "SPK_a" "a" "spk-a" "spk_b"
    assert order == ["SPK_a", "a", "spk-a", "spk_b"]
    via_kaldiio = list(kaldiio.load_ark(str(p)))
    assert [k for k, _ in via_kaldiio] == order
    with kio.SequentialFloatMatrixReader(f"ark:{p}") as r:
        via_kio = [(k, v.copy()) for k, v in r]  # the reader reuses its buffer
    assert [k for k, _ in via_kio] == order
    for (k, m1), (_, m2) in zip(via_kaldiio, via_kio):
        np.testing.assert_array_equal(m1, trans[k].astype(np.float32))
        np.testing.assert_array_equal(m2, trans[k].astype(np.float32))
    back = read_transform_ark(p)
    assert list(back) == order
    np.testing.assert_array_equal(back["a"], trans["a"].astype(np.float32))
    # kaldi_native_io's archive -> our reader.
    q = tmp_path / "trans.2"
    with kio.FloatMatrixWriter(f"ark:{q}") as w:
        for k in order:
            w.write(k, trans[k].astype(np.float32))
    assert q.read_bytes() == p.read_bytes()
    assert list(read_transform_ark(q)) == order
    assert not list(tmp_path.glob("*.tmp"))

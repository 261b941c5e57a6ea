"""The decision tree's split search against brute force: for random event statistics, the
best question of a node is the one that maximises the two sides' Gaussian log-likelihood
over every question of every key, evaluated one question at a time from the raw events."""
import numpy as np
import pytest

from kdhybrid.gmm import tree as T


def _random_stats(rng: np.random.Generator, num_events: int = 400, dim: int = 5) -> T.TreeStats:
    events = np.stack([rng.integers(0, 9, num_events), rng.integers(1, 4, num_events),
                       rng.integers(0, 9, num_events), rng.integers(0, 3, num_events)], 1).astype(np.int32)
    events = np.unique(events, axis=0)
    e = len(events)
    count = rng.integers(1, 60, e).astype(np.float64)
    mean = rng.normal(size=(e, dim)) + events[:, :1] * 0.3  # the left phone matters
    var = rng.uniform(0.5, 2.0, size=(e, dim))
    x = count[:, None] * mean
    xx = count[:, None] * (var + mean**2)
    return T.TreeStats(events, count, x, xx)


def _brute_force(stats: T.TreeStats, idx: np.ndarray, questions: dict, min_count: float):
    """(gain, key, yes values) by evaluating each question on the node's events directly."""
    def objf(sel):
        return float(T.gauss_objf(np.array(stats.count[sel].sum()), stats.x[sel].sum(0), stats.xx[sel].sum(0)))

    parent = objf(idx)
    best = (0.0, None, None)
    for key, qs in questions.items():
        col = stats.events[idx, {0: 0, 1: 1, 2: 2, T.PDF_CLASS_KEY: 3}[key]]
        for q in qs:
            yes = np.isin(col, q)
            if stats.count[idx[yes]].sum() < min_count or stats.count[idx[~yes]].sum() < min_count:
                continue
            gain = objf(idx[yes]) + objf(idx[~yes]) - parent
            if gain > best[0] + 1e-6:
                best = (gain, key, np.unique(col[yes]))
    return best


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_best_split_equals_brute_force(seed):
    rng = np.random.default_rng(seed)
    stats = _random_stats(rng)
    phone_q = [np.array(sorted(rng.choice(9, size=rng.integers(1, 8), replace=False))) for _ in range(12)]
    questions = {0: phone_q, 2: phone_q, T.PDF_CLASS_KEY: [np.arange(1), np.arange(2)], 1: [np.array([1]), np.array([1, 2])]}
    cfg = T.TreeConfig(num_leaves=10, min_count=200.0)
    packed = np.concatenate([stats.count[:, None], stats.x, stats.xx], axis=1)
    matrices = T.question_matrices(stats, questions)
    for idx in (np.arange(len(stats.events)), np.flatnonzero(stats.events[:, 1] == 2), np.flatnonzero(stats.events[:, 0] < 4)):
        gain, key, yes = T._best_split(stats, T.Node(idx), matrices, cfg, packed)
        want_gain, want_key, want_yes = _brute_force(stats, idx, questions, cfg.min_count)
        assert want_key is not None and gain > 0
        assert gain == pytest.approx(want_gain, rel=1e-9)
        assert key == want_key and yes.tolist() == want_yes.tolist()


def test_build_tree_leaves_partition_the_events():
    """Every event reaches exactly one leaf; the leaf budget is used; pdf-ids are 0..N-1."""
    rng = np.random.default_rng(3)
    stats = _random_stats(rng, num_events=600)
    phone_q = [np.arange(k) for k in range(1, 9)] + [np.array([1, 3, 5, 7])]
    roots = [[1], [2, 3]]
    nodes, n, info = T.build_tree(stats, roots, phone_q, {1: 3, 2: 3, 3: 3}, T.TreeConfig(num_leaves=12, min_count=100.0))
    assert n == 12 and info["leaves"] == 12 and info["likelihood_gain"] > 0
    phone_root = {1: 0, 2: 1, 3: 1}
    leaves = np.array([T.lookup(nodes, phone_root, ev) for ev in stats.events.tolist()])
    assert sorted(set(leaves.tolist())) == list(range(12))
    # the gain reported is the likelihood of the leaves' Gaussians minus the roots'
    def objf(sel):
        return float(T.gauss_objf(np.array(stats.count[sel].sum()), stats.x[sel].sum(0), stats.xx[sel].sum(0)))
    leaf_ll = sum(objf(leaves == p) for p in range(12))
    root_ll = objf(stats.events[:, 1] == 1) + objf(stats.events[:, 1] > 1)
    assert info["likelihood_gain"] == pytest.approx(leaf_ll - root_ll, rel=1e-9)

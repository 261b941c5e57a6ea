"""Seeds-pooled paired comparison: the p-value, the minimum detectable effect and the verdict,
against hand computations and a power simulation."""
import numpy as np
import pytest

from kdhybrid.distill.significance import Comparison, bootstrap_p, compare, minimum_detectable_effect, pooled_errors, verdict


def test_pooled_errors_and_seed_statistics():
    a = [np.array([1, 0, 2, 0]), np.array([3, 0, 0, 1])]
    assert pooled_errors(a).tolist() == [2.0, 0.0, 1.0, 0.5]
    with pytest.raises(ValueError, match=r"differ in length: \[\(3,\), \(4,\)\]"):
        pooled_errors([np.zeros(4), np.zeros(3)])
    words = np.full(4, 5)  # 20 words: 3 and 4 errors -> 15% and 20%; the other side 1, 1, 1 -> 5%
    c = compare(a, [np.array([1, 0, 0, 0])] * 3, words, n=2000)
    assert (c.ref_wer, c.ref_sd, c.ref_n) == (17.5, pytest.approx(np.std([15.0, 20.0], ddof=1)), 2)
    assert (c.new_wer, c.new_sd, c.new_n) == (5.0, 0.0, 3)
    assert c.relative == pytest.approx(100 * 12.5 / 17.5)
    with pytest.raises(ValueError, match="utterance counts differ"):
        compare(a, [np.zeros(3)], np.full(3, 5))


def test_bootstrap_p_extremes_and_symmetry():
    assert bootstrap_p(np.zeros(10)) == 1.0
    assert bootstrap_p(np.ones(10)) == 0.0  # every resample's sum is positive
    d = np.array([1.0, -1.0, 2.0, 0.0, 1.0, -2.0, 3.0, 0.0])
    assert bootstrap_p(d, 4000) == pytest.approx(bootstrap_p(-d, 4000))


def test_minimum_detectable_effect_by_hand():
    # U = 4 differences of sd 1 (ddof 0), 10 reference errors: (1.95996 + 0.84162) * 2 * 1 / 10 = 56.03%
    assert minimum_detectable_effect(np.array([1.0, -1.0, 1.0, -1.0]), 10.0) == pytest.approx(56.0317, abs=1e-3)
    assert minimum_detectable_effect(np.array([1.0, -1.0]), 0.0) == float("inf")


def test_minimum_detectable_effect_has_the_power_it_claims():
    """Differences drawn with a true mean shift equal to the MDE are found significant in about
    80% of 200 simulated test sets (binomial sd 2.8 points; 0.70-0.90 is more than 3 sd); the
    test keeps its size without one."""
    rng = np.random.default_rng(7)
    u, sd, ref_errors = 400, 1.0, 1000.0
    mde = minimum_detectable_effect(np.tile([sd, -sd], u // 2), ref_errors)  # differences of sd exactly 1
    shift = mde / 100 * ref_errors / u  # per-utterance mean difference whose total is the MDE
    hits = sum(bootstrap_p(rng.normal(shift, sd, u), n=1000, seed=i) < 0.05 for i in range(200))
    assert 0.70 <= hits / 200 <= 0.90
    # and without a shift, about alpha = 5% (binomial sd 1.5 points: at most 10%)
    false = sum(bootstrap_p(rng.normal(0.0, sd, u), n=1000, seed=i) < 0.05 for i in range(200))
    assert false / 200 <= 0.10


def _c(p: float, rel: float, n: int = 3, mde: float = 6.0) -> Comparison:
    return Comparison(20.0, 20.0 * (1 - rel / 100), None, None, n, n, rel, p, mde)


def test_verdict_rules():
    assert verdict(_c(0.01, 5.0, n=2)) == "inconclusive (seeds 2 vs 2; 3 needed)"
    assert verdict(_c(0.01, 5.0)) == "reproduced"
    assert verdict(_c(0.01, -5.0)) == "not reproduced (significantly worse)"
    assert verdict(_c(0.4, 1.0), paper_relative=9.0) == "not reproduced (the paper's 9% was detectable)"
    assert verdict(_c(0.4, 1.0), paper_relative=5.0) == "inconclusive (not significant)"
    assert verdict(_c(0.4, 1.0)) == "inconclusive (not significant)"

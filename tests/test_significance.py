"""Paired comparison with seeds: the p-value, the minimum detectable effect, the interval and
the verdict, against hand computations and simulations of the test's size and power."""
import numpy as np
import pytest

from kdhybrid.distill.significance import Comparison, bootstrap_p, compare, pooled_errors, verdict

Z = 1.959964 + 0.841621  # z_{0.975} + z_{0.8}


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


def test_one_seed_a_side_is_the_paired_bootstrap():
    """With one seed a side: the p-value is the plain paired bootstrap's, the MDE the normal
    approximation's (z * sqrt(U) * sd(d) errors, by hand) within the bootstrap's noise."""
    rng = np.random.default_rng(3)
    ref = rng.poisson(1.0, 500)
    new = np.maximum(ref - rng.binomial(1, 0.15, 500) + rng.binomial(1, 0.1, 500), 0)
    c = compare([ref], [new], np.full(500, 9), n=10000, seed=4)
    assert c.p == bootstrap_p((ref - new).astype(float), 10000, 4)
    assert c.mde == pytest.approx(100 * Z * np.sqrt(500) * np.std(new - ref) / ref.sum(), rel=0.03)
    assert c.low < c.relative < c.high


def _seeds(rng, rate, k, seed_sd):
    """k seeds' per-utterance errors: Poisson around ``rate`` (U,), each seed's rate scaled by 1 + N(0, seed_sd)."""
    return [rng.poisson(rate * max(0.0, 1 + rng.normal(0, seed_sd))) for _ in range(k)]


def test_seed_noise_is_not_an_effect():
    """Two systems drawn alike, 3 seeds each whose WERs differ by ~10% relative from seed to seed:
    at most 10% of 100 comparisons are significant at 0.05 (pooling the seeds' errors and
    resampling only utterances finds 'effects' in about a third of them)."""
    rng = np.random.default_rng(1)
    hits = 0
    for i in range(100):
        rate = rng.gamma(1.0, 1.0, 300)
        hits += compare(_seeds(rng, rate, 3, 0.1), _seeds(rng, rate, 3, 0.1), np.full(300, 9), n=1000, seed=i).p < 0.05
    assert hits / 100 <= 0.10


def test_minimum_detectable_effect_has_the_power_it_claims():
    """One seed a side, a true relative gain equal to the MDE: found significant in about 80% of
    200 simulated test sets (binomial sd 2.8 points; 0.70-0.90 is over 3 sd); no gain: about 5%."""
    rng = np.random.default_rng(7)
    u = 400
    rate = rng.gamma(1.0, 1.0, u)
    mde = np.mean([compare([rng.poisson(rate)], [rng.poisson(rate)], np.full(u, 9), n=1000, seed=i).mde for i in range(20)])
    gain = rate * (1 - mde / 100)
    hits = sum(compare([rng.poisson(rate)], [rng.poisson(gain)], np.full(u, 9), n=1000, seed=i).p < 0.05 for i in range(200))
    assert 0.70 <= hits / 200 <= 0.90
    false = sum(compare([rng.poisson(rate)], [rng.poisson(rate)], np.full(u, 9), n=1000, seed=i).p < 0.05 for i in range(200))
    assert false / 200 <= 0.10


def _c(p: float, rel: float, n: int = 3, low: float = -2.0, high: float = 4.0) -> Comparison:
    return Comparison(20.0, 20.0 * (1 - rel / 100), None, None, n, n, rel, p, 6.0, low, high)


def test_verdict_rules():
    assert verdict(_c(0.01, 5.0, n=2)) == "inconclusive (seeds 2 vs 2; 3 needed)"
    assert verdict(_c(0.01, 5.0)) == "reproduced"
    assert verdict(_c(0.01, -5.0)) == "not reproduced (significantly worse)"
    assert verdict(_c(0.4, 1.0), paper_relative=9.0) == ("not reproduced (the 95% interval, -2.0% to +4.0%, lies below the "
                                                         "paper's 9%)")
    assert verdict(_c(0.4, 1.0), paper_relative=3.0) == "inconclusive (not significant)"
    assert verdict(_c(0.4, 1.0)) == "inconclusive (not significant)"
    assert verdict(_c(0.4, -1.0), no_worse=True) == "reproduced (not significantly worse)"
    assert verdict(_c(0.01, -5.0), no_worse=True) == "not reproduced (significantly worse)"

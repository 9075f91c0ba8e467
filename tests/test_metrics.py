"""Metrics checked against hand counts and against slow, obviously correct definitions."""

from __future__ import annotations

import math

import numpy as np
import pytest

from boneaug.classify import metrics
from boneaug.classify.metrics import (
    _resampled_aucs,
    bootstrap_ci,
    delong_test,
    mean_sd,
    pr_auc,
    roc_auc,
    roc_curve,
    seed_image_bootstrap,
    sensitivity_at_specificity,
)
from boneaug.errors import BoneaugError


def pairwise_auc(y: np.ndarray, s: np.ndarray) -> float:
    """AUC by counting every positive/negative pair, a tie counting 1/2."""
    pos, neg = s[y == 1], s[y == 0]
    wins = (pos[:, None] > neg[None, :]).sum() + 0.5 * (pos[:, None] == neg[None, :]).sum()
    return float(wins / (pos.size * neg.size))


# --- roc_auc -------------------------------------------------------------------------


def test_auc_of_known_rankings() -> None:
    y = np.array([0, 0, 1, 1])
    assert roc_auc(y, [0.1, 0.2, 0.3, 0.4]) == 1.0
    assert roc_auc(y, [0.4, 0.3, 0.2, 0.1]) == 0.0
    # Pairs (pos, neg): (.35,.1) win, (.35,.4) loss, (.8,.1) win, (.8,.4) win -> 3/4.
    assert roc_auc(y, [0.1, 0.4, 0.35, 0.8]) == pytest.approx(0.75)


def test_auc_counts_ties_as_half() -> None:
    assert roc_auc([0, 1], [0.5, 0.5]) == 0.5
    assert roc_auc([0, 0, 1, 1, 1], [1.0] * 5) == 0.5
    # Pairs: (.5 vs .2) win, (.5 vs .5) tie, (.9 vs .2) win, (.9 vs .5) win -> 3.5 / 4.
    assert roc_auc([0, 0, 1, 1], [0.2, 0.5, 0.5, 0.9]) == pytest.approx(0.875)


def test_auc_matches_pairwise_count_with_many_ties() -> None:
    rng = np.random.default_rng(3)
    y = rng.integers(0, 2, 60)
    s = rng.integers(0, 5, 60).astype(float) + y  # few distinct values: many ties
    assert roc_auc(y, s) == pytest.approx(pairwise_auc(y, s), abs=1e-12)


@pytest.mark.parametrize(
    ("y", "s", "message"),
    [
        ([0, 1, 1], [0.1, 0.2], "differ in length"),
        ([1, 1, 1], [0.1, 0.2, 0.3], "both classes"),
        ([0, 0], [0.1, 0.2], "both classes"),
        ([0, 2, 1], [0.1, 0.2, 0.3], "0 or 1"),
        ([0, 1, 1], [0.1, float("nan"), 0.3], "finite"),
        ([[0, 1]], [[0.1, 0.2]], "one-dimensional"),
    ],
)
def test_bad_input_is_one_clear_error(y: list, s: list, message: str) -> None:
    for metric in (roc_auc, pr_auc, sensitivity_at_specificity):
        with pytest.raises(BoneaugError, match=message):
            metric(y, s)
    with pytest.raises(BoneaugError, match=message):
        roc_curve(y, s)


# --- roc_curve -----------------------------------------------------------------------


def test_roc_curve_runs_from_origin_to_corner_monotonically() -> None:
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 80)
    s = np.round(rng.normal(size=80) + y, 1)  # rounded: tied blocks
    fpr, tpr, thresholds = roc_curve(y, s)
    assert (fpr[0], tpr[0]) == (0.0, 0.0)
    assert (fpr[-1], tpr[-1]) == (1.0, 1.0)
    assert np.all(np.diff(fpr) >= 0) and np.all(np.diff(tpr) >= 0)
    assert thresholds[0] == np.inf and np.all(np.diff(thresholds) < 0)
    # One point per distinct score (ties are one step), plus the origin.
    assert len(fpr) == len(np.unique(s)) + 1
    # A tied block is a diagonal segment, whose trapezoid is the 1/2 credit of the AUC.
    assert np.trapezoid(tpr, fpr) == pytest.approx(roc_auc(y, s), abs=1e-12)


def test_roc_curve_of_a_hand_case() -> None:
    fpr, tpr, thresholds = roc_curve([0, 0, 1, 1], [0.1, 0.4, 0.35, 0.8])
    np.testing.assert_allclose(fpr, [0, 0, 0.5, 0.5, 1])
    np.testing.assert_allclose(tpr, [0, 0.5, 0.5, 1, 1])
    np.testing.assert_allclose(thresholds, [np.inf, 0.8, 0.4, 0.35, 0.1])


# --- pr_auc --------------------------------------------------------------------------


def test_pr_auc_of_hand_cases() -> None:
    # Thresholds .8, .4, .35, .1: (P, R) = (1, .5), (.5, .5), (2/3, 1), (.5, 1)
    # -> AP = .5 * 1 + .5 * 2/3 = 5/6 (the value scikit-learn documents for this case).
    assert pr_auc([0, 0, 1, 1], [0.1, 0.4, 0.35, 0.8]) == pytest.approx(5 / 6)
    # A tie at .9 between a positive and a negative is one threshold:
    # (P, R) = (1/2, 1/3), (2/3, 2/3), (2/4, 2/3), (3/5, 1) -> (1/2 + 2/3 + 3/5) / 3 = 53/90.
    assert pr_auc([1, 0, 1, 0, 1], [0.9, 0.9, 0.5, 0.3, 0.1]) == pytest.approx(53 / 90)
    assert pr_auc([0, 0, 1, 1], [0.1, 0.2, 0.3, 0.4]) == pytest.approx(1.0)


def test_pr_auc_does_not_depend_on_the_order_within_ties() -> None:
    y = np.array([1, 0, 1, 0, 0, 1])
    s = np.array([0.7, 0.7, 0.7, 0.2, 0.2, 0.1])
    flipped = np.arange(6)[::-1]
    assert pr_auc(y, s) == pytest.approx(pr_auc(y[flipped], s[flipped]))


# --- sensitivity_at_specificity -----------------------------------------------------


def test_sensitivity_at_specificity_hand_case() -> None:
    negatives = np.arange(10) / 10  # 0.0 ... 0.9
    positives = np.array([0.95, 0.85, 0.75, 0.5, 0.05])
    y = np.r_[np.zeros(10, int), np.ones(5, int)]
    s = np.r_[negatives, positives]
    # Specificity >= 0.9 allows one false positive (the negative at .9): the threshold .85
    # then catches .95 and .85 -> 2 / 5.
    assert sensitivity_at_specificity(y, s, 0.9) == pytest.approx(0.4)
    # No false positive allowed: only .95 is caught.
    assert sensitivity_at_specificity(y, s, 1.0) == pytest.approx(0.2)
    # Three false positives (.9, .8, .7): .95, .85, .75 caught.
    assert sensitivity_at_specificity(y, s, 0.7) == pytest.approx(0.6)
    # Five false positives: the threshold .5 takes the tied positive and negative together.
    assert sensitivity_at_specificity(y, s, 0.5) == pytest.approx(0.8)
    assert sensitivity_at_specificity(y, s, 0.0) == pytest.approx(1.0)


def test_sensitivity_is_zero_when_no_threshold_reaches_the_target() -> None:
    # The top score is a negative: any finite threshold has specificity < 1.
    assert sensitivity_at_specificity([0, 1, 1], [0.9, 0.5, 0.4], 1.0) == 0.0
    with pytest.raises(BoneaugError, match="specificity"):
        sensitivity_at_specificity([0, 1], [0.1, 0.2], 1.5)


# --- bootstrap_ci --------------------------------------------------------------------


def scored_sample(n: int, seed: int, shift: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    y = (np.arange(n) % 3 == 0).astype(int)  # a third positive
    return y, rng.normal(size=n) + shift * y


def test_bootstrap_interval_contains_estimate_and_narrows_with_data() -> None:
    widths = []
    for n in (45, 900):
        y, s = scored_sample(n, seed=n)
        lo, hi = bootstrap_ci(y, s, roc_auc, n_boot=300, seed=1)
        assert lo <= roc_auc(y, s) <= hi
        widths.append(hi - lo)
    assert widths[1] < widths[0] / 2  # about 1/sqrt(20) as wide with 20x the data


def test_bootstrap_is_stratified_and_deterministic() -> None:
    y, s = scored_sample(30, seed=0)
    # The number of positives in every replicate is that of the data.
    assert bootstrap_ci(y, s, lambda yy, ss: float(yy.sum()), n_boot=100) == (10.0, 10.0)
    assert bootstrap_ci(y, s, pr_auc, n_boot=100, seed=4) == \
        bootstrap_ci(y, s, pr_auc, n_boot=100, seed=4)
    assert bootstrap_ci(y, s, pr_auc, n_boot=100, seed=4) != \
        bootstrap_ci(y, s, pr_auc, n_boot=100, seed=5)
    lo90, hi90 = bootstrap_ci(y, s, roc_auc, n_boot=200, level=0.9)
    lo99, hi99 = bootstrap_ci(y, s, roc_auc, n_boot=200, level=0.99)
    assert lo99 <= lo90 and hi90 <= hi99
    with pytest.raises(BoneaugError, match="level"):
        bootstrap_ci(y, s, roc_auc, level=95)


# --- delong_test ---------------------------------------------------------------------


def delong_by_pairs(y: np.ndarray, s1: np.ndarray, s2: np.ndarray) -> dict[str, float]:
    """DeLong (1988) written out with the O(n^2) kernel psi(x, y) = 1, 1/2, 0."""
    def components(s: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        pos, neg = s[y == 1], s[y == 0]
        psi = np.zeros((pos.size, neg.size))
        for i in range(pos.size):
            for j in range(neg.size):
                psi[i, j] = 1.0 if pos[i] > neg[j] else 0.5 if pos[i] == neg[j] else 0.0
        return psi.mean(axis=1), psi.mean(axis=0)  # V10 per positive, V01 per negative

    v10_1, v01_1 = components(s1)
    v10_2, v01_2 = components(s2)
    m, n = v10_1.size, v01_1.size

    def cov(a: np.ndarray, b: np.ndarray) -> float:
        return float(np.sum((a - a.mean()) * (b - b.mean())) / (a.size - 1))

    var1 = cov(v10_1, v10_1) / m + cov(v01_1, v01_1) / n
    var2 = cov(v10_2, v10_2) / m + cov(v01_2, v01_2) / n
    covariance = cov(v10_1, v10_2) / m + cov(v01_1, v01_2) / n
    auc1, auc2 = v10_1.mean(), v10_2.mean()
    z = (auc1 - auc2) / math.sqrt(var1 + var2 - 2 * covariance)
    return {"auc1": auc1, "auc2": auc2, "var1": var1, "var2": var2, "cov": covariance, "z": z,
            "p": math.erfc(abs(z) / math.sqrt(2))}


def test_delong_hand_counted_variance() -> None:
    # Positives .35, .8; negatives .1, .4. V10 = (1/2, 1), V01 = (1, 1/2); each has sample
    # variance 1/8, so var(AUC) = (1/8) / 2 + (1/8) / 2 = 1/8.
    result = delong_test([0, 0, 1, 1], [0.1, 0.4, 0.35, 0.8], [0.1, 0.2, 0.3, 0.4])
    assert result.auc1 == pytest.approx(0.75) and result.auc2 == pytest.approx(1.0)
    assert result.var1 == pytest.approx(0.125) and result.var2 == 0.0 and result.cov == 0.0
    assert result.z == pytest.approx(-0.25 / math.sqrt(0.125))


def test_delong_matches_the_quadratic_definition() -> None:
    rng = np.random.default_rng(7)
    y = (rng.random(37) < 0.4).astype(int)
    truth = rng.normal(size=37) + y
    s1 = np.round(truth + 0.5 * rng.normal(size=37), 1)  # ties within and across classes
    s2 = np.round(truth + 1.5 * rng.normal(size=37), 1)
    expected = delong_by_pairs(y, s1, s2)
    result = delong_test(y, s1, s2)
    for key, value in expected.items():
        assert getattr(result, key) == pytest.approx(value, abs=1e-10), key
    assert result.difference == pytest.approx(expected["auc1"] - expected["auc2"], abs=1e-12)


def test_delong_identical_rankings_give_p_one() -> None:
    y, s = scored_sample(40, seed=2)
    for other in (s, 3 * s + 1):  # the same ranking
        result = delong_test(y, s, other)
        assert (result.z, result.p, result.difference) == (0.0, 1.0, 0.0)


def test_delong_finds_a_clearly_better_scorer() -> None:
    rng = np.random.default_rng(11)
    y = (np.arange(200) % 2).astype(int)
    good = 2.0 * y + rng.normal(size=200)
    weak = 0.2 * y + rng.normal(size=200)
    result = delong_test(y, good, weak)
    assert result.difference > 0.2 and result.z > 0
    assert result.p < 1e-4
    assert delong_test(y, weak, good).z == pytest.approx(-result.z)


def test_delong_rejects_misaligned_scores() -> None:
    with pytest.raises(BoneaugError, match="s2"):
        delong_test([0, 1, 1], [0.1, 0.2, 0.3], [0.1, 0.2])


# --- seed_image_bootstrap ------------------------------------------------------------


def test_seed_bootstrap_hand_computed_case() -> None:
    # A: one perfect seed (AUC 1 on every image resample) and one all-tied seed (AUC 0.5
    # on every resample); B: one all-tied seed. A replicate draws A's two seeds with
    # replacement: both perfect (1/4) -> 1 - 0.5 = 0.5; one of each (1/2) -> 0.75 - 0.5 =
    # 0.25; both tied (1/4) -> 0. So n_le / n_boot -> 1/4, n_ge = n_boot, p -> 2 * 1/4.
    y = np.array([1] * 10 + [0] * 30)
    perfect, tied = y.astype(float), np.zeros(40)
    result = seed_image_bootstrap(y, [perfect, tied], [tied], n_boot=20000, seed=3)
    assert (result.auc_a, result.auc_b, result.difference) == (0.75, 0.5, 0.25)
    assert (result.lo, result.hi) == (0.0, 0.5)
    # sd of p: 2 * sqrt(1/4 * 3/4 / 20000) = 0.006
    assert result.p == pytest.approx(0.5, abs=0.03)
    assert (result.n_boot, result.k_a, result.k_b) == (20000, 2, 1)


def test_resampled_aucs_equal_roc_auc_of_the_resampled_arrays(monkeypatch) -> None:
    rng = np.random.default_rng(5)
    y = (rng.random(50) < 0.3).astype(int)
    scores = np.round(rng.normal(size=(3, 50)) + y, 1)  # ties within and across classes
    positives, negatives = np.flatnonzero(y == 1), np.flatnonzero(y == 0)
    draws = [np.r_[rng.choice(positives, positives.size), rng.choice(negatives, negatives.size)]
             for _ in range(20)]
    # Counts per positive and per negative, in the order of flatnonzero.
    w_pos = np.array([[np.count_nonzero(d == i) for i in positives] for d in draws], float)
    w_neg = np.array([[np.count_nonzero(d == i) for i in negatives] for d in draws], float)
    aucs = _resampled_aucs(y, scores, w_pos, w_neg)
    assert aucs.shape == (20, 3)
    expected = [[roc_auc(y[d], s[d]) for s in scores] for d in draws]
    np.testing.assert_allclose(aucs, expected, rtol=0, atol=1e-12)
    # The pair matrix built a few positives at a time gives the same.
    monkeypatch.setattr(metrics, "_BLOCK_BYTES", 8 * negatives.size * 3)
    np.testing.assert_allclose(_resampled_aucs(y, scores, w_pos, w_neg), expected, rtol=0,
                               atol=1e-12)


def seed_scores(strengths: tuple[float, ...], y: np.ndarray,
                rng: np.random.Generator) -> np.ndarray:
    """One row per seed: strength * label + standard normal noise."""
    return np.vstack([s * y + rng.normal(size=y.size) for s in strengths])


def test_seed_spread_widens_the_interval_where_delong_on_the_ensemble_does_not() -> None:
    rng = np.random.default_rng(1)
    y = (np.arange(240) % 4 == 0).astype(int)  # 60 positives
    baseline = seed_scores((0.8, 0.8, 0.8), y, rng)
    steady = seed_scores((1.3, 1.3, 1.3), y, rng)  # seed AUCs 0.82-0.84
    erratic = seed_scores((3.0, 1.0, 0.3), y, rng)  # seed AUCs 0.63-0.99
    steady_test = seed_image_bootstrap(y, steady, baseline)
    erratic_test = seed_image_bootstrap(y, erratic, baseline)
    assert steady_test.difference > 0 and erratic_test.difference > 0
    assert steady_test.p < 0.05 and steady_test.lo > 0
    assert erratic_test.p > 0.2 and erratic_test.lo < 0 < erratic_test.hi
    assert erratic_test.hi - erratic_test.lo > 2 * (steady_test.hi - steady_test.lo)
    # The motivating case: the seed ensemble's DeLong test calls the erratic one a clear win.
    assert delong_test(y, erratic.mean(axis=0), baseline.mean(axis=0)).p < 0.001


def test_seed_bootstrap_is_deterministic_and_paired_on_images(monkeypatch) -> None:
    rng = np.random.default_rng(2)
    y = (np.arange(90) % 3 == 0).astype(int)
    a, b = seed_scores((1.0, 1.5), y, rng), seed_scores((0.5, 0.7, 0.9), y, rng)
    first = seed_image_bootstrap(y, a, b, n_boot=300, seed=4)
    assert seed_image_bootstrap(y, a, b, n_boot=300, seed=4) == first
    assert seed_image_bootstrap(y, a, b, n_boot=300, seed=5) != first
    assert first.lo <= first.difference <= first.hi
    assert first.auc_a == pytest.approx(np.mean([roc_auc(y, s) for s in a]))
    # One seed each: a paired image bootstrap; swapping the sides mirrors every replicate.
    ab = seed_image_bootstrap(y, a[0], b[0], n_boot=300, seed=4)
    ba = seed_image_bootstrap(y, b[0], a[0], n_boot=300, seed=4)
    assert (ab.lo, ab.hi, ab.p) == pytest.approx((-ba.hi, -ba.lo, ba.p))
    # Chunking the replicates (to bound the memory) changes no draw.
    monkeypatch.setattr(metrics, "_BLOCK_BYTES", 8 * 200)
    chunked = seed_image_bootstrap(y, a, b, n_boot=300, seed=4)
    assert (chunked.lo, chunked.hi, chunked.p) == pytest.approx((first.lo, first.hi, first.p))
    monkeypatch.undo()
    # A condition against itself: every replicate is 0, so p = 1 and the interval is [0, 0].
    same = seed_image_bootstrap(y, a[:1], a[:1], n_boot=50)
    assert (same.difference, same.lo, same.hi, same.p) == (0.0, 0.0, 0.0, 1.0)
    # The p-value's +1: with every replicate above 0, p = 2 / (n_boot + 1).
    clear = seed_image_bootstrap(y, y[None, :] * 1.0, b, n_boot=99)
    assert clear.p == pytest.approx(2 / 100)


@pytest.mark.parametrize(("y", "a", "b", "kwargs", "message"), [
    ([0, 1, 1], [[0.1, 0.2]], [[0.1, 0.2, 0.3]], {}, "scores_a scores 2 images but y "
                                                      "labels 3"),
    ([0, 1, 1], np.zeros((0, 3)), [[0.1, 0.2, 0.3]], {}, "at least one seed"),
    ([0, 1, 1], np.zeros((1, 1, 3)), [[0.1, 0.2, 0.3]], {}, r"\(seeds, images\)"),
    ([0, 1, 1], [[0.1, 0.2, 0.3]], [[0.1, np.nan, 0.3]], {}, r"scores_b\[0, 1\] is nan"),
    ([1, 1, 1], [[0.1, 0.2, 0.3]], [[0.1, 0.2, 0.3]], {}, "both classes"),
    ([0, 2, 1], [[0.1, 0.2, 0.3]], [[0.1, 0.2, 0.3]], {}, "0 or 1"),
    ([[0, 1, 1]], [[0.1, 0.2, 0.3]], [[0.1, 0.2, 0.3]], {}, "one-dimensional"),
    ([0, 1, 1], [[0.1, 0.2, 0.3]], [[0.1, 0.2, 0.3]], {"n_boot": 0}, "n_boot"),
    ([0, 1, 1], [[0.1, 0.2, 0.3]], [[0.1, 0.2, 0.3]], {"level": 95}, "level"),
])
def test_seed_bootstrap_bad_input(y: list, a: object, b: object, kwargs: dict,
                                  message: str) -> None:
    with pytest.raises(BoneaugError, match=message) as info:
        seed_image_bootstrap(y, a, b, **kwargs)
    assert "\n" not in str(info.value)


# --- mean_sd -------------------------------------------------------------------------


def test_mean_sd() -> None:
    assert mean_sd([1.0, 2.0, 3.0, float("nan")]) == (2.0, 1.0)
    assert mean_sd([0.7]) == (0.7, 0.0)
    mean, sd = mean_sd([float("nan")])
    assert math.isnan(mean) and math.isnan(sd)

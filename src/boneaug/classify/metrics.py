"""Binary-classification metrics and their uncertainty, in numpy and scipy only.

Every function takes labels ``y`` (shape ``(n,)``, values 0 = no lesion / 1 = lesion) and
scores ``s`` (shape ``(n,)``, finite floats, higher = more likely lesion). Inputs are
checked first: both arrays one-dimensional and of one length, labels in {0, 1}, scores
finite, and both classes present (no ranking metric is defined without them); anything
else raises `BoneaugError` with one line saying what is wrong.

Ties between scores are never broken by order: a tied positive/negative pair counts 1/2
in the AUC, and a block of tied scores is one threshold (one step) in the ROC and
precision-recall curves, as in scikit-learn.

- `roc_auc`: area under the ROC curve (the Mann-Whitney statistic), in [0, 1].
- `roc_curve`: the ROC points from (0, 0) to (1, 1) with their thresholds.
- `pr_auc`: average precision, the step-wise area under the precision-recall curve.
- `sensitivity_at_specificity`: the best sensitivity at a required specificity.
- `bootstrap_ci`: a stratified percentile bootstrap interval for any of the above.
- `delong_test`: DeLong's test of two correlated AUCs measured on the same images.
- `seed_image_bootstrap`: a hierarchical bootstrap over training seeds and test images of
  the difference in mean-over-seeds AUC between two conditions.
- `mean_sd`: mean and sample standard deviation over seeds, NaN-tolerant.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy.stats import norm, rankdata

from boneaug.errors import BoneaugError

Metric = Callable[[np.ndarray, np.ndarray], float]

# Count slack when comparing a specificity (a ratio of integers) to the target, so that a
# target of 0.9 with 10 negatives accepts 9 true negatives despite 0.9 * 10 != 9 in floats.
_COUNT_SLACK = 1e-9
# A bootstrap replicate difference within this of 0 counts as 0 (on both sides of the
# p-value), so that rounding in a mean over drawn seeds cannot decide a tie.
_ZERO_SLACK = 1e-12
# The largest temporary float64 array, in bytes, that `seed_image_bootstrap` builds.
_BLOCK_BYTES = 32 * 2**20


def _check(y: Any, s: Any, where: str, name: str = "s") -> tuple[np.ndarray, np.ndarray]:
    """Labels as int64 and scores as float64, both ``(n,)``, or a one-line BoneaugError."""
    try:
        labels = np.asarray(y)
        scores = np.asarray(s, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise BoneaugError(f"{where}: labels and scores must be numeric arrays ({exc})") from None
    if labels.ndim != 1 or scores.ndim != 1:
        raise BoneaugError(f"{where}: y and {name} must be one-dimensional, got shapes "
                           f"{labels.shape} and {scores.shape}")
    if labels.shape[0] != scores.shape[0]:
        raise BoneaugError(f"{where}: y and {name} differ in length "
                           f"({labels.shape[0]} labels, {scores.shape[0]} scores)")
    if labels.dtype.kind not in "biuf" or not np.isin(labels, (0, 1)).all():
        raise BoneaugError(f"{where}: labels must be 0 or 1, got {np.unique(labels)[:5]}")
    if not np.isfinite(scores).all():
        bad = int(np.flatnonzero(~np.isfinite(scores))[0])
        raise BoneaugError(f"{where}: {name}[{bad}] is {scores[bad]}; scores must be finite")
    labels = labels.astype(np.int64)
    positives = int(labels.sum())
    if positives == 0 or positives == labels.shape[0]:
        only = "negatives (0)" if positives == 0 else "positives (1)"
        raise BoneaugError(f"{where}: needs both classes, but all {labels.shape[0]} labels are "
                           f"{only}")
    return labels, scores


def roc_auc(y: Any, s: Any) -> float:
    """Area under the ROC curve, in [0, 1].

    The probability that a random positive scores above a random negative, a tie counting
    1/2 (the Mann-Whitney U statistic divided by ``n_pos * n_neg``), computed from
    midranks in O(n log n).
    """
    labels, scores = _check(y, s, "roc_auc")
    return _auc(labels, scores)


def _auc(labels: np.ndarray, scores: np.ndarray) -> float:
    positive = labels == 1
    n_pos = int(positive.sum())
    n_neg = labels.shape[0] - n_pos
    # Midranks give a tied pair half a rank each: exactly the 1/2 the AUC counts for it.
    rank_sum = rankdata(scores)[positive].sum()
    return float((rank_sum - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def _curve_counts(labels: np.ndarray, scores: np.ndarray) -> tuple[np.ndarray, ...]:
    """True and false positives at each distinct threshold, highest threshold first.

    A sample is called positive when its score is >= the threshold; the thresholds are
    the distinct scores, so each block of tied scores enters in one step.
    """
    order = np.argsort(-scores, kind="mergesort")
    ranked_scores = scores[order]
    # The last position of each block of equal scores, in descending score order.
    block_ends = np.r_[np.flatnonzero(np.diff(ranked_scores)), ranked_scores.shape[0] - 1]
    true_pos = np.cumsum(labels[order])[block_ends]
    false_pos = block_ends + 1 - true_pos
    return true_pos, false_pos, ranked_scores[block_ends]


def roc_curve(y: Any, s: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The ROC curve as ``(fpr, tpr, thresholds)``, each of shape ``(k + 1,)``.

    ``k`` is the number of distinct scores. Point ``i`` is the rule "positive when
    score >= thresholds[i]"; the first point uses threshold ``+inf`` (nothing called
    positive: (0, 0)) and the last the lowest score (everything positive: (1, 1)).
    ``fpr`` and ``tpr`` are non-decreasing, in [0, 1]; ``thresholds`` strictly decreasing.
    """
    labels, scores = _check(y, s, "roc_curve")
    true_pos, false_pos, thresholds = _curve_counts(labels, scores)
    n_pos = int(labels.sum())
    n_neg = labels.shape[0] - n_pos
    fpr = np.r_[0.0, false_pos / n_neg]
    tpr = np.r_[0.0, true_pos / n_pos]
    return fpr, tpr, np.r_[np.inf, thresholds]


def pr_auc(y: Any, s: Any) -> float:
    """Average precision, in [0, 1]: the sum over thresholds of ``precision * Δrecall``.

    Thresholds run from the highest distinct score down; a block of tied scores is one
    threshold. This is the step-wise (non-interpolated) area under the precision-recall
    curve, the definition of scikit-learn's ``average_precision_score``; its value for a
    random ranking is about the prevalence, not 0.5.
    """
    labels, scores = _check(y, s, "pr_auc")
    return _average_precision(labels, scores)


def _average_precision(labels: np.ndarray, scores: np.ndarray) -> float:
    true_pos, false_pos, _ = _curve_counts(labels, scores)
    precision = true_pos / (true_pos + false_pos)
    recall = true_pos / labels.sum()
    return float(np.sum(np.diff(np.r_[0.0, recall]) * precision))


def sensitivity_at_specificity(y: Any, s: Any, specificity: float = 0.9) -> float:
    """The highest sensitivity of a threshold whose specificity is at least `specificity`.

    Convention: only the thresholds of `roc_curve` are considered (call positive when
    score >= threshold, ties never split), and the answer is the largest true-positive
    rate among those with ``true negatives / negatives >= specificity``; no interpolation
    between ROC points. The threshold ``+inf`` (specificity 1) always qualifies, so the
    result is defined for any target in [0, 1] and is 0.0 when no finite threshold
    reaches the target. Returns a value in [0, 1].
    """
    labels, scores = _check(y, s, "sensitivity_at_specificity")
    if not 0.0 <= specificity <= 1.0:
        raise BoneaugError(f"sensitivity_at_specificity: specificity must be in [0, 1], got "
                           f"{specificity}")
    return _sensitivity_at(labels, scores, specificity)


def _sensitivity_at(labels: np.ndarray, scores: np.ndarray, specificity: float) -> float:
    true_pos, false_pos, _ = _curve_counts(labels, scores)
    n_pos = int(labels.sum())
    n_neg = labels.shape[0] - n_pos
    true_neg = n_neg - np.r_[0, false_pos]
    # Compare counts, not ratios, so that a target met exactly is met despite rounding.
    qualifies = true_neg >= specificity * n_neg - _COUNT_SLACK
    return float(np.r_[0, true_pos][qualifies].max() / n_pos)


def bootstrap_ci(
    y: Any,
    s: Any,
    metric: Metric,
    n_boot: int = 2000,
    seed: int = 0,
    level: float = 0.95,
) -> tuple[float, float]:
    """A stratified percentile bootstrap interval ``(lo, hi)`` for ``metric(y, s)``.

    Each of `n_boot` replicates draws, with replacement, as many positives as there are
    positives and as many negatives as negatives, so that every replicate has both
    classes and the prevalence of the data; `metric` (any ``(y, s) -> float`` such as
    `roc_auc`) is computed on each, and the interval is the ``(1 - level) / 2`` and
    ``(1 + level) / 2`` quantiles of the replicates (NaN replicates are ignored).

    `s` is one score vector of shape ``(n,)``. The resampled indices depend only on
    `seed`, `n_boot` and which positions of `y` are positive, so two score vectors of
    the same images bootstrapped with the same seed see the same replicates (a paired
    bootstrap); for a test of two AUCs, use `delong_test`.
    """
    labels, scores = _check(y, s, "bootstrap_ci")
    if n_boot < 1:
        raise BoneaugError(f"bootstrap_ci: n_boot must be at least 1, got {n_boot}")
    if not 0.0 < level < 1.0:
        raise BoneaugError(f"bootstrap_ci: level must be in (0, 1), got {level}")
    positives = np.flatnonzero(labels == 1)
    negatives = np.flatnonzero(labels == 0)
    rng = np.random.default_rng(seed)
    replicates = np.empty(n_boot)
    for b in range(n_boot):
        drawn = np.concatenate([
            rng.choice(positives, positives.shape[0], replace=True),
            rng.choice(negatives, negatives.shape[0], replace=True),
        ])
        replicates[b] = metric(labels[drawn], scores[drawn])
    if np.isnan(replicates).all():
        return float("nan"), float("nan")
    tail = (1.0 - level) / 2.0
    lo, hi = np.nanquantile(replicates, [tail, 1.0 - tail])
    return float(lo), float(hi)


@dataclass(frozen=True)
class DeLongResult:
    """DeLong's comparison of two AUCs measured on the same images.

    ``difference = auc1 - auc2``; ``z = difference / sqrt(var1 + var2 - 2 cov)``;
    ``p`` is two-sided, from the standard normal. ``var1``, ``var2`` and ``cov`` are
    the DeLong estimates of the variances of the two AUCs and of their covariance.
    """

    auc1: float
    auc2: float
    difference: float
    z: float
    p: float
    var1: float
    var2: float
    cov: float


def _structural_components(labels: np.ndarray, scores: np.ndarray) -> tuple[np.ndarray, ...]:
    """DeLong's placement values by the midrank method of Sun & Xu (2014).

    Returns ``(v10, v01)``: for each positive, the share of negatives it outranks, and
    for each negative, the share of positives that outrank it (ties counting 1/2).
    Their means are both the AUC.
    """
    positive = labels == 1
    pos_scores = scores[positive]
    neg_scores = scores[~positive]
    n_pos, n_neg = pos_scores.shape[0], neg_scores.shape[0]
    joint_ranks = rankdata(np.r_[pos_scores, neg_scores])
    # A positive's midrank among all, minus its midrank among the positives, counts the
    # negatives below it (ties 1/2); the same for a negative counts the positives below it.
    v10 = (joint_ranks[:n_pos] - rankdata(pos_scores)) / n_neg
    v01 = 1.0 - (joint_ranks[n_pos:] - rankdata(neg_scores)) / n_pos
    return v10, v01


def delong_test(y: Any, s1: Any, s2: Any) -> DeLongResult:
    """DeLong's test that two correlated ROC curves have the same AUC.

    `s1` and `s2` (each ``(n,)``) score the same `n` images labelled `y`. Follows DeLong,
    DeLong & Clarke-Pearson (1988, Biometrics 44:837-845) with the O(n log n) midrank
    computation of Sun & Xu (2014, IEEE Signal Processing Letters 21:1389-1393): the
    covariance of the two AUCs is ``S10 / n_pos + S01 / n_neg``, where ``S10`` and ``S01``
    are the sample covariances (ddof 1) of the placement values of positives and
    negatives.

    When the variance of the difference is 0 (the two scores rank the images alike, e.g.
    identical scores) the test is degenerate: z = 0 and p = 1.0 if the AUCs are equal;
    if they differ (only possible when both rankings are free of overlap, e.g. a perfect
    and a perfectly reversed scorer) z = ±inf and p = 0.0.
    """
    labels, scores1 = _check(y, s1, "delong_test", name="s1")
    _, scores2 = _check(labels, s2, "delong_test", name="s2")
    n_pos = int(labels.sum())
    n_neg = labels.shape[0] - n_pos
    v10_1, v01_1 = _structural_components(labels, scores1)
    v10_2, v01_2 = _structural_components(labels, scores2)
    auc1, auc2 = float(v10_1.mean()), float(v10_2.mean())
    s10 = np.cov(np.vstack([v10_1, v10_2])) if n_pos > 1 else np.zeros((2, 2))
    s01 = np.cov(np.vstack([v01_1, v01_2])) if n_neg > 1 else np.zeros((2, 2))
    covariance = s10 / n_pos + s01 / n_neg
    var1, var2, cov = float(covariance[0, 0]), float(covariance[1, 1]), float(covariance[0, 1])
    difference = auc1 - auc2
    variance = var1 + var2 - 2.0 * cov
    # Relative cut-off: rounding can leave a tiny (even negative) variance for rankings
    # that are in truth alike.
    if variance <= 1e-12 * (var1 + var2) or variance <= 0.0:
        if difference == 0.0:
            z, p = 0.0, 1.0
        else:
            z, p = float(np.copysign(np.inf, difference)), 0.0
    else:
        z = difference / float(np.sqrt(variance))
        p = float(2.0 * norm.sf(abs(z)))
    return DeLongResult(auc1=auc1, auc2=auc2, difference=difference, z=z, p=p,
                        var1=var1, var2=var2, cov=cov)


@dataclass(frozen=True)
class SeedBootstrapResult:
    """The hierarchical (seeds x test images) bootstrap of two conditions' mean AUCs.

    ``difference = auc_a - auc_b``, where ``auc_a`` is the mean over A's `k_a` seeds of
    each seed's AUC on the original test images (``auc_b`` likewise for B). ``lo`` and
    ``hi`` are the percentile interval of the `n_boot` replicate differences; ``p`` is the
    two-sided bootstrap p-value (see `seed_image_bootstrap`).
    """

    difference: float
    lo: float
    hi: float
    p: float
    auc_a: float
    auc_b: float
    n_boot: int
    k_a: int
    k_b: int


def _check_seeds(labels: np.ndarray, scores: Any, where: str, name: str) -> np.ndarray:
    """`scores` as float64 ``(K, n)`` (one ``(n,)`` vector is K = 1), or a BoneaugError."""
    try:
        array = np.asarray(scores, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise BoneaugError(f"{where}: {name} must be a numeric array ({exc})") from None
    if array.ndim == 1:
        array = array[None, :]
    if array.ndim != 2:
        raise BoneaugError(f"{where}: {name} must be (seeds, images), got shape {array.shape}")
    if array.shape[0] < 1:
        raise BoneaugError(f"{where}: {name} needs at least one seed, got shape "
                           f"{array.shape}")
    if array.shape[1] != labels.shape[0]:
        raise BoneaugError(f"{where}: {name} scores {array.shape[1]} images but y labels "
                           f"{labels.shape[0]}")
    if not np.isfinite(array).all():
        k, i = (int(v[0]) for v in np.nonzero(~np.isfinite(array)))
        raise BoneaugError(f"{where}: {name}[{k}, {i}] is {array[k, i]}; scores must be "
                           "finite")
    return array


def _pair_matrix(pos_scores: np.ndarray, neg_scores: np.ndarray) -> np.ndarray:
    """``H[i, j]`` = 1 if positive i scores above negative j, 0.5 if tied, else 0."""
    return 0.5 + 0.5 * np.sign(pos_scores[:, None] - neg_scores[None, :])


def _resampled_aucs(labels: np.ndarray, scores: np.ndarray, w_pos: np.ndarray,
                    w_neg: np.ndarray) -> np.ndarray:
    """The AUC of each seed on each image resample, as a ``(B, K)`` array.

    `scores` is ``(K, n)``; `w_pos` ``(B, n_pos)`` and `w_neg` ``(B, n_neg)`` count how
    often each positive and each negative (in the order of ``np.flatnonzero(labels ==
    1)`` and ``== 0``) is drawn in each of B resamples. The AUC of seed k on resample b is
    ``w_pos[b] @ H_k @ w_neg[b] / (w_pos[b].sum() * w_neg[b].sum())`` with `H_k` the pair
    matrix of `_pair_matrix`: exactly `roc_auc` of the resampled arrays, since a drawn
    copy of an image is one more positive (or negative) in every pair it takes part in.
    `H_k` is built a block of positives at a time to bound the memory.
    """
    positive = labels == 1
    n_pos = int(positive.sum())
    n_neg = labels.shape[0] - n_pos
    rows = max(1, min(n_pos, _BLOCK_BYTES // (8 * n_neg)))
    totals = w_pos.sum(axis=1) * w_neg.sum(axis=1)
    out = np.empty((w_pos.shape[0], scores.shape[0]))
    for k, seed_scores in enumerate(scores):
        pos_scores, neg_scores = seed_scores[positive], seed_scores[~positive]
        weighted = np.zeros((w_pos.shape[0], n_neg))
        for start in range(0, n_pos, rows):
            block = _pair_matrix(pos_scores[start:start + rows], neg_scores)
            weighted += w_pos[:, start:start + rows] @ block
        out[:, k] = np.einsum("bj,bj->b", weighted, w_neg) / totals
    return out


def seed_image_bootstrap(
    y: Any,
    scores_a: Any,
    scores_b: Any,
    n_boot: int = 2000,
    seed: int = 0,
    level: float = 0.95,
) -> SeedBootstrapResult:
    """Compare two conditions' mean-over-seeds AUCs, resampling seeds and test images.

    `scores_a` is ``(K_a, n)`` and `scores_b` ``(K_b, n)``: the scores of each training
    seed of conditions A and B on the same `n` test images labelled `y` (a ``(n,)``
    vector is one seed). The statistic is ``mean_k AUC(a_k) - mean_k AUC(b_k)``, each AUC
    the `roc_auc` of one seed (ties 1/2).

    Each of `n_boot` replicates draws:
    - the test images, stratified: as many positives as there are positives and as many
      negatives as negatives, with replacement; this one draw serves A and B alike (the
      comparison is paired on images);
    - K_a seeds of A with replacement, and independently K_b seeds of B with replacement
      (the seeds of two conditions are separate trainings: nothing pairs seed k of A
      with seed k of B);
    and its value is the mean over the drawn A seeds of their AUC on the drawn images,
    minus the same for B. The interval ``(lo, hi)`` is the ``(1 - level) / 2`` and
    ``(1 + level) / 2`` quantiles of the replicates. The p-value is two-sided:
    ``p = min(1, 2 * min((n_le + 1) / (n_boot + 1), (n_ge + 1) / (n_boot + 1)))`` with
    ``n_le`` and ``n_ge`` the replicates ``<= 0`` and ``>= 0`` (a replicate within 1e-12
    of 0 counts in both). With one seed each it is a paired, stratified bootstrap of the
    test images.

    An image resample is a vector of draw counts per positive and per negative, so each
    replicate AUC is ``w_pos @ H @ w_neg / (n_pos * n_neg)`` (see `_resampled_aucs`),
    computed for many replicates at once as matrix products. The image draws depend only
    on `seed`, `n_boot` and the numbers of positives and negatives, so every comparison
    with the same seed on the same test set sees the same image resamples; the result is
    deterministic given `seed`.
    """
    where = "seed_image_bootstrap"
    if np.ndim(y) != 1:
        raise BoneaugError(f"{where}: y must be one-dimensional, got shape {np.shape(y)}")
    # The labels' checks of `_check` (0/1, both classes), with stand-in scores.
    labels, _ = _check(y, np.zeros(np.shape(y)[0]), where)
    first = _check_seeds(labels, scores_a, where, "scores_a")
    second = _check_seeds(labels, scores_b, where, "scores_b")
    if isinstance(n_boot, bool) or not isinstance(n_boot, (int, np.integer)) or n_boot < 1:
        raise BoneaugError(f"{where}: n_boot must be an integer of at least 1, got {n_boot!r}")
    if not 0.0 < level < 1.0:
        raise BoneaugError(f"{where}: level must be in (0, 1), got {level}")
    n_boot = int(n_boot)
    k_a, k_b = first.shape[0], second.shape[0]
    auc_a = float(np.mean([_auc(labels, s) for s in first]))
    auc_b = float(np.mean([_auc(labels, s) for s in second]))

    n_pos = int(labels.sum())
    n_neg = labels.shape[0] - n_pos
    # One stream per kind of draw: the image draws do not depend on how many seeds either
    # side has, and no draw depends on how the replicates are chunked.
    pos_rng, neg_rng, a_rng, b_rng = (np.random.default_rng(s)
                                      for s in np.random.SeedSequence(seed).spawn(4))
    # Replicates per chunk, so that the (chunk, n) temporaries stay within the budget.
    chunk = max(1, min(n_boot, _BLOCK_BYTES // (8 * (n_pos + 2 * n_neg))))
    replicates = np.empty(n_boot)
    for start in range(0, n_boot, chunk):
        size = min(chunk, n_boot - start)
        w_pos = pos_rng.multinomial(n_pos, np.full(n_pos, 1.0 / n_pos), size=size)
        w_neg = neg_rng.multinomial(n_neg, np.full(n_neg, 1.0 / n_neg), size=size)
        drawn_a = a_rng.multinomial(k_a, np.full(k_a, 1.0 / k_a), size=size)
        drawn_b = b_rng.multinomial(k_b, np.full(k_b, 1.0 / k_b), size=size)
        w_pos, w_neg = w_pos.astype(np.float64), w_neg.astype(np.float64)
        mean_a = (_resampled_aucs(labels, first, w_pos, w_neg) * drawn_a).sum(axis=1) / k_a
        mean_b = (_resampled_aucs(labels, second, w_pos, w_neg) * drawn_b).sum(axis=1) / k_b
        replicates[start:start + size] = mean_a - mean_b

    tail = (1.0 - level) / 2.0
    lo, hi = np.quantile(replicates, [tail, 1.0 - tail])
    n_le = int(np.count_nonzero(replicates <= _ZERO_SLACK))
    n_ge = int(np.count_nonzero(replicates >= -_ZERO_SLACK))
    p = min(1.0, 2.0 * min(n_le + 1, n_ge + 1) / (n_boot + 1))
    return SeedBootstrapResult(difference=auc_a - auc_b, lo=float(lo), hi=float(hi),
                               p=float(p), auc_a=auc_a, auc_b=auc_b, n_boot=n_boot,
                               k_a=k_a, k_b=k_b)


def mean_sd(values: Any) -> tuple[float, float]:
    """Mean and sample standard deviation (ddof 1) of `values`, NaN entries ignored.

    One value gives sd 0.0; no (non-NaN) value gives ``(nan, nan)``.
    """
    array = np.asarray(values, dtype=np.float64).ravel()
    array = array[~np.isnan(array)]
    if array.shape[0] == 0:
        return float("nan"), float("nan")
    if array.shape[0] == 1:
        return float(array[0]), 0.0
    return float(array.mean()), float(array.std(ddof=1))

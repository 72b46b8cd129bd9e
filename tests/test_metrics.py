"""metrics.py: hand-computed golden cases and scikit-learn as an independent oracle."""
import math

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from factornet_jax import metrics

sk = pytest.importorskip("sklearn.metrics")


# ---------------------------------------------------------------- hand-computed cases

def test_tiny_case_without_ties():
    labels = [1, 0, 1, 0]
    scores = [0.9, 0.8, 0.7, 0.1]
    # pos 0.9 beats both negatives, pos 0.7 beats one: 3 of 4 pairs
    assert metrics.auroc(labels, scores) == pytest.approx(0.75)
    # thresholds 0.9: P=1 R=1/2; 0.8: P=1/2 R=1/2; 0.7: P=2/3 R=1
    assert metrics.auprc(labels, scores) == pytest.approx(0.5 * 1 + 0.5 * 2 / 3)
    # FDR at 0.9, 0.8, 0.7, 0.1 = 0, 1/2, 1/3, 1/2
    assert metrics.recall_at_fdr(labels, scores, 0.5) == 1.0
    assert metrics.recall_at_fdr(labels, scores, 0.1) == 0.5
    assert metrics.recall_at_fdr(labels, scores, 0.0) == 0.5


def test_ties_are_one_threshold_group():
    labels = [1, 0, 1, 0]
    scores = [1.0, 1.0, 0.5, 0.5]
    # each tied pair counts one half: (0.5 + 1 + 0 + 0.5) / 4
    assert metrics.auroc(labels, scores) == pytest.approx(0.5)
    # group 1.0: P=1/2 R=1/2; group 0.5: P=1/2 R=1
    assert metrics.auprc(labels, scores) == pytest.approx(0.5)
    # breaking the tie in favour of the positive would give recall 1/2 at FDR 0
    assert metrics.recall_at_fdr(labels, scores, 0.1) == 0.0
    assert metrics.recall_at_fdr(labels, scores, 0.5) == 1.0
    precision, recall, thresholds = metrics.pr_curve(labels, scores)
    np.testing.assert_array_equal(thresholds, [1.0, 0.5])
    np.testing.assert_allclose(precision, [0.5, 0.5])
    np.testing.assert_allclose(recall, [0.5, 1.0])
    fpr, tpr, roc_thresholds = metrics.roc_curve(labels, scores)
    np.testing.assert_allclose(fpr, [0, 0.5, 1])
    np.testing.assert_allclose(tpr, [0, 0.5, 1])
    assert roc_thresholds[0] == np.inf


def test_fdr_exactly_at_the_limit_counts():
    # top group: 9 bound + 1 unbound (FDR exactly 0.1), then 1 bound under 5 unbound
    labels = np.array([1] * 9 + [0] + [1] + [0] * 5)
    scores = np.array([2.0] * 10 + [1.0] * 6)
    assert metrics.recall_at_fdr(labels, scores, 0.1) == pytest.approx(9 / 10)
    assert metrics.recall_at_fdr(labels, scores, 0.09) == 0.0
    assert metrics.recall_at_fdr(labels, scores, 0.5) == 1.0


def test_infinite_scores_tie_with_each_other():
    labels = [1, 0, 1]
    scores = [np.inf, np.inf, 0.0]
    assert metrics.recall_at_fdr(labels, scores, 0.1) == 0.0
    # the two infinities tie (one half), the 0.0 positive loses: 0.5 / 2
    assert metrics.auroc(labels, scores) == pytest.approx(0.25)


def test_perfect_and_reversed_ranking():
    labels = [0, 0, 1, 1]
    assert metrics.auroc(labels, [0, 1, 2, 3]) == 1.0
    assert metrics.auprc(labels, [0, 1, 2, 3]) == 1.0
    assert metrics.auroc(labels, [3, 2, 1, 0]) == 0.0
    assert metrics.recall_at_fdr(labels, [3, 2, 1, 0], 0.1) == 0.0


# ---------------------------------------------------------------- absent classes

def test_no_bound_bins_gives_nan_and_a_note():
    result = metrics.summarize(np.zeros(5, bool), np.arange(5.0))
    for name in metrics.METRIC_NAMES:
        assert math.isnan(result[name])
    assert (result["n_bound"], result["n_unbound"]) == (0, 5)
    assert "no bound bins" in result["note"]


def test_no_unbound_bins_leaves_only_auroc_undefined():
    result = metrics.summarize(np.ones(4, bool), [0.1, 0.2, 0.2, 0.3])
    assert math.isnan(result["auROC"])
    assert result["auPRC"] == 1.0
    assert result["recall_at_50fdr"] == result["recall_at_10fdr"] == 1.0
    assert "no unbound bins" in result["note"]


def test_empty_input():
    result = metrics.summarize(np.zeros(0, bool), np.zeros(0))
    assert result["n_bound"] == result["n_unbound"] == 0
    assert all(math.isnan(result[name]) for name in metrics.METRIC_NAMES)
    assert result["note"]


def test_both_classes_present_has_empty_note():
    assert metrics.summarize([0, 1], [0.2, 0.1])["note"] == ""


def test_bad_shapes_and_nan_scores_raise():
    with pytest.raises(ValueError):
        metrics.auroc([0, 1, 1], [0.1, 0.2])
    with pytest.raises(ValueError):
        metrics.auroc([0, 1], [0.1, np.nan])
    with pytest.raises(ValueError):
        metrics.recall_at_fdr([0, 1], [0.1, 0.2], 1.5)


# ---------------------------------------------------------------- scikit-learn oracle

@st.composite
def labelled_scores(draw):
    """Both classes present; scores from a few distinct values so ties are everywhere."""
    n = draw(st.integers(2, 60))
    labels = np.array(draw(st.lists(st.booleans(), min_size=n, max_size=n)))
    bound_at = draw(st.integers(0, n - 1))
    unbound_at = (bound_at + draw(st.integers(1, n - 1))) % n
    labels[bound_at], labels[unbound_at] = True, False
    n_levels = draw(st.integers(1, 8))
    scores = np.array(draw(st.lists(st.integers(0, n_levels), min_size=n, max_size=n)), float) / n_levels
    return labels, scores


@settings(max_examples=200, deadline=None)
@given(labelled_scores())
def test_against_sklearn(case):
    labels, scores = case
    assert metrics.auroc(labels, scores) == pytest.approx(sk.roc_auc_score(labels, scores), abs=1e-12)
    expected_ap = sk.average_precision_score(labels, scores)
    assert metrics.auprc(labels, scores) == pytest.approx(expected_ap, abs=1e-12)

    precision, recall, thresholds = metrics.pr_curve(labels, scores)
    sk_precision, sk_recall, sk_thresholds = sk.precision_recall_curve(labels, scores)
    # scikit-learn: ascending thresholds and a final (precision 1, recall 0) point
    np.testing.assert_allclose(precision, sk_precision[:-1][::-1])
    np.testing.assert_allclose(recall, sk_recall[:-1][::-1])
    np.testing.assert_array_equal(thresholds, sk_thresholds[::-1])

    fpr, tpr, roc_thresholds = metrics.roc_curve(labels, scores)
    sk_fpr, sk_tpr, sk_roc_thresholds = sk.roc_curve(labels, scores, drop_intermediate=False)
    np.testing.assert_allclose(fpr, sk_fpr)
    np.testing.assert_allclose(tpr, sk_tpr)
    np.testing.assert_array_equal(roc_thresholds[1:], sk_roc_thresholds[1:])

    for fdr in (0.0, 0.1, 0.25, 0.5, 1.0):
        within = (1 - sk_precision[:-1]) <= fdr + 1e-12
        expected = sk_recall[:-1][within].max() if within.any() else 0.0
        assert metrics.recall_at_fdr(labels, scores, fdr) == pytest.approx(expected)

    summary = metrics.summarize(labels, scores)
    assert summary["n_bound"] == labels.sum() and summary["n_unbound"] == (~labels).sum()
    assert summary["auROC"] == metrics.auroc(labels, scores)
    assert summary["auPRC"] == metrics.auprc(labels, scores)


def test_large_random_against_sklearn():
    rng = np.random.default_rng(7)
    labels = rng.random(20_000) < 0.05
    scores = np.round(rng.random(20_000) + labels * 0.3, 2)  # informative, heavily tied
    assert metrics.auroc(labels, scores) == pytest.approx(sk.roc_auc_score(labels, scores), rel=1e-12)
    expected_ap = sk.average_precision_score(labels, scores)
    assert metrics.auprc(labels, scores) == pytest.approx(expected_ap, rel=1e-12)


def test_presorted_summary_equals_the_sorting_one():
    rng = np.random.default_rng(9)
    labels = rng.random(3000) < 0.2
    scores = np.round(rng.random(3000) + labels * 0.3, 2)          # ties
    order = np.argsort(-scores, kind="stable")
    direct = metrics.summarize(labels, scores)
    presorted = metrics.summarize(labels[order], scores[order], presorted=True)
    assert presorted == direct

"""Ranking metrics for bound/unbound bins: auROC, auPRC, recall at a fixed FDR.

Pure vectorised numpy (one sort per call), no scikit-learn at run time; the test suite
checks every function against scikit-learn on data with many tied scores.

Ties: all bins with the same score form one threshold group; a threshold either takes the
whole group or none of it, so the curves have one point per distinct score (as
scikit-learn's `roc_curve(drop_intermediate=False)` and `precision_recall_curve`).

A class that is absent makes some metrics undefined: they are returned as NaN (never an
exception), and `summarize` says why in its `note` field.
"""
import numpy as np

METRIC_NAMES = ("auROC", "auPRC", "recall_at_50fdr", "recall_at_10fdr")


def _as_arrays(labels, scores):
    """Checks shapes; returns labels (n,) bool and scores (n,) float64."""
    labels = np.asarray(labels)
    scores = np.asarray(scores, dtype=np.float64)
    if labels.ndim != 1 or labels.shape != scores.shape:
        raise ValueError(f"labels {labels.shape} and scores {scores.shape} must be 1-D and the same length")
    if np.isnan(scores).any():
        raise ValueError("scores contain NaN")
    return labels.astype(bool), scores


def threshold_counts(labels, scores):
    """Cumulative true/false positives at each distinct score, highest score first.

    Parameters
    ----------
    labels : (n,) bool or 0/1
    scores : (n,) float

    Returns
    -------
    thresholds : (k,) float64, the k distinct scores, descending
    tps : (k,) int64, positives with score >= thresholds[i]
    fps : (k,) int64, negatives with score >= thresholds[i]
    """
    labels, scores = _as_arrays(labels, scores)
    order = np.argsort(-scores)  # order inside a tie group does not matter: only its end is used
    return sorted_threshold_counts(labels[order], scores[order])


def sorted_threshold_counts(sorted_labels, sorted_scores):
    """`threshold_counts` of bins already sorted by descending score (no sort: the bootstrap
    sorts once and takes subsets, which stay sorted).

    sorted_labels : (n,) bool; sorted_scores : (n,) float64, non-increasing
    """
    # last index of each run of equal scores = one threshold group (!= rather than diff: inf)
    group_ends = np.flatnonzero(sorted_scores[1:] != sorted_scores[:-1])
    group_ends = np.append(group_ends, sorted_scores.size - 1) if sorted_scores.size else group_ends
    tps = np.cumsum(sorted_labels, dtype=np.int64)[group_ends]
    fps = (group_ends + 1) - tps
    return sorted_scores[group_ends], tps, fps


def _roc_from_counts(thresholds, tps, fps):
    n_pos = tps[-1] if tps.size else 0
    n_neg = fps[-1] if fps.size else 0
    tpr = np.concatenate([[0], tps]) / n_pos if n_pos else np.full(tps.size + 1, np.nan)
    fpr = np.concatenate([[0], fps]) / n_neg if n_neg else np.full(fps.size + 1, np.nan)
    return fpr, tpr, np.concatenate([[np.inf], thresholds])


def _pr_from_counts(thresholds, tps, fps):
    precision = tps / (tps + fps) if tps.size else np.zeros(0)
    n_pos = tps[-1] if tps.size else 0
    recall = tps / n_pos if n_pos else np.full(tps.size, np.nan)
    return precision, recall, thresholds


def _auroc_from_counts(counts):
    fpr, tpr, _ = _roc_from_counts(*counts)
    if fpr.size < 2 or np.isnan(fpr[-1]) or np.isnan(tpr[-1]):
        return float("nan")
    return float(np.sum(np.diff(fpr) * (tpr[1:] + tpr[:-1])) / 2)


def _auprc_from_counts(counts):
    precision, recall, _ = _pr_from_counts(*counts)
    if recall.size == 0 or np.isnan(recall[-1]):
        return float("nan")
    gain = np.diff(recall, prepend=0.0)
    return float(max(0.0, np.sum(gain * precision)))


def _recall_at_fdr_from_counts(counts, fdr):
    if not 0.0 <= fdr <= 1.0:
        raise ValueError(f"fdr must be in [0, 1], got {fdr}")
    _, tps, fps = counts
    if tps.size == 0 or tps[-1] == 0:
        return float("nan")
    # FDR computed as the ratio itself: a group exactly on the limit (1 FP in 10 for 0.1)
    # gives the same double as the literal and counts as within it.
    within = fps / (tps + fps) <= fdr
    return float(tps[within].max() / tps[-1]) if within.any() else 0.0


def roc_curve(labels, scores):
    """ROC curve, one point per distinct score plus the origin.

    Parameters
    ----------
    labels : (n,) bool or 0/1, True = positive
    scores : (n,) float

    Returns
    -------
    fpr, tpr : (k + 1,) float64, starting at (0, 0); all NaN where their class is absent
    thresholds : (k + 1,) float64, descending, the first one +inf
    """
    return _roc_from_counts(*threshold_counts(labels, scores))


def pr_curve(labels, scores):
    """Precision-recall curve, one point per distinct score, highest score first.

    (scikit-learn's `precision_recall_curve` gives the same points in reverse order plus a
    final (precision 1, recall 0) point.)

    Returns
    -------
    precision, recall : (k,) float64; recall rises to 1 along the arrays; recall all NaN
        when there are no positives
    thresholds : (k,) float64, descending
    """
    return _pr_from_counts(*threshold_counts(labels, scores))


def auroc(labels, scores):
    """Area under the ROC curve (trapezoids, so a tie between classes counts one half).

    NaN when either class is absent.
    """
    return _auroc_from_counts(threshold_counts(labels, scores))


def auprc(labels, scores):
    """Average precision: sum over threshold groups of (recall gained) x (precision there).

    The step-wise (uninterpolated) area, as scikit-learn's `average_precision_score`.
    NaN when there are no positives; 1.0 when there are no negatives.
    """
    return _auprc_from_counts(threshold_counts(labels, scores))


def recall_at_fdr(labels, scores, fdr):
    """Largest recall over thresholds whose FDR = FP / (TP + FP) is at most `fdr`.

    Thresholds are whole tie groups. 0.0 when no threshold is that precise; NaN when there
    are no positives.
    """
    return _recall_at_fdr_from_counts(threshold_counts(labels, scores), fdr)


def summarize(labels, scores, presorted=False):
    """The DREAM scores of one set of labelled bins (one sort for all of them).

    Parameters
    ----------
    labels : (n,) bool, True = bound
    scores : (n,) float
    presorted : the bins are already in descending score order (skips the sort)

    Returns
    -------
    dict with auROC, auPRC, recall_at_50fdr, recall_at_10fdr (float, NaN when undefined),
    n_bound, n_unbound (int) and note (str, empty unless a metric is undefined). The caller
    adds n_ambiguous.
    """
    if presorted:
        counts = sorted_threshold_counts(np.asarray(labels, bool), np.asarray(scores, np.float64))
    else:
        counts = threshold_counts(labels, scores)
    n_bound = int(counts[1][-1]) if counts[1].size else 0
    n_unbound = int(counts[2][-1]) if counts[2].size else 0
    result = {
        "auROC": _auroc_from_counts(counts),
        "auPRC": _auprc_from_counts(counts),
        "recall_at_50fdr": _recall_at_fdr_from_counts(counts, 0.5),
        "recall_at_10fdr": _recall_at_fdr_from_counts(counts, 0.1),
        "n_bound": n_bound,
        "n_unbound": n_unbound,
    }
    if n_bound == 0 and n_unbound == 0:
        result["note"] = "no bins: every metric is undefined (NaN)"
    elif n_bound == 0:
        result["note"] = "no bound bins: auROC, auPRC and recall at FDR are undefined (NaN)"
    elif n_unbound == 0:
        result["note"] = "no unbound bins: auROC is undefined (NaN)"
    else:
        result["note"] = ""
    return result

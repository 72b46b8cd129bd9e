"""Bootstrap confidence intervals and the ENCODE-DREAM ranking of prediction files.

How ENCODE-DREAM scored a submission, and what we do (`factornet evaluate --bootstrap B`):

Resampling
    Round r (r = 0 .. B-1, default B = 10) keeps, on every chromosome separately (stratified
    by chromosome), ``sample_size(n) = floor(0.9 n + 0.5)`` of its n bins, drawn without
    replacement by ``numpy.random.default_rng([seed, r, crc32(chrom)]).choice(n, k,
    replace=False)``; ambiguous bins drawn are then left out like everywhere else. The draw
    depends only on (seed, round, chromosome name, number of bins), so files over the same
    bins are scored on the very same subsets (paired), whatever order their chromosomes
    come in.
Intervals
    Each metric (auROC, auPRC, recall at 50% and 10% FDR, and the Brier score) is computed
    on every round; the report gives their mean and the 95% percentile interval (numpy's
    linear-interpolation 2.5th and 97.5th percentiles of the B values; with B = 10 that is
    close to the min and max). NaN rounds (a class absent) are left out of both.
Ranking (two or more files over the same bins)
    In each round every file gets a rank per DREAM metric (1 = highest value; tied files share
    the mean of their ranks; NaN ranks last), and a combined rank = the mean of its four
    metric ranks. The files are ordered by their combined rank averaged over the rounds
    (lower is better). For each pair (a, b), the win share is the fraction of rounds in
    which a's combined rank is lower than b's, a tie counting one half (so share(a, b) +
    share(b, a) = 1).
"""
from __future__ import annotations

import math
import zlib

import numpy as np

from factornet_jax import metrics

ROUNDS = 10
FRACTION = 0.9
RANKED_METRICS = metrics.METRIC_NAMES          # auROC, auPRC, recall_at_50fdr, recall_at_10fdr
INTERVAL_METRICS = RANKED_METRICS + ("brier",)


def sample_size(n, fraction=FRACTION):
    """Bins kept of a chromosome with `n` bins: floor(fraction * n + 0.5)."""
    return int(math.floor(fraction * n + 0.5))


def chrom_sample(chrom, n, round_index, seed, fraction=FRACTION):
    """(n,) bool: the bins of chromosome `chrom` (n bins) kept in round `round_index`."""
    rng = np.random.default_rng([seed, round_index, zlib.crc32(str(chrom).encode())])
    keep = np.zeros(n, bool)
    keep[rng.choice(n, sample_size(n, fraction), replace=False)] = True
    return keep


def round_mask(sizes, round_index, seed, fraction=FRACTION):
    """The kept bins of one round over several chromosomes, concatenated in `sizes` order.

    sizes : dict chrom -> number of bins (in the order the bins are concatenated)
    Returns (sum n,) bool.
    """
    parts = [chrom_sample(c, n, round_index, seed, fraction) for c, n in sizes.items()]
    return np.concatenate(parts) if parts else np.zeros(0, bool)


def _brier(sorted_labels, sorted_scores, probability):
    if not probability or not sorted_scores.size:
        return float("nan")
    return float(np.mean((sorted_scores - sorted_labels) ** 2))


def bootstrap_metrics(labels, scores, rounds=ROUNDS, seed=0, fraction=FRACTION):
    """Every metric of every round for one prediction file.

    Parameters
    ----------
    labels : dict chrom -> (n_c,) int8 DREAM labels (1 bound, 0 unbound, -1 ambiguous)
    scores : dict chrom -> (n_c,) float, same chromosomes and bins
    rounds, seed, fraction : as the module docstring says

    Returns
    -------
    dict metric -> (rounds,) float64, metrics in INTERVAL_METRICS (Brier NaN when a score is
    outside [0, 1])
    """
    chroms = list(labels)
    all_labels = np.concatenate([labels[c] for c in chroms]) if chroms else np.zeros(0, np.int8)
    all_scores = (np.concatenate([np.asarray(scores[c], np.float64) for c in chroms])
                  if chroms else np.zeros(0))
    keep = all_labels != -1
    order = np.argsort(-all_scores[keep], kind="stable")    # sorted once, subsets stay sorted
    sorted_bound = (all_labels[keep] == 1)[order]
    sorted_scores = all_scores[keep][order]
    probability = bool(all_scores.size) and all_scores.min() >= 0 and all_scores.max() <= 1
    sizes = {c: len(labels[c]) for c in chroms}
    out = {m: np.full(rounds, np.nan) for m in INTERVAL_METRICS}
    for r in range(rounds):
        taken = round_mask(sizes, r, seed, fraction)[keep][order]
        lab, sc = sorted_bound[taken], sorted_scores[taken]
        summary = metrics.summarize(lab, sc, presorted=True)
        for m in RANKED_METRICS:
            out[m][r] = summary[m]
        out["brier"][r] = _brier(lab, sc, probability)
    return out


def interval(values):
    """{mean, low, high} of bootstrap values: mean and 2.5 / 97.5 percentiles, NaN rounds left
    out (all None when every round is NaN)."""
    values = np.asarray(values, np.float64)
    values = values[~np.isnan(values)]
    if not values.size:
        return {"mean": None, "low": None, "high": None}
    low, high = np.percentile(values, [2.5, 97.5])
    return {"mean": float(values.mean()), "low": float(low), "high": float(high)}


def ranks(values):
    """Ranks of one metric's values across files (1 = highest; ties share the mean rank; NaN
    ranks after every number, NaNs tied). (F,) -> (F,) float64"""
    v = np.where(np.isnan(values), -np.inf, np.asarray(values, np.float64))
    higher = (v[None, :] > v[:, None]).sum(axis=1)
    equal = (v[None, :] == v[:, None]).sum(axis=1) - 1
    return 1.0 + higher + 0.5 * equal


def ranking(per_file):
    """DREAM ranking of several files scored over the same bootstrap rounds.

    Parameters
    ----------
    per_file : dict name -> bootstrap_metrics(...) result (same rounds for all)

    Returns
    -------
    dict: names (files, best first), mean_rank {name: float} (combined rank averaged over
    rounds), metric_rank {name: {metric: mean rank}}, combined {name: (rounds,) list},
    win_share {a: {b: share of rounds a beats b}}
    """
    names = list(per_file)
    rounds = len(next(iter(per_file.values()))[RANKED_METRICS[0]])
    metric_ranks = {m: np.stack([ranks(np.array([per_file[n][m][r] for n in names]))
                                 for r in range(rounds)]) for m in RANKED_METRICS}   # (R, F)
    combined = np.mean([metric_ranks[m] for m in RANKED_METRICS], axis=0)              # (R, F)
    mean_rank = combined.mean(axis=0)
    order = sorted(range(len(names)), key=lambda i: (mean_rank[i], i))
    win = {}
    for i, a in enumerate(names):
        win[a] = {}
        for j, b in enumerate(names):
            if i != j:
                win[a][b] = float(np.mean((combined[:, i] < combined[:, j])
                                          + 0.5 * (combined[:, i] == combined[:, j])))
    return {
        "names": [names[i] for i in order],
        "mean_rank": {n: float(mean_rank[i]) for i, n in enumerate(names)},
        "metric_rank": {n: {m: float(metric_ranks[m][:, i].mean()) for m in RANKED_METRICS}
                        for i, n in enumerate(names)},
        "combined": {n: combined[:, i].tolist() for i, n in enumerate(names)},
        "win_share": win,
    }

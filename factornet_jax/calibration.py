"""What a score means in numbers: the validation threshold table of a model, and the
reliability (calibration curve) and Brier score of a prediction file.

Threshold table (``calibration.json`` in a trained model dir)
    At the end of `train run` the best parameters score the validation chromosomes (-v) of
    the validation cell stores on DREAM-ladder bins (200 bp at 50-bp steps, those clear of
    the exclusion zone, a uniform random sample of at most ``MAX_BINS``, seeded by the run's
    seed); the bins are labelled as `factornet evaluate` labels them (bound: more than half
    inside a conservative peak; ambiguous relaxed-only bins left out). Per TF the file holds

    - ``fdr_table``: for each target FDR of ``FDR_GRID`` the lowest threshold whose validation
      FDR = FP / (TP + FP) of the bins scoring >= it is at most the target (the one
      `metrics.recall_at_fdr` takes), with the recall and FDR reached there;
    - ``qvalue_curve``: (threshold, q) points, q = the lowest FDR of any threshold at or below
      this one (so q grows as the threshold falls; at each stored point q is that threshold's
      own validation FDR), and the recall there; the lowest threshold with q <= alpha is
      the threshold of target FDR alpha, for any alpha (`threshold_for_fdr`). Thinned to at
      most ``MAX_CURVE_POINTS`` points, always keeping the grid's; a thinned curve can only
      give a higher (more conservative) threshold;
    - ``score_quantiles``: the validation scores' quantiles at ``QUANTILE_LEVELS`` (all bins,
      ambiguous included), what a new cell's scores can be compared with.

    `factornet call` reads it, so calling sites in a new cell line needs no labels there. The
    FDR it promises is the validation cells' FDR: a new cell line whose score distribution
    differs (other DNase depth, other TF occupancy) realises another one (docs/ACCURACY.md
    measures how near it stays on the simulated held-out cell).

Reliability and Brier (`factornet evaluate`)
    Scores in [0, 1] are read as probabilities of "bound": the Brier score is the mean of
    (score - label)^2 over the non-ambiguous bins, and the reliability diagram groups the bins
    into ``RELIABILITY_BINS`` equal-width score bins over [0, 1] (the last one closed), each
    point the bin's mean score against the share of bound bins in it. Scores outside [0, 1]
    (a DNase mean, a PWM log-odds) are not probabilities: their Brier score is NaN.
"""
from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np

from factornet_jax import metrics
from factornet_jax.errors import ConfigError, FactorNetError, InputFileError

CALIBRATION_NAME = "calibration.json"
FORMAT = "factornet-jax/calibration"
VERSION = 1
FDR_GRID = (0.01, 0.02, 0.05, 0.1, 0.15, 0.2, 0.25, 0.3, 0.4, 0.5)
QUANTILE_LEVELS = tuple(np.round(np.linspace(0, 1, 101), 2).tolist()) + (0.995, 0.999, 0.9999)
MAX_BINS = 200_000          # validation ladder bins scored at the end of training (a random sample)
MAX_CURVE_POINTS = 1000
RELIABILITY_BINS = 10
SAMPLE_STREAM = 3 << 20     # Generator([seed, SAMPLE_STREAM]) draws the bin sample


# ------------------------------------------------------------------ validation ladder

def ladder_bins(store, chroms, seq_len, max_bins=MAX_BINS, rng=None):
    """DREAM-ladder bins of `chroms` that `predict` would run through the model.

    200-bp bins at 50-bp steps whose window keeps clear of the exclusion zone (blacklist
    widened by `seq_len`, chromosome ends); at most `max_bins` of them, a uniform random
    sample (`rng`, a numpy Generator) when there are more.

    Returns
    -------
    chroms : (n,) str, starts : (n,) int64, sorted by chromosome (in `chroms` order) and start
    """
    from factornet_jax.labels import BIN_SIZE, STRIDE, exclusion_zone
    zone = exclusion_zone(store.genome.blacklist(), store.chrom_sizes, seq_len)
    names, starts = [], []
    for chrom in chroms:
        grid = np.arange(0, store.chrom_sizes[chrom] - BIN_SIZE + 1, STRIDE, dtype=np.int64)
        grid = grid[~zone.overlaps(chrom, grid, grid + BIN_SIZE)]
        names.append(np.full(len(grid), chrom))
        starts.append(grid)
    names = np.concatenate(names) if names else np.zeros(0, "U1")
    starts = np.concatenate(starts) if starts else np.zeros(0, np.int64)
    if len(starts) > max_bins:
        rng = rng or np.random.default_rng(0)
        keep = np.sort(rng.choice(len(starts), max_bins, replace=False))
        names, starts = names[keep], starts[keep]
    return names, starts


def validation_ladder(stores, chroms, seq_len, num_tasks, seed, max_bins=MAX_BINS):
    """The validation ladder of every store as `batches.Examples` (labels all 0: the
    calibration labels the bins itself, DREAM-style), or None when it has no bin (chromosomes
    shorter than two windows). `max_bins` is shared by the stores."""
    from factornet_jax.batches import Examples
    rng = np.random.default_rng([seed, SAMPLE_STREAM])
    per_store = max(1, max_bins // max(1, len(stores)))
    parts = []
    for k, store in enumerate(stores):
        names, starts = ladder_bins(store, chroms, seq_len, per_store, rng)
        parts.append(Examples(np.full(len(starts), k, np.int32), names, starts,
                              np.zeros((len(starts), num_tasks), np.uint8)))
    if not any(len(p) for p in parts):
        return None
    return Examples.concat(parts, "calibration")


def ladder_labels(stores, examples, tf):
    """DREAM labels (1 bound, 0 unbound, -1 ambiguous) of `examples`' bins for `tf`. (n,) int8"""
    from factornet_jax.evaluate import label_bins
    from factornet_jax.intervals import IntervalSet
    from factornet_jax.labels import BIN_SIZE
    out = np.zeros(len(examples), np.int8)
    for k, store in enumerate(stores):
        conservative = IntervalSet.from_records(store.peaks(tf))
        relaxed = store.peaks(tf, "relaxed")
        relaxed = None if relaxed is None else IntervalSet.from_records(relaxed)
        for chrom in np.unique(examples.chrom[examples.cell == k]):
            rows = np.flatnonzero((examples.cell == k) & (examples.chrom == chrom))
            starts = examples.bin_start[rows]
            out[rows] = label_bins(conservative, relaxed, str(chrom), starts, starts + BIN_SIZE)
    return out


def score_examples(eval_step, params, stores, examples, batch_size, spec, rows, sharding,
                   threads=1):
    """Probabilities (n, T) of `examples` through the training loop's compiled `eval_step`
    (every process calls it; `rows` is this process's slice of each global batch)."""
    from factornet_jax.batches import BatchAssembler, empty_batch, ordered_map
    from factornet_jax.steps import gather_rows, global_batch
    assembler = BatchAssembler(stores, spec)
    layout = assembler.layout(len(range(*rows.indices(batch_size))), examples.labels.shape[1])

    def fill(index):
        lo = index * batch_size
        take = examples.take(np.arange(lo, min(lo + batch_size, len(examples)))[rows])
        return assembler.fill(empty_batch(layout), layout, take)

    n_batches = -(-len(examples) // batch_size)
    outputs = [eval_step(params, global_batch(batch, sharding))
               for batch in ordered_map(fill, range(n_batches), threads, 4)]
    return np.concatenate([gather_rows(p) for p in outputs])[: len(examples)]


def record_calibration(model_dir, config, stores, tasks, eval_step, spec, rows, sharding,
                       is_writer, log=print):
    """The end of `train run`: score the validation ladder with the best parameters
    (best.npz) and write calibration.json (process 0). Every process takes part."""
    import sys

    import jax

    from factornet_jax.modeldir import load_params
    ladder = validation_ladder(stores, config.valid_chroms, config.seq_len, len(tasks), config.seed)
    if ladder is None:
        log(f"warning: no validation ladder bins on {', '.join(config.valid_chroms)}; "
            f"no {CALIBRATION_NAME} written", file=sys.stderr)
        return
    if jax.process_count() > 1:       # best.npz is written by process 0
        from jax.experimental import multihost_utils
        multihost_utils.sync_global_devices("best.npz written")
    best = Path(model_dir) / "best.npz"
    if not best.is_file():
        return
    probs = score_examples(eval_step, load_params(best), stores, ladder, config.batch_size, spec,
                           rows, sharding, threads=max(1, config.loader_threads))
    if is_writer:
        write_calibration(model_dir, build_calibration(stores, ladder, probs, tasks,
                                                       config.seq_len, config.seed))


# ------------------------------------------------------------------ thresholds

def qvalue_curve(labels, scores):
    """Thresholds and their q-values, one point per run of equal q.

    Parameters
    ----------
    labels : (n,) bool, True = bound (ambiguous bins already left out)
    scores : (n,) float

    Returns
    -------
    thresholds : (k,) float64, descending; each the lowest threshold with its q-value
    qvalues : (k,) float64, ascending: q(t) = min over thresholds t' <= t of FDR(t'), FDR(t')
        = FP / (TP + FP) of the bins scoring >= t'
    recall : (k,) float64, recall of the bins scoring >= each threshold
    """
    thresholds, tps, fps = metrics.threshold_counts(labels, scores)
    if thresholds.size == 0:
        return np.zeros(0), np.zeros(0), np.zeros(0)
    fdr = fps / (tps + fps)
    q = np.minimum.accumulate(fdr[::-1])[::-1]
    run_ends = np.flatnonzero(np.append(q[1:] != q[:-1], True))
    recall = tps / tps[-1] if tps[-1] else np.full(tps.size, np.nan)
    return thresholds[run_ends], q[run_ends], recall[run_ends]


def threshold_for_fdr(thresholds, qvalues, fdr):
    """Lowest threshold whose q-value is at most `fdr`, or None when none is.

    thresholds (k,) descending, qvalues (k,) ascending, as `qvalue_curve` gives them.
    """
    within = np.flatnonzero(np.asarray(qvalues) <= fdr)
    return float(np.asarray(thresholds)[within[-1]]) if within.size else None


def qvalue_of(thresholds, qvalues, scores):
    """q-value of bins scoring `scores`: that of the lowest stored threshold <= the score
    (1.0 below every threshold). (n,) float64"""
    thresholds = np.asarray(thresholds, np.float64)
    qvalues = np.asarray(qvalues, np.float64)
    # thresholds descending: count those > score; the next one is the first <= score
    index = np.searchsorted(-thresholds, -np.asarray(scores, np.float64), side="left")
    return np.where(index < thresholds.size, qvalues[np.minimum(index, thresholds.size - 1)], 1.0)


def _thin(thresholds, qvalues, keep_first, max_points):
    """Indices of at most ~max_points curve points, always the ones in `keep_first`."""
    if thresholds.size <= max_points:
        return np.arange(thresholds.size)
    step = np.linspace(0, thresholds.size - 1, max_points).round().astype(np.int64)
    return np.unique(np.concatenate([step, np.asarray(keep_first, np.int64)]))


def tf_table(labels, scores, fdr_grid=FDR_GRID, max_points=MAX_CURVE_POINTS):
    """The calibration entry of one TF.

    Parameters
    ----------
    labels : (n,) int8 DREAM labels (1, 0, -1 ambiguous)
    scores : (n,) float, the model's validation scores of the same bins
    """
    labels = np.asarray(labels)
    scores = np.asarray(scores, np.float64)
    keep = labels != -1
    bound = labels[keep] == 1
    thresholds, q, recall = qvalue_curve(bound, scores[keep])
    rows, grid_points = [], []
    for target in fdr_grid:
        threshold = threshold_for_fdr(thresholds, q, target)
        if threshold is None:
            rows.append({"fdr": target, "threshold": None, "recall": None, "valid_fdr": None,
                         "n_called": 0})
            continue
        i = int(np.flatnonzero(thresholds == threshold)[0])
        grid_points.append(i)
        called = scores[keep] >= threshold
        n_called = int(called.sum())
        rows.append({"fdr": target, "threshold": threshold, "recall": float(recall[i]),
                     "valid_fdr": float((~bound[called]).sum() / max(n_called, 1)),
                     "n_called": n_called})
    points = _thin(thresholds, q, grid_points, max_points)
    levels = np.asarray(QUANTILE_LEVELS)
    quantiles = np.quantile(scores, levels) if scores.size else np.full(levels.size, np.nan)
    return {
        "n_bins": int(labels.size), "n_bound": int(bound.sum()), "n_unbound": int((~bound).sum()),
        "n_ambiguous": int((~keep).sum()),
        "note": "" if bound.any() else "no bound validation bins: no threshold could be chosen",
        "fdr_table": rows,
        "qvalue_curve": {"thresholds": thresholds[points].tolist(), "qvalues": q[points].tolist(),
                         "recalls": recall[points].tolist()},
        "score_quantiles": {"levels": levels.tolist(), "values": quantiles.tolist()},
        "score_mean": float(scores.mean()) if scores.size else None,
    }


def build_calibration(stores, examples, probs, tasks, seq_len, seed):
    """The calibration.json dict from the validation ladder `examples` and the best model's
    probabilities `probs` (n, T) of them (T = len(tasks))."""
    return {
        "format": FORMAT, "version": VERSION,
        "what": "best parameters scored on the validation chromosomes' DREAM-ladder bins "
                "(200 bp at 50-bp steps clear of the exclusion zone, a random sample); labels as "
                "`factornet evaluate`; threshold of a target FDR = the lowest one whose "
                "validation FDR is at most the target",
        "stores": [str(s.path) for s in stores],
        "chroms": sorted(set(examples.chrom.tolist())),
        "seq_len": int(seq_len), "seed": int(seed), "max_bins": MAX_BINS,
        "tfs": {tf: tf_table(ladder_labels(stores, examples, tf), probs[:, t])
                for t, tf in enumerate(tasks)},
    }


def write_calibration(model_dir, data):
    """Write calibration.json into a model dir (atomically)."""
    from factornet_jax.outputs import json_ready, write_text_atomically
    text = json.dumps(json_ready(data), indent=1, allow_nan=False)
    write_text_atomically(Path(model_dir) / CALIBRATION_NAME, text + "\n")


def read_calibration(model_dir):
    """The calibration.json dict of a model dir.

    Raises
    ------
    FactorNetError
        The model has none (an imported Keras model, or one trained before calibration was
        recorded): the message suggests --threshold.
    InputFileError
        The file is not ours or not valid JSON.
    """
    path = Path(model_dir) / CALIBRATION_NAME
    if not path.is_file():
        from factornet_jax.modeldir import read_config
        source = read_config(model_dir).get("source")
        why = ("an imported Keras model has no validation scores" if source == "keras"
               else "the model was trained without recording one")
        raise FactorNetError(f"{model_dir}: no {CALIBRATION_NAME} ({why}); pass --threshold X "
                             "to call sites at a score you choose")
    from factornet_jax.modeldir import read_document
    return read_document(path, FORMAT, VERSION, "calibration")


def tf_entry(calibration, tf, model_dir):
    """The calibration entry of `tf` (ConfigError naming -f when it has none)."""
    tfs = calibration.get("tfs") or {}
    if tf not in tfs:
        raise ConfigError(f"-f {tf}: {Path(model_dir) / CALIBRATION_NAME} has no entry for it "
                          f"(it has {', '.join(tfs) or 'none'})")
    return tfs[tf]


def fdr_threshold(entry, fdr):
    """(threshold, validation FDR there, validation recall there) of target FDR `fdr` from one
    TF's entry; (None, None, None) when no threshold reaches it. (At each stored point the
    q-value is the validation FDR of that threshold itself.)"""
    curve = entry["qvalue_curve"]
    threshold = threshold_for_fdr(curve["thresholds"], curve["qvalues"], fdr)
    if threshold is None:
        return None, None, None
    i = curve["thresholds"].index(threshold)
    return threshold, curve["qvalues"][i], curve["recalls"][i]


# ------------------------------------------------------------------ reliability and Brier

def is_probability(scores):
    """True when every score lies in [0, 1]."""
    scores = np.asarray(scores)
    return bool(scores.size) and float(scores.min()) >= 0.0 and float(scores.max()) <= 1.0


def brier_score(labels, scores):
    """Mean of (score - label)^2; NaN when there are no bins or a score is outside [0, 1].

    labels : (n,) bool, True = bound; scores : (n,) float
    """
    scores = np.asarray(scores, np.float64)
    if not is_probability(scores):
        return float("nan")
    return float(np.mean((scores - np.asarray(labels, np.float64)) ** 2))


def reliability(labels, scores, n_bins=RELIABILITY_BINS):
    """Reliability table over `n_bins` equal-width score bins of [0, 1] (the last closed).

    Returns
    -------
    dict of lists, one entry per score bin: low, high (edges), n (bins in it), mean_score,
    fraction_bound (None where n == 0); empty lists when the scores are not probabilities.
    """
    labels = np.asarray(labels, bool)
    scores = np.asarray(scores, np.float64)
    if not is_probability(scores):
        return {"low": [], "high": [], "n": [], "mean_score": [], "fraction_bound": []}
    edges = np.linspace(0.0, 1.0, n_bins + 1)
    which = np.minimum((scores * n_bins).astype(np.int64), n_bins - 1)
    n = np.bincount(which, minlength=n_bins)
    total = np.bincount(which, weights=scores, minlength=n_bins)
    hits = np.bincount(which, weights=labels, minlength=n_bins)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean_score, fraction = total / n, hits / n
    return {"low": edges[:-1].tolist(), "high": edges[1:].tolist(), "n": n.tolist(),
            "mean_score": [None if k == 0 else float(v) for k, v in zip(n, mean_score)],
            "fraction_bound": [None if k == 0 else float(v) for k, v in zip(n, fraction)]}


def draw_reliability(entries, path):
    """reliability.png: the reliability curve of each (name, reliability dict, brier) entry
    above a histogram of the bins per score bin (log scale)."""
    import matplotlib
    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    fig, (ax, ax_n) = plt.subplots(2, 1, figsize=(6, 6.5), dpi=100, sharex=True,
                                   gridspec_kw={"height_ratios": [3, 1]})
    ax.plot([0, 1], [0, 1], linestyle="--", color="grey", linewidth=0.8, label="perfectly calibrated")
    for name, table, brier in entries:
        if not table["n"]:
            ax.plot([], [], label=f"{name} (scores not in [0, 1])")
            continue
        used = [i for i, k in enumerate(table["n"]) if k]
        x = [table["mean_score"][i] for i in used]
        y = [table["fraction_bound"][i] for i in used]
        brier_text = "nan" if brier is None or math.isnan(brier) else f"{brier:.4f}"
        ax.plot(x, y, marker="o", label=f"{name} (Brier {brier_text})")
        centres = [(lo + hi) / 2 for lo, hi in zip(table["low"], table["high"])]
        ax_n.step(centres, table["n"], where="mid")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1.02)
    ax.set_ylabel("share of bins bound")
    ax.set_title("Reliability (equal-width score bins)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="upper left")
    ax_n.set_yscale("log")
    ax_n.set_xlabel("predicted score")
    ax_n.set_ylabel("bins")
    ax_n.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)

"""Binding-site calls: bins scoring at or above a threshold, merged into sites (narrowPeak).

    summary = call_sites_file("pred/CellC.CTCF.bedGraph.gz", "sites/CellC.CTCF.narrowPeak",
                              model_dir="models/CTCF", fdr=0.1)

The threshold
    With a model dir and a target FDR, the threshold is the one its ``calibration.json``
    records for that FDR on the validation chromosomes (calibration.py: the lowest threshold
    whose validation FDR of bins is at most the target), so calling needs no labels in the new
    cell line. ``threshold=`` sets it directly instead (the one choice for imported Keras
    models, which have no calibration).
Merging
    Per chromosome, the bins scoring >= the threshold are sorted by start and merged while they
    overlap or touch (a bin starting at or before the end of the site so far joins it): on the
    DREAM ladder (200-bp bins at 50-bp steps) two bins above the threshold up to three steps
    apart share bases, so a site may bridge one to three bins below it.
The narrowPeak written (one line per site, chromosomes in the prediction file's order, sites
by start; a first ``track type=narrowPeak`` line, which genome browsers, bedtools and
`read_bed` skip, says how the file was made and marks it as ours for a later ``-oc``)::

    1 chrom  2 start  3 end          the merged bins' extent (0-based, half-open)
    4 name                           site_<k>, k = 1, 2, ... through the file
    5 score                          round(1000 x the site's highest bin score), clipped to 0-1000
    6 strand                         .
    7 signalValue                    the site's highest bin score (the model's probability)
    8 pValue                         -1 (not computed)
    9 qValue                         -log10(q) of the highest score on the validation q-value
                                     curve (q floored at 1e-6); -1 without a calibration
    10 peak                          summit - start; summit = centre of the highest-scoring bin
                                     (the first of equal ones)
"""
from __future__ import annotations

import gzip
import io
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from factornet_jax.bed import open_maybe_gzip
from factornet_jax.errors import ConfigError, FactorNetError
from factornet_jax.outputs import OutputKind, check_output, write_file_atomically

CALL_TAG = "factornet-jax/call v1"
QVALUE_FLOOR = 1e-6

# one row per site
SITE_DTYPE = np.dtype([("chrom", "U64"), ("start", "i8"), ("end", "i8"), ("summit", "i8"),
                       ("score", "f8"), ("n_bins", "i8")])


def _is_calls_file(path):
    """Ours: a file whose first line is our track line."""
    try:
        with io.TextIOWrapper(open_maybe_gzip(path), encoding="utf-8") as handle:
            first = handle.readline(4096)
    except (FactorNetError, OSError, UnicodeDecodeError, EOFError, gzip.BadGzipFile):
        return False
    return first.startswith("track type=narrowPeak") and CALL_TAG in first


CALLS = OutputKind("call", "sites file", folder=False, recognise=_is_calls_file)


@dataclass(frozen=True)
class CallSummary:
    """What one `call` run did."""
    out_path: str
    tf: str | None
    threshold: float
    fdr: float | None               # target FDR (None with an explicit threshold)
    valid_fdr: float | None         # validation FDR of bins at this threshold (calibration)
    valid_recall: float | None      # validation recall of bins at this threshold
    n_bins: int                     # bins scored
    n_called_bins: int              # bins >= threshold
    n_sites: int
    median_width: float


# ------------------------------------------------------------------ merging

def merge_bins(chrom, starts, ends, scores, threshold):
    """Sites of one chromosome: bins with score >= `threshold`, merged while they overlap or touch.

    Parameters
    ----------
    chrom : str
    starts, ends, scores : (n,) bins of one chromosome, any order

    Returns
    -------
    (k,) SITE_DTYPE, sorted by start: extent, summit (centre of the highest bin, the first of
    equal ones), score (the highest), n_bins (bins merged)
    """
    starts = np.asarray(starts, np.int64)
    ends = np.asarray(ends, np.int64)
    scores = np.asarray(scores, np.float64)
    above = np.flatnonzero(scores >= threshold)
    order = above[np.lexsort((ends[above], starts[above]))]
    s, e, v = starts[order], ends[order], scores[order]
    sites = np.zeros(len(s), SITE_DTYPE)[:0]
    if not len(s):
        return sites
    reach = np.maximum.accumulate(e)
    new = np.concatenate([[True], s[1:] > reach[:-1]])
    first = np.flatnonzero(new)
    site_of = np.cumsum(new) - 1
    out = np.zeros(len(first), SITE_DTYPE)
    out["chrom"] = chrom
    out["start"] = s[first]
    out["end"] = np.maximum.reduceat(e, first)
    out["score"] = np.maximum.reduceat(v, first)
    out["n_bins"] = np.diff(np.append(first, len(s)))
    # the best bin of each site: order by (site, -score, start) and take each site's first
    best = np.lexsort((s, -v, site_of))
    best = best[np.concatenate([[True], site_of[best][1:] != site_of[best][:-1]])]
    out["summit"] = (s[best] + e[best]) // 2
    return out


def call_sites(bins_by_chrom, threshold):
    """Sites over every chromosome (file order). bins_by_chrom: dict chrom -> structured array
    with start, end, score (as `evaluate.read_predictions` returns). (k,) SITE_DTYPE"""
    parts = [merge_bins(chrom, b["start"], b["end"], b["score"], threshold)
             for chrom, b in bins_by_chrom.items()]
    return np.concatenate(parts) if parts else np.zeros(0, SITE_DTYPE)


def narrowpeak_text(sites, qvalues=None, header=""):
    """The narrowPeak text of `sites` (module docstring), `qvalues` (k,) or None (-1)."""
    lines = [header] if header else []
    q = None if qvalues is None else np.maximum(np.asarray(qvalues, np.float64), QVALUE_FLOOR)
    for k, site in enumerate(sites):
        score = int(min(1000, max(0, round(1000 * float(site["score"])))))
        qvalue = "-1" if q is None else f"{-math.log10(q[k]):.4g}"
        lines.append(f"{site['chrom']}\t{site['start']}\t{site['end']}\tsite_{k + 1}\t{score}\t.\t"
                     f"{float(site['score']):.6g}\t-1\t{qvalue}\t{site['summit'] - site['start']}")
    return "".join(line + "\n" for line in lines)


# ------------------------------------------------------------------ the command

def _model_tf(model_dir, tf):
    """The TF of a prediction made with `model_dir` (-f, or the single-task model's one)."""
    from factornet_jax.modeldir import read_config
    tfs = list(read_config(model_dir)["tfs"])
    if tf is None:
        if len(tfs) != 1:
            raise ConfigError(f"-f: model {model_dir} predicts several TFs ({', '.join(tfs)}); "
                              "name the one the prediction file holds with -f")
        return tfs[0]
    if tf not in tfs:
        raise ConfigError(f"-f {tf}: not a TF of model {model_dir} ({', '.join(tfs)})")
    return tf


def choose_threshold(model_dir=None, tf=None, fdr=0.1, threshold=None):
    """(threshold, tf, calibration entry or None, {"valid_fdr", "recall"} there or None), as
    the flags ask.

    An explicit `threshold` wins; otherwise the model's calibration gives the one of `fdr`.
    """
    if not 0.0 < fdr < 1.0:
        raise ConfigError(f"--fdr {fdr}: a target false-discovery rate is between 0 and 1 "
                          "(0.1 = 10%)")
    if threshold is not None and not math.isfinite(threshold):
        raise ConfigError(f"--threshold {threshold}: give a finite score")
    if model_dir is None:
        if threshold is None:
            raise ConfigError("give -m MODEL_DIR (its calibration.json picks the threshold of "
                              "--fdr) or --threshold X")
        return float(threshold), tf, None, None
    from factornet_jax import calibration
    tf = _model_tf(model_dir, tf)
    if threshold is not None:
        return float(threshold), tf, None, None
    entry = calibration.tf_entry(calibration.read_calibration(model_dir), tf, model_dir)
    chosen, valid_fdr, valid_recall = calibration.fdr_threshold(entry, fdr)
    if chosen is None:
        why = entry.get("note") or "no threshold is that precise on the validation bins"
        raise FactorNetError(f"--fdr {fdr}: {Path(model_dir) / calibration.CALIBRATION_NAME} has "
                             f"no threshold for it for {tf} ({why}); raise --fdr or pass "
                             "--threshold X")
    return chosen, tf, entry, {"valid_fdr": valid_fdr, "recall": valid_recall}


def call_sites_file(prediction_path, out_path, model_dir=None, tf=None, fdr=0.1, threshold=None,
                    overwrite=False):
    """Call binding sites from a prediction bedGraph and write them as narrowPeak.

    Parameters
    ----------
    prediction_path : bedGraph (gz or plain) of one TF, e.g. from `factornet predict`
    out_path : the narrowPeak to write (gzipped when it ends in .gz); -o / -oc rules
    model_dir : the model that made the predictions (its calibration.json), or None with
        `threshold`
    tf : the TF of a multi-task model's prediction (-f)
    fdr : target false-discovery rate of bins, in (0, 1)
    threshold : a score threshold instead of the calibrated one

    Returns
    -------
    CallSummary
    """
    from factornet_jax import calibration
    from factornet_jax.evaluate import read_predictions
    inputs = (prediction_path, model_dir)
    check_output(out_path, overwrite, CALLS, inputs)           # before the long part
    chosen, tf, entry, row = choose_threshold(model_dir, tf, fdr, threshold)
    bins = read_predictions(prediction_path)
    sites = call_sites(bins, chosen)
    qvalues = None
    if entry is not None:
        curve = entry["qvalue_curve"]
        qvalues = calibration.qvalue_of(curve["thresholds"], curve["qvalues"], sites["score"])
    how = (f"threshold {chosen:.6g} for target FDR {fdr:g} from {Path(model_dir).name}'s "
           "calibration.json" if entry is not None else f"threshold {chosen:.6g} (given)")
    header = (f'track type=narrowPeak name="{tf or "sites"}" description="{CALL_TAG}: '
              f'{Path(prediction_path).name}, {how}"')
    data = narrowpeak_text(sites, qvalues, header).encode("utf-8")
    if str(out_path).endswith(".gz"):
        data = gzip.compress(data, mtime=0)
    check_output(out_path, overwrite, CALLS, inputs)
    write_file_atomically(out_path, lambda handle: handle.write(data))
    n_bins = sum(len(b) for b in bins.values())
    widths = sites["end"] - sites["start"]
    return CallSummary(
        out_path=str(out_path), tf=tf, threshold=chosen, fdr=fdr if entry is not None else None,
        valid_fdr=None if row is None else row["valid_fdr"],
        valid_recall=None if row is None else row["recall"],
        n_bins=n_bins, n_called_bins=int(sites["n_bins"].sum()), n_sites=len(sites),
        median_width=float(np.median(widths)) if len(widths) else 0.0)


def format_summary(summary: CallSummary) -> str:
    """One line: sites, bins, threshold (and what it promised on validation)."""
    promise = ""
    if summary.fdr is not None:
        promise = f" (target FDR {summary.fdr:g}"
        if summary.valid_fdr is not None:
            promise += (f"; on the validation bins: FDR {summary.valid_fdr:.3f}, "
                        f"recall {summary.valid_recall:.3f}")
        promise += ")"
    return (f"called {summary.n_sites:,} sites from {summary.n_called_bins:,} of "
            f"{summary.n_bins:,} bins scoring >= {summary.threshold:.6g}{promise}; median width "
            f"{summary.median_width:.0f} bp -> {summary.out_path}")

"""DREAM-style scoring of predicted bins against ChIP-seq peaks: labels, metrics, report.

Labels (ENCODE-DREAM): a bin is *bound* when more than half of it, ``> (end - start) / 2``
bp, lies inside the conservative peaks; otherwise *ambiguous* when it overlaps (>= 1 bp)
a relaxed peak, and ambiguous bins are left out of every metric; otherwise *unbound*.
A bin exactly half covered is not bound.

Predictions are bedGraph-like files (chrom, start, end, score; extra columns ignored),
gzipped or plain, e.g. what ``factornet predict`` writes on the DREAM ladder (200 bp bins
at 50 bp steps). Prediction chromosomes without any peak are all unbound.

The report folder holds ``metrics.json``, ``metrics.tsv`` (the printed table),
``pr_curve.png``, ``roc_curve.png`` and our marker ``.factornet-output.json`` (what lets a
later ``-oc`` replace it); it is written into a hidden folder beside the target and swapped
into place last (``outputs.write_dir_atomically``), so a half-written report never looks
complete and an earlier one stays whole until the new one is. Beside them:

- ``bootstrap.tsv`` (unless ``bootstrap_rounds=0``): per file and metric the value on all
  bins, and the mean and 95% interval over ENCODE-DREAM's bootstrap rounds (10 x 90% of each
  chromosome's bins; factornet_jax.bootstrap says exactly how);
- ``ranking.tsv`` (two or more files over the same bins): the DREAM combined rank of each
  file and, for each pair, the share of rounds in which one beats the other;
- ``reliability.tsv`` and ``reliability.png``: calibration of scores in [0, 1] (10
  equal-width score bins), with each file's Brier score (factornet_jax.calibration);
- with ``baselines`` (``--baselines CELL_STORE [--motif-db MEME --tf TF]``) two more rows
  scored exactly like the files, over the first file's bins: the mean of the DNase track
  over each bin, and the best log2-odds score of the TF's motif in it (both strands), both
  computed from the stores, so every report shows what the model adds.
"""
from __future__ import annotations

import json
import math
import re
import zlib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from factornet_jax import bootstrap, calibration, metrics
from factornet_jax.bed import (chrom_naming_hint, decode_lines, is_data_line, other_chrom_name,
                               raw_line_blocks, read_bed)
from factornet_jax.errors import ConfigError, InputFileError
from factornet_jax.intervals import IntervalSet
from factornet_jax.outputs import REPORT, check_output, json_ready, write_dir_atomically
from factornet_jax.progress import Progress

REPORT_FORMAT = "factornet-jax/evaluation"
REPORT_VERSION = 1

BOUND, UNBOUND, AMBIGUOUS = 1, 0, -1

# per chromosome: one row per predicted bin
SCORED_BIN_DTYPE = np.dtype([("start", "i8"), ("end", "i8"), ("score", "f8")])

_BLOCK_LINES = 1 << 18
_MAX_CHROM_NAME = 64
_INTEGER = re.compile(r"[+-]?[0-9]+")
_MAX_CURVE_POINTS = 4000
TABLE_COLUMNS = ("prediction", "chroms", "auROC", "auPRC", "recall_at_50fdr", "recall_at_10fdr",
                 "n_bound", "n_unbound", "n_ambiguous")


# ------------------------------------------------------------------------ predictions

def _line_problem(line):
    """Why one bedGraph data line is malformed, or None if it parses."""
    fields = line.split("\t") if "\t" in line else line.split()
    fields = [f.strip() for f in fields]
    if len(fields) < 4:
        return f"expected 4 columns (chrom start end score), found {len(fields)}"
    for column, text in ((2, fields[1]), (3, fields[2])):
        if not _INTEGER.fullmatch(text):
            return f"column {column} is not an integer coordinate: '{text}'"
    try:
        score = float(fields[3])
    except ValueError:
        return f"column 4 (score) is not a number: '{fields[3]}'"
    if math.isnan(score):
        return "column 4 (score) is NaN"
    start, end = int(fields[1]), int(fields[2])
    if start < 0:
        return f"negative start coordinate: {start}"
    if end <= start:
        return f"end {end} is not after start {start}"
    if len(fields[0]) > _MAX_CHROM_NAME:
        return f"chromosome name longer than {_MAX_CHROM_NAME} characters"
    return None


def _parse_block(path, raw_lines, first_line, wanted, seen):
    """Parse one block of raw lines -> (chroms (n,) str, (n,) SCORED_BIN_DTYPE rows).

    `first_line` is the 1-based file line number of raw_lines[0]; `wanted` a set of
    chromosomes to keep (None: all), and then `seen` (a set) collects every chromosome
    named in the block. On any problem, the first bad line is named.
    """
    data = [line for line in raw_lines if is_data_line(line)]
    if wanted is not None:
        firsts = [line.split(None, 1)[0] for line in data]
        seen.update(firsts)
        data = [line for line, chrom in zip(data, firsts) if chrom in wanted]
    if not data:
        return np.zeros(0, "U64"), np.zeros(0, SCORED_BIN_DTYPE)
    # one character more than allowed, so an over-long name shows instead of being cut
    dtype = np.dtype([("chrom", f"U{_MAX_CHROM_NAME + 1}"), ("start", "i8"), ("end", "i8"),
                      ("score", "f8")])
    try:
        table = np.loadtxt(data, dtype=dtype, usecols=(0, 1, 2, 3), comments=None, ndmin=1)
        bad = ((table["start"] < 0) | (table["end"] <= table["start"]) | np.isnan(table["score"])
               | (np.char.str_len(table["chrom"]) > _MAX_CHROM_NAME))
    except ValueError:
        bad = None
    if bad is None or bad.any():
        for offset, line in enumerate(raw_lines):
            if not is_data_line(line):
                continue
            if wanted is not None and line.split(None, 1)[0] not in wanted:
                continue
            problem = _line_problem(line)
            if problem:
                raise InputFileError(path, problem, first_line + offset)
        raise InputFileError(path, "could not parse this block of lines as bedGraph", first_line)
    rows = np.empty(len(table), SCORED_BIN_DTYPE)
    rows["start"], rows["end"], rows["score"] = table["start"], table["end"], table["score"]
    return table["chrom"], rows


def read_predictions(path, chroms=None):
    """Read a bedGraph-like prediction file (chrom start end score ...), gzipped or plain.

    Parameters
    ----------
    path : str or Path
    chroms : iterable of str, optional
        Keep only these chromosomes (lines on others are skipped unparsed).

    Returns
    -------
    dict chrom -> (n_bins,) SCORED_BIN_DTYPE, chromosomes in order of first appearance,
    bins in file order.

    Raises
    ------
    InputFileError
        Missing or unreadable file, truncated gzip, malformed line (named ``file:line``),
        or no bins at all.
    ConfigError
        One of `chroms` (the --chroms flag) has no bin in the file.
    """
    wanted = None if chroms is None else set(chroms)
    seen = set()
    parts = {}
    with Progress(f"reading {Path(path).name}", unit="lines") as bar:
        for line_no, raw in raw_line_blocks(path, "prediction file", _BLOCK_LINES):
            names, rows = _parse_block(path, decode_lines(path, raw, line_no), line_no, wanted, seen)
            bar.update(len(raw))
            if not len(rows):
                continue
            # files are grouped by chromosome: split the block into runs of one chromosome
            cuts = np.flatnonzero(names[1:] != names[:-1]) + 1
            for run_names, run_rows in zip(np.split(names, cuts), np.split(rows, cuts)):
                parts.setdefault(str(run_names[0]), []).append(run_rows)
    if not parts and not seen:
        raise InputFileError(path, "no predicted bins; expected bedGraph lines "
                                   "'chrom start end score'")
    if chroms is not None:
        missing = [c for c in chroms if c not in parts]
        if missing:
            have = sorted(seen)
            raise ConfigError(
                f"--chroms {missing[0]}: no predicted bins on it in {path} (it has "
                f"{', '.join(have[:6])}{', ...' if len(have) > 6 else ''})"
                f"{chrom_naming_hint(missing[0], seen)}; choose chromosomes the predictions cover")
    return {chrom: np.concatenate(chunks) for chrom, chunks in parts.items()}


# ------------------------------------------------------------------------ labels

def label_bins(conservative, relaxed, chrom, starts, ends):
    """DREAM labels of the bins [starts, ends) of one chromosome.

    Parameters
    ----------
    conservative : IntervalSet, peaks that make a bin bound
    relaxed : IntervalSet or None, peaks that make a not-bound bin ambiguous
    chrom : str
    starts, ends : (n,) int

    Returns
    -------
    (n,) int8: BOUND (1) when covered_bp * 2 > bin width, else AMBIGUOUS (-1) when the
    bin overlaps a relaxed peak by >= 1 bp, else UNBOUND (0).
    """
    starts = np.asarray(starts, np.int64)
    ends = np.asarray(ends, np.int64)
    bound = 2 * conservative.covered_bp(chrom, starts, ends) > (ends - starts)
    labels = np.where(bound, BOUND, UNBOUND).astype(np.int8)
    if relaxed is not None:
        labels[~bound & relaxed.overlaps(chrom, starts, ends)] = AMBIGUOUS
    return labels


# ------------------------------------------------------------------------ scoring

@dataclass(frozen=True)
class PredictionScores:
    """Labelled bins of one prediction file, chromosome by chromosome.

    labels, scores: dict chrom -> (n_bins,) int8 / float64
    """
    name: str
    path: str
    labels: dict
    scores: dict
    bins_digest: dict = field(default_factory=dict)   # chrom -> crc32 of the bins' coordinates
    kind: str = "prediction"                           # or "baseline"

    @property
    def chroms(self):
        return tuple(self.labels)

    def pooled(self, chroms=None):
        """(labels (n,) bool bound, scores (n,) float64) of the non-ambiguous bins."""
        chroms = self.chroms if chroms is None else chroms
        labels = np.concatenate([self.labels[c] for c in chroms])
        scores = np.concatenate([self.scores[c] for c in chroms])
        keep = labels != AMBIGUOUS
        return labels[keep] == BOUND, scores[keep]

    def summary(self, chroms=None):
        """metrics.summarize of the bins on `chroms` (default all), plus n_ambiguous."""
        chroms = self.chroms if chroms is None else tuple(chroms)
        result = metrics.summarize(*self.pooled(chroms))
        result["n_ambiguous"] = int(sum(int((self.labels[c] == AMBIGUOUS).sum()) for c in chroms))
        return result


def _read_peaks(path):
    records = read_bed(path)
    return records, IntervalSet.from_records(records)


def _display_names(paths):
    """Labels for the prediction files: file names, or the paths where names repeat."""
    names = [Path(p).name for p in paths]
    return [str(p) if names.count(n) > 1 else n for p, n in zip(paths, names)]


def score_predictions(prediction_paths, peaks_path, relaxed_path=None, chroms=None):
    """Read and label every prediction file.

    Parameters
    ----------
    prediction_paths : list of str or Path
    peaks_path : conservative peaks (narrowPeak/BED, gz or not)
    relaxed_path : relaxed peaks or None (no ambiguous bins then)
    chroms : list of str or None (all chromosomes of each prediction file)

    Returns
    -------
    list of PredictionScores, in the order of `prediction_paths`.

    Raises
    ------
    FactorNetError
        Unreadable or malformed inputs; a `chroms` entry without bins in a prediction
        file; prediction chromosomes named differently from the peaks (chr1 vs 1).
    """
    if chroms is not None:
        chroms = list(dict.fromkeys(chroms))
    for path in [peaks_path, relaxed_path, *prediction_paths]:
        if path is not None and not Path(path).is_file():
            raise InputFileError(path, "file not found; check the path")
    peak_records, conservative = _read_peaks(peaks_path)
    relaxed = _read_peaks(relaxed_path)[1] if relaxed_path is not None else None
    peak_chroms = set(peak_records["chrom"].tolist())
    if relaxed is not None:
        peak_chroms |= set(relaxed.chroms)
    results = []
    for path, name in zip(prediction_paths, _display_names(prediction_paths)):
        bins = read_predictions(path, chroms)
        for chrom in bins:
            if chrom not in peak_chroms and other_chrom_name(chrom) in peak_chroms:
                raise InputFileError(
                    path, f"chromosome '{chrom}' is named '{other_chrom_name(chrom)}' in the peaks "
                          f"{peaks_path}; "
                          "use one chromosome naming (chr1 or 1) for predictions and peaks")
        order = chroms if chroms is not None else list(bins)
        labels = {c: label_bins(conservative, relaxed, c, bins[c]["start"], bins[c]["end"])
                  for c in order}
        # copies, so the coordinates of the bins are freed before the next file is read
        scores = {c: np.ascontiguousarray(bins[c]["score"]) for c in order}
        results.append(PredictionScores(name=name, path=str(path), labels=labels, scores=scores,
                                        bins_digest={c: _digest(bins[c]) for c in order}))
    return results


def _digest(rows):
    """crc32 of the start and end coordinates of one chromosome's bins (same bins, same digest)."""
    return zlib.crc32(np.ascontiguousarray(rows["end"]).tobytes(),
                      zlib.crc32(np.ascontiguousarray(rows["start"]).tobytes()))


def _same_bins(scored):
    """True when every file covers the same bins (chromosomes, coordinates)."""
    first = scored[0].bins_digest
    return all(item.bins_digest == first for item in scored[1:])


def build_report(scored, peaks_path, relaxed_path=None, chroms=None,
                 bootstrap_rounds=bootstrap.ROUNDS, seed=0):
    """The metrics.json content: per prediction file, all its chromosomes and each one; its
    calibration (Brier score, reliability table); with `bootstrap_rounds` > 0 the bootstrap
    intervals, and for two or more files over the same bins the DREAM ranking.

    NaN metrics (a class absent) are kept as NaN here and written as JSON null.
    """
    predictions, rounds = [], {}
    for item in scored:
        per_chrom = {c: item.summary([c]) for c in item.chroms} if len(item.chroms) > 1 else {}
        labels, scores = item.pooled()
        entry = {
            "name": item.name,
            "kind": item.kind,
            "path": str(Path(item.path).resolve()),
            "chroms": list(item.chroms),
            "all": item.summary(),
            "per_chrom": per_chrom,
            "calibration": {"brier": calibration.brier_score(labels, scores),
                            "reliability": calibration.reliability(labels, scores)},
        }
        if bootstrap_rounds > 0:
            rounds[item.name] = bootstrap.bootstrap_metrics(item.labels, item.scores,
                                                            bootstrap_rounds, seed)
            entry["bootstrap"] = {m: {**bootstrap.interval(v), "values": v.tolist()}
                                  for m, v in rounds[item.name].items()}
        predictions.append(entry)
    ranking = None
    if bootstrap_rounds > 0 and len(scored) > 1:
        if _same_bins(scored):
            ranking = bootstrap.ranking(rounds)
        else:
            ranking = {"note": "the files cover different bins: no paired ranking"}
    return {
        "format": REPORT_FORMAT,
        "version": REPORT_VERSION,
        "peaks": str(Path(peaks_path).resolve()),
        "relaxed": str(Path(relaxed_path).resolve()) if relaxed_path is not None else None,
        "chroms": list(chroms) if chroms is not None else None,
        "labelling": "bound: more than half of the bin inside a conservative peak; ambiguous "
                     "(excluded): not bound and overlapping a relaxed peak; else unbound",
        "predictions": predictions,
        "bootstrap": None if bootstrap_rounds <= 0 else {
            "rounds": int(bootstrap_rounds), "fraction": bootstrap.FRACTION, "seed": int(seed),
            "method": "each round keeps floor(0.9 n + 0.5) of every chromosome's n bins, without "
                      "replacement (numpy default_rng([seed, round, crc32(chrom)]).choice); "
                      "mean and 2.5/97.5 percentiles over the rounds",
        },
        "ranking": ranking,
        "plots": ["pr_curve.png", "roc_curve.png", "reliability.png"],
    }


# ------------------------------------------------------------------------ table

def _fmt(value):
    if isinstance(value, float):
        return "nan" if math.isnan(value) else f"{value:.4f}"
    return str(value)


def table_rows(report):
    """Rows (tuples of str, TABLE_COLUMNS order): each file's pooled set, then each chromosome."""
    rows = []
    for pred in report["predictions"]:
        sets = [("all" if report["chroms"] is None else ",".join(pred["chroms"]), pred["all"])]
        sets += list(pred["per_chrom"].items())
        for label, result in sets:
            rows.append((pred["name"], label) + tuple(_fmt(result[k]) for k in TABLE_COLUMNS[2:]))
    return rows


BOOTSTRAP_COLUMNS = ("prediction", "metric", "all_bins", "mean", "ci_low", "ci_high")
RELIABILITY_COLUMNS = ("prediction", "score_low", "score_high", "n", "mean_score", "fraction_bound")


def bootstrap_rows(report):
    """Rows (BOOTSTRAP_COLUMNS) per file and metric; [] without a bootstrap."""
    rows = []
    for pred in report["predictions"]:
        if "bootstrap" not in pred:
            continue
        for metric, values in pred["bootstrap"].items():
            point = pred["calibration"]["brier"] if metric == "brier" else pred["all"][metric]
            rows.append((pred["name"], metric, _fmt(_nan(point)),
                         *(_fmt(_nan(values[k])) for k in ("mean", "low", "high"))))
    return rows


def ranking_columns(report):
    names = report["ranking"]["names"]
    return (("prediction", "mean_rank") + tuple(f"{m}_rank" for m in bootstrap.RANKED_METRICS)
            + tuple(f"beats:{n}" for n in names))


def ranking_rows(report):
    """Rows (ranking_columns) best first: mean combined rank, mean rank per metric, and the
    share of rounds in which the row's file beats each column's; [] without a ranking."""
    ranking = report.get("ranking")
    if not ranking or "names" not in ranking:
        return []
    rows = []
    for name in ranking["names"]:
        rows.append((name, f"{ranking['mean_rank'][name]:.2f}",
                     *(f"{ranking['metric_rank'][name][m]:.2f}" for m in bootstrap.RANKED_METRICS),
                     *("-" if other == name else f"{ranking['win_share'][name][other]:.2f}"
                       for other in ranking["names"])))
    return rows


def reliability_rows(report):
    """Rows (RELIABILITY_COLUMNS) per file and score bin (files with scores in [0, 1])."""
    rows = []
    for pred in report["predictions"]:
        table = pred["calibration"]["reliability"]
        for i in range(len(table["n"])):
            rows.append((pred["name"], f"{table['low'][i]:g}", f"{table['high'][i]:g}",
                         str(table["n"][i]), _fmt(_nan(table["mean_score"][i])),
                         _fmt(_nan(table["fraction_bound"][i]))))
    return rows


def _nan(value):
    return float("nan") if value is None else value


def _aligned(rows, left=1):
    """Rows of str as aligned text (the first `left` columns left-aligned)."""
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return ["  ".join(cell.ljust(w) if i < left else cell.rjust(w)
                      for i, (cell, w) in enumerate(zip(row, widths))).rstrip() for row in rows]


def format_table(report):
    """The report as aligned text: the metrics table (with notes about undefined metrics
    below), then, indented under their own heading lines, the bootstrap intervals and Brier
    scores and the DREAM ranking (so only the metrics rows start with a file's name)."""
    lines = _aligned([TABLE_COLUMNS] + table_rows(report), left=2)
    for pred in report["predictions"]:
        for label, result in [("all", pred["all"]), *pred["per_chrom"].items()]:
            if result["note"]:
                lines.append(f"note: {pred['name']} {label}: {result['note']}")
    settings = report.get("bootstrap")
    if settings:
        lines += ["", f"bootstrap: {settings['rounds']} rounds of {settings['fraction']:.0%} of each "
                      f"chromosome's bins (seed {settings['seed']}): mean [95% interval]"]
        header = ("prediction",) + bootstrap.INTERVAL_METRICS
        rows = [header]
        for pred in report["predictions"]:
            cells = []
            for metric in bootstrap.INTERVAL_METRICS:
                v = pred["bootstrap"][metric]
                cells.append("nan" if v["mean"] is None else
                             f"{v['mean']:.4f} [{v['low']:.4f}, {v['high']:.4f}]")
            rows.append((pred["name"], *cells))
        lines += ["  " + line for line in _aligned(rows)]
    else:
        lines += ["", "Brier score: " + ", ".join(
            f"{p['name']} {_fmt(_nan(p['calibration']['brier']))}" for p in report["predictions"])]
    ranking = report.get("ranking")
    if ranking and "names" in ranking:
        lines += ["", "DREAM ranking (mean over rounds of the mean of the four metric ranks; "
                      "beats:X = share of rounds ranked above X)"]
        lines += ["  " + line for line in _aligned([ranking_columns(report)] + ranking_rows(report))]
    elif ranking:
        lines += ["", f"ranking: {ranking['note']}"]
    return "\n".join(lines)


# ------------------------------------------------------------------------ plots

def thin_curve(x, y, max_points=_MAX_CURVE_POINTS):
    """Indices of at most ~max_points curve points, evenly spaced along the path length.

    x, y : (k,) float in [0, 1]. Always keeps the first and last point.
    """
    if x.size <= max_points:
        return np.arange(x.size)
    path = np.concatenate([[0.0], np.cumsum(np.abs(np.diff(x)) + np.abs(np.diff(y)))])
    step = path[-1] / max_points if path[-1] > 0 else 1.0
    keep = np.flatnonzero(np.diff(np.floor(path / step), prepend=-1) != 0)
    return np.unique(np.concatenate([keep, [x.size - 1]]))


def draw_curves(scored, report, folder):
    """Write pr_curve.png and roc_curve.png: one curve per prediction file (pooled bins)."""
    import matplotlib
    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    fig_pr, ax_pr = plt.subplots(figsize=(6, 5), dpi=100)
    fig_roc, ax_roc = plt.subplots(figsize=(6, 5), dpi=100)
    for item, pred in zip(scored, report["predictions"]):
        labels, scores = item.pooled()
        summary = pred["all"]
        if summary["n_bound"] == 0:
            ax_pr.plot([], [], label=f"{item.name} (no bound bins)")
            ax_roc.plot([], [], label=f"{item.name} (no bound bins)")
            continue
        precision, recall, _ = metrics.pr_curve(labels, scores)
        recall = np.concatenate([[0.0], recall])
        precision = np.concatenate([[precision[0]], precision])
        keep = thin_curve(recall, precision)
        ax_pr.plot(recall[keep], precision[keep], drawstyle="steps-pre",
                   label=f"{item.name} (auPRC {_fmt(summary['auPRC'])})")
        fpr, tpr, _ = metrics.roc_curve(labels, scores)
        if summary["n_unbound"]:
            keep = thin_curve(fpr, tpr)
            ax_roc.plot(fpr[keep], tpr[keep], label=f"{item.name} (auROC {_fmt(summary['auROC'])})")
        else:
            ax_roc.plot([], [], label=f"{item.name} (no unbound bins)")
    ax_roc.plot([0, 1], [0, 1], linestyle="--", color="grey", linewidth=0.8)
    for ax, title, xlabel, ylabel in (
            (ax_pr, "Precision-recall", "recall", "precision"),
            (ax_roc, "ROC", "false positive rate", "true positive rate")):
        ax.set_xlim(0, 1)
        ax.set_ylim(0, 1.02)
        ax.set_xlabel(xlabel)
        ax.set_ylabel(ylabel)
        ax.set_title(title)
        ax.grid(alpha=0.3)
        ax.legend(loc="lower right" if ax is ax_roc else "best", fontsize=8)
    for fig, name in ((fig_pr, "pr_curve.png"), (fig_roc, "roc_curve.png")):
        fig.tight_layout()
        fig.savefig(Path(folder) / name)
        plt.close(fig)


# ------------------------------------------------------------------------ report folder

def _write_tsv(path, header, rows):
    path.write_text("".join("\t".join(r) + "\n" for r in [header] + list(rows)))


# ------------------------------------------------------------------------ baselines

@dataclass(frozen=True)
class BaselineRequest:
    """--baselines: the cell store of the evaluated cell line, and what to compute from it."""
    store: str                    # cell store (its genome store gives the sequence)
    track: str | None = None      # signal track to average (default: the DNase track)
    motif_db: str | None = None   # MEME file: adds the PWM max row
    tf: str | None = None         # whose motif (picked as train -mo picks it)


def dnase_track(store, track=None):
    """The track the DNase-mean baseline averages: `track`, else the one named like DNase
    ('DNase...', 'DGF'), else an error naming --baseline-track."""
    if track is not None:
        return track
    for name in store.track_names:
        if "dnase" in name.lower() or name.upper() == "DGF":
            return name
    raise ConfigError(f"--baselines {store.path}: no track named like DNase among "
                      f"{', '.join(store.track_names)}; name one with --baseline-track")


def baseline_scores(request, prediction_path, labels, chroms=None):
    """The baseline rows over the bins of `prediction_path`: a list of PredictionScores
    (DNase mean, and PWM max with a motif database), labelled with `labels` (dict chrom ->
    labels of those bins, from `score_predictions`)."""
    from factornet_jax.baselines import pwm_max, track_mean
    from factornet_jax.meme import factornet_motif, find_motif, read_meme
    from factornet_jax.reader import open_cell_store
    if request.motif_db is not None and request.tf is None:
        raise ConfigError("--motif-db needs --tf TF: the PWM baseline scores that TF's motif")
    store = open_cell_store(request.store)
    track = dnase_track(store, request.track)
    motif = None
    if request.motif_db is not None:
        motifs = read_meme(request.motif_db)
        motif = factornet_motif(motifs, request.tf) or find_motif(motifs, request.tf)
    bins = read_predictions(prediction_path, chroms)
    missing = [c for c in bins if c not in store.chrom_sizes]
    if missing:
        raise ConfigError(f"--baselines {request.store}: chromosome {missing[0]} of "
                          f"{prediction_path} is not in the store; give the store of the "
                          "evaluated cell line")
    order = list(labels)
    digest = {c: _digest(bins[c]) for c in order}
    with store, Progress("baselines", total=len(order), unit="chrom") as bar:
        mean, best = {}, {}
        for chrom in order:
            b = bins[chrom]
            names = np.full(len(b), chrom)
            mean[chrom] = track_mean(store, names, b["start"], b["end"], track)
            if motif is not None:
                best[chrom] = pwm_max(store.genome, names, b["start"], b["end"], motif.pwm)
            bar.update(1)
    out = [PredictionScores(name=f"{track} mean (baseline)", path=str(store.path), labels=labels,
                            scores=mean, bins_digest=digest, kind="baseline")]
    if motif is not None:
        out.append(PredictionScores(name=f"PWM max {motif.name} (baseline)",
                                    path=str(request.motif_db), labels=labels, scores=best,
                                    bins_digest=digest, kind="baseline"))
    return out


# ------------------------------------------------------------------------ evaluate

def evaluate(prediction_paths, peaks_path, report_dir, relaxed_path=None, chroms=None,
             overwrite=False, plots=True, bootstrap_rounds=bootstrap.ROUNDS, seed=0,
             baselines=None):
    """Score prediction files against peaks and write the report folder.

    Parameters
    ----------
    bootstrap_rounds : DREAM bootstrap rounds (0: none); seed : their seed
    baselines : BaselineRequest or None: add the DNase-mean (and PWM-max) rows

    Returns
    -------
    report : dict, the metrics.json content (NaN where undefined)
    """
    if bootstrap_rounds < 0:
        raise ConfigError(f"--bootstrap {bootstrap_rounds}: give a number of rounds >= 0")
    inputs = (*prediction_paths, peaks_path, relaxed_path)
    if baselines is not None:
        inputs += (baselines.store, baselines.motif_db)
    check_output(report_dir, overwrite, REPORT, inputs)   # fail before the long part
    scored = score_predictions(prediction_paths, peaks_path, relaxed_path, chroms)
    if baselines is not None:
        scored += baseline_scores(baselines, prediction_paths[0], scored[0].labels,
                                  list(scored[0].chroms))
    report = build_report(scored, peaks_path, relaxed_path, chroms, bootstrap_rounds, seed)
    if not plots:
        report["plots"] = []

    def write_contents(folder):
        text = json.dumps(json_ready(report), indent=2, allow_nan=False)
        (folder / "metrics.json").write_text(text + "\n")
        _write_tsv(folder / "metrics.tsv", TABLE_COLUMNS, table_rows(report))
        if report["bootstrap"]:
            _write_tsv(folder / "bootstrap.tsv", BOOTSTRAP_COLUMNS, bootstrap_rows(report))
        if ranking_rows(report):
            _write_tsv(folder / "ranking.tsv", ranking_columns(report), ranking_rows(report))
        _write_tsv(folder / "reliability.tsv", RELIABILITY_COLUMNS, reliability_rows(report))
        if plots:
            draw_curves(scored, report, folder)
            calibration.draw_reliability(
                [(p["name"], p["calibration"]["reliability"], p["calibration"]["brier"])
                 for p in report["predictions"]], folder / "reliability.png")

    write_dir_atomically(report_dir, overwrite, write_contents, REPORT, inputs)
    return report

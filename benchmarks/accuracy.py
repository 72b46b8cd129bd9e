"""Cross-cell-type accuracy on the simulated dataset: FactorNet-JAX against simple baselines.

    python benchmarks/accuracy.py [--genome-mb 20] [--work DIR] [--epochs N]
                                  [--dtype float32|bfloat16] [--reuse] [--doc docs/ACCURACY.md]

One run does, per TF (default CTCF and GABPA):

1. simulate a genome with three cell lines (CellA, CellB, CellC) and build their stores;
2. train a onePeak FactorNet-JAX model on CellA + CellB (validation chr11, test chromosomes
   chr1, chr8, chr21 never seen); defaults -k 32 -r 16 -d 64 -L 1000 -n 10 -mo, up to 20 epochs
   (-mo: kernels 0 and 1 start from the TF's motif, as FactorNet's option; --no-motif for
   random kernels);
3. predict the held-out cell line CellC on the DREAM-style ladder (200-bp bins at 50-bp
   steps over the test chromosomes);
4. score, on exactly the same bins and with `evaluate.label_bins`' labels (bound: more than
   half the bin inside a conservative peak; ambiguous relaxed-only bins left out):

   - FactorNet-JAX           the model's probability
   - DNase mean              mean 1x DNase coverage over the 200-bp bin (from the cell store)
   - PWM max                 best log2-odds score of the TF's planted motif (motifs.meme) over
                             the bin's sequence, both strands (`meme.scan_max`)
   - logistic DNase+PWM      logistic regression on log1p(DNase mean), PWM max and their
                             product, fit on CellA + CellB bins (200 bp, 50-bp steps,
                             subsampled) of the training chromosomes, labelled the same way
   - oracle (site in bin)    the simulator's binding probability (truth.tsv.gz, CellC) of the
                             candidate site whose position (motif / site midpoint) falls in
                             the bin, 0 elsewhere: what a perfect reading of the simulator's
                             parameters could do, short of the peak-calling noise
   - oracle (site +-100 bp)  the same with the bin widened by 100 bp each side (ladder bins at
                             a bound site's peak edge do not contain the site itself)

Prints one table and writes a markdown report (--doc). Everything goes under --work (default
/tmp/factornet_accuracy); --reuse keeps the simulation, stores, models and predictions found
there when their settings match.
"""

from __future__ import annotations

import argparse
import csv
import datetime
import gzip
import json
import platform
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from factornet_jax import metrics
from factornet_jax.evaluate import AMBIGUOUS, BOUND, label_bins, read_predictions
from factornet_jax.intervals import IntervalSet
from factornet_jax.labels import BIN_SIZE, STRIDE
from factornet_jax.meme import find_motif, read_meme
from factornet_jax.simulate import DNASE_TRACK

TRAIN_CELLS = ("CellA", "CellB")
TEST_CELL = "CellC"
VALID_CHROMS = ("chr11",)
TEST_CHROMS = ("chr1", "chr8", "chr21")
METHODS = ("FactorNet-JAX", "DNase mean", "PWM max", "logistic DNase+PWM",
           "oracle (site in bin)", "oracle (site +-100 bp)")
FEATURE_CHUNK = 8192  # bins per store read / PWM scan


@dataclass(frozen=True)
class Bins:
    """200-bp bins of one or more chromosomes: chroms (n,) str, starts (n,) int64."""
    chroms: np.ndarray
    starts: np.ndarray

    def __len__(self):
        return len(self.starts)


# ----------------------------------------------------------------------------- data

def training_cells(n):
    """Names of `n` training cell lines: CellA, CellB, then CellD, CellE... (CellC is held out)."""
    names = [chr(ord("A") + i) for i in range(n + 1) if chr(ord("A") + i) != TEST_CELL[-1]]
    return tuple(f"Cell{c}" for c in names[:n])


def prepare_data(work, genome_mb, seed, tfs, reuse, log, train_cells=TRAIN_CELLS):
    """Simulate (or reuse) the dataset and build its stores -> (sim root, {cell: store path})."""
    from factornet_jax.build import BuildRequest, build_stores, format_summary
    from factornet_jax.simulate import SimulationConfig, simulate

    sim_tfs = tuple(dict.fromkeys(SimulationConfig.tfs + tuple(tfs)))  # --tfs picks, same data
    sim_config = SimulationConfig(seed=seed, genome_mb=genome_mb, tfs=sim_tfs,
                                  cells=tuple(train_cells) + (TEST_CELL,), test_chroms=TEST_CHROMS)
    root = work / "sim"
    summary = root / "simulation.json"
    same = False
    if reuse and summary.is_file():
        import dataclasses
        wanted = json.loads(json.dumps(dataclasses.asdict(sim_config)))
        same = json.loads(summary.read_text())["config"] == wanted
    if same:
        log(f"simulation: reusing {root}")
        stores_force = False
    else:
        t0 = time.perf_counter()
        simulate(root, sim_config, overwrite=True)
        log(f"simulation: {genome_mb:g} Mb, {len(train_cells) + 1} cell lines in "
            f"{time.perf_counter() - t0:.0f} s")
        stores_force = True
    cells = tuple(train_cells) + (TEST_CELL,)
    request = BuildRequest(cell_dirs=tuple(str(root / "cells" / c) for c in cells),
                           genome=str(root / "genome.fa"), stores_dir=str(work / "stores"),
                           blacklist=str(root / "blacklist.bed.gz"), force=stores_force)
    summaries, seconds = build_stores(request)
    log(format_summary(summaries, seconds))
    return root, {c: work / "stores" / f"{c}.zarr" for c in cells}


def train_models(stores, work, tfs, args, log):
    """One onePeak model per TF on the training cell lines -> {tf: model dir}."""
    from factornet_jax.train_config import TrainConfig
    from factornet_jax.training import train_and_evaluate

    dirs = {}
    for tf in tfs:
        config = TrainConfig(
            inputs=tuple(str(stores[c]) for c in TRAIN_CELLS), output=str(work / "models" / args.name / tf),
            valid_chroms=VALID_CHROMS, test_chroms=TEST_CHROMS, factor=tf, epochs=args.epochs,
            patience=args.patience, negatives=args.negatives, seq_len=args.seq_len,
            kernels=args.kernels, recurrent=args.recurrent, dense=args.dense,
            batch_size=args.batch_size, seed=args.seed, compute_dtype=args.dtype,
            max_steps_per_epoch=args.max_steps, learning_rate=args.learning_rate,
            motif=args.motif, motif_db=str(work / "sim" / "motifs.meme") if args.motif else None)
        model_dir = Path(config.output)
        dirs[tf] = model_dir
        if args.reuse and _trained_with(model_dir, config):
            log(f"train {tf}: reusing {model_dir}")
            continue
        t0 = time.perf_counter()
        result = train_and_evaluate(config, overwrite=True,
                                    log=lambda m, tf=tf, **k: log(f"train {tf}: {m}"))
        log(f"train {tf}: {len(result.history)} epochs in {time.perf_counter() - t0:.0f} s, "
            f"best epoch {result.best_epoch} (valid loss {result.best_valid_loss:.4f})")
    return dirs


def _trained_with(model_dir, config):
    """True when model_dir holds a finished run of exactly `config`'s settings."""
    path = model_dir / "config.json"
    if not (path.is_file() and (model_dir / "best.npz").is_file()
            and (model_dir / "final.npz").is_file()):
        return False
    train = dict(json.loads(path.read_text()).get("train") or {})
    train.pop("model_type", None)
    return train == json.loads(json.dumps(config.to_dict()))


def predict_ladder(store, model_dirs, ladder, work, args, log):
    """Each TF's model on the held-out cell line's ladder -> {tf: bedGraph.gz path}."""
    from factornet_jax.predict import format_summary, predict_bed

    out = {}
    for tf, model_dir in model_dirs.items():
        path = work / "predictions" / args.name / f"{TEST_CELL}.{tf}.bedGraph.gz"
        out[tf] = path
        stamp = path.with_suffix(".done")
        model_stamp = str((model_dir / "best.npz").stat().st_mtime_ns)
        if args.reuse and path.is_file() and stamp.is_file() and stamp.read_text() == model_stamp:
            log(f"predict {tf}: reusing {path}")
            continue
        summary = predict_bed(str(store), str(model_dir), str(ladder), str(path), tf=tf,
                              overwrite=True, compute_dtype=args.dtype, progress=False)
        stamp.write_text(model_stamp)
        log(format_summary(summary))
    return out


# ----------------------------------------------------------------------------- baselines

def bin_features(store, bins, pwms, track):
    """DNase mean and PWM max per bin.

    Parameters
    ----------
    store : an open CellStore
    bins : Bins, n bins of BIN_SIZE bp
    pwms : dict name -> (width, 4) letter probabilities
    track : the DNase track name

    Returns
    -------
    dnase (n,) float64, and dict name -> (n,) float64 best log2-odds score over the bin
    """
    from factornet_jax.meme import scan_max

    column = list(store.track_names).index(track)
    dnase = np.zeros(len(bins))
    pwm = {name: np.zeros(len(bins)) for name in pwms}
    for lo in range(0, len(bins), FEATURE_CHUNK):
        sl = slice(lo, lo + FEATURE_CHUNK)
        codes, signal = store.fetch_batch(bins.chroms[sl], bins.starts[sl], BIN_SIZE, as_codes=True)
        dnase[sl] = signal[:, :, column].mean(axis=1)
        for name, matrix in pwms.items():
            pwm[name][sl] = scan_max(codes, matrix, onehot=False)
    return dnase, pwm


def ladder_like_bins(store, chroms, max_bins, rng):
    """Bins at 50-bp steps over `chroms` clear of the blacklist, at most max_bins (random)."""
    blacklist = store.genome.blacklist()
    chosen_chroms, chosen_starts = [], []
    for chrom in chroms:
        size = store.chrom_sizes[chrom]
        starts = np.arange(0, size - BIN_SIZE + 1, STRIDE, dtype=np.int64)
        starts = starts[~blacklist.overlaps(chrom, starts, starts + BIN_SIZE)]
        chosen_chroms.append(np.full(len(starts), chrom))
        chosen_starts.append(starts)
    chroms_arr, starts = np.concatenate(chosen_chroms), np.concatenate(chosen_starts)
    if len(starts) > max_bins:
        keep = np.sort(rng.choice(len(starts), max_bins, replace=False))
        chroms_arr, starts = chroms_arr[keep], starts[keep]
    return Bins(chroms_arr, starts)


def peak_sets(store, tf):
    """(conservative, relaxed) IntervalSets of `tf` in a cell store."""
    relaxed = store.peaks(tf, "relaxed")
    return (IntervalSet.from_records(store.peaks(tf, "conservative")),
            None if relaxed is None else IntervalSet.from_records(relaxed))


def labels_of(bins, conservative, relaxed):
    """evaluate.label_bins over many chromosomes -> (n,) int8."""
    out = np.zeros(len(bins), np.int8)
    for chrom in np.unique(bins.chroms):
        rows = np.flatnonzero(bins.chroms == chrom)
        starts = bins.starts[rows]
        out[rows] = label_bins(conservative, relaxed, str(chrom), starts, starts + BIN_SIZE)
    return out


def lr_design(dnase, pwm):
    """Logistic-regression inputs (n, 3): log1p(DNase), PWM max, their product."""
    log_dnase = np.log1p(np.maximum(dnase, 0.0))
    return np.stack([log_dnase, pwm, log_dnase * pwm], axis=1)


def fit_logistic(stores, tfs, pwms, train_chroms, max_bins, seed, log):
    """Per TF a scaler + logistic regression fit on the training cell lines' bins."""
    from factornet_jax.reader import open_cell_store
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    rng = np.random.default_rng([seed, 7])
    designs = {tf: [] for tf in tfs}
    targets = {tf: [] for tf in tfs}
    for cell in TRAIN_CELLS:
        store = open_cell_store(stores[cell])
        bins = ladder_like_bins(store, train_chroms, max_bins, rng)
        dnase, pwm = bin_features(store, bins, pwms, DNASE_TRACK)
        for tf in tfs:
            labels = labels_of(bins, *peak_sets(store, tf))
            keep = labels != AMBIGUOUS
            designs[tf].append(lr_design(dnase[keep], pwm[tf][keep]))
            targets[tf].append(labels[keep] == BOUND)
    models = {}
    for tf in tfs:
        x, y = np.concatenate(designs[tf]), np.concatenate(targets[tf])
        models[tf] = make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000)).fit(x, y)
        coef = models[tf][-1].coef_.ravel()
        log(f"logistic {tf}: {len(y):,} bins ({int(y.sum()):,} bound) from "
            f"{', '.join(TRAIN_CELLS)}; standardised coefficients log1p(DNase) {coef[0]:.2f}, "
            f"PWM {coef[1]:.2f}, product {coef[2]:.2f}")
    return models


# ----------------------------------------------------------------------------- oracle

def read_truth(path, tf, cell):
    """Candidate sites of `tf` in `cell` -> dict chrom -> (positions (k,) sorted, probs (k,))."""
    rows = {}
    with gzip.open(path, "rt") as handle:
        for rec in csv.DictReader(handle, delimiter="\t"):
            if rec["tf"] == tf and rec["cell"] == cell:
                pos = (int(rec["start"]) + int(rec["end"])) // 2
                rows.setdefault(rec["chrom"], []).append((pos, float(rec["probability"])))
    out = {}
    for chrom, items in rows.items():
        arr = np.asarray(items, dtype=np.float64)
        order = np.argsort(arr[:, 0], kind="stable")
        out[chrom] = (arr[order, 0].astype(np.int64), arr[order, 1])
    return out


def oracle_scores(truth, chrom, starts, ends):
    """Max probability of the sites at positions in [start, end) of each bin, else 0. (n,)"""
    score = np.zeros(len(starts))
    if chrom not in truth:
        return score
    pos, prob = truth[chrom]
    lo = np.searchsorted(pos, starts, side="left")
    hi = np.searchsorted(pos, ends, side="left")
    k = 0
    while True:
        take = lo + k < hi
        if not take.any():
            return score
        score[take] = np.maximum(score[take], prob[lo[take] + k])
        k += 1


# ----------------------------------------------------------------------------- scoring

def score_tf(tf, prediction, store, truth, pwm, model, log):
    """Every method's metrics on the ladder bins of one TF -> (dict method -> summary, counts)."""
    bins_by_chrom = read_predictions(prediction)
    chroms = list(bins_by_chrom)
    starts = np.concatenate([bins_by_chrom[c]["start"] for c in chroms])
    ends = np.concatenate([bins_by_chrom[c]["end"] for c in chroms])
    names = np.concatenate([np.full(len(bins_by_chrom[c]), c) for c in chroms])
    if np.any(ends - starts != BIN_SIZE):
        raise SystemExit(f"{prediction}: expected {BIN_SIZE}-bp ladder bins")
    bins = Bins(names, starts)
    labels = labels_of(bins, *peak_sets(store, tf))
    dnase, pwm_max = bin_features(store, bins, {tf: pwm}, DNASE_TRACK)
    scores = {
        "FactorNet-JAX": np.concatenate([bins_by_chrom[c]["score"] for c in chroms]),
        "DNase mean": dnase,
        "PWM max": pwm_max[tf],
        "logistic DNase+PWM": model.decision_function(lr_design(dnase, pwm_max[tf])),
        "oracle (site in bin)": np.concatenate([
            oracle_scores(truth, c, bins_by_chrom[c]["start"], bins_by_chrom[c]["end"]) for c in chroms]),
        "oracle (site +-100 bp)": np.concatenate([
            oracle_scores(truth, c, bins_by_chrom[c]["start"] - 100, bins_by_chrom[c]["end"] + 100)
            for c in chroms]),
    }
    keep = labels != AMBIGUOUS
    bound = labels[keep] == BOUND
    results = {m: metrics.summarize(bound, scores[m][keep]) for m in METHODS}
    counts = {"bins": len(bins), "bound": int(bound.sum()), "unbound": int((~bound).sum()),
              "ambiguous": int((~keep).sum())}
    log(f"score {tf}: {counts['bins']:,} ladder bins, {counts['bound']:,} bound, "
        f"{counts['ambiguous']:,} ambiguous left out")
    return results, counts


def format_table(results, markdown=False):
    """One row per TF and method: auROC, auPRC, recall at 50% / 10% FDR."""
    header = ("TF", "method", "auROC", "auPRC", "recall@50%FDR", "recall@10%FDR")
    rows = [header]
    for tf, per_method in results.items():
        for method in METHODS:
            r = per_method[method]
            rows.append((tf, method) + tuple(f"{r[k]:.4f}" for k in metrics.METRIC_NAMES))
    if markdown:
        lines = ["| " + " | ".join(header) + " |", "|" + "---|" * 2 + "---:|" * 4]
        for row in rows[1:]:
            bold = row[1] == "FactorNet-JAX"
            cells = [f"**{c}**" if bold and i >= 1 else c for i, c in enumerate(row)]
            lines.append("| " + " | ".join(cells) + " |")
        return "\n".join(lines)
    widths = [max(len(r[i]) for r in rows) for i in range(len(header))]
    return "\n".join("  ".join(c.ljust(w) if i < 2 else c.rjust(w)
                               for i, (c, w) in enumerate(zip(row, widths))) for row in rows)


# ----------------------------------------------------------------------------- report

def write_doc(path, args, argv, results, counts, histories, timings, sim_counts):
    """docs/ACCURACY.md: command, machine, settings, table, observations."""
    lines = [
        "# Accuracy on simulated data (cross cell type)",
        "",
        "Produced by `benchmarks/accuracy.py`; the table below is its output.",
        "",
        "```",
        "python benchmarks/accuracy.py " + " ".join(argv),
        "```",
        "",
        f"- machine: {args.machine}; date {args.date}; Python {platform.python_version()}, "
        f"JAX {_version('jax')}, Flax {_version('flax')}",
        f"- data: `factornet simulate` genome of {args.genome_mb:g} Mb (seed {args.seed}), "
        f"cell lines {', '.join(TRAIN_CELLS)} (training) and {TEST_CELL} (held out); "
        f"validation {', '.join(VALID_CHROMS)}; test chromosomes {', '.join(TEST_CHROMS)}",
        f"- model: onePeak per TF, -L {args.seq_len} -k {args.kernels} -w 26 -r {args.recurrent} "
        f"-d {args.dense} -n {args.negatives}{' -mo' if args.motif else ''} "
        f"-lr {args.learning_rate:g}, batch {args.batch_size}, {args.epochs} epochs "
        f"(patience {args.patience}), best checkpoint by validation loss, {args.dtype}",
        f"- scored bins: the DREAM-style ladder of {TEST_CELL} (200-bp bins, 50-bp steps, test "
        "chromosomes, bins touching the blacklist dropped); labels as `factornet evaluate`: "
        "bound = more than half the bin inside a conservative peak, relaxed-only bins "
        "(ambiguous) left out. The model scores 0 in the exclusion zone (blacklist +- L, "
        "chromosome ends); baselines score every bin.",
        "",
        "Bins per TF: " + "; ".join(f"{tf} {c['bound']:,} bound / {c['unbound']:,} unbound / "
                                     f"{c['ambiguous']:,} ambiguous" for tf, c in counts.items()),
        "",
        format_table(results, markdown=True),
        "",
        "Methods: **DNase mean** = mean 1x DNase coverage over the bin; **PWM max** = best "
        "log2-odds score of the TF's planted motif (HOCOMOCO, `motifs.meme`) in the bin, both "
        "strands; **logistic DNase+PWM** = logistic regression on log1p(DNase), PWM max and "
        f"their product, fit on {', '.join(TRAIN_CELLS)} bins of the training chromosomes "
        f"(up to {args.lr_bins:,} per cell line); **oracle** = the simulator's own binding "
        "probability of the candidate site lying in the bin (truth.tsv.gz), 0 elsewhere, "
        "and the same with the bin widened by 100 bp each side (bins at a peak's edge are "
        "bound without containing the site).",
        "",
        "Training (per TF): " + "; ".join(
            f"{tf}: {len(h)} epochs, best {min(h, key=lambda e: e['valid_loss'])['epoch']} "
            f"(valid loss {min(e['valid_loss'] for e in h):.4f}, valid auPRC "
            f"{min(h, key=lambda e: e['valid_loss'])['valid_auprc']:.3f}), "
            f"{h[-1]['train_samples']:,} samples/epoch at "
            f"{np.mean([e['samples_per_second'] for e in h]):.0f} samples/s"
            for tf, h in histories.items() if h),
        "",
        "Time (wall, s): " + ", ".join(f"{k} {v:.0f}" for k, v in timings.items()),
        "",
        "## Observations",
        "",
        args.observations or "(none written)",
        "",
    ]
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    Path(path).write_text("\n".join(lines))


def _version(name):
    try:
        from importlib.metadata import version
        return version(name)
    except Exception:  # noqa: BLE001 - only for the report
        return "?"


def add_training_arguments(p, epochs):
    """The training settings the accuracy benchmarks share (accuracy.py, calls_bench.py)."""
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--epochs", type=int, default=epochs)
    p.add_argument("--patience", type=int, default=5)
    p.add_argument("--negatives", "-n", type=int, default=10)
    p.add_argument("--seq-len", "-L", type=int, default=1000)
    p.add_argument("--kernels", "-k", type=int, default=32)
    p.add_argument("--recurrent", "-r", type=int, default=16)
    p.add_argument("--dense", "-d", type=int, default=64)
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--max-steps", type=int, default=0, help="cap on steps per epoch (0: none)")
    p.add_argument("--learning-rate", "-lr", type=float, default=0.001)


def parse_args(argv):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--genome-mb", type=float, default=20.0, help="simulated genome size (20)")
    p.add_argument("--work", type=Path, default=Path("/tmp/factornet_accuracy"),
                   help="working folder (/tmp/factornet_accuracy)")
    p.add_argument("--tfs", nargs="+", default=["CTCF", "GABPA"], help="TFs (CTCF GABPA)")
    add_training_arguments(p, epochs=20)
    p.add_argument("--no-motif", dest="motif", action="store_false",
                   help="random kernels instead of FactorNet's -mo (kernels 0 and 1 start from the "
                        "TF's motif in motifs.meme)")
    p.add_argument("--dtype", choices=("float32", "bfloat16"), default="float32")
    p.add_argument("--lr-bins", type=int, default=150_000,
                   help="training-chromosome bins per cell line for the logistic regression")
    p.add_argument("--name", default="run", help="models and predictions go to --work/models/NAME, "
                   "--work/predictions/NAME (several settings can share one simulation)")
    p.add_argument("--reuse", action="store_true",
                   help="keep simulation, stores, models, predictions in --work when settings match")
    p.add_argument("--doc", default=None, help="write the markdown report here (e.g. docs/ACCURACY.md)")
    p.add_argument("--machine", default="2-core CPU, no GPU", help="machine line of the report")
    p.add_argument("--date", default=datetime.date.today().isoformat(), help="date of the report")
    p.add_argument("--observations", default="", help="observations paragraph for the report")
    p.add_argument("--json", default=None, help="also write the results as JSON here")
    return p.parse_args(argv)


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    args = parse_args(argv)
    work = args.work.resolve()
    work.mkdir(parents=True, exist_ok=True)
    t_start = time.perf_counter()

    def log(message):
        print(f"[{time.perf_counter() - t_start:6.0f} s] {message}", flush=True)

    timings = {}
    t0 = time.perf_counter()
    root, stores = prepare_data(work, args.genome_mb, args.seed, args.tfs, args.reuse, log)
    timings["simulate+build"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    model_dirs = train_models(stores, work, args.tfs, args, log)
    timings["train"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    predictions = predict_ladder(stores[TEST_CELL], model_dirs, root / "ladder.bed.gz", work, args, log)
    timings["predict"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    from factornet_jax.reader import open_cell_store
    motifs = read_meme(root / "motifs.meme")
    pwms = {tf: find_motif(motifs, tf).pwm for tf in args.tfs}
    sizes = open_cell_store(stores[TEST_CELL]).chrom_sizes
    train_chroms = [c for c in sizes if c not in VALID_CHROMS + TEST_CHROMS]
    lr_models = fit_logistic(stores, args.tfs, pwms, train_chroms, args.lr_bins, args.seed, log)
    store = open_cell_store(stores[TEST_CELL])
    results, counts = {}, {}
    for tf in args.tfs:
        truth = read_truth(root / "truth.tsv.gz", tf, TEST_CELL)
        results[tf], counts[tf] = score_tf(tf, predictions[tf], store, truth, pwms[tf],
                                           lr_models[tf], log)
    timings["baselines+scoring"] = time.perf_counter() - t0
    timings["total"] = time.perf_counter() - t_start

    print()
    print(format_table(results))
    print("time (s): " + ", ".join(f"{k} {v:.0f}" for k, v in timings.items()))

    histories = {tf: json.loads((d / "history.json").read_text()) for tf, d in model_dirs.items()}
    histories = {tf: (h["epochs"] if isinstance(h, dict) and "epochs" in h else h)
                 for tf, h in histories.items()}
    sim_counts = json.loads((root / "simulation.json").read_text())["counts"]
    if args.doc:
        write_doc(args.doc, args, argv, results, counts, histories, timings, sim_counts)
        print(f"wrote {args.doc}")
    if args.json:
        Path(args.json).write_text(json.dumps({"results": results, "counts": counts,
                                               "timings": timings, "histories": histories},
                                              indent=1, default=float) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())

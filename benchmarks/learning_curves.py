"""Learning curves: held-out-cell auPRC after every epoch, FactorNet's default settings.

    python benchmarks/learning_curves.py [--work /tmp/factornet_learning] [--genome-mb 20]
        [--tfs CTCF GABPA] [--seeds 1 2 3] [--settings defaults mo n10 n10mo] [--epochs 20]
        [--ladder-step 4] [--out benchmarks/results/learning_curves.jsonl]
        [--deadline 2026-11-30T15:20] [--doc docs/LEARNING.md] [--report-only]
        [--observations-file FILE]

Data: the simulated dataset of benchmarks/accuracy.py (its `prepare_data`: a --genome-mb
genome, simulation seed --sim-seed, cell lines CellA, CellB for training and CellC held out,
stores built once and reused from --work across runs).

For every named setting x TF x seed, one onePeak model is trained with `TrainConfig`'s
defaults (FactorNet's: -k 32 -w 26 -r 32 -d 128 -L 1000, batch 100, -lr 0.001, patience 20, so
no early stop within 20 epochs; validation chr11, test chr1 chr8 chr21) on CellA + CellB, seed
= the run seed; only -n and -mo differ between the settings:

    defaults  -n 1          mo     -n 1 -mo
    n10       -n 10         n10mo  -n 10 -mo
    lr3       -n 1 -lr 0.003 (a candidate cause of the plateau: the step size)

After each epoch (`train_and_evaluate(..., on_epoch_end=...)`) the epoch's parameters score
CellC's DREAM-style ladder over the test chromosomes in this process: every --ladder-step-th
ladder bin (4: the bins starting at multiples of 200 bp, i.e. non-overlapping 200-bp bins
instead of 200-bp bins at 50-bp steps), windows read from the store once and kept in memory,
one forward jit-compiled once per run with the parameters as an argument (the training
code's evaluation step, `steps.make_steps`, as `predict_bed` uses it; fixed batch, last
batch padded). Scoring follows `predict_bed`: the 1,000-bp window centred on the bin, 0 for
bins in the exclusion zone. Labels are `evaluate.label_bins`' (via accuracy.labels_of):
ambiguous bins are left out. The DNase-mean baseline (accuracy.bin_features) is scored on
the same bins.

One JSON line per (setting, TF, seed, epoch) is appended to --out as soon as it is measured;
a rerun skips what the file already holds (a killed run resumes from its last checkpoint; an
epoch whose checkpoint was written but whose line was not stays missing). --deadline (UTC)
stops starting new (setting, TF, seed) runs after that time. --doc writes a markdown report
of the whole file (tables, best auPRC, epoch-6 fraction, DNase baseline) and a PNG plot of the
curves next to it (learning_curves.png).
"""
from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import shlex
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import accuracy as acc  # noqa: E402  (benchmarks/accuracy.py: data, labels, baselines)

from factornet_jax import metrics  # noqa: E402
from factornet_jax.evaluate import AMBIGUOUS, BOUND  # noqa: E402
from factornet_jax.labels import BIN_SIZE, STRIDE, exclusion_zone, window_starts  # noqa: E402
from factornet_jax.simulate import DNASE_TRACK  # noqa: E402

SETTINGS = {
    "defaults": {"negatives": 1, "motif": False},
    "mo": {"negatives": 1, "motif": True},
    "n10": {"negatives": 10, "motif": False},
    "n10mo": {"negatives": 10, "motif": True},
    "lr3": {"negatives": 1, "motif": False, "learning_rate": 0.003},
}
FETCH_CHUNK = 4096       # windows per store read when loading the held-out windows
PLOT_NAME = "learning_curves.png"


def setting_flags(name):
    s = SETTINGS[name]
    return (f"-n {s['negatives']}" + (" -mo" if s["motif"] else "")
            + (f" -lr {s['learning_rate']:g}" if "learning_rate" in s else ""))


# ----------------------------------------------------------------------------- held-out bins

def ladder_bins(path, step):
    """Every `step`-th bin of the ladder BED: those starting at a multiple of STRIDE * step."""
    from factornet_jax.bed import iter_bed_blocks
    chroms, starts = [], []
    for block in iter_bed_blocks(path):
        keep = (block.starts % (STRIDE * step) == 0) & (block.ends - block.starts == BIN_SIZE)
        chroms.append(block.chroms[keep])
        starts.append(block.starts[keep])
    return acc.Bins(np.concatenate(chroms), np.concatenate(starts).astype(np.int64))


class HeldOutScorer:
    """The model's probability for each of `bins` on `store`, for any parameters.

    The windows are read once; `scores(params)` runs them through one jit-compiled forward
    (the training code's evaluation step) in fixed-size batches. Bins in the exclusion zone
    (blacklist +- L, chromosome ends) or whose window leaves the chromosome score 0, as in
    `predict_bed`.
    """

    def __init__(self, store, bins, model_cfg, batch_size, log):
        import jax

        from factornet_jax.model import make_model
        from factornet_jax.steps import make_steps

        t0 = time.perf_counter()
        seq_len = model_cfg.seq_len
        self.n = len(bins)
        zone = exclusion_zone(store.genome.blacklist(), store.chrom_sizes, seq_len)
        win = window_starts(bins.starts, BIN_SIZE, seq_len)
        sizes = np.fromiter((store.chrom_sizes[c] for c in bins.chroms), np.int64, len(bins))
        usable = (win >= 0) & (win + seq_len <= sizes)
        usable &= ~zone.overlaps(bins.chroms, bins.starts, bins.starts + BIN_SIZE)
        self.rows = np.flatnonzero(usable)
        m = len(self.rows)
        self.batch = batch_size
        padded = -(-m // batch_size) * batch_size
        # padding rows: code 4 (N, all-zero one-hot) and zero signal; their scores are dropped
        self.codes = np.full((padded, seq_len), 4, np.uint8)
        self.signal = np.zeros((padded, seq_len, store.num_tracks), np.float32)
        for lo in range(0, m, FETCH_CHUNK):
            rows = self.rows[lo: lo + FETCH_CHUNK]
            codes, signal = store.fetch_batch(bins.chroms[rows], win[rows], seq_len, as_codes=True)
            self.codes[lo: lo + len(rows)] = codes
            self.signal[lo: lo + len(rows)] = signal
        n_dev = jax.device_count()
        mesh = jax.make_mesh((n_dev,), ("data",), axis_types=(jax.sharding.AxisType.Auto,))
        _, self.eval_step, self.data_sharding, self.replicated = make_steps(
            make_model(model_cfg), None, mesh, "float32")
        log(f"held-out scorer: {self.n:,} bins, {m:,} windows run through the model "
            f"({self.n - m:,} in the exclusion zone -> 0), batch {batch_size}, "
            f"{(self.codes.nbytes + self.signal.nbytes) / 2**20:.0f} MiB, "
            f"read in {time.perf_counter() - t0:.1f} s")

    def scores(self, params):
        """(n,) float64 probabilities of task 0 (onePeak: the model's TF)."""
        import jax

        from factornet_jax.steps import global_batch
        params = jax.device_put(params, self.replicated)
        outputs = []
        for lo in range(0, len(self.codes), self.batch):
            batch = {"codes": self.codes[lo: lo + self.batch],
                     "signal": self.signal[lo: lo + self.batch]}
            outputs.append(self.eval_step(params, global_batch(batch, self.data_sharding)))
        out = np.zeros(self.n)
        if outputs:
            probs = np.concatenate([np.asarray(jax.device_get(p))[:, 0] for p in outputs])
            out[self.rows] = probs[: len(self.rows)]
        return out


# ----------------------------------------------------------------------------- results file

def read_records(path):
    if not Path(path).is_file():
        return []
    out = []
    for line in Path(path).read_text().splitlines():
        line = line.strip()
        if line:
            try:
                out.append(json.loads(line))
            except ValueError:   # a line cut by a kill
                continue
    return out


def record_key(r):
    return (r["setting"], r["tf"], int(r["seed"]), int(r["epoch"]), float(r["genome_mb"]),
            int(r["ladder_step"]), int(r.get("train_cells", 2)))


def append_record(path, record):
    with open(path, "a") as handle:
        handle.write(json.dumps(record) + "\n")
        handle.flush()
        os.fsync(handle.fileno())


# ----------------------------------------------------------------------------- measuring

def measure(args, argv, log):
    from factornet_jax.train_config import TrainConfig
    from factornet_jax.reader import open_cell_store
    from factornet_jax.training import model_config_for, train_and_evaluate

    work = args.work.resolve()
    work.mkdir(parents=True, exist_ok=True)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    done = {record_key(r) for r in read_records(out)}
    command = "python benchmarks/learning_curves.py " + " ".join(shlex.quote(a) for a in argv)

    def complete(setting, tf, seed):
        return all((setting, tf, seed, e, float(args.genome_mb), args.ladder_step,
                    args.train_cells) in done
                   for e in range(1, args.epochs + 1))

    todo = [(s, tf, seed) for s in args.settings for tf in args.tfs for seed in args.seeds
            if not complete(s, tf, seed)]
    if not todo:
        log(f"nothing to do: {out} holds every epoch asked for")
        return
    train_cells = acc.training_cells(args.train_cells)
    root, stores = acc.prepare_data(work, args.genome_mb, args.sim_seed, args.tfs, True, log,
                                    train_cells=train_cells)
    store = open_cell_store(stores[acc.TEST_CELL])
    bins = ladder_bins(root / "ladder.bed.gz", args.ladder_step)
    dnase, _ = acc.bin_features(store, bins, {}, DNASE_TRACK)
    per_tf = {}
    for tf in args.tfs:
        labels = acc.labels_of(bins, *acc.peak_sets(store, tf))
        keep = labels != AMBIGUOUS
        bound = labels[keep] == BOUND
        base = metrics.summarize(bound, dnase[keep])
        per_tf[tf] = {"keep": keep, "bound": bound, "bins": len(bins), "n_bound": int(bound.sum()),
                      "n_unbound": int((~bound).sum()), "n_ambiguous": int((~keep).sum()),
                      "dnase_auprc": base["auPRC"], "dnase_auroc": base["auROC"]}
        log(f"held-out {tf}: {len(bins):,} bins (every {args.ladder_step}th ladder bin), "
            f"{per_tf[tf]['n_bound']:,} bound, {per_tf[tf]['n_ambiguous']:,} ambiguous left out; "
            f"DNase mean auPRC {base['auPRC']:.4f}, auROC {base['auROC']:.4f}")

    scorers = {}
    train_stores = [open_cell_store(stores[c]) for c in train_cells]
    batch = args.score_batch
    if batch is None:
        import jax

        from factornet_jax.predict import ACCELERATOR_BATCH_PER_DEVICE, CPU_BATCH_PER_DEVICE
        batch = (CPU_BATCH_PER_DEVICE if jax.default_backend() == "cpu"
                 else ACCELERATOR_BATCH_PER_DEVICE) * jax.device_count()

    for setting, tf, seed in todo:
        if args.deadline and datetime.datetime.now(datetime.timezone.utc) >= args.deadline:
            log(f"deadline {args.deadline:%Y-%m-%d %H:%M} UTC passed: not starting "
                f"{setting} {tf} seed {seed} or anything after it")
            break
        opts = SETTINGS[setting]
        config = TrainConfig(
            inputs=tuple(str(stores[c]) for c in train_cells),
            output=str(work / "models" / setting / tf / f"seed{seed}"),
            valid_chroms=acc.VALID_CHROMS, test_chroms=acc.TEST_CHROMS, factor=tf,
            epochs=args.epochs, negatives=opts["negatives"], seed=seed, motif=opts["motif"],
            learning_rate=opts.get("learning_rate", TrainConfig.learning_rate),
            motif_db=str(root / "motifs.meme") if opts["motif"] else None)
        model_cfg = model_config_for(config, train_stores, [tf])
        if model_cfg not in scorers:
            scorers[model_cfg] = HeldOutScorer(store, bins, model_cfg, batch, log)
        scorer = scorers[model_cfg]
        info = per_tf[tf]
        tag = f"{setting} ({setting_flags(setting)}) {tf} seed {seed}"

        def on_epoch_end(entry, params, setting=setting, tf=tf, seed=seed, info=info, tag=tag):
            key = (setting, tf, seed, int(entry["epoch"]), float(args.genome_mb), args.ladder_step,
                   args.train_cells)
            if key in done:
                return
            t0 = time.perf_counter()
            scores = scorer.scores(params)
            res = metrics.summarize(info["bound"], scores[info["keep"]])
            score_seconds = time.perf_counter() - t0
            record = {
                "setting": setting, "tf": tf, "seed": seed, "epoch": int(entry["epoch"]),
                "negatives": SETTINGS[setting]["negatives"], "motif": SETTINGS[setting]["motif"],
                "genome_mb": float(args.genome_mb), "sim_seed": args.sim_seed,
                "train_cells": args.train_cells,
                "steps": -(-int(entry["train_samples"]) // config.batch_size),
                "ladder_step": args.ladder_step, "epochs_asked": args.epochs,
                "train_loss": entry.get("train_loss"), "valid_loss": entry.get("valid_loss"),
                "valid_auprc": entry.get("valid_auprc"),
                "heldout_auprc": res["auPRC"], "heldout_auroc": res["auROC"],
                "heldout_recall_at_50fdr": res["recall_at_50fdr"],
                "dnase_auprc": info["dnase_auprc"], "dnase_auroc": info["dnase_auroc"],
                "bins": info["bins"], "bound": info["n_bound"], "unbound": info["n_unbound"],
                "ambiguous": info["n_ambiguous"],
                "seconds": entry.get("seconds"), "score_seconds": round(score_seconds, 3),
                "train_samples": entry.get("train_samples"),
                "samples_per_second": entry.get("samples_per_second"),
                "time": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
                "command": command,
            }
            append_record(out, record)
            done.add(key)
            log(f"{tag} epoch {record['epoch']}: held-out auPRC {res['auPRC']:.4f} auROC "
                f"{res['auROC']:.4f} (DNase mean {info['dnase_auprc']:.4f}); train loss "
                f"{record['train_loss']:.4f}, valid loss {record['valid_loss']:.4f}; "
                f"epoch {record['seconds']:.0f} s + scoring {score_seconds:.0f} s")

        log(f"train {tag}: {args.epochs} epochs -> {config.output}")
        t0 = time.perf_counter()
        # -oc: resumes a killed run of the same settings from its checkpoint, else starts afresh
        train_and_evaluate(config, overwrite=True, on_epoch_end=on_epoch_end,
                           log=lambda m, tag=tag, **k: log(f"  {tag}: {m}"))
        log(f"train {tag}: done in {time.perf_counter() - t0:.0f} s")


# ----------------------------------------------------------------------------- report

def _fmt(x, digits=4):
    return "n/a" if x is None or (isinstance(x, float) and not np.isfinite(x)) else f"{x:.{digits}f}"


def summarise(records):
    """-> {(setting, tf): {epoch: [records over seeds]}} (sorted)."""
    groups = {}
    for r in records:
        groups.setdefault((r["setting"], r["tf"]), {}).setdefault(int(r["epoch"]), []).append(r)
    order = {name: i for i, name in enumerate(SETTINGS)}
    return dict(sorted(groups.items(), key=lambda kv: (kv[0][1], order.get(kv[0][0], 99), kv[0][0])))


def plot(groups, dnase, path):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import matplotlib.ticker

    tfs = sorted({tf for _, tf in groups})
    fig, axes = plt.subplots(1, len(tfs), figsize=(6 * len(tfs), 4.2), squeeze=False)
    colours = {name: f"C{i}" for i, name in enumerate(SETTINGS)}
    for ax, tf in zip(axes[0], tfs):
        for (setting, t), per_epoch in groups.items():
            if t != tf:
                continue
            epochs = sorted(per_epoch)
            vals = [[r["heldout_auprc"] for r in per_epoch[e]] for e in epochs]
            seeds = sorted({r["seed"] for e in epochs for r in per_epoch[e]})
            colour = colours.get(setting, "k")
            for seed in seeds:   # thin line per seed
                pts = [(e, r["heldout_auprc"]) for e in epochs for r in per_epoch[e]
                       if r["seed"] == seed]
                ax.plot([p[0] for p in pts], [p[1] for p in pts], color=colour, alpha=0.35, lw=0.8)
            ax.plot(epochs, [np.mean(v) for v in vals], color=colour, lw=2, marker="o", ms=3,
                    label=f"{setting} ({setting_flags(setting)}), {len(seeds)} seed(s)")
        if tf in dnase:
            ax.axhline(dnase[tf], color="grey", ls="--", lw=1, label="DNase mean")
        ax.set_title(f"{tf}: held-out CellC auPRC")
        ax.set_xlabel("epoch")
        ax.xaxis.set_major_locator(matplotlib.ticker.MaxNLocator(integer=True))
        ax.set_ylabel("auPRC")
        ax.set_ylim(0, 1)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8, loc="upper left")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def write_doc(path, records, args, argv):
    from factornet_jax import __version__
    groups = summarise(records)
    dnase = {r["tf"]: r["dnase_auprc"] for r in records}
    tfs = sorted({r["tf"] for r in records})
    lines = ["# Learning curves (held-out cell line, FactorNet defaults)", "",
             "Produced by `benchmarks/learning_curves.py` from the results file "
             f"`{args.out}` ({len(records)} lines); report written with", "", "```",
             "python benchmarks/learning_curves.py " + " ".join(shlex.quote(a) for a in argv),
             "```", ""]
    commands = list(dict.fromkeys(r.get("command", "?") for r in records))
    lines += ["Measurement command(s), in the order they first wrote a line:", "", "```"]
    lines += commands + ["```", ""]
    first = records[0] if records else {}
    times = sorted(r["time"] for r in records if r.get("time"))
    lines += [
        f"- machine: {args.machine}; measured {times[0] if times else '?'} to "
        f"{times[-1] if times else '?'} (UTC); Python {platform.python_version()}, "
        f"JAX {acc._version('jax')}, Flax {acc._version('flax')}, factornet-jax {__version__}",
        f"- data: benchmarks/accuracy.py's simulated dataset, {first.get('genome_mb', '?'):g} Mb "
        f"genome (simulation seed {first.get('sim_seed', '?')}), training cell lines "
        f"{', '.join(acc.training_cells(int(first.get('train_cells', 2))))}, held out {acc.TEST_CELL}; validation "
        f"{', '.join(acc.VALID_CHROMS)}; test chromosomes {', '.join(acc.TEST_CHROMS)}",
        "- model: onePeak per TF with `TrainConfig`'s defaults (FactorNet's): -L 1000 -k 32 -w 26 "
        "-r 32 -d 128, dropout 0.5, BiLSTM dropout 0.1, batch 100, -lr 0.001 (Keras 1 Adam), "
        "patience 20 (no early stop within 20 epochs), float32; seed = the run's seed "
        "(sampling, initialisation, dropout). Settings: "
        + "; ".join(f"`{k}` = {setting_flags(k)}" for k in SETTINGS),
        f"- held-out score: after every epoch, that epoch's parameters (not the best "
        f"checkpoint) on every {first.get('ladder_step', '?')}th bin of {acc.TEST_CELL}'s "
        "DREAM-style ladder over the test chromosomes (bins starting at multiples of "
        f"{STRIDE * int(first.get('ladder_step', 1) or 1)} bp: 200-bp bins, no overlap, instead "
        "of the full ladder's 50-bp steps, to keep per-epoch scoring cheap), scored as "
        "`predict_bed` does (1,000-bp window centred on the bin; 0 in the exclusion zone); "
        "labels as `factornet evaluate` (bound: more than half the bin inside a conservative "
        "peak; relaxed-only bins left out). So the numbers are close to, not identical with, "
        "docs/ACCURACY.md's full-ladder scores.",
    ]
    for tf in tfs:
        r = next(x for x in records if x["tf"] == tf)
        lines.append(f"- {tf} bins: {r['bins']:,} scored, {r['bound']:,} bound / "
                     f"{r['unbound']:,} unbound / {r['ambiguous']:,} ambiguous (left out); "
                     f"DNase-mean baseline auPRC {_fmt(r['dnase_auprc'])}, auROC "
                     f"{_fmt(r['dnase_auroc'])}")
    lines += ["", "## What ran", "", "| setting | flags | TF | seeds | epochs measured per seed |",
              "|---|---|---|---|---|"]
    for (setting, tf), per_epoch in groups.items():
        seeds = sorted({r["seed"] for v in per_epoch.values() for r in v})
        counts = {s: sum(1 for v in per_epoch.values() for r in v if r["seed"] == s) for s in seeds}
        lines.append(f"| {setting} | {setting_flags(setting)} | {tf} | "
                     f"{', '.join(map(str, seeds))} | "
                     f"{', '.join(f'seed {s}: {counts[s]}' for s in seeds)} |")

    lines += ["", "## Summary", ""]
    lines += ["| TF | DNase mean auPRC | best auPRC (any setting, seed, epoch) | where | "
              "`defaults` epoch 6: mean auPRC (min, seeds) | as a fraction of the best |",
              "|---|---:|---:|---|---:|---:|"]
    for tf in tfs:
        rs = [r for r in records if r["tf"] == tf]
        best = max(rs, key=lambda r: r["heldout_auprc"])
        e6 = groups.get(("defaults", tf), {}).get(6, [])
        e6_vals = [r["heldout_auprc"] for r in e6]
        if e6_vals:
            e6_text = f"{np.mean(e6_vals):.4f} ({min(e6_vals):.4f}, {len(e6_vals)})"
            frac = f"{np.mean(e6_vals) / best['heldout_auprc']:.2f}"
        else:
            e6_text, frac = "not measured", "-"
        lines.append(f"| {tf} | {_fmt(dnase.get(tf))} | {best['heldout_auprc']:.4f} | "
                     f"{best['setting']} seed {best['seed']} epoch {best['epoch']} | {e6_text} | "
                     f"{frac} |")
    lines += ["", f"![learning curves]({PLOT_NAME})", "",
              "Thick lines: mean over seeds; thin lines: each seed; dashed: DNase-mean baseline.",
              ""]

    for (setting, tf), per_epoch in groups.items():
        lines += [f"## {setting} ({setting_flags(setting)}), {tf}", "",
                  "| epoch | steps so far | held-out auPRC mean | min | seeds | held-out auROC mean | "
                  "valid auPRC mean | train loss mean | valid loss mean | s/epoch (train+valid) | "
                  "s scoring |",
                  "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
        for epoch in sorted(per_epoch):
            rs = per_epoch[epoch]

            def mean(key, rs=rs):
                vals = [r[key] for r in rs if r.get(key) is not None]
                return float(np.mean(vals)) if vals else None
            steps = mean("steps")   # optimizer steps per epoch (recorded since --train-cells)
            if steps is None and mean("train_samples") is not None:   # older lines: batch 100
                steps = float(np.ceil(mean("train_samples") / 100))
            lines.append(
                f"| {epoch} | {'n/a' if steps is None else f'{epoch * steps:,.0f}'} | "
                f"{_fmt(mean('heldout_auprc'))} | "
                f"{_fmt(min(r['heldout_auprc'] for r in rs))} | {len(rs)} | "
                f"{_fmt(mean('heldout_auroc'))} | {_fmt(mean('valid_auprc'))} | "
                f"{_fmt(mean('train_loss'))} | {_fmt(mean('valid_loss'))} | "
                f"{_fmt(mean('seconds'), 0)} | {_fmt(mean('score_seconds'), 0)} |")
        lines.append("")
    if args.observations:
        lines += ["## Observations", "", args.observations, ""]
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    Path(path).write_text("\n".join(lines))
    plot(groups, dnase, Path(path).parent / PLOT_NAME)


# ----------------------------------------------------------------------------- main

def parse_args(argv):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--work", type=Path, default=Path("/tmp/factornet_learning"),
                   help="working folder: simulation, stores (reused), models")
    p.add_argument("--genome-mb", type=float, default=20.0)
    p.add_argument("--sim-seed", type=int, default=1, help="simulation seed (1, as accuracy.py)")
    p.add_argument("--train-cells", type=int, default=2,
                   help="training cell lines (2: CellA CellB, as accuracy.py; 6: CellA CellB "
                        "CellD-G, as many as FactorNet's CTCF DREAM model); CellC is held out")
    p.add_argument("--tfs", nargs="+", default=["CTCF", "GABPA"])
    p.add_argument("--seeds", nargs="+", type=int, default=[1, 2, 3])
    p.add_argument("--settings", nargs="+", default=list(SETTINGS), choices=list(SETTINGS))
    p.add_argument("--epochs", type=int, default=20)
    p.add_argument("--ladder-step", type=int, default=4,
                   help="score every Nth ladder bin (4: 200-bp steps)")
    p.add_argument("--score-batch", type=int, default=None,
                   help="windows per compiled scoring call (default: predict_bed's, 64 per "
                        "device on CPU, 512 on accelerators)")
    p.add_argument("--out", default="benchmarks/results/learning_curves.jsonl",
                   help="results, one JSON line per (setting, TF, seed, epoch); appended")
    p.add_argument("--deadline", default=None,
                   help="UTC time (ISO, e.g. 2026-11-30T15:20) after which no new run starts")
    p.add_argument("--doc", default=None, help="write the markdown report here (+ PNG beside it)")
    p.add_argument("--report-only", action="store_true", help="only write --doc from --out")
    p.add_argument("--machine", default="2-core CPU, no GPU")
    p.add_argument("--observations", default="", help="observations paragraph for the report")
    p.add_argument("--observations-file", default=None,
                   help="read the observations (markdown) from this file instead")
    args = p.parse_args(argv)
    if args.deadline:
        args.deadline = datetime.datetime.fromisoformat(args.deadline).replace(
            tzinfo=datetime.timezone.utc)
    if args.observations_file:
        args.observations = Path(args.observations_file).read_text().strip()
    if args.ladder_step < 1:
        p.error("--ladder-step must be at least 1")
    return args


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    args = parse_args(argv)
    t_start = time.perf_counter()

    def log(message):
        stamp = datetime.datetime.now(datetime.timezone.utc).strftime("%H:%M:%S")
        print(f"[{stamp} {time.perf_counter() - t_start:6.0f} s] {message}", flush=True)

    if not args.report_only:
        measure(args, argv, log)
    if args.doc:
        records = read_records(args.out)
        if not records:
            raise SystemExit(f"{args.out}: no results to report")
        write_doc(args.doc, records, args, argv)
        log(f"wrote {args.doc} and {Path(args.doc).parent / PLOT_NAME}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

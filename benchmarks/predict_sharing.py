"""Ladder prediction: the shared-computation path vs the per-window path (issue 20).

    python benchmarks/predict_sharing.py [--work DIR] [--genome-mb 20] [--reps 2] [--quick]

On a simulated genome (benchmarks/run.py's dataset) and a FactorNet model of the default
sizes (L 1000, 32 kernels of 26 bp, pool 13, BiLSTM 32, dense 128; random weights: speed
does not depend on them), every measurement in its own process, the two paths interleaved:

1. `predict_bed` windows/s (wall and per CPU-second of the process; with --before, also of
   an older checkout's per-window prediction, "before") on the simulated
   100,000-bin ladder and on a contiguous ladder of the whole genome (200-bp bins at 50-bp
   steps), peak RSS (VmHWM) of each run, and the scores of both paths compared;
2. the profile of the shared path: the jitted ladder step alone on one constant batch
   (compute), its per-position part and its per-window head separately, and the store reads
   (`StretchReader.read`) per batch;
3. projected hours for the hg19 ladder (58 M windows) for one TF in one cell line.
Prints one markdown table (docs/BENCHMARKS.md).
"""
from __future__ import annotations

import argparse
import gzip
import json
import os
import resource
import statistics
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import run  # noqa: E402
from run import ensure_sim, ensure_stores, log, machine_line, vm_hwm_mb  # noqa: E402

ROOT = HERE.parent
HG19_WINDOWS = 58e6


def cpu_seconds():
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def run_worker(name, params, timeout=3600, root=ROOT):
    """`name` in a fresh interpreter importing factornet_jax from `root`; its result dict."""
    return run.run_worker(name, params, timeout, root, script=__file__)


def make_model(work, track_names, seed=0):
    """A default-size model dir with random weights (made once per seed)."""
    import jax

    from factornet_jax import modeldir
    from factornet_jax.model import ModelConfig, abstract_params
    folder = Path(work) / ("model_default_sizes" + (f"_{seed}" if seed else ""))
    if (folder / "best.npz").is_file():
        return folder
    cfg = ModelConfig(seq_len=1000, track_names=tuple(track_names))
    rng = np.random.default_rng(seed)
    params = jax.tree_util.tree_map(lambda leaf: rng.normal(0, 0.1, leaf.shape).astype(np.float32),
                                    abstract_params(cfg))
    folder.mkdir(parents=True, exist_ok=True)
    modeldir.write_config(folder, modeldir.make_config(cfg, ["TF"], list(track_names)))
    modeldir.save_params(folder / "best.npz", params)
    return folder


def write_ladders(work, sim, sizes, quick):
    """(simulated 100k-bin ladder, whole-genome contiguous ladder) BED paths."""
    work = Path(work)
    first = work / "ladder_100k.bed.gz"
    if not first.is_file():
        with gzip.open(sim / "ladder.bed.gz", "rt") as src, gzip.open(first, "wt") as dst:
            for n, line in enumerate(src):
                if n == (20_000 if quick else 100_000):
                    break
                dst.write(line)
    whole = work / "ladder_genome.bed.gz"
    if not whole.is_file():
        with gzip.open(whole, "wt") as dst:
            for chrom, size in sizes.items():
                starts = np.arange(0, size - 200 + 1, 50)
                dst.write("".join(f"{chrom}\t{s}\t{s + 200}\n" for s in starts.tolist()))
    return first, whole


# ------------------------------------------------------------------ workers

def worker_predict(p):
    from factornet_jax.predict import predict_bed
    t0, c0 = time.perf_counter(), cpu_seconds()
    kwargs = {} if p["sharing"] == "before" else {"sharing": p["sharing"]}
    summary = predict_bed(p["store"], p.get("models") or p["model"], p["bed"], p["out"], overwrite=True,
                          progress=False, **kwargs)
    seconds, cpu = time.perf_counter() - t0, cpu_seconds() - c0
    return {"wps": summary.windows_per_second, "n": summary.n_windows, "seconds": seconds,
            "wpcpu": summary.n_windows / cpu, "rss_mb": vm_hwm_mb()}


def timed(fn, *args, reps=5):
    """Median seconds of fn(*args) (already compiled), and its CPU seconds."""
    import jax
    jax.block_until_ready(fn(*args))
    walls, cpus = [], []
    for _ in range(reps):
        t0, c0 = time.perf_counter(), cpu_seconds()
        jax.block_until_ready(fn(*args))
        walls.append(time.perf_counter() - t0)
        cpus.append(cpu_seconds() - c0)
    return statistics.median(walls), statistics.median(cpus)


def worker_profile(p):
    """Per-window cost of the shared path's parts on one constant batch."""
    import jax
    import jax.numpy as jnp

    from factornet_jax.ladder import StretchBatch, StretchReader, Sharing
    from factornet_jax.model import make_model
    from factornet_jax.modeldir import load_model
    from factornet_jax.reader import open_cell_store
    model = load_model(p["model"])
    cfg = model.model_config
    store = open_cell_store(p["store"])
    plan = Sharing("shared", 50, 64)
    reader = StretchReader(store, plan, cfg.seq_len, False, False)
    chrom = max(store.chrom_sizes, key=store.chrom_sizes.get)
    rng = np.random.default_rng(0)
    starts = rng.integers(0, store.chrom_sizes[chrom] - plan.stretch(cfg.seq_len), 50)
    items = [StretchBatch(np.array([chrom]), np.array([s]), np.zeros((1, 64), np.int64),
                          np.arange(64), np.arange(64)) for s in starts]
    t0, c0 = time.perf_counter(), cpu_seconds()
    batches = [reader.read(item) for item in items]
    read_wall, read_cpu = (time.perf_counter() - t0) / len(items), (cpu_seconds() - c0) / len(items)
    batch = batches[0]
    module = make_model(cfg)
    params = model.params
    onehot = jax.nn.one_hot(batch["codes"], 4)
    signal = jnp.asarray(batch["signal"])
    full = jax.jit(lambda prm, o, s: module.apply({"params": prm}, o, s, step=50, method="ladder"))
    positions = jax.jit(lambda prm, o, s: module.apply(
        {"params": prm}, module.apply({"params": prm}, o, s, method="strands"), method="positions"))
    pooled = jnp.zeros((2 * 64, cfg.pooled_len, cfg.kernels), jnp.float32)
    head = jax.jit(lambda prm, x: module.apply({"params": prm}, x, None, method="head"))
    windows = jnp.stack([onehot[0, 50 * k: 50 * k + cfg.seq_len] for k in range(64)])
    wsignal = jnp.stack([signal[0, 50 * k: 50 * k + cfg.seq_len] for k in range(64)])
    per_window = jax.jit(lambda prm, o, s: module.apply({"params": prm}, o, s))
    out = {"read": (read_wall, read_cpu)}
    out["full"] = timed(full, params, onehot, signal)
    out["positions"] = timed(positions, params, onehot, signal)
    out["head"] = timed(head, params, pooled)
    out["per_window"] = timed(per_window, params, windows, wsignal)
    return {k: [v[0] / 64, v[1] / 64] for k, v in out.items()}


# ------------------------------------------------------------------ main

def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", type=Path, default=Path(os.environ.get("TMPDIR", "/tmp")) / "factornet-bench")
    parser.add_argument("--genome-mb", type=float, default=20)
    parser.add_argument("--reps", type=int, default=2)
    parser.add_argument("--quick", action="store_true", help="5 Mb genome, 20,000-bin ladder, 1 repeat")
    parser.add_argument("--before", type=Path, default=None, metavar="CHECKOUT",
                        help="also run the per-window prediction of an older checkout (e.g. a "
                             "`git worktree` of the commit before issue 20) in the same run")
    parser.add_argument("--ensemble", type=int, default=5, metavar="N",
                        help="also time an ensemble of N models against one on the simulated "
                             "ladder (0: skip)")
    parser.add_argument("--worker", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        name, params = args.worker
        fn = {"predict": worker_predict, "profile": worker_profile}[name]
        print("RESULT " + json.dumps(fn(json.loads(params))), flush=True)
        return 0
    genome_mb = 5 if args.quick else args.genome_mb
    reps = 1 if args.quick else args.reps
    work = args.work.resolve()
    work.mkdir(parents=True, exist_ok=True)
    started = time.strftime("%Y-%m-%d %H:%M")
    header = machine_line()
    sim = ensure_sim(work, genome_mb)
    stores = ensure_stores(work, sim, genome_mb)
    store = stores / "CellA.zarr"
    from factornet_jax.reader import open_cell_store
    cs = open_cell_store(store)
    model = make_model(work, cs.track_names)
    ladders = write_ladders(work, sim, cs.chrom_sizes, args.quick)
    rows = []
    for label, bed in zip(("simulated ladder", f"whole {genome_mb:g} Mb genome ladder"), ladders):
        paths = (["before"] if args.before else []) + ["per-window", "shared"]
        runs = {path: [] for path in paths}
        for rep in range(reps):
            for path in paths:
                log(f"{label}: {path} (repeat {rep + 1})")
                runs[path].append(run_worker("predict", {
                    "store": str(store), "model": str(model), "bed": str(bed), "sharing": path,
                    "out": str(work / f"pred_{path}.bedGraph.gz")},
                    root=args.before if path == "before" else ROOT))
        med = {p: {k: statistics.median(r[k] for r in v) for k in ("wps", "wpcpu", "rss_mb", "seconds")}
               for p, v in runs.items()}
        n = runs["shared"][0]["n"]
        for path in paths:
            m = med[path]
            rows.append((f"{label}, {n:,} windows", path,
                         f"{m['wps']:,.0f} windows/s ({m['wpcpu']:,.0f} per CPU-s)",
                         f"{m['rss_mb']:,.0f} MB", f"{HG19_WINDOWS / m['wps'] / 3600:.1f} h"))
        for other in paths[:-1]:
            diff = compare(work / "pred_shared.bedGraph.gz", work / f"pred_{other}.bedGraph.gz")
            rows.append((f"{label}", f"shared / {other}",
                         f"{med['shared']['wps'] / med[other]['wps']:.2f}x wall, "
                         f"{med['shared']['wpcpu'] / med[other]['wpcpu']:.2f}x per CPU-s",
                         f"max abs score difference {diff:.1e}", ""))
    if args.ensemble > 1:
        members = [str(make_model(work, cs.track_names, seed)) for seed in range(args.ensemble)]
        runs = {1: [], args.ensemble: []}
        for rep in range(reps):
            for k in runs:
                log(f"ensemble of {k} (repeat {rep + 1})")
                runs[k].append(run_worker("predict", {
                    "store": str(store), "model": members[0], "models": members[:k],
                    "bed": str(ladders[0]), "sharing": "auto",
                    "out": str(work / f"pred_ensemble{k}.bedGraph.gz")}))
        one, many = (statistics.median(r["wpcpu"] for r in runs[k]) for k in runs)
        wall = [statistics.median(r["wps"] for r in runs[k]) for k in runs]
        rows.append(("simulated ladder", f"ensemble: 1 vs {args.ensemble} models",
                     f"{wall[0]:,.0f} vs {wall[1]:,.0f} windows/s ({one:,.0f} vs {many:,.0f} per CPU-s)",
                     f"{args.ensemble} models cost {one / many:.2f}x one model's time per window", ""))
    log("profile")
    prof = run_worker("profile", {"store": str(store), "model": str(model)})
    load = os.getloadavg()[0]
    print(f"benchmarks/predict_sharing.py {' '.join(sys.argv[1:])}: {started}; {header}, "
          f"{load:.1f} at end; simulated genome {genome_mb:g} Mb, default model sizes, "
          f"{reps} repeat(s), medians\n")
    print("| ladder | path | windows/s | peak RSS | hg19 ladder (58 M windows) |\n|---|---|---|---|---|")
    for row in rows:
        print("| " + " | ".join(row) + " |")
    print("\n| shared path, per window (64 windows per stretch) | wall ms | CPU ms |\n|---|---|---|")
    names = {"full": "ladder step (compute only, one constant batch)",
             "positions": "  per-position layers (conv + dense) of the stretch",
             "head": "  pooled head (BiLSTM + dense), both strands",
             "read": "store read of the stretch (StretchReader.read)",
             "per_window": "per-window forward of the same 64 windows (compute only)"}
    for key, label in names.items():
        wall, cpu = prof[key]
        print(f"| {label} | {wall * 1e3:.3f} | {cpu * 1e3:.3f} |")
    return 0


def compare(a, b):
    def scores(path):
        with gzip.open(path, "rt") as handle:
            return np.array([float(line.rsplit("\t", 1)[1]) for line in handle])
    return float(np.abs(scores(a) - scores(b)).max())


if __name__ == "__main__":
    sys.exit(main())

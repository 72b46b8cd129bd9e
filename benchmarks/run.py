"""Benchmarks of factornet-jax against its peers (issue 8). Not part of the test suite.

    python benchmarks/run.py [--genome-mb N] [--work DIR] [--quick] [--sweep]
                             [--sections 1,2,3,4,5]

Builds (or reuses, in --work) a simulated dataset (factornet_jax.simulate) and its stores,
then prints one markdown table:

1. Random-window loading (batch 128, L = 1000, 2 tracks, warm page cache): our store reader
   (1 and 2 threads; without a decoded-chunk cache, the default, and with a 128 MB one), pyfaidx + pyBigWig with open handles (Selene / maxATAC style),
   FactorNet's way (whole genome one-hot in RAM, pyBigWig opened per sample), and an in-RAM
   numpy gather from preloaded arrays (the upper limit). Every loader returns the same
   one-hot (B, L, 4) uint8 and signal (B, L, 2) float32 (checked by digest).
2. `preprocess build`: Mb/s for the genome and per track, bytes on disk per base, peak RSS,
   at two genome sizes.
3. Label building: benchmarks/labels_bench.py (hg19 scale, real peaks in ../shared/data).
4. Training: samples/s of the full loop (train_and_evaluate) vs the same jitted step fed
   one constant device batch (compute only).
5. Prediction windows/s on a 100,000-bin ladder (factornet_jax.predict.predict_bed).

--sweep adds the chunk-size / codec / layout measurement behind stores.DEFAULT_CHUNK_BASES,
SHARD_CHUNKS and Codecs.

Every measurement runs in its own subprocess (peak RSS = its VmHWM); peers are measured in
the same run, interleaved, several repeats; the table shows medians. The machine may be
shared, so besides wall-clock rates the table gives rates per CPU-second of the measuring
process (all its threads), which other processes' load disturbs far less; ratios are given
for both.
"""
from __future__ import annotations

import argparse
import gzip
import hashlib
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
BATCH, SEQ_LEN = 128, 1000
TRAIN_BATCH = 100             # FactorNet's training batch size
TARGETS = {"reader_sps": 20_000, "vs_pyfaidx": 6.0, "vs_factornet": 8.0, "vs_inram": 0.5,
           "rss_mb": 1024, "genome_bpb": 0.5, "genome_mbps": 50.0, "track_mbps": 30.0,
           "train_share": 0.95}


# ------------------------------------------------------------------ helpers

def log(*parts):
    print(*parts, file=sys.stderr, flush=True)


def vm_hwm_mb():
    """Peak resident memory of this process (MB), from /proc/self/status."""
    try:
        for line in open("/proc/self/status"):
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    import resource
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def run_worker(name, params, timeout=1800, root=ROOT, script=None):
    """Run `name` of `script` (this file) in a fresh interpreter importing factornet_jax from
    `root`; returns its result dict."""
    cmd = [sys.executable, str(Path(script or __file__).resolve()), "--worker", name, json.dumps(params)]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout,
                          env={**os.environ, "PYTHONPATH": str(root)})
    for line in proc.stdout.splitlines():
        if line.startswith("RESULT "):
            return json.loads(line[7:])
    raise RuntimeError(f"worker {name} failed (exit {proc.returncode}):\n{proc.stderr[-3000:]}")


def median(values):
    return statistics.median(values) if values else float("nan")


def warm_files(*paths):
    """Read every file under `paths` once so the page cache holds them."""
    for path in paths:
        for root, _, files in os.walk(path):
            for name in files:
                with open(os.path.join(root, name), "rb") as handle:
                    while handle.read(1 << 22):
                        pass


def sample_windows(chrom_sizes, n_batches, seed=0):
    """(n_batches, BATCH) chromosomes and starts of random windows, size-weighted."""
    rng = np.random.default_rng(seed)
    names = np.array(list(chrom_sizes))
    sizes = np.array([chrom_sizes[c] for c in names], dtype=np.int64)
    chroms, starts = [], []
    for _ in range(n_batches):   # batch by batch: the first k batches never depend on n_batches
        idx = rng.choice(len(names), BATCH, p=sizes / sizes.sum())
        chroms.append(names[idx])
        starts.append((rng.random(BATCH) * (sizes[idx] - SEQ_LEN)).astype(np.int64))
    return np.array(chroms), np.array(starts)


def read_sizes(sim):
    sizes = {}
    for line in open(Path(sim) / "genome.chrom.sizes"):
        name, size = line.split()[:2]
        sizes[name] = int(size)
    return sizes


def bigwig_paths(cell_dir):
    lines = Path(cell_dir, "bigwig.txt").read_text().splitlines()
    return [str(Path(cell_dir) / line.split("\t")[0]) for line in lines if line.strip()]


ACGT_LUT = np.zeros((256, 4), np.uint8)
for _k, _letter in enumerate(b"ACGT"):
    ACGT_LUT[_letter, _k] = 1
    ACGT_LUT[_letter + 32, _k] = 1   # lowercase


# ------------------------------------------------------------------ section 1: loaders

def make_loader(p):
    """-> fn(chroms (B,), starts (B,)) -> onehot (B, L, 4) uint8, signal (B, L, S) float32."""
    kind, sim = p["kind"], Path(p["sim"])
    bws = bigwig_paths(sim / "cells" / "CellA")
    n_tracks = len(bws)
    if kind == "store":
        from factornet_jax.reader import open_cell_store
        cs = open_cell_store(p["store"], threads=p["threads"], cache_bytes=p["cache_bytes"])
        return lambda chroms, starts: cs.fetch_batch(chroms, starts, SEQ_LEN)
    if kind == "pyfaidx":
        import pyBigWig
        import pyfaidx
        fasta = pyfaidx.Fasta(str(sim / "genome.fa"), as_raw=True, sequence_always_upper=True)
        handles = [pyBigWig.open(path) for path in bws]

        def fetch(chroms, starts):
            onehot = np.empty((len(chroms), SEQ_LEN, 4), np.uint8)
            signal = np.empty((len(chroms), SEQ_LEN, n_tracks), np.float32)
            for b, (chrom, start) in enumerate(zip(chroms.tolist(), starts.tolist())):
                seq = fasta[chrom][start:start + SEQ_LEN]
                onehot[b] = ACGT_LUT[np.frombuffer(seq.encode(), np.uint8)]
                for k, bw in enumerate(handles):
                    signal[b, :, k] = bw.values(chrom, start, start + SEQ_LEN, numpy=True)
            np.nan_to_num(signal, copy=False, nan=0.0, posinf=0.0, neginf=0.0)
            return onehot, signal
        return fetch
    if kind == "factornet":
        import pyBigWig
        import pyfaidx
        fasta = pyfaidx.Fasta(str(sim / "genome.fa"), as_raw=True)
        # FactorNet: the whole genome one-hot in RAM, (length, 4) bool per chromosome.
        genome = {c: ACGT_LUT[np.frombuffer(fasta[c][:].encode(), np.uint8)].astype(bool)
                  for c in fasta.keys()}

        def fetch(chroms, starts):
            onehot = np.empty((len(chroms), SEQ_LEN, 4), np.uint8)
            signal = np.empty((len(chroms), SEQ_LEN, n_tracks), np.float32)
            for b, (chrom, start) in enumerate(zip(chroms.tolist(), starts.tolist())):
                onehot[b] = genome[chrom][start:start + SEQ_LEN]
                for k, path in enumerate(bws):      # FactorNet opens the bigWigs per sample
                    bw = pyBigWig.open(path)
                    signal[b, :, k] = np.array(bw.values(chrom, start, start + SEQ_LEN))
                    bw.close()
            np.nan_to_num(signal, copy=False, nan=0.0, posinf=0.0, neginf=0.0)
            return onehot, signal
        return fetch
    if kind == "inram":
        from factornet_jax.fasta import ONEHOT_OF_CODE
        from factornet_jax.reader import open_cell_store
        cs = open_cell_store(p["store"], cache_bytes=0)
        codes, signals = {}, {}
        for chrom, size in cs.chrom_sizes.items():
            c, s = cs.fetch_batch([chrom], [0], size, as_codes=True)
            codes[chrom], signals[chrom] = c[0], s[0]

        def fetch(chroms, starts):
            out_codes = np.empty((len(chroms), SEQ_LEN), np.uint8)
            signal = np.empty((len(chroms), SEQ_LEN, n_tracks), np.float32)
            for b, (chrom, start) in enumerate(zip(chroms.tolist(), starts.tolist())):
                out_codes[b] = codes[chrom][start:start + SEQ_LEN]
                signal[b] = signals[chrom][start:start + SEQ_LEN]
            return np.take(ONEHOT_OF_CODE, out_codes, axis=0), signal   # the fastest one-hot
        return fetch
    raise ValueError(kind)


def worker_loader(p):
    fetch = make_loader(p)
    chroms, starts = sample_windows(read_sizes(p["sim"]), p["batches"] + p["warmup"], seed=p["seed"])
    digest = hashlib.sha1()
    for i in range(p["warmup"]):
        onehot, signal = fetch(chroms[i], starts[i])
        if i == 0:
            digest.update(onehot.tobytes())
            digest.update(signal.tobytes())
    t0, c0 = time.perf_counter(), time.process_time()
    for i in range(p["warmup"], p["warmup"] + p["batches"]):
        fetch(chroms[i], starts[i])
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    n = p["batches"] * BATCH
    return {"wall_sps": n / wall, "cpu_sps": n / cpu, "rss_mb": vm_hwm_mb(),
            "digest": digest.hexdigest()}


LOADERS = [
    ("store, 1 thread (default: no chunk cache)", {"kind": "store", "threads": 1, "cache_bytes": 0}),
    ("store, 2 threads", {"kind": "store", "threads": 2, "cache_bytes": 0}),
    ("store, 1 thread, 128 MB chunk cache", {"kind": "store", "threads": 1, "cache_bytes": 128 << 20}),
    ("pyfaidx + pyBigWig, open handles", {"kind": "pyfaidx"}),
    ("FactorNet (genome in RAM, bigWig per sample)", {"kind": "factornet"}),
    ("in-RAM numpy gather (upper limit)", {"kind": "inram"}),
]


def section_loading(ctx, rows):
    log("1. random-window loading")
    warm_files(ctx["sim"], ctx["stores"])
    results = {name: [] for name, _ in LOADERS}
    for rep in range(ctx["reps"]):
        for name, spec in LOADERS:
            batches = ctx["batches"] // (8 if spec["kind"] in ("pyfaidx", "factornet") else 1)
            params = {**spec, "sim": str(ctx["sim"]), "store": str(ctx["cell_store"]),
                      "batches": max(batches, 5), "warmup": 5, "seed": 0}
            res = run_worker("loader", params)
            results[name].append(res)
            log(f"  rep {rep + 1} {name}: {res['wall_sps']:.0f} /s wall, {res['cpu_sps']:.0f} /s cpu, "
                f"{res['rss_mb']:.0f} MB")
    digests = {r["digest"] for runs in results.values() for r in runs}
    same = "identical batches" if len(digests) == 1 else f"BATCHES DIFFER ({len(digests)} digests)"
    med = {name: {k: median([r[k] for r in runs]) for k in ("wall_sps", "cpu_sps", "rss_mb")}
           for name, runs in results.items()}
    ours = med[LOADERS[0][0]]
    peers = {"pyfaidx": med[LOADERS[3][0]], "factornet": med[LOADERS[4][0]], "inram": med[LOADERS[5][0]]}
    for name, m in med.items():
        note = ""
        if name == LOADERS[0][0]:
            ratios = {k: (ours["wall_sps"] / v["wall_sps"], ours["cpu_sps"] / v["cpu_sps"])
                      for k, v in peers.items()}
            note = (f"x{ratios['pyfaidx'][0]:.1f} / x{ratios['pyfaidx'][1]:.1f} pyfaidx+pyBigWig "
                    f"(target 6); x{ratios['factornet'][0]:.1f} / x{ratios['factornet'][1]:.1f} "
                    f"FactorNet (8); {ratios['inram'][0]:.0%} / {ratios['inram'][1]:.0%} of in-RAM "
                    f"(50%); target >= {TARGETS['reader_sps']:,} /s, RSS <= 1 GB")
            ctx["summary"]["reader"] = {"median": ours, "ratios": ratios}
        elif "store" in name:
            note = f"x{m['wall_sps'] / ours['wall_sps']:.2f} wall / x{m['cpu_sps'] / ours['cpu_sps']:.2f} cpu vs 1 thread, no cache"
        rows.append(("1", f"{name}", f"{m['wall_sps']:,.0f} /s wall; {m['cpu_sps']:,.0f} /s per CPU-s; "
                     f"peak RSS {m['rss_mb']:,.0f} MB", note))
    rows.append(("1", "check", same, f"{ctx['reps']} repeats, medians; ratios wall / per CPU-s"))


def worker_batches(p):
    """Training batches (BatchLoader) of 100 examples, as train_and_evaluate assembles them."""
    from factornet_jax.batches import BatchAssembler, BatchLoader, BatchSpec, TrainingData
    from factornet_jax.reader import open_cell_store
    stores = [open_cell_store(p["store"])]
    chroms = [c for c in stores[0].chrom_sizes if c not in ("chr11", "chr1", "chr8", "chr21")]
    examples = TrainingData(stores, chroms, SEQ_LEN).epoch_examples(0)
    spec = BatchSpec(SEQ_LEN, False, False)
    workers = None
    if p["processes"]:
        from factornet_jax.batch_processes import BatchWorkers, layout_nbytes
        layout = BatchAssembler(stores, spec).layout(TRAIN_BATCH, examples.labels.shape[1])
        workers = BatchWorkers(p["processes"], layout_nbytes(layout), slots=2 * p["processes"])
    try:
        def run(batches):
            n = 0
            for batch in BatchLoader(stores, examples, TRAIN_BATCH, spec, threads=p["threads"],
                                     workers=workers, max_batches=batches):
                n += len(batch["weights"])
            return n
        run(5)                                  # warm-up (and worker start-up)
        t0 = time.perf_counter()
        n = run(p["batches"])
        wall = time.perf_counter() - t0
    finally:
        if workers is not None:
            workers.close()
    return {"wall_sps": n / wall, "rss_mb": vm_hwm_mb()}


BATCH_LOADERS = [
    ("training batches, 1 loader thread (default)", {"threads": 1, "processes": 0}),
    ("training batches, 2 loader threads", {"threads": 2, "processes": 0}),
    ("training batches, 2 worker processes (--loader-processes 2)", {"threads": 0, "processes": 2}),
]


def section_batches(ctx, rows):
    log("1. training batches (BatchLoader)")
    results = {name: [] for name, _ in BATCH_LOADERS}
    for rep in range(ctx["reps"]):
        for name, spec in BATCH_LOADERS:
            res = run_worker("batches", {**spec, "store": str(ctx["cell_store"]),
                                         "batches": max(ctx["batches"] // 2, 10)})
            results[name].append(res)
            log(f"  rep {rep + 1} {name}: {res['wall_sps']:.0f} /s")
    base = median([r["wall_sps"] for r in results[BATCH_LOADERS[0][0]]])
    for name, runs in results.items():
        sps = median([r["wall_sps"] for r in runs])
        rows.append(("1", name, f"{sps:,.0f} samples/s wall; peak RSS (parent) "
                     f"{median([r['rss_mb'] for r in runs]):,.0f} MB",
                     f"x{sps / base:.2f} vs 1 thread; batch {TRAIN_BATCH}, L {SEQ_LEN}, 2 tracks"))


# ------------------------------------------------------------------ section 2: build

def worker_build(p):
    from factornet_jax import stores
    if p.get("shard_chunks") is not None:
        stores.SHARD_CHUNKS = p["shard_chunks"]
    codecs = stores.Codecs(**p["codecs"]) if p.get("codecs") else stores.Codecs()
    chunk = p.get("chunk_bases") or stores.DEFAULT_CHUNK_BASES
    sim = Path(p["sim"])
    out = Path(p["out"])
    out.mkdir(parents=True, exist_ok=True)
    t0, c0 = time.perf_counter(), time.process_time()
    if p["kind"] == "genome":
        summary = stores.build_genome_store(str(sim / "genome.fa"), str(out / "genome.zarr"),
                                            chunk_bases=chunk, codecs=codecs, force=True)
        tracks = 1
    else:
        from factornet_jax.cell_folders import read_cell_inputs
        cell = read_cell_inputs(str(sim / "cells" / "CellA"))
        summary = stores.build_cell_store(cell, str(out / "genome.zarr"), str(out / "CellA.zarr"),
                                          chunk_bases=chunk, codecs=codecs, force=True)
        tracks = len(cell.tracks)
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    files = sum(len(f) for _, _, f in os.walk(summary.path))
    return {"bases": summary.bases, "bytes": summary.bytes_on_disk, "wall": wall, "cpu": cpu,
            "tracks": tracks, "rss_mb": vm_hwm_mb(), "files": files}


def section_build(ctx, rows):
    log("2. preprocess build")
    sizes = ctx["build_sizes"]
    sims = {mb: ensure_sim(ctx["work"], mb) for mb in sizes}
    results = {(mb, kind): [] for mb in sizes for kind in ("genome", "cell")}
    for rep in range(ctx["build_reps"]):
        for mb in sizes:
            out = ctx["work"] / f"build{mb:g}"
            for kind in ("genome", "cell"):
                res = run_worker("build", {"sim": str(sims[mb]), "out": str(out), "kind": kind})
                results[(mb, kind)].append(res)
                log(f"  rep {rep + 1} {mb:g} Mb {kind}: {res['bases'] / res['wall'] / 1e6:.1f} Mb/s wall, "
                    f"{res['bytes'] / res['bases']:.3f} B/base, {res['rss_mb']:.0f} MB")
    for (mb, kind), runs in results.items():
        bases, tracks = runs[0]["bases"], runs[0]["tracks"]
        wall, cpu = median([r["wall"] for r in runs]), median([r["cpu"] for r in runs])
        rss = median([r["rss_mb"] for r in runs])
        bpb = runs[0]["bytes"] / bases
        if kind == "genome":
            what = (f"{bases / wall / 1e6:.1f} Mb/s wall, {bases / cpu / 1e6:.1f} Mb/CPU-s; "
                    f"{bpb:.3f} B/base ({runs[0]['files']} files); peak RSS {rss:.0f} MB")
            note = (f"FASTA 1 B/base, 2-bit 0.25: x{1 / bpb:.1f} smaller than FASTA; targets "
                    f">= 50 Mb/s, <= 0.5 B/base")
            ctx["summary"].setdefault("build", {})[(mb, kind)] = (bases / wall / 1e6, bpb, rss)
        else:
            what = (f"{bases * tracks / wall / 1e6:.1f} Mb/s per track wall, "
                    f"{bases * tracks / cpu / 1e6:.1f} per CPU-s ({tracks} tracks); "
                    f"{bpb:.3f} B/base; peak RSS {rss:.0f} MB")
            note = "float32 raw 8 B/base for 2 tracks; target >= 30 Mb/s per track"
            ctx["summary"].setdefault("build", {})[(mb, kind)] = (bases * tracks / wall / 1e6, bpb, rss)
        rows.append(("2", f"build {kind} store, {bases / 1e6:.1f} Mb", what, note))


# ------------------------------------------------------------------ section 3: labels

def section_labels(ctx, rows):
    script = HERE / "labels_bench.py"
    if not script.is_file():
        rows.append(("3", "label building", "skipped", "benchmarks/labels_bench.py not present"))
        return
    log("3. label building (benchmarks/labels_bench.py)")
    cmd = [sys.executable, str(script)] + (["--no-bedtools"] if ctx["quick"] else [])
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=3600,
                              env={**os.environ, "PYTHONPATH": str(ROOT)})
    except subprocess.TimeoutExpired:
        rows.append(("3", "label building", "skipped", "labels_bench.py ran past 1 h"))
        return
    table = [line for line in proc.stdout.splitlines() if line.startswith("| ") and "---" not in line]
    if proc.returncode not in (0,) and not table:
        rows.append(("3", "label building", "skipped",
                     (proc.stderr.strip().splitlines() or ["failed"])[-1][:120]))
        return
    for line in table[1:]:   # | step | seconds | result |; a step name may hold a "|"
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) >= 3:
            name = " \\| ".join(cells[:-2])
            rows.append(("3", name, f"{cells[-2]} s", cells[-1]))
    for line in proc.stdout.splitlines():
        if line.startswith(("multi-task", "single-task")):
            rows.append(("3", "summary", line.strip().replace("|", "\\|"), ""))


# ------------------------------------------------------------------ section 4: training

def train_config(p, steps):
    from factornet_jax.train_config import TrainConfig
    return TrainConfig(inputs=(p["store"],), output=p["model"], epochs=2, patience=5,
                       kernels=32, recurrent=32, dense=128, seq_len=SEQ_LEN, batch_size=100,
                       max_steps_per_epoch=steps, stores_dir=str(Path(p["store"]).parent))


def worker_train_full(p):
    from factornet_jax.training import train_and_evaluate
    result = train_and_evaluate(train_config(p, p["steps"]), overwrite=True,
                                log=lambda *a, **k: None)
    last = result.history[-1]            # epoch 2: the jit compilation is in epoch 1
    return {"sps": last["samples_per_second"], "rss_mb": vm_hwm_mb()}


def worker_train_compute(p):
    import jax
    import optax

    from factornet_jax.model import init_params, make_model
    from factornet_jax.batches import BatchLoader, BatchSpec, TrainingData
    from factornet_jax.reader import open_cell_store
    from factornet_jax.steps import TrainState, global_batch, make_steps
    from factornet_jax.training import model_config_for
    config = train_config(p, p["steps"])
    stores = [open_cell_store(p["store"])]
    chroms = [c for c in stores[0].chrom_sizes if c not in ("chr11", "chr1", "chr8", "chr21")]
    data = TrainingData(stores, chroms, SEQ_LEN)
    loader = BatchLoader(stores, data.epoch_examples(0), config.batch_size,
                         BatchSpec(SEQ_LEN, False, False), threads=1)
    cfg = model_config_for(config, stores, data.tasks)
    model = make_model(cfg)
    params = init_params(cfg, jax.random.PRNGKey(0))
    tx = optax.adam(config.learning_rate)
    mesh = jax.make_mesh((jax.device_count(),), ("data",),
                         axis_types=(jax.sharding.AxisType.Auto,))
    train_step, _, data_sharding, replicated = make_steps(model, tx, mesh, "float32")
    state = jax.device_put(TrainState(params, tx.init(params), np.int32(0)), replicated)
    key = jax.device_put(jax.random.PRNGKey(0), replicated)
    batch = global_batch(loader.make_batch(0), data_sharding)
    state, loss = train_step(state, batch, key)   # compile
    loss.block_until_ready()
    t0 = time.perf_counter()
    for _ in range(p["steps"]):
        state, loss = train_step(state, batch, key)
    loss.block_until_ready()
    return {"sps": p["steps"] * config.batch_size / (time.perf_counter() - t0), "rss_mb": vm_hwm_mb()}


def section_training(ctx, rows):
    log("4. training")
    params = {"store": str(ctx["cell_store"]), "model": str(ctx["work"] / "model_bench"),
              "steps": ctx["train_steps"]}
    full, compute = [], []
    for rep in range(ctx["train_reps"]):
        compute.append(run_worker("train_compute", params))
        full.append(run_worker("train_full", params))
        log(f"  rep {rep + 1}: full {full[-1]['sps']:.0f} /s, compute-only {compute[-1]['sps']:.0f} /s")
    f, c = median([r["sps"] for r in full]), median([r["sps"] for r in compute])
    ctx["summary"]["train"] = f / c
    rows.append(("4", "full training loop (train_and_evaluate, epoch 2)",
                 f"{f:,.0f} samples/s; peak RSS {median([r['rss_mb'] for r in full]):,.0f} MB",
                 f"{f / c:.0%} of compute-only (target 95%)"))
    rows.append(("4", "same jitted step, one constant device batch",
                 f"{c:,.0f} samples/s; peak RSS {median([r['rss_mb'] for r in compute]):,.0f} MB",
                 f"-k 32 -r 32 -d 128 -L 1000, batch 100, {ctx['train_steps']} steps"))


# ------------------------------------------------------------------ section 5: prediction

def worker_predict(p):
    from factornet_jax.predict import predict_bed
    summary = predict_bed(p["store"], p["model"], p["bed"], p["out"], tf=p["tf"], overwrite=True,
                          progress=False)
    return {"wps": summary.windows_per_second, "n": summary.n_windows, "rss_mb": vm_hwm_mb(),
            "seconds": summary.seconds}


def section_predict(ctx, rows):
    try:
        import factornet_jax.predict  # noqa: F401
    except ImportError:
        rows.append(("5", "prediction", "skipped", "factornet_jax.predict not present yet"))
        return
    model = ctx["work"] / "model_bench"
    if not (model / "config.json").is_file():
        rows.append(("5", "prediction", "skipped", "needs section 4's model (run it first)"))
        return
    log("5. prediction")
    ladder = ctx["work"] / f"ladder100k_{ctx['genome_mb']:g}.bed.gz"
    n = 0
    with gzip.open(ctx["sim"] / "ladder.bed.gz", "rt") as src, gzip.open(ladder, "wt") as dst:
        for line in src:
            dst.write(line)
            n += 1
            if n == 100_000:
                break
    tf = json.loads((model / "config.json").read_text())["tfs"][0]
    runs = [run_worker("predict", {"store": str(ctx["cell_store"]), "model": str(model),
                                   "bed": str(ladder), "out": str(ctx["work"] / "pred.bedGraph.gz"),
                                   "tf": tf}) for _ in range(ctx["train_reps"])]
    rows.append(("5", f"predict_bed on a {n:,}-bin ladder ({tf})",
                 f"{median([r['wps'] for r in runs]):,.0f} windows/s; peak RSS "
                 f"{median([r['rss_mb'] for r in runs]):,.0f} MB",
                 f"{runs[0]['n']:,} windows scored, {median([r['seconds'] for r in runs]):.1f} s total"))


# ------------------------------------------------------------------ sweep: chunk size, codecs, layout

SWEEP = [  # (label, chunk_bases, shard_chunks, codec overrides)
    ("4 kb, sharded (default)", 4096, 4096, {}),
    ("2 kb, sharded", 2048, 8192, {}),
    ("8 kb, sharded", 8192, 2048, {}),
    ("16 kb, sharded", 16384, 1024, {}),
    ("4 kb, one file per chunk", 4096, 0, {}),
    ("4 kb, sharded, seq zstd+bitshuffle", 4096, 4096,
     {"sequence_cname": "zstd", "sequence_clevel": 5, "sequence_shuffle": "bitshuffle"}),
    ("4 kb, sharded, seq blosclz+bitshuffle", 4096, 4096,
     {"sequence_cname": "blosclz", "sequence_clevel": 5, "sequence_shuffle": "bitshuffle"}),
    ("4 kb, sharded, signal lz4+bitshuffle", 4096, 4096,
     {"signal_cname": "lz4", "signal_clevel": 5, "signal_shuffle": "bitshuffle"}),
    ("4 kb, sharded, signal lz4+noshuffle", 4096, 4096,
     {"signal_cname": "lz4", "signal_clevel": 5, "signal_shuffle": "noshuffle"}),
    ("4 kb, sharded, signal zstd(1)+noshuffle", 4096, 4096,
     {"signal_cname": "zstd", "signal_clevel": 1, "signal_shuffle": "noshuffle"}),
    ("previous: 8 kb, one file per chunk, zstd/lz4+bitshuffle", 8192, 0,
     {"sequence_cname": "zstd", "sequence_clevel": 5, "sequence_shuffle": "bitshuffle",
      "signal_cname": "lz4", "signal_clevel": 5, "signal_shuffle": "bitshuffle"}),
]


def section_sweep(ctx, rows):
    log("sweep: chunk size, codecs, layout")
    built = {}
    for label, chunk, shards, overrides in SWEEP:
        out = ctx["work"] / "sweep" / f"{chunk}_{shards}_{abs(hash(json.dumps(overrides, sort_keys=True))) % 10**8}"
        from factornet_jax.stores import Codecs
        codecs = {**Codecs().__dict__, **overrides}
        params = {"sim": str(ctx["sim"]), "out": str(out), "chunk_bases": chunk,
                  "shard_chunks": shards, "codecs": codecs}
        genome = run_worker("build", {**params, "kind": "genome"})
        cell = run_worker("build", {**params, "kind": "cell"})
        built[label] = (out, genome, cell)
        log(f"  built {label}")
    warm_files(*[b[0] for b in built.values()])
    reads = {label: [] for label in built}
    for rep in range(ctx["reps"]):
        for label, (out, _, _) in built.items():
            res = run_worker("loader", {"kind": "store", "threads": 1, "cache_bytes": 0,
                                        "sim": str(ctx["sim"]), "store": str(out / "CellA.zarr"),
                                        "batches": ctx["batches"], "warmup": 5, "seed": 1})
            reads[label].append(res)
        log(f"  sweep rep {rep + 1} done")
    base = median([r["cpu_sps"] for r in reads[SWEEP[0][0]]])
    for label, (out, genome, cell) in built.items():
        cpu = median([r["cpu_sps"] for r in reads[label]])
        wall = median([r["wall_sps"] for r in reads[label]])
        rows.append(("S", label,
                     f"read {cpu:,.0f} /CPU-s ({wall:,.0f} /s wall); genome "
                     f"{genome['bytes'] / genome['bases']:.3f} B/base, cell "
                     f"{cell['bytes'] / cell['bases']:.3f} B/base; "
                     f"{genome['files'] + cell['files']} files",
                     f"x{cpu / base:.2f} of default; build CPU {genome['cpu']:.1f} s genome, "
                     f"{cell['cpu']:.1f} s cell"))


# ------------------------------------------------------------------ setup and main

def ensure_sim(work, genome_mb):
    """The simulated dataset of `genome_mb` in work/sim<N> (made once, then reused)."""
    from factornet_jax.simulate import SimulationConfig, simulate
    sim = Path(work) / f"sim{genome_mb:g}"
    if not (sim / "simulation.json").is_file():
        log(f"simulating a {genome_mb:g} Mb dataset in {sim}")
        simulate(sim, SimulationConfig(genome_mb=genome_mb), overwrite=True)
    return sim


def ensure_stores(work, sim, genome_mb):
    from factornet_jax.build import BuildRequest, build_stores
    stores = Path(work) / f"stores{genome_mb:g}"
    build_stores(BuildRequest(cell_dirs=(str(sim / "cells" / "CellA"),), genome=str(sim / "genome.fa"),
                              stores_dir=str(stores), blacklist=str(sim / "blacklist.bed.gz")))
    return stores


def machine_line():
    cpu = "?"
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    return (f"{os.cpu_count()} CPUs ({cpu}), Python {platform.python_version()}, "
            f"load average {load:.1f} at start")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--genome-mb", type=float, default=None,
                        help="simulated genome size (default 40; 10 with --quick)")
    parser.add_argument("--work", type=Path, default=Path(os.environ.get("TMPDIR", "/tmp")) / "factornet-bench")
    parser.add_argument("--quick", action="store_true", help="smaller genome, fewer batches and repeats")
    parser.add_argument("--sweep", action="store_true", help="add the chunk-size / codec / layout sweep")
    parser.add_argument("--sections", default="1,2,3,4,5", help="comma-separated sections to run")
    parser.add_argument("--worker", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        name, params = args.worker
        fn = {"loader": worker_loader, "batches": worker_batches, "build": worker_build, "train_full": worker_train_full,
              "train_compute": worker_train_compute, "predict": worker_predict}[name]
        print("RESULT " + json.dumps(fn(json.loads(params))), flush=True)
        return 0

    quick = args.quick
    genome_mb = args.genome_mb or (10 if quick else 40)
    work = args.work.resolve()
    work.mkdir(parents=True, exist_ok=True)
    sections = set(args.sections.split(","))
    started = time.strftime("%Y-%m-%d %H:%M")
    header = machine_line()
    sim = ensure_sim(work, genome_mb)
    stores = ensure_stores(work, sim, genome_mb)
    ctx = {"work": work, "sim": sim, "stores": stores, "cell_store": stores / "CellA.zarr",
           "genome_mb": genome_mb, "quick": quick, "reps": 2 if quick else 3,
           "batches": 40 if quick else 150, "build_sizes": (genome_mb / 4, genome_mb) if quick
           else (10, 40), "build_reps": 1 if quick else 3, "train_steps": 10 if quick else 30,
           "train_reps": 1 if quick else 3, "summary": {}}
    rows = []
    steps = [("1", section_loading), ("1", section_batches), ("2", section_build), ("3", section_labels),
             ("4", section_training), ("5", section_predict)]
    for key, fn in steps:
        if key in sections:
            fn(ctx, rows)
    if args.sweep:
        section_sweep(ctx, rows)
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"benchmarks/run.py {' '.join(sys.argv[1:])}: {started}; {header}, {load:.1f} at end; "
          f"simulated genome {genome_mb:g} Mb, batch {BATCH}, L {SEQ_LEN}\n")
    print("| # | measurement | result | vs peers / target |\n|---|---|---|---|")
    for row in rows:
        print("| " + " | ".join(str(c) for c in row) + " |")
    return 0


if __name__ == "__main__":
    sys.exit(main())

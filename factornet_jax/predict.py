"""Genome-scale prediction: score every interval of a BED file -> bedGraph.gz (and bigWig).

    summary = predict_bed("stores/CellC.zarr", "models/CTCF", "ladder.bed.gz",
                          "pred/CellC.CTCF.bedGraph.gz", tf="CTCF", bigwig="pred/CellC.CTCF.bw")

What a score is (FactorNet's predict.py semantics)
    Each interval is scored on the ``seq_len`` window centred on its midpoint
    ``(start + end) // 2`` (for 200-bp ladder bins this is ``labels.window_starts``); GENCODE
    flags, for models that use them, are those of the 200-bp bin centred there. Intervals
    sharing a base with the exclusion zone (``labels.exclusion_zone``: the blacklist widened
    by ``seq_len`` and the first / last ``seq_len`` bp of each chromosome), or whose window
    runs off the chromosome, are not run through the model and score 0.
One TF per output file
    As in FactorNet, a file holds one TF's scores. A multi-task model needs ``tf`` (-f) to say
    which one; a single-task model's TF is implied. (One column per TF would make a file that
    `factornet evaluate` and every bedGraph reader silently read as the first TF only.)
Streaming, bounded memory
    The BED (plain or gzipped, any size) is read in blocks of ``bed.BED_BLOCK_LINES`` lines, twice: a
    first cheap pass checks every line (columns, coordinates, chromosomes in the store, order
    when a bigWig is asked for) and counts the bins, so a bad line 40 M lines down fails in
    seconds, not after hours of prediction; the second pass scores the blocks. Batches are
    assembled by `batches.BatchAssembler` (in a host thread, or in worker
    processes with ``loader_processes``) several batches ahead of the device and run through
    the evaluation step the training loop uses too (``steps.make_steps``: one jit-compiled
    forward of a fixed batch shape, sharded over every local device on a ("data",) mesh); the
    last batch of each block is padded. The look-ahead streams across blocks: `batches.BatchLoader`
    itself is not used, as it holds a whole pass of examples in memory.
Output
    A gzipped bedGraph ``chrom start end score`` in the input order (the input coordinates,
    the score with ``%.6g``), written to a temporary file beside the target and renamed into
    place when complete. Its gzip header carries the comment ``factornet-jax/predict v1
    bigwig=<fingerprint>`` (invisible to every gzip reader: the content is exactly the
    DREAM-format lines): that is how a later ``-oc`` (``overwrite=True``) recognises the file,
    and the bigWig written with it, as ours and may replace them; an existing file that is not
    ours is refused, -oc or not (factornet_jax.outputs).
    The optional bigWig needs a BED sorted by chromosome (each chromosome in one run) and
    start; since ladder bins overlap (200-bp bins at 50-bp steps), each interval contributes
    its central ``STRIDE`` (50) bp ``[mid - 25, mid + 25)`` (clipped to the interval, and
    cut to start after the previous entry): on the ladder these tile the scored region, each
    50-bp step carrying the score of the bin centred on it.
"""
from __future__ import annotations

import functools
import os
import time
from collections import deque
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from factornet_jax.batch_processes import batch_workers
from factornet_jax.bed import BED_BLOCK_LINES, iter_bed_blocks, scan_bed
from factornet_jax.drift import check_drift, read_profiles, signal_profile
from factornet_jax.errors import ConfigError, FactorNetError
from factornet_jax.labels import BIN_SIZE, STRIDE, exclusion_zone
from factornet_jax.ladder import Sharing, StretchReader, choose_sharing, segments, stretch_batches
from factornet_jax.outputs import (PREDICTION, MarkedGzipWriter, bigwig_kind, check_output,
                                   file_fingerprint, hidden_sibling, prediction_comment,
                                   replace_path)
from factornet_jax.batches import BatchAssembler, BatchSpec, Examples, empty_batch, ordered_map
from factornet_jax.progress import Progress
from factornet_jax.steps import check_compute_settings

# Windows per device per compiled call when none is asked for: on CPU small batches are about
# twice as cheap per window (their activations stay in cache; docs/BENCHMARKS.md section 5),
# on accelerators a large batch keeps the device busy.
CPU_BATCH_PER_DEVICE = 64
ACCELERATOR_BATCH_PER_DEVICE = 512


@dataclass(frozen=True)
class PredictSummary:
    """What one prediction run did."""
    out_path: str               # the bedGraph.gz written
    bigwig_path: str | None     # the bigWig written, if asked for
    tf: str                     # the TF scored
    n_bins: int                 # intervals in the BED (= lines written)
    n_windows: int              # intervals run through the model
    n_excluded: int             # intervals scored 0 (exclusion zone, window off the chromosome)
    batch_size: int             # global batch (windows per compiled call)
    devices: int                # devices the batch was split over
    seconds: float              # wall time of the whole run
    windows_per_second: float   # n_windows / seconds of the scoring pass
    sharing: Sharing = Sharing("per-window")   # the scoring path (factornet_jax.ladder)
    n_models: int = 1                          # models averaged (an ensemble when > 1)
    std_bigwig_path: str | None = None         # the ensemble's spread, if asked for
    processes: int = 1                         # processes sharing the BED; with several,
    process: int = 0                           # n_windows and n_excluded are this process's
    normalization: str = "none"                # read-time signal normalisation (drift.py)


# ------------------------------------------------------------------ batches

@functools.lru_cache(maxsize=8)
def _eval_step(model_config, n_devices, compute_dtype, lstm_backend="scan"):
    """The jitted eval step (`steps.make_steps`) over a ("data",) mesh of every device, kept per
    architecture so repeated predictions (one per TF, per cell line) compile once per shape."""
    from factornet_jax.model import make_model
    from factornet_jax.steps import make_steps
    mesh = _data_mesh(n_devices)
    # the train step (and so the optimizer) is never used here
    model = make_model(model_config, lstm_backend)
    _, eval_step, data_sharding, replicated = make_steps(model, None, mesh, compute_dtype)
    return eval_step, data_sharding, replicated


@functools.lru_cache(maxsize=8)
def _ladder_step(model_config, n_devices, compute_dtype, lstm_backend, step):
    """The jitted shared-computation step (`steps.make_ladder_step`), kept per architecture."""
    from factornet_jax.model import make_model
    from factornet_jax.steps import make_ladder_step
    return make_ladder_step(make_model(model_config, lstm_backend), _data_mesh(n_devices),
                            compute_dtype, step)


def _data_mesh(n_devices):
    """A ("data",) mesh over this process's first `n_devices` devices (in a multi-process
    run each process scores its own share of the BED on its own devices)."""
    import jax
    return jax.sharding.Mesh(np.array(jax.local_devices()[:n_devices]), ("data",),
                             axis_types=(jax.sharding.AxisType.Auto,))


@dataclass
class _OpenBlock:
    """A block being scored: its scores fill in as batches come back."""
    block: BedBlock
    scores: np.ndarray          # (N,) float32, 0 where not scored
    remaining: int              # batches not yet scored
    spread: np.ndarray          # (N,) float32 standard deviation over the models


@dataclass(frozen=True)
class _Task:
    owner: _OpenBlock
    rows: np.ndarray | None     # (n,) indices into the block; None: a block with no usable row
    payload: object = None      # what the loader reads: Examples (per-window) or StretchBatch


def _usable(block, zone, chrom_sizes, seq_len):
    """(N,) bool: interval clear of the exclusion zone and its window inside the chromosome."""
    mids = (block.starts + block.ends) // 2
    window = mids - seq_len // 2
    sizes = np.fromiter((chrom_sizes[c] for c in block.chroms), np.int64, len(block))
    inside = (window >= 0) & (window + seq_len <= sizes)
    return inside & ~zone.overlaps(block.chroms, block.starts, block.ends)


# ------------------------------------------------------------------ writers

def _format_lines(block, scores):
    """bedGraph text of a block: chrom, start, end (as given), score with %.6g."""
    return "".join(f"{c}\t{s}\t{e}\t{v:.6g}\n" for c, s, e, v in
                   zip(block.chroms.tolist(), block.starts.tolist(), block.ends.tolist(),
                       scores.tolist()))


class _BigWigWriter:
    """Streams the central 50 bp of each (sorted) interval into a bigWig."""

    def __init__(self, path, chrom_order, chrom_sizes):
        import pyBigWig
        self.handle = pyBigWig.open(str(path), "w")
        if self.handle is None:
            raise FactorNetError(f"{path}: cannot create the bigWig file")
        # pyBigWig wants entries in header order: the BED's chromosomes first, as they come
        header = list(chrom_order) + [c for c in chrom_sizes if c not in set(chrom_order)]
        self.handle.addHeader([(c, int(chrom_sizes[c])) for c in header])
        self.last_chrom, self.last_end = None, 0

    def add(self, block, scores):
        mids = (block.starts + block.ends) // 2
        lo = np.maximum(block.starts, mids - STRIDE // 2)
        hi = np.minimum(block.ends, mids - STRIDE // 2 + STRIDE)
        cuts = np.flatnonzero(block.chroms[1:] != block.chroms[:-1]) + 1
        for part in np.split(np.arange(len(block)), cuts):
            if not part.size:
                continue
            chrom = str(block.chroms[part[0]])
            if chrom != self.last_chrom:
                self.last_chrom, self.last_end = chrom, 0
            start = lo[part].copy()
            end = hi[part]
            # each entry starts after the previous one ended (overlapping central spans)
            reach = np.maximum.accumulate(np.concatenate([[self.last_end], end]))[:-1]
            start = np.maximum(start, reach)
            keep = end > start
            if keep.any():
                self.handle.addEntries([chrom] * int(keep.sum()), start[keep].tolist(),
                                       ends=end[keep].tolist(),
                                       values=scores[part][keep].astype(np.float64).tolist())
                self.last_end = int(end[keep][-1])

    def close(self):
        self.handle.close()


# ------------------------------------------------------------------ the models

class _Ensemble:
    """One or more loaded models scoring the same windows: each batch is read once and run
    through every model's compiled step; the score is the mean of their probabilities."""

    def __init__(self, models, store, tf, n_devices, compute_dtype, lstm_backend):
        import jax

        from factornet_jax.model import check_lstm_backend
        self.models = models
        self.task_indices = [m.check_store(store, tf) for m in models]
        tfs = sorted({m.tfs[i] for m, i in zip(models, self.task_indices)})
        if len(tfs) > 1:
            raise ConfigError(f"-m: the models predict different TFs ({', '.join(tfs)}); an "
                              "ensemble averages one TF: name it with -f")
        self.tf = tfs[0]
        lengths = sorted({m.model_config.seq_len for m in models})
        if len(lengths) > 1:
            raise ConfigError(f"-m: the models' windows differ ({', '.join(map(str, lengths))} bp; "
                              "an ensemble scores the same windows with every model)")
        self.seq_len = lengths[0]
        self.cfg = models[0].model_config
        self.use_meta = any(m.model_config.num_meta for m in models)
        self.use_gencode = any(m.model_config.use_gencode for m in models)
        for m in models:
            if m.model_config.recurrent > 0:
                check_lstm_backend(lstm_backend, m.model_config.lstm_cell)
        self.n_devices, self.compute_dtype, self.lstm_backend = n_devices, compute_dtype, lstm_backend
        steps = [_eval_step(m.model_config, n_devices, compute_dtype, lstm_backend) for m in models]
        self.eval_steps = [step[0] for step in steps]
        self.data_sharding, replicated = steps[0][1], steps[0][2]
        self.params = [jax.device_put(m.params, replicated) for m in models]
        self.ladder_steps = None

    def use_ladder(self, step):
        self.ladder_steps = [_ladder_step(m.model_config, self.n_devices, self.compute_dtype,
                                          self.lstm_backend, step) for m in self.models]

    def dispatch(self, batch, slots=None, n_rows=None):
        """Start every model on one batch; returns a function giving (models, rows) float32
        probabilities of the scored rows (`slots` of a ladder batch, or its first `n_rows`)."""
        import jax

        from factornet_jax.steps import global_batch
        inputs = global_batch({k: v for k, v in batch.items() if k not in ("labels", "weights")},
                              self.data_sharding)
        if self.ladder_steps is not None:
            outs = [step(params, inputs) for step, params in zip(self.ladder_steps, self.params)]
        else:
            outs = [step(params, inputs) for step, params in zip(self.eval_steps, self.params)]

        def values():
            rows = []
            for out, task in zip(outs, self.task_indices):
                probs = np.asarray(jax.device_get(out))
                probs = probs.reshape(-1, probs.shape[-1])
                rows.append(probs[slots, task] if slots is not None else probs[:n_rows, task])
            return np.stack(rows)
        return values


# ------------------------------------------------------------------ the outputs

class _Outputs:
    """The prediction file and the optional bigWigs (mean score, --std-bigwig spread), each
    written to a hidden temporary beside its target and put in place by `commit`."""

    def __init__(self, out_path, bigwig, std_bigwig, chrom_order, chrom_sizes):
        self.out_path = Path(out_path)
        self.targets = {"bigwig": bigwig, "std": std_bigwig}
        self.tmp = hidden_sibling(out_path, "tmp")
        self.tmps = {k: hidden_sibling(v, "tmp") if v is not None else None
                     for k, v in self.targets.items()}
        for path in [out_path] + [v for v in self.targets.values() if v is not None]:
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        self.writers = {}
        self.raw = open(self.tmp, "xb")
        self.gz = MarkedGzipWriter(self.raw, prediction_comment(), level=6)
        for key, tmp in self.tmps.items():
            if tmp is not None:
                self.writers[key] = _BigWigWriter(tmp, chrom_order, chrom_sizes)

    def write(self, block, scores, spread):
        self.gz.write(_format_lines(block, scores).encode("utf-8"))
        if "bigwig" in self.writers:
            self.writers["bigwig"].add(block, scores)
        if "std" in self.writers:
            self.writers["std"].add(block, spread)

    def finish(self):
        """Close everything and record the bigWigs' fingerprints in the file's gzip header."""
        for writer in self.writers.values():
            writer.close()
        self.writers = {}
        fingerprints = {key: file_fingerprint(tmp) for key, tmp in self.tmps.items() if tmp is not None}
        self.gz.set_comment(prediction_comment(fingerprints.get("bigwig"), fingerprints.get("std")))
        self.gz.close()
        self.raw.close()

    def commit(self):
        for key, target in self.targets.items():
            if target is not None:
                replace_path(self.tmps[key], target)
        replace_path(self.tmp, self.out_path)

    def discard(self):
        for writer in self.writers.values():
            try:
                writer.close()
            except RuntimeError:
                pass
        self.raw.close()
        for path in [self.tmp] + list(self.tmps.values()):
            if path is not None and os.path.exists(path):
                os.unlink(path)


class _Part:
    """One process's scores in a multi-process run: float32 score and spread of each interval
    of its blocks, in file order, in a hidden file beside the output that process 0 merges."""

    def __init__(self, out_path, token, index):
        self.path = _part_path(out_path, token, index)
        self.handle = open(self.path, "xb")

    def write(self, block, scores, spread):
        self.handle.write(np.stack([scores, spread], axis=1).astype(np.float32).tobytes())

    def finish(self):
        self.handle.close()

    def discard(self):
        self.handle.close()
        if self.path.exists():
            self.path.unlink()


def _part_path(out_path, token, index):
    out_path = Path(out_path)
    return out_path.parent / f".{out_path.name}.part-{token:016x}-{index}"


def _merge_parts(bed_path, block_lines, owners, out_path, token, outputs):
    """Process 0: the parts of every process, block by block in file order, into `outputs`;
    the parts are removed once read."""
    handles = {}
    try:
        for b, block in enumerate(iter_bed_blocks(bed_path, block_lines)):
            owner = int(owners[b])
            if owner not in handles:
                handles[owner] = open(_part_path(out_path, token, owner), "rb")
            values = np.frombuffer(handles[owner].read(8 * len(block)), np.float32)
            if values.size != 2 * len(block):
                raise FactorNetError(f"{_part_path(out_path, token, owner)}: the scores of process "
                                     f"{owner} are incomplete")
            values = values.reshape(-1, 2)
            outputs.write(block, values[:, 0], values[:, 1])
    finally:
        for handle in handles.values():
            handle.close()


def _process_token():
    """A random number that every process of the run agrees on (process 0's)."""
    import jax
    from jax.experimental import multihost_utils
    token = np.array([np.random.default_rng().integers(0, 2**62)], np.int64)
    return int(multihost_utils.broadcast_one_to_all(token)[0])


def _barrier(name):
    import jax
    from jax.experimental import multihost_utils
    multihost_utils.sync_global_devices(name)


# ------------------------------------------------------------------ the run

def predict_bed(cell_store, model_dir, bed_path, out_path, tf=None, bigwig=None,
                batch_size=None, threads=1, prefetch=4, loader_processes=0, overwrite=False,
                stores_dir="stores", checkpoint="best", compute_dtype="float32", lstm_backend="scan",
                sharing="auto", std_bigwig=None, signal_normalization="auto",
                block_lines=BED_BLOCK_LINES, progress=None) -> PredictSummary:
    """Score every interval of `bed_path` with the model(s) in `model_dir` on `cell_store`.

    Parameters
    ----------
    cell_store : a cell store path, or a cell folder whose store was built into `stores_dir`
    model_dir : a model directory (config.json + best.npz / final.npz), or a list of them: an
        ensemble (seeds, folds, imported released models) scored in one pass over the store,
        the score being the mean of their probabilities (same window length; same TF)
    bed_path : BED3+ file, plain or gzipped, any size, any order (sorted for `bigwig`)
    out_path : the gzipped bedGraph to write (chrom, start, end, score), input order
    tf : the TF to score; required when the model has several
    bigwig : optional bigWig path (central 50 bp of each interval, see the module docstring)
    std_bigwig : optional bigWig of the ensemble's per-bin standard deviation (an uncertainty
        track; needs several models and a sorted BED)
    batch_size : windows per compiled call over all devices (rounded up to a multiple of the
        device count; lowered to the BED's size for small files); None: 64 per device on
        CPU, 512 per device on GPU/TPU
    threads : host threads assembling batches (one: more contend for the GIL and are slower);
        prefetch : batches prepared ahead; loader_processes : assemble batches in this many
        worker processes instead (batch_processes.py; for accelerators one thread cannot feed)
    overwrite : -oc: replace an earlier prediction file of ours at `out_path` (and the bigWigs
        written with it); anything else there is refused (outputs.check_output)
    checkpoint : "best" or "final" parameters; compute_dtype : "float32" or "bfloat16"
    lstm_backend : "scan" (any device) or "cudnn" (NVIDIA GPUs; same results, see model.py)
    sharing : "auto", "shared" or "per-window": score tiling ladders with the per-position
        layers computed once per stretch of overlapping windows (factornet_jax.ladder; same
        scores to float32 rounding); "auto" takes it when it saves arithmetic. The shared
        path assembles its batches in threads (`loader_processes` serves the per-window path)
    signal_normalization : "auto" (the read-time normalisation the model was trained with,
        drift.py), "none", or "quantile" (the cell's tracks quantile-matched to the model's
        training cells, also for a model trained without it)
    progress : show a progress bar (None: when stderr is a terminal)

    Returns
    -------
    PredictSummary
    """
    import jax

    from factornet_jax.modeldir import load_model
    from factornet_jax.reader import open_cell_store, resolve_store

    t_start = time.perf_counter()
    model_dirs = [model_dir] if isinstance(model_dir, (str, os.PathLike)) else list(model_dir)
    _check_settings(batch_size, threads, loader_processes, compute_dtype, model_dirs, std_bigwig,
                    block_lines)
    input_paths = (cell_store, *model_dirs, bed_path)
    extra_outputs = [(flag, path) for flag, path in (("--bigwig", bigwig), ("--std-bigwig", std_bigwig))
                     if path is not None]

    def check_outputs():
        named = [("-o", out_path)] + extra_outputs
        for i, (flag, path) in enumerate(named):
            for other_flag, other in named[:i]:
                if Path(path).resolve() == Path(other).resolve():
                    raise ConfigError(f"{flag} and {other_flag} name the same file")
        check_output(out_path, overwrite, PREDICTION, input_paths)
        for flag, path in extra_outputs:   # ours: recorded by our prediction file at out_path
            key = "std" if flag == "--std-bigwig" else "bigwig"
            check_output(path, overwrite, bigwig_kind(out_path, key), input_paths, flag=flag)

    check_outputs()

    models = [load_model(d, which=checkpoint) for d in model_dirs]
    with open_cell_store(resolve_store(cell_store, stores_dir)) as store:   # closes its files
        n_devices = jax.local_device_count()
        n_processes, process = jax.process_count(), jax.process_index()
        ensemble = _Ensemble(models, store, tf, n_devices, compute_dtype, lstm_backend)
        recorded = next((m for m in models if read_profiles(m.model_dir)), None)
        # the raw signal's profile, once: the drift check and the normalisation both use it
        profile = signal_profile(store) if recorded is not None else None
        if process == 0 and recorded is not None:
            check_drift(recorded, store, profile)
        normalization = _normalize(models, store, signal_normalization, profile)
        seq_len = ensemble.seq_len
        scan = scan_bed(bed_path, store.chrom_sizes, need_sorted=bool(extra_outputs),
                        block_lines=block_lines,
                        sorted_for=" and ".join(flag for flag, _ in extra_outputs) or "--bigwig")
        if batch_size is None:
            per_device = (CPU_BATCH_PER_DEVICE if jax.default_backend() == "cpu"
                          else ACCELERATOR_BATCH_PER_DEVICE)
            batch_size = per_device * n_devices
        batch_size = min(batch_size, scan.n_bins)
        batch_size = -(-batch_size // n_devices) * n_devices
        zone = exclusion_zone(store.genome.blacklist(), store.chrom_sizes, seq_len)
        spec = BatchSpec(seq_len, ensemble.use_meta, ensemble.use_gencode)
        assembler = BatchAssembler([store], spec)
        layout = assembler.layout(batch_size, 0)
        plan = choose_sharing(ensemble.cfg, scan.n_bins, scan.steps, batch_size // n_devices, sharing)
        if plan.path == "shared":
            # stretches per compiled call: the per-window batch's windows, a multiple of the devices
            per_call = -(-max(1, batch_size // plan.windows) // n_devices) * n_devices
            ensemble.use_ladder(plan.step)
            reader = StretchReader(store, plan, seq_len, ensemble.use_meta, ensemble.use_gencode)

        def block_groups(block, usable, mids):
            """(rows, payload) of each compiled call for one block's usable rows."""
            if plan.path == "shared":
                first, count = segments(block.chroms, mids, usable, plan.step, plan.windows)
                for item in stretch_batches(block.chroms, mids, first, count, plan, per_call,
                                            seq_len, BIN_SIZE):
                    yield item.rows, item
                return
            rows_all = np.flatnonzero(usable)
            for lo in range(0, len(rows_all), batch_size):
                rows = rows_all[lo: lo + batch_size]
                n = len(rows)
                yield rows, Examples(np.zeros(n, np.int32), block.chroms[rows],
                                     mids[rows] - BIN_SIZE // 2, np.zeros((n, 0), np.uint8))

        def tasks():
            """Blocks of the BED -> tasks (one per compiled call); a block with no usable row
            yields one marker task (rows None), so the look-ahead stays a few items whatever the
            BED holds."""
            for b, block in enumerate(iter_bed_blocks(bed_path, block_lines)):
                if owners[b] != process:
                    continue
                usable = _usable(block, zone, store.chrom_sizes, seq_len)
                mids = (block.starts + block.ends) // 2
                groups = list(block_groups(block, usable, mids))
                owner = _OpenBlock(block, np.zeros(len(block), np.float32), len(groups),
                                   np.zeros(len(block), np.float32))
                open_blocks.append(owner)
                bar.update(len(block) - int(usable.sum()))
                if not groups:
                    yield _Task(owner, None)
                for rows, payload in groups:
                    yield _Task(owner, rows, payload)

        def payloads():
            """What the loader reads for each task (None for a marker task); the tasks queue up
            in `scheduled` in the same order."""
            for task in tasks():
                scheduled.append(task)
                yield task.payload

        def flush():
            while open_blocks and open_blocks[0].remaining == 0:
                done = open_blocks.popleft()
                outputs.write(done.block, done.scores, done.spread)

        def collect(task, values):
            per_model = values()                                  # (models, rows)
            task.owner.scores[task.rows] = per_model.mean(axis=0)
            task.owner.spread[task.rows] = per_model.std(axis=0)
            task.owner.remaining -= 1
            bar.update(len(task.rows))

        open_blocks, scheduled = deque(), deque()
        n_windows = 0
        owners = scan.block_owners(n_processes)
        token = _process_token() if n_processes > 1 else None
        t_scoring = time.perf_counter()
        outputs = None
        try:
            if n_processes > 1:
                outputs = _Part(out_path, token, process)
            else:
                outputs = _Outputs(out_path, bigwig, std_bigwig, scan.chrom_order, store.chrom_sizes)
            share = int(np.asarray(scan.block_sizes)[owners == process].sum())
            with Progress(f"predict {ensemble.tf}", total=share, unit="bins",
                          enabled=progress) as bar, \
                    batch_workers(loader_processes if plan.path != "shared" else 0, layout) as workers:
                if plan.path == "shared":
                    batches = ordered_map(reader.read, payloads(), threads, max(prefetch, threads))
                elif workers is not None:
                    batches = workers.map([store], spec, layout, payloads())
                else:
                    batches = ordered_map(lambda rows: assembler.fill(empty_batch(layout), layout, rows),
                                          payloads(), threads, max(prefetch, threads))
                on_device = None    # previous (task, values): collected after the next dispatch
                for batch in batches:
                    task = scheduled.popleft()
                    if batch is None:       # a block without usable rows
                        flush()
                        continue
                    if plan.path == "shared":
                        values = ensemble.dispatch(batch, slots=task.payload.slots)
                    else:
                        values = ensemble.dispatch(batch, n_rows=len(task.rows))
                    n_windows += len(task.rows)
                    if on_device is not None:
                        collect(*on_device)
                    on_device = (task, values)
                    flush()
                if on_device is not None:
                    collect(*on_device)
                flush()
                assert not open_blocks, "every block is written once its batches are scored"
            outputs.finish()
            scoring_seconds = time.perf_counter() - t_scoring
            if n_processes > 1:     # process 0 merges every process's part, in file order
                _barrier("factornet predict: parts written")
                part, outputs = outputs, None
                if process == 0:
                    outputs = _Outputs(out_path, bigwig, std_bigwig, scan.chrom_order, store.chrom_sizes)
                    _merge_parts(bed_path, block_lines, owners, out_path, token, outputs)
                    outputs.finish()
                else:
                    part = None     # process 0 removes it once merged
            if outputs is not None:
                check_outputs()     # still new, or ours, after the long part
                outputs.commit()
            if n_processes > 1:
                if process == 0:
                    for index in range(n_processes):
                        _part_path(out_path, token, index).unlink()
                _barrier("factornet predict: output written")
        except BaseException:
            if outputs is not None:
                outputs.discard()
            if n_processes > 1 and process == 0 and token is not None:
                for index in range(n_processes):
                    _part_path(out_path, token, index).unlink(missing_ok=True)
            raise
    seconds = time.perf_counter() - t_start
    return PredictSummary(str(out_path), None if bigwig is None else str(bigwig), ensemble.tf,
                          scan.n_bins, n_windows, share - n_windows, batch_size, n_devices,
                          seconds, n_windows / max(scoring_seconds, 1e-9), plan, len(models),
                          None if std_bigwig is None else str(std_bigwig), n_processes, process,
                          normalization)


def _normalize(models, store, mode, profile):
    """Set the store's read-time signal normalisation for the models (drift.normalize_for_model;
    `profile`: the store's signal profile, or None); returns the mode applied."""
    from factornet_jax.drift import model_normalization, normalize_for_model
    if mode == "auto":
        recorded = sorted({model_normalization(m.model_dir) for m in models})
        if len(recorded) > 1:
            raise ConfigError(f"-m: the models were trained with different signal normalisations "
                              f"({', '.join(recorded)}); choose one with --signal-normalization")
        mode = recorded[0]
    return normalize_for_model(models[0], store, mode, profile)


def _check_settings(batch_size, threads, loader_processes, compute_dtype, model_dirs, std_bigwig,
                    block_lines):
    if batch_size is not None and batch_size < 1:
        raise ConfigError(f"--batch {batch_size}: must be at least 1")
    check_compute_settings(threads, loader_processes, compute_dtype)
    if block_lines < 1:
        raise ConfigError(f"--block-lines {block_lines}: must be at least 1")
    if not model_dirs:
        raise ConfigError("-m: give at least one model directory")
    if std_bigwig is not None and len(model_dirs) < 2:
        raise ConfigError("--std-bigwig: the spread of an ensemble needs two or more models "
                          "(-m MODEL MODEL ...)")


def format_summary(summary: PredictSummary) -> str:
    """The one-line summary the CLI prints."""
    extra = "".join(f" and {p}" for p in (summary.bigwig_path, summary.std_bigwig_path) if p)
    models = f", mean of {summary.n_models} models" if summary.n_models > 1 else ""
    return (f"predict: {summary.n_bins:,} bins of {summary.tf} ({summary.n_windows:,} windows "
            f"scored, {summary.n_excluded:,} excluded -> 0) in {summary.seconds:.1f} s, "
            f"{summary.windows_per_second:,.0f} windows/s on {summary.devices} device(s)"
            f"{f' of process {summary.process} of {summary.processes}' if summary.processes > 1 else ''}, "
            f"{summary.sharing.describe()}{models}"
            f"{', signal quantile-normalised' if summary.normalization == 'quantile' else ''}; wrote {summary.out_path}{extra}")

"""`train run`: train_and_evaluate(config) -> a model directory.

Data parallelism: the jit-compiled steps of `steps.py` over a 1-D ("data",) mesh of every
device (parameters and optimizer state replicated, the batch split along its first axis).

Randomness: one seed. Epoch e's examples come from Generator(seed, e); dropout keys are
fold_in(PRNGKey(seed), step). So a run resumed from its last checkpoint repeats exactly what
an uninterrupted run does.

Resume order (the checkpoint is written at the end of every epoch, atomically):
  1. model_dir/checkpoint/ holds params, optimizer state, step, epoch, best loss, patience
     counter and history; 2. the run continues with the next epoch; 3. best.npz / final.npz /
  history.json are always those of the last committed epoch.
"""
import json
import math
import os
import shutil
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from factornet_jax.train_config import TrainConfig
from factornet_jax.errors import ConfigError, FactorNetError, OutputError
from factornet_jax.outputs import (MODEL_DIR_ENTRIES, OutputKind, check_output, fsync_dir,
                                   protected_reason, replace_path, write_text_atomically)
from factornet_jax.progress import Progress
from factornet_jax.steps import TrainState, gather_rows, global_batch, make_steps

CHECKPOINT = "checkpoint"
STATE_FILE = "train_state.json"


@dataclass
class TrainResult:
    model_dir: str
    history: list
    best_epoch: int
    best_valid_loss: float
    stopped_early: bool
    seconds: float


# ------------------------------------------------------------------ inputs

def check_stores(config, stores, flag):
    for store in stores:
        for chrom_flag, chroms in (("-v", config.valid_chroms), ("-t", config.test_chroms)):
            unknown = [c for c in chroms if c not in store.chrom_sizes]
            if unknown:
                raise FactorNetError(f"{chrom_flag}: chromosome {unknown[0]} is not in {store.path} "
                                     f"(it has {', '.join(list(store.chrom_sizes)[:8])})")
        if config.factor is not None and config.factor not in store.tfs:
            raise FactorNetError(f"-f {config.factor}: not among the TFs of {store.path} "
                                 f"({', '.join(store.tfs) or 'none'}); check its chip.txt")
        if config.factor is None and store.tfs != stores[0].tfs:
            raise FactorNetError(f"{flag} {store.path}: multi-task training needs the same TFs in "
                                 f"every cell store ({store.tfs} vs {stores[0].tfs}); or pass -f TF")
        if config.factor is None and not store.tfs:
            raise FactorNetError(f"{flag} {store.path}: the store has no peaks to train on")
        if config.meta and not store.meta_names:
            raise FactorNetError(f"-m: {store.path} has no meta features (meta.txt at build time)")
        if config.gencode and not store.genome.has_annotations:
            raise FactorNetError(f"-g: the genome store {store.genome.path} has no GENCODE "
                                 "annotations; add them with `factornet preprocess build ... "
                                 "--annotations DIR`")


def model_config_for(config, stores, tasks):
    from factornet_jax.model import ModelConfig
    return ModelConfig(seq_len=config.seq_len, track_names=tuple(stores[0].track_names),
                       num_tasks=len(tasks), num_meta=len(stores[0].meta_names) if config.meta else 0,
                       use_gencode=config.gencode, kernels=config.kernels,
                       kernel_width=config.kernel_width, recurrent=config.recurrent,
                       dense=config.dense, dropout=config.dropout,
                       lstm_dropout=config.lstm_dropout, lstm_cell=config.lstm_cell,
                       signal_transform=config.signal_transform)


# ------------------------------------------------------------------ output dir

# -o DIR trains in DIR itself, so a killed run resumes when the same command runs again.
# -oc DIR trains in `.DIR.partial` beside it and replaces DIR (atomically, outputs.replace_path)
# only when the run has finished, so an earlier model in DIR stays complete and loadable until
# the new one is; a killed -oc run resumes from `.DIR.partial` when the same -oc command runs
# again. Nothing at all is written before the run's first checkpoint (end of epoch 1), and
# everything is checked before that: a run that fails early leaves no model dir behind.

def run_dir(config, overwrite) -> Path:
    """Where the run writes: the model dir itself (-o), or `.NAME.partial` beside it (-oc)."""
    out = Path(config.output)
    return out.parent / f".{out.name}.partial" if overwrite else out


def _run_state(folder):
    """The train_state.json of `folder` (a dict), or None when it has none we wrote."""
    try:
        state = json.loads((Path(folder) / STATE_FILE).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError):
        return None
    return state if isinstance(state, dict) and "finished" in state else None


def _has_checkpoint(folder):
    # checkpoint.old is the committed one if a kill fell between the two renames.
    return any((Path(folder) / d / "state.json").is_file() for d in (CHECKPOINT, CHECKPOINT + ".old"))


def _is_run_dir(path):
    from factornet_jax.modeldir import is_model_dir
    return is_model_dir(path) or _run_state(path) is not None


RUN_DIR = OutputKind("train run", "model directory", recognise=_is_run_dir,
                     entries=MODEL_DIR_ENTRIES | {STATE_FILE, CHECKPOINT, CHECKPOINT + ".tmp",
                                                  CHECKPOINT + ".old"})


def _check_known_settings(folder):
    """An unfinished run written by a newer factornet-jax (settings we do not know) is an error
    naming the setting, not a run with "other settings"."""
    from factornet_jax.modeldir import CONFIG_NAME
    try:
        train = json.loads((Path(folder) / CONFIG_NAME).read_text(encoding="utf-8")).get("train")
    except (OSError, UnicodeDecodeError, ValueError, AttributeError):
        return
    if isinstance(train, dict):
        try:
            TrainConfig.from_dict(train)
        except ConfigError as err:
            raise OutputError(f"{Path(folder) / CONFIG_NAME}: {err}") from None


def prepare_output(config, overwrite, inputs=()):
    """Check the model dir before anything is written (process 0 only); True when an unfinished
    run of these settings resumes from its checkpoint. Writes nothing; raises OutputError for
    what may not be written or replaced (outputs.check_output, and the run rules above)."""
    out, work = Path(config.output), run_dir(config, overwrite)
    flag = "-oc" if overwrite else "-o"
    if overwrite:
        check_output(out, True, RUN_DIR, inputs)        # absent, empty, or a model dir of ours
        if os.path.lexists(work):
            check_output(work, True, RUN_DIR, inputs)   # a partial of ours (killed -oc run)
    reason = protected_reason(out, inputs)
    state = _run_state(work) if work.is_dir() and not work.is_symlink() and not reason else None
    if state is None:
        if not overwrite:
            check_output(out, False, RUN_DIR, inputs)   # new or empty, or refused
        return False
    _check_known_settings(work)
    if state.get("run") == config.run_identity():
        if state.get("finished") and not overwrite:
            raise OutputError(f"-o {out}: holds a finished run; use -oc {out} to replace it, or "
                              "give a new path")
        return _has_checkpoint(work)
    if _has_checkpoint(work) and not overwrite:
        raise OutputError(f"{flag} {out}: holds an unfinished run with other settings; repeat its "
                          f"command to resume it, or use -oc {out} to replace it")
    if state.get("finished") and not overwrite:
        raise OutputError(f"-o {out}: holds a finished run; use -oc {out} to replace it, or give "
                          "a new path")
    return False     # no checkpoint (or an -oc partial): nothing to keep, the run starts afresh


def open_run_dir(work, fresh):
    """The run's first write (process 0): create `work`, emptied first when the run starts
    afresh (prepare_output found it absent, empty or a run of ours that is not resumed)."""
    work = Path(work)
    if fresh and work.exists():
        if (any(work.iterdir()) and not _is_run_dir(work)) or RUN_DIR.foreign_entries(work):
            raise OutputError(f"{work}: other files appeared in the model directory during the "
                              "first epoch; move them away and run the command again")
        shutil.rmtree(work)
    work.mkdir(parents=True, exist_ok=True)


def finish_run_dir(config, work, inputs=()):
    """-oc: the finished run in `work` replaces the model dir (process 0)."""
    out = Path(config.output)
    if Path(work) != out:
        check_output(out, True, RUN_DIR, inputs)        # still ours (or absent) after the run
        replace_path(work, out)


def _write_json(path, data):
    write_text_atomically(path, json.dumps(data, indent=1) + "\n")


def save_checkpoint(model_dir, state, record):
    """Commit params + optimizer state + loop record atomically (tmp dir, then rename).

    Not `outputs.replace_path`: the resume code (`_has_checkpoint`, `load_checkpoint`) knows
    exactly these names: `checkpoint.tmp` is filled, `checkpoint` is set aside as
    `checkpoint.old`, then `checkpoint.tmp` becomes `checkpoint`; a kill between the two renames
    leaves `checkpoint.old` as the committed one (no rollback, no RENAME_EXCHANGE)."""
    import jax

    from factornet_jax.modeldir import save_params
    final = Path(model_dir) / CHECKPOINT
    tmp = Path(model_dir) / (CHECKPOINT + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    host = jax.device_get(state)
    save_params(tmp / "params.npz", host.params)
    leaves = jax.tree_util.tree_leaves(host.opt_state)
    save_params(tmp / "opt_state.npz", {f"leaf{i:05d}": np.asarray(x) for i, x in enumerate(leaves)})
    _write_json(tmp / "state.json", {**record, "step": int(host.step)})
    fsync_dir(tmp)
    old = Path(model_dir) / (CHECKPOINT + ".old")
    shutil.rmtree(old, ignore_errors=True)
    if final.exists():
        os.rename(final, old)
    os.rename(tmp, final)
    fsync_dir(Path(model_dir))
    shutil.rmtree(old, ignore_errors=True)


def load_checkpoint(model_dir, template):
    """-> (TrainState with host arrays shaped like `template`, record dict)."""
    import jax

    from factornet_jax.modeldir import load_params
    folder = Path(model_dir) / CHECKPOINT
    if not (folder / "state.json").is_file() and (Path(model_dir) / (CHECKPOINT + ".old")).is_dir():
        folder = Path(model_dir) / (CHECKPOINT + ".old")   # killed between the two renames
    record = json.loads((folder / "state.json").read_text())
    params = load_params(folder / "params.npz")
    flat = load_params(folder / "opt_state.npz")
    leaves = [flat[k] for k in sorted(flat)]
    treedef = jax.tree_util.tree_structure(template.opt_state)
    opt_state = jax.tree_util.tree_unflatten(treedef, leaves)
    return TrainState(params, opt_state, np.int32(record["step"])), record


# ------------------------------------------------------------------ metrics of an epoch

def validation_metrics(probs, labels, weights):
    """Loss, accuracy and mean per-task auPRC over the real (weight 1) rows."""
    from factornet_jax.metrics import auprc
    keep = weights > 0
    p = np.clip(probs[keep].astype(np.float64), 1e-7, 1 - 1e-7)
    y = labels[keep]
    loss = float(-(y * np.log(p) + (1 - y) * np.log(1 - p)).mean())
    acc = float(((p > 0.5) == (y > 0.5)).mean())
    scores = [auprc(y[:, t], p[:, t]) for t in range(y.shape[1]) if 0 < y[:, t].sum() < len(y)]
    return {"valid_loss": loss, "valid_acc": acc,
            "valid_auprc": float(np.mean(scores)) if scores else float("nan")}


# ------------------------------------------------------------------ early stopping

def early_stopping_update(record, valid_loss, epoch, patience):
    """Keras 1 EarlyStopping + ModelCheckpoint(save_best_only) on the loop `record` (updated).

    A lower validation loss is an improvement (wait = 0); otherwise wait grows by one, and
    training stops once wait exceeds `patience`: after patience + 1 epochs without
    improvement (Keras 1 checks `wait >= patience` before incrementing). Returns
    (improved, stop).
    """
    best = record["best_valid_loss"]
    improved = best is None or valid_loss < best
    if improved:
        record.update(best_valid_loss=valid_loss, best_epoch=epoch, wait=0)
    else:
        record["wait"] += 1
    return improved, record["wait"] > patience


# ------------------------------------------------------------------ the loop

def train_and_evaluate(config: TrainConfig, overwrite=False, log=print, on_epoch_end=None):
    """Train a FactorNet model as `config` says; writes and returns the model dir's results.

    `on_epoch_end(entry, params)`, when given, is called after each epoch with its history
    entry (dict) and the parameters (host arrays) it ended with; benchmarks/learning_curves.py
    scores a held-out cell line with it.
    """
    import jax

    from factornet_jax import modeldir
    from factornet_jax.batch_processes import batch_workers
    from factornet_jax.model import check_lstm_backend, init_params, make_model
    from factornet_jax.optimizer import KERAS1_ADAM, keras1_adam
    from factornet_jax.batches import BatchAssembler, BatchLoader, BatchSpec, TrainingData
    from factornet_jax.reader import open_stores

    t_start = time.perf_counter()
    if config.recurrent > 0:
        check_lstm_backend(config.lstm_backend, config.lstm_cell)
        if config.lstm_backend == "cudnn" and config.lstm_dropout > 0:
            raise ConfigError("--lstm cudnn cannot apply the BiLSTM's input/recurrent dropout; "
                              "train with --lstm scan, or add --lstm-dropout 0")
    stores = open_stores(config.inputs, config.stores_dir, "-i")
    valid_stores = stores
    try:
        valid_stores = open_stores(config.valid_inputs, config.stores_dir, "-vi") if config.valid_inputs else stores
        if valid_stores is not stores:
            for what, attr, needed in (("track names", "track_names", True),
                                       ("TFs", "tfs", config.factor is None),
                                       ("meta names", "meta_names", config.meta)):
                if needed and getattr(valid_stores[0], attr) != getattr(stores[0], attr):
                    raise FactorNetError(f"-vi: {what} {getattr(valid_stores[0], attr)} differ from the "
                                         f"training stores' {getattr(stores[0], attr)}")
        check_stores(config, stores, "-i")
        check_stores(config, valid_stores, "-vi")
        # the training cells' signal, as stored (predict's drift check; the reference levels
        # of --signal-normalization quantile, which maps every store read from here on)
        from factornet_jax.drift import (normalize_stores, reference_levels, signal_profile,
                                         store_name, write_profiles)
        profiles = {store_name(s): signal_profile(s) for s in stores}
        if config.signal_normalization == "quantile":
            reference = reference_levels(profiles)
            extra = {store_name(s): signal_profile(s) for s in valid_stores
                     if store_name(s) not in profiles}
            normalize_stores(stores, profiles, reference)
            if valid_stores is not stores:
                normalize_stores(valid_stores, {**profiles, **extra}, reference)
        held_out = set(config.valid_chroms) | set(config.test_chroms)
        train_chroms = [c for c in stores[0].chrom_sizes if c not in held_out]
        if not train_chroms:
            raise FactorNetError("-v/-t leave no chromosome to train on")

        n_devices = jax.device_count()
        if config.batch_size % n_devices:
            raise ConfigError(f"--batch-size {config.batch_size} must be a multiple of the device "
                              f"count ({n_devices})")
        n_proc, pid = jax.process_count(), jax.process_index()
        is_writer = pid == 0
        # prepare_output only checks: the first write comes at the end of epoch 1, after everything
        # below (examples, model, motifs) has been checked too.
        inputs = [*config.inputs, *config.valid_inputs, config.motif_db,
                  *{p for s in [*stores, *valid_stores] for p in (s.path, s.genome.path)}]
        resume = prepare_output(config, overwrite, inputs) if is_writer else False
        if n_proc > 1:  # every process resumes (or not) as process 0 decided
            from jax.experimental import multihost_utils
            resume = bool(multihost_utils.broadcast_one_to_all(np.int32(resume)))

        data = TrainingData(stores, train_chroms, config.seq_len, config.factor, config.negatives, config.seed,
                            shift=config.shift)
        valid_data = TrainingData(valid_stores, list(config.valid_chroms), config.seq_len, config.factor,
                                  config.negatives, config.seed, role="validation", shift=config.shift)
        tasks = data.tasks
        valid_examples = valid_data.validation_examples()
        model_cfg = model_config_for(config, stores, tasks)
        features = ["bigwig"] + (["meta"] if config.meta else []) + (["gencode"] if config.gencode else [])
        model_dir = run_dir(config, overwrite)

        def start_model_dir():
            """The first write of the run (process 0, at its first checkpoint): config.json first,
            so the folder is recognisably ours from its first file."""
            open_run_dir(model_dir, fresh=not resume)
            modeldir.write_config(model_dir, modeldir.make_config(
                model_cfg, tasks, stores[0].track_names, stores[0].meta_names if config.meta else (),
                features, train={**config.to_dict(), "model_type": config.model_type},
                stores=[{"path": s.path, "fingerprint": s.genome.fingerprint} for s in stores]))
            modeldir.write_factornet_files(model_dir, tasks, stores[0].track_names,
                                           stores[0].meta_names if config.meta else (), features)
            _write_json(model_dir / STATE_FILE, {"finished": False, "run": config.run_identity()})

        model = make_model(model_cfg, config.lstm_backend)
        params = init_params(model_cfg, jax.random.PRNGKey(config.seed))
        if config.motif:
            params = _inject_motifs(params, config, tasks, log)
        tx = keras1_adam(config.learning_rate, **KERAS1_ADAM)
        mesh = jax.make_mesh((n_devices,), ("data",), axis_types=(jax.sharding.AxisType.Auto,))
        train_step, eval_step, data_sharding, replicated = make_steps(model, tx, mesh, config.compute_dtype)
        started = resume        # the model dir exists already (nothing is written before epoch 1 ends)
        state = TrainState(params, tx.init(params), np.int32(0))
        record = {"epoch": 0, "best_valid_loss": None, "best_epoch": None, "wait": 0, "history": []}
        if resume:
            state, record = load_checkpoint(model_dir, state)
            log(f"resuming {model_dir} after epoch {record['epoch']}")
        state = jax.device_put(state, replicated)
        base_key = jax.device_put(jax.random.PRNGKey(config.seed), replicated)

        per_proc = config.batch_size // n_proc
        rows = slice(pid * per_proc, (pid + 1) * per_proc)
        spec = BatchSpec(config.seq_len, config.meta, config.gencode)
        loader_args = dict(threads=config.loader_threads, prefetch=config.prefetch, rows=rows)
        layout = BatchAssembler(stores, spec).layout(per_proc, len(tasks))
        with batch_workers(config.loader_processes, layout, config.prefetch) as workers:
            loader_args["workers"] = workers
            history = record["history"]
            # A run resumed after the checkpoint of its early-stopping epoch does not train on.
            stopped_early = record["wait"] > config.patience
            for epoch in range(config.epochs if stopped_early else record["epoch"], config.epochs):
                t0 = time.perf_counter()
                examples = data.epoch_examples(epoch)
                loader = BatchLoader(stores, examples, config.batch_size, spec,
                                     max_batches=config.max_steps_per_epoch, **loader_args)
                losses = []
                with Progress(f"epoch {epoch + 1}/{config.epochs}", total=len(loader), unit="batch",
                              enabled=None if is_writer else False) as bar:
                    for batch in loader:
                        state, loss = train_step(state, global_batch(batch, data_sharding), base_key)
                        losses.append(loss)
                        if len(losses) % 10 == 0 or len(losses) == len(loader):
                            # show the loss of 10 steps ago: it is computed already, so reading it
                            # never makes the host wait for the device
                            bar.update(10 if len(losses) % 10 == 0 else len(losses) % 10,
                                       postfix=f"loss {float(losses[max(len(losses) - 11, 0)]):.4f}")
                train_loss = float(np.mean(jax.device_get(losses)))
                train_seconds = time.perf_counter() - t0
                n_samples = min(len(loader) * config.batch_size, len(examples))
                if not math.isfinite(train_loss):
                    raise FactorNetError(f"training loss became {train_loss} in epoch {epoch + 1}; the last "
                                         f"good checkpoint is kept in {model_dir}; lower -lr and run with -oc")
                probs, labels, weights = _predict_examples(
                    eval_step, state.params, valid_stores, valid_data.epoch_validation(valid_examples, epoch),
                    config.batch_size, spec, loader_args, data_sharding)
                metrics = validation_metrics(probs, labels, weights)
                if not math.isfinite(metrics["valid_loss"]):
                    raise FactorNetError(f"validation loss became {metrics['valid_loss']} in epoch {epoch + 1}; "
                                         f"the last good checkpoint is kept in {model_dir}; lower -lr and "
                                         "run with -oc")
                metrics = {k: (v if math.isfinite(v) else None) for k, v in metrics.items()}  # JSON null
                entry = {"epoch": epoch + 1, "train_loss": train_loss, **metrics,
                         "seconds": round(time.perf_counter() - t0, 3),
                         "samples_per_second": round(n_samples / max(train_seconds, 1e-9), 1),
                         "train_samples": n_samples}
                history.append(entry)
                improved, stop = early_stopping_update(record, metrics["valid_loss"], epoch + 1, config.patience)
                record["epoch"] = epoch + 1
                if is_writer:
                    if not started:
                        start_model_dir()
                        started = True
                    if improved:
                        modeldir.save_params(model_dir / "best.npz", jax.device_get(state.params))
                    modeldir.write_history(model_dir, history)
                    save_checkpoint(model_dir, state, record)
                auprc = metrics["valid_auprc"]
                log(f"epoch {epoch + 1}: train loss {train_loss:.4f}, valid loss {metrics['valid_loss']:.4f}, "
                    f"valid auPRC {'n/a' if auprc is None else f'{auprc:.3f}'}, "
                    f"{entry['samples_per_second']:.0f} samples/s"
                    + (" *" if improved else ""))
                if on_epoch_end is not None:
                    on_epoch_end(entry, jax.device_get(state.params))
                if stop:
                    stopped_early = True
                    break
            # calibration.json: the best parameters on the validation ladder (`factornet call`)
            from factornet_jax.calibration import record_calibration
            record_calibration(model_dir, config, valid_stores, tasks, eval_step, spec, rows,
                               data_sharding, is_writer, log)
            if is_writer:   # signal_profile.json: the training cells' signal, for predict's drift check
                write_profiles(model_dir, profiles, config.signal_normalization)
        if is_writer:
            modeldir.save_params(model_dir / "final.npz", jax.device_get(state.params))
            _write_json(model_dir / STATE_FILE, {"finished": True, "run": config.run_identity()})
            finish_run_dir(config, model_dir, inputs)
        return TrainResult(str(config.output), history, record["best_epoch"], record["best_valid_loss"],
                           stopped_early, time.perf_counter() - t_start)
    finally:   # the stores' open shard files and decode threads
        for store in {id(s): s for s in [*stores, *valid_stores]}.values():
            store.close()


def _predict_examples(eval_step, params, stores, examples, batch_size, spec, loader_args, sharding):
    """Probabilities (N, T) for rows of `examples`, with their labels and weights."""
    from factornet_jax.batches import BatchLoader
    loader = BatchLoader(stores, examples, batch_size, spec, **loader_args)
    outputs = []
    for batch in loader:
        probs = eval_step(params, global_batch(batch, sharding))
        outputs.append(probs)
    probs = np.concatenate([gather_rows(p) for p in outputs])[: len(examples)]
    return probs, examples.labels.astype(np.float32), np.ones(len(examples), np.float32)


def _inject_motifs(params, config, tasks, log):
    """-mo: each TF's canonical motif and its reverse complement into a pair of kernels (the
    TF of a single-task model: kernels 0 and 1; multi-task: TF t into 2t, 2t + 1 while kernels
    last). The motif is the one FactorNet would take (`meme.factornet_motif`); a TF without
    one is a warning, not an error (FactorNet skipped it silently)."""
    from factornet_jax.meme import factornet_motif, find_motif, read_meme
    from factornet_jax.model import inject_motif
    from factornet_jax.reference_files import default_motif_db
    path = config.motif_db or str(default_motif_db())
    motifs = read_meme(path)
    n_kernels = np.shape(params["conv"]["kernel"])[-1]
    for t, tf in enumerate(tasks[: n_kernels // 2]):
        motif = factornet_motif(motifs, tf)
        if motif is None:
            log(f"warning: -mo: no motif named {tf} (last word of a MOTIF line) in {path}; kernels "
                f"{2 * t}, {2 * t + 1} left random; pass --motif-db MEME", file=sys.stderr)
            continue
        log(f"-mo: kernels {2 * t} and {2 * t + 1} start from motif {motif.name} of {tf} and its "
            "reverse complement", file=sys.stderr)
        params = inject_motif(params, motif.pwm, first=2 * t)
    first = 2 * len(tasks)
    for name in config.motif_extra:   # --motif-extra: the next kernel pairs, in the order given
        if first + 2 > n_kernels:
            raise ConfigError(f"--motif-extra {name}: no kernel pair left (-k {n_kernels} holds "
                              f"{n_kernels // 2} pairs, {len(tasks)} taken by the TFs); raise -k")
        try:
            motif = find_motif(motifs, name)
        except FactorNetError:
            raise ConfigError(f"--motif-extra {name}: no such motif in {path}; give a motif name "
                              "or alt name of that MEME file (--motif-db)") from None
        log(f"-mo: kernels {first} and {first + 1} start from motif {motif.name} (--motif-extra "
            f"{name}) and its reverse complement", file=sys.stderr)
        params = inject_motif(params, motif.pwm, first=first)
        first += 2
    return params


"""`train run` end to end on the toy dataset of test_batches.py (DGF high inside the peaks).

Every run here uses a tiny model (L 200, w 20, k 4, r 4, d 8, batch 8, a few steps). Runs whose
compiled programs are identical (same shapes and learning rate) share a persistent compilation
cache set up for this module, so only each distinct architecture pays for XLA compilation.
Model outputs are checked against an independent path: windows read straight from the store,
meta values and GENCODE flags from the oracle, scored with modeldir.load_model(...).predict.
"""
import dataclasses
import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from test_batches import TOY_META, TOY_TFS, build_toy_dataset, oracle_gencode

REPO = Path(__file__).resolve().parents[1]
TIMING_KEYS = ("seconds", "samples_per_second")
CACHE_OPTIONS = {"jax_compilation_cache_dir": None, "jax_persistent_cache_min_compile_time_secs": 0,
                 "jax_persistent_cache_min_entry_size_bytes": 0}


@pytest.fixture(scope="module", autouse=True)
def compile_cache(tmp_path_factory):
    """A persistent compilation cache for this module only (restored afterwards)."""
    import jax
    from jax.experimental.compilation_cache import compilation_cache
    path = str(tmp_path_factory.mktemp("jax_cache"))
    old = {key: getattr(jax.config, key) for key in CACHE_OPTIONS}
    for key, value in CACHE_OPTIONS.items():
        jax.config.update(key, path if value is None else value)
    compilation_cache.reset_cache()
    yield path
    for key, value in old.items():
        jax.config.update(key, value)
    compilation_cache.reset_cache()


@pytest.fixture(scope="module")
def toy(tmp_path_factory):
    return build_toy_dataset(tmp_path_factory.mktemp("toy_training"))


def make_config(toy, output, **changes):
    from factornet_jax.train_config import TrainConfig
    base = TrainConfig(inputs=tuple(str(p) for p in toy["stores"]), output=str(output),
                       valid_chroms=("chr11",), test_chroms=("chr1",), epochs=2, learning_rate=0.01,
                       seq_len=200, kernel_width=20, kernels=4, recurrent=4, dense=8, dropout=0.1,
                       seed=7, batch_size=8, loader_threads=2, max_steps_per_epoch=3)
    return dataclasses.replace(base, **changes)


def run(config, overwrite=False):
    """train_and_evaluate with a spy on BatchLoader -> (result, log lines, train examples,
    validation examples of the last epoch)."""
    from factornet_jax import batches
    from factornet_jax.training import train_and_evaluate
    seen = {"train": [], "valid": []}

    class SpyLoader(batches.BatchLoader):
        def __init__(self, stores, examples, batch_size, spec, **kwargs):
            super().__init__(stores, examples, batch_size, spec, **kwargs)
            seen["train" if "max_batches" in kwargs else "valid"].append(examples)

    lines = []
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(batches, "BatchLoader", SpyLoader)
        result = train_and_evaluate(config, overwrite=overwrite,
                                    log=lambda *a, **k: lines.append(" ".join(map(str, a))))
    return result, lines, seen["train"], (seen["valid"][-1] if seen["valid"] else None)


def strip_timing(history):
    return [{k: v for k, v in entry.items() if k not in TIMING_KEYS} for entry in history]


def load_npz(path):
    with np.load(path, allow_pickle=False) as data:
        return {k: data[k] for k in data.files}


def assert_npz_equal(a, b):
    a, b = load_npz(a), load_npz(b)
    assert sorted(a) == sorted(b)
    for key in a:
        np.testing.assert_array_equal(a[key], b[key], err_msg=key)


def oracle_inputs(toy, examples, seq_len, meta, gencode):
    """Model inputs of validation rows, read straight from the stores and the oracle."""
    from factornet_jax.reader import open_cell_store
    stores = [open_cell_store(p) for p in toy["stores"]]
    n = len(examples)
    onehot = np.zeros((n, seq_len, 4), np.uint8)
    signal = np.zeros((n, seq_len, 2), np.float32)
    for k, store in enumerate(stores):
        sel = np.flatnonzero(examples.cell == k)
        if len(sel):
            starts = examples.bin_start[sel] + 100 - seq_len // 2
            onehot[sel], signal[sel] = store.fetch_batch(examples.chrom[sel], starts, seq_len)
    meta_rows = np.array([TOY_META[stores[c].name] for c in examples.cell], np.float32) if meta else None
    flags = oracle_gencode(toy, examples.chrom, examples.bin_start) if gencode else None
    return onehot, signal, meta_rows, flags


def bce(probs, labels):
    p = np.clip(probs.astype(np.float64), 1e-7, 1 - 1e-7)
    return float(-(labels * np.log(p) + (1 - labels) * np.log(1 - p)).mean())


def check_model_dir(toy, model_dir, config, result, valid_examples):
    """Files, config.json and a reload whose predictions reproduce the last validation loss."""
    from factornet_jax import modeldir
    out = Path(model_dir)
    tasks = [config.factor] if config.factor else list(TOY_TFS)
    for name in ("config.json", "best.npz", "final.npz", "history.json", "chip.txt", "feature.txt",
                 "bigwig.txt"):
        assert (out / name).is_file(), name
    assert (out / "meta.txt").is_file() == config.meta
    features = ["bigwig"] + ["meta"] * config.meta + ["gencode"] * config.gencode
    assert (out / "chip.txt").read_text().split() == tasks
    assert (out / "bigwig.txt").read_text().split() == ["Unique35", "DGF"]
    assert (out / "feature.txt").read_text().split() == features
    if config.meta:
        assert (out / "meta.txt").read_text().split() == ["GEPC0", "GEPC1", "GEPC2"]
    cfg = json.loads((out / "config.json").read_text())
    assert cfg["tfs"] == tasks and cfg["features"] == features
    assert cfg["train"]["model_type"] == config.model_type
    assert cfg["model"]["num_meta"] == (3 if config.meta else 0)
    assert cfg["model"]["use_gencode"] == config.gencode
    assert cfg["model"]["recurrent"] == config.recurrent
    history = json.loads((out / "history.json").read_text())
    assert strip_timing(history) == strip_timing(result.history)
    assert [h["epoch"] for h in history] == list(range(1, config.epochs + 1))
    final = modeldir.load_model(out, "final")
    assert final.tfs == tasks
    onehot, signal, meta, flags = oracle_inputs(toy, valid_examples, config.seq_len, config.meta,
                                                config.gencode)
    probs = final.predict(onehot, signal, meta, flags, batch_size=256)
    assert probs.shape == (len(valid_examples), len(tasks)) and probs.dtype == np.float32
    assert ((probs > 0) & (probs < 1)).all()
    assert bce(probs, valid_examples.labels) == pytest.approx(history[-1]["valid_loss"], rel=1e-4)
    best = modeldir.load_model(out)
    assert best.params_path.name == "best.npz"
    assert best.predict(onehot[:5], signal[:5], None if meta is None else meta[:5],
                        None if flags is None else flags[:5]).shape == (5, len(tasks))


@pytest.fixture(scope="module")
def base_run(toy, tmp_path_factory):
    config = make_config(toy, tmp_path_factory.mktemp("runs") / "base")
    result, lines, train, valid = run(config)
    return {"config": config, "result": result, "dir": Path(config.output), "lines": lines,
            "train": train, "valid": valid}


# ------------------------------------------------------------------ model types

def test_multitask_run_writes_a_loadable_model_dir(toy, base_run):
    config, result = base_run["config"], base_run["result"]
    assert config.model_type == "multiTask"
    assert len(result.history) == 2 and not result.stopped_early
    check_model_dir(toy, base_run["dir"], config, result, base_run["valid"])
    state = json.loads((base_run["dir"] / "train_state.json").read_text())
    assert state["finished"] is True
    entry = result.history[0]
    assert {"epoch", "train_loss", "valid_loss", "valid_acc", "valid_auprc", "train_samples"} <= set(entry)
    assert entry["train_samples"] == config.batch_size * config.max_steps_per_epoch


def test_training_cells_signal_profile_is_recorded(toy, base_run):
    """signal_profile.json: each training store's profile, as predict's drift check reads it."""
    from factornet_jax.drift import read_profiles, signal_profile
    from factornet_jax.reader import open_cell_store
    profiles = read_profiles(base_run["dir"])
    stores = [Path(p) for p in base_run["config"].inputs]
    assert sorted(profiles) == sorted(p.name.removesuffix(".zarr") for p in stores)
    with open_cell_store(stores[0]) as store:
        assert profiles[stores[0].name.removesuffix(".zarr")] == signal_profile(store)


def test_held_out_chromosomes_are_never_trained_on(base_run):
    train, valid = base_run["train"], base_run["valid"]
    assert len(train) == 2                                   # one loader per epoch
    for examples in train:
        assert set(examples.chrom) == {"chr2"}               # chr1 is -t, chr11 is -v
        assert set(examples.cell) == {0, 1}
    assert set(valid.chrom) == {"chr11"}
    assert not np.array_equal(train[0].bin_start, train[1].bin_start)   # fresh data per epoch


@pytest.mark.parametrize("changes", [
    dict(factor="TFA", recurrent=0),
    dict(factor="TFB", meta=True),
    dict(factor="TFA", gencode=True, recurrent=-3),
    dict(factor="TFB", meta=True, gencode=True, negatives=2),
], ids=["onePeak-r0", "meta", "GENCODE-r-3", "metaGENCODE-n2"])
def test_model_types_train_and_reload(toy, tmp_path, changes):
    """The four single-task types (multiTask is base_run); -r 0 (no BiLSTM) and -r < 0 (global
    max-pool) ride along to keep the number of compiled architectures down."""
    config = make_config(toy, tmp_path / "model", epochs=1, max_steps_per_epoch=2, **changes)
    result, _, train, valid = run(config)
    assert len(result.history) == 1 and np.isfinite(result.history[0]["train_loss"])
    check_model_dir(toy, tmp_path / "model", config, result, valid)
    assert set(train[0].chrom) == {"chr2"} and set(valid.chrom) == {"chr11"}
    if config.factor:
        positives = (train[0].labels[:, 0] == 1).sum()
        assert len(train[0]) == positives * (1 + config.negatives)


def test_loss_falls_on_learnable_toy_task(toy, tmp_path):
    """DGF is high exactly inside the peaks: a few dozen steps must beat a constant predictor."""
    config = make_config(toy, tmp_path / "toy", epochs=4, max_steps_per_epoch=10)
    result, _, _, valid = run(config)
    history = result.history
    rate = valid.labels.mean(axis=0)
    constant = float(np.mean(-(rate * np.log(rate) + (1 - rate) * np.log(1 - rate))))
    assert history[-1]["train_loss"] < history[0]["train_loss"] - 0.1
    assert history[-1]["valid_loss"] < 0.8 * constant
    assert history[-1]["valid_auprc"] > rate.mean() + 0.2


# ------------------------------------------------------------------ determinism and resume

def test_same_seed_gives_identical_history_and_weights(toy, base_run, tmp_path):
    # batches assembled in worker processes instead of threads: the run is the same
    config = make_config(toy, tmp_path / "again", loader_processes=2)
    result, *_ = run(config)
    assert strip_timing(result.history) == strip_timing(base_run["result"].history)
    assert_npz_equal(tmp_path / "again" / "final.npz", base_run["dir"] / "final.npz")
    assert_npz_equal(tmp_path / "again" / "best.npz", base_run["dir"] / "best.npz")
    other, *_ = run(make_config(toy, tmp_path / "other_seed", seed=8))
    assert other.history[0]["train_loss"] != result.history[0]["train_loss"]


class Killed(Exception):
    """Stands for SIGKILL right after a checkpoint was committed."""


def kill_after_checkpoint(patch, epoch):
    from factornet_jax import training
    save = training.save_checkpoint

    def save_then_die(model_dir, state, record):
        save(model_dir, state, record)
        if record["epoch"] == epoch:
            raise Killed

    patch.setattr(training, "save_checkpoint", save_then_die)


@pytest.mark.parametrize("kill_epoch", [1, 2])
def test_resume_after_kill_equals_uninterrupted_run(toy, base_run, tmp_path, kill_epoch):
    config = make_config(toy, tmp_path / "resumed")
    with pytest.MonkeyPatch.context() as patch:
        kill_after_checkpoint(patch, kill_epoch)
        with pytest.raises(Killed):
            run(config)
    out = tmp_path / "resumed"
    assert not (out / "final.npz").exists()
    assert len(json.loads((out / "history.json").read_text())) == kill_epoch
    result, lines, train, _ = run(config)                   # the same command again
    assert any(f"after epoch {kill_epoch}" in line for line in lines), lines
    assert len(train) == 2 - kill_epoch                      # only the missing epochs ran
    assert strip_timing(result.history) == strip_timing(base_run["result"].history)
    written = json.loads((out / "history.json").read_text())
    assert strip_timing(written) == strip_timing(base_run["result"].history)
    assert_npz_equal(out / "final.npz", base_run["dir"] / "final.npz")
    assert_npz_equal(out / "best.npz", base_run["dir"] / "best.npz")
    assert result.best_epoch == base_run["result"].best_epoch


def test_resume_when_killed_between_checkpoint_renames(toy, base_run, tmp_path):
    """save_checkpoint renames checkpoint -> checkpoint.old, then checkpoint.tmp -> checkpoint; a
    kill between the two (here while committing epoch 2) leaves checkpoint.old (epoch 1) and
    checkpoint.tmp, which load_checkpoint is written to accept: the rerun must resume."""
    import os
    config = make_config(toy, tmp_path / "renames")
    rename, commits = os.rename, []

    def rename_then_die(src, dst):
        if Path(src).name == "checkpoint.tmp":
            commits.append(dst)
            if len(commits) == 2:
                raise Killed
        rename(src, dst)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(os, "rename", rename_then_die)
        with pytest.raises(Killed):
            run(config)
    out = tmp_path / "renames"
    assert not (out / "checkpoint").exists() and (out / "checkpoint.old" / "state.json").is_file()
    result, lines, train, _ = run(config)
    assert strip_timing(result.history) == strip_timing(base_run["result"].history)
    assert_npz_equal(out / "final.npz", base_run["dir"] / "final.npz")
    assert any("after epoch 1" in line for line in lines), \
        f"the run restarted from scratch instead of resuming: {lines}"
    assert len(train) == 1


def _fake_metrics(losses):
    """validation_metrics stand-in whose valid loss follows `losses` call by call."""
    calls = []

    def metrics(probs, labels, weights):
        calls.append(1)
        return {"valid_loss": losses[len(calls) - 1], "valid_acc": 0.5, "valid_auprc": 0.5}
    return metrics


def test_resume_after_early_stop_checkpoint_does_not_train_on(toy, tmp_path):
    """patience 1, valid loss 0.5, 0.6, 0.7: Keras 1 stops after patience + 1 = 2 epochs without
    improvement, after epoch 3. Killed after epoch 3's checkpoint (before final.npz), the
    repeated command must not train a fourth epoch."""
    from factornet_jax import training
    straight = make_config(toy, tmp_path / "straight", epochs=5, patience=1)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(training, "validation_metrics", _fake_metrics([0.5, 0.6, 0.7, 0.4, 0.3]))
        expected, *_ = run(straight)
    assert expected.stopped_early and len(expected.history) == 3
    config = make_config(toy, tmp_path / "killed", epochs=5, patience=1)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(training, "validation_metrics", _fake_metrics([0.5, 0.6, 0.7, 0.4, 0.3]))
        kill_after_checkpoint(patch, 3)
        with pytest.raises(Killed):
            run(config)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(training, "validation_metrics", _fake_metrics([0.4, 0.3]))
        result, _, train, _ = run(config)
    assert len(train) == 0, "a finished (early-stopped) run trained more epochs after resuming"
    assert len(result.history) == 3 and result.stopped_early
    assert_npz_equal(tmp_path / "killed" / "final.npz", tmp_path / "straight" / "final.npz")


# ------------------------------------------------------------------ devices

SUBPROCESS_RUN = """
import json, sys
from factornet_jax.train_config import TrainConfig
from factornet_jax.training import train_and_evaluate
import jax
assert jax.device_count() == 1, jax.devices()
result = train_and_evaluate(TrainConfig.from_dict(json.loads(sys.argv[1])), log=lambda *a, **k: None)
print(json.dumps(result.history))
"""


def test_one_device_and_four_devices_give_the_same_loss_curve(toy, base_run, tmp_path, compile_cache):
    import jax
    if jax.device_count() != 4:
        pytest.skip("needs the 4 fake CPU devices of conftest.py")
    config = dataclasses.replace(base_run["config"], output=str(tmp_path / "one_device"))
    env = {**__import__("os").environ, "XLA_FLAGS": "--xla_force_host_platform_device_count=1",
           "JAX_PLATFORMS": "cpu", "JAX_COMPILATION_CACHE_DIR": compile_cache,
           "JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS": "0"}
    proc = subprocess.run([sys.executable, "-c", SUBPROCESS_RUN, json.dumps(config.to_dict())],
                          capture_output=True, text=True, env=env, cwd=REPO, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    one = json.loads(proc.stdout.strip().splitlines()[-1])
    four = base_run["result"].history
    assert len(one) == len(four) == 2
    for a, b in zip(one, four):
        for key in ("train_loss", "valid_loss"):
            assert a[key] == pytest.approx(b[key], rel=1e-5), (key, a, b)


# ------------------------------------------------------------------ output dir and CLI

def cli(argv):
    from factornet_jax.cli import build_parser, run_command
    return run_command(build_parser(only=("train", "run")), ["train", "run", *argv])


def base_argv(toy, out_flag, out):
    return ["-i", *map(str, toy["stores"]), "-v", "chr11", "-t", "chr1", "-e", "2", "-lr", "0.01",
            "-L", "200", "-w", "20", "-k", "4", "-r", "4", "-d", "8", "-p", "0.1", "-s", "7",
            "--batch-size", "8", "--loader-threads", "2", "--max-steps", "3", out_flag, str(out)]


def test_cli_flags_are_a_view_of_the_config(toy):
    from factornet_jax.cli import build_parser
    from factornet_jax.commands.train import config_from_args
    args = build_parser(only=("train", "run")).parse_args(["train", "run", *base_argv(toy, "-o", "x")])
    assert config_from_args(args) == make_config(toy, "x")
    args = build_parser(only=("train", "run")).parse_args(
        ["train", "run", *base_argv(toy, "-o", "x"), "--loader-processes", "3"])
    assert config_from_args(args) == make_config(toy, "x", loader_processes=3)


def test_existing_finished_run_refused_by_o_and_overwritten_by_oc(toy, base_run, tmp_path, capsys):
    from factornet_jax.errors import FactorNetError
    from factornet_jax.training import train_and_evaluate
    with pytest.raises(FactorNetError, match="finished run.*-oc"):
        train_and_evaluate(base_run["config"], log=lambda *a, **k: None)
    target = tmp_path / "copy"
    shutil.copytree(base_run["dir"], target)
    before = (target / "final.npz").read_bytes()
    assert cli(base_argv(toy, "-o", target)) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "finished run" in err and "Traceback" not in err
    assert (target / "final.npz").read_bytes() == before
    (target / "stale.txt").write_text("the user's")   # a file we did not write: -oc keeps it
    assert cli(base_argv(toy, "-oc", target)) == 2
    assert f"holds {target / 'stale.txt'}" in capsys.readouterr().err
    assert (target / "final.npz").read_bytes() == before
    (target / "stale.txt").unlink()
    assert cli(base_argv(toy, "-oc", target)) == 0
    assert "multiTask model" in capsys.readouterr().out
    history = json.loads((target / "history.json").read_text())
    assert strip_timing(history) == strip_timing(base_run["result"].history)
    assert_npz_equal(target / "final.npz", base_run["dir"] / "final.npz")


def test_output_dir_refusals(toy, tmp_path):
    from factornet_jax.errors import FactorNetError
    from factornet_jax.training import prepare_output
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("mine")
    with pytest.raises(FactorNetError, match="not a model directory written by factornet"):
        prepare_output(make_config(toy, foreign), overwrite=False)
    unfinished = tmp_path / "unfinished"
    assert prepare_output(make_config(toy, unfinished), overwrite=False) is False
    assert not unfinished.exists()                      # it checks, it writes nothing
    # what a killed run leaves: its state and a committed checkpoint
    (unfinished / "checkpoint").mkdir(parents=True)
    (unfinished / "checkpoint" / "state.json").write_text("{}")
    (unfinished / "train_state.json").write_text(json.dumps(
        {"finished": False, "run": make_config(toy, unfinished).run_identity()}))
    assert prepare_output(make_config(toy, unfinished), overwrite=False) is True
    with pytest.raises(FactorNetError, match="other settings"):
        prepare_output(make_config(toy, unfinished, learning_rate=0.1), overwrite=False)
    # where it writes and how it loads may change between the attempts
    assert prepare_output(make_config(toy, unfinished, loader_threads=1), overwrite=False) is True


@pytest.fixture(scope="module")
def unbuilt_folder(tmp_path_factory):
    folder = tmp_path_factory.mktemp("unbuilt") / "CellZ"
    folder.mkdir()
    (folder / "bigwig.txt").write_text("x.bw\tDGF\n")
    return folder


@pytest.mark.parametrize("changes, message", [
    (["-f", "TFZ"], "-f TFZ: not among the TFs"),
    (["-v", "chrX"], "-v: chromosome chrX is not in"),
    (["-t", "chr1", "chrY"], "-t: chromosome chrY is not in"),
    (["-L", "10", "-w", "20"], "-L/--seqlen 10 must not be smaller than -w/--motifwidth 20"),
    (["-n", "-1"], "-n/--negatives"),
    (["--batch-size", "6"], "multiple of the device count (4)"),
    (["-v", "chr2", "-t", "chr2"], "-v and -t share chr2"),
    (["-g"], "annotations"),
    (["-i", "UNBUILT"], "preprocess build"),
], ids=["factor", "valid-chrom", "test-chrom", "seqlen", "negatives", "batch", "overlap", "gencode",
        "unbuilt"])
def test_cli_errors_are_one_line(toy, tiny_stores, unbuilt_folder, tmp_path, capsys, changes, message):
    import jax
    if "--batch-size" in changes and jax.device_count() != 4:
        pytest.skip("needs the 4 fake CPU devices of conftest.py")
    out = tmp_path / "never"
    argv = base_argv(toy, "-o", out) + changes
    if "-g" in changes:      # tiny_stores' genome store has no GENCODE annotations
        argv += ["-i", str(tiny_stores["cell_stores"][0])]
    if "UNBUILT" in changes:
        argv[argv.index("UNBUILT")] = str(unbuilt_folder)
        argv += ["--stores", str(tmp_path / "stores")]
    assert cli(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("factornet: error: ") and err.count("\n") == 1, err
    assert message in err and "Traceback" not in err
    assert not out.exists()


def test_cli_module_entry_point_reports_error_with_exit_code_2(toy, unbuilt_folder, tmp_path):
    argv = base_argv(toy, "-o", tmp_path / "never")
    argv[argv.index("-i") + 1: argv.index("-v")] = [str(unbuilt_folder)]
    proc = subprocess.run([sys.executable, "-m", "train", "run", *argv, "--stores", str(tmp_path)],
                          capture_output=True, text=True, cwd=REPO, timeout=120)
    assert proc.returncode == 2
    assert proc.stderr.count("\n") == 1 and "preprocess build" in proc.stderr, proc.stderr
    assert "Traceback" not in proc.stderr


def test_cell_folder_input_resolves_to_its_built_store(toy, base_run, tmp_path):
    """-i CELL_FOLDER --stores DIR trains on DIR/<folder>.zarr: same run as -i STORE."""
    config = dataclasses.replace(base_run["config"], inputs=tuple(str(c) for c in toy["cells"]),
                                 stores_dir=str(toy["stores_dir"]), output=str(tmp_path / "folders"))
    result, *_ = run(config)
    assert strip_timing(result.history) == strip_timing(base_run["result"].history)


@pytest.mark.parametrize("what", ["tf-order", "meta-names"])
def test_validation_store_must_match_training_stores(toy, tmp_path, what):
    """-vi stores must have the training stores' TFs in the same order (multi-task; otherwise
    validation labels are scored against the wrong output columns) and, with -m, the same meta
    names (otherwise other features feed the same inputs)."""
    from factornet_jax.build import BuildRequest, build_stores
    from factornet_jax.errors import FactorNetError
    folder = tmp_path / "ToyC"
    shutil.copytree(toy["cells"][1], folder)
    if what == "tf-order":
        lines = (folder / "chip.txt").read_text().splitlines()
        (folder / "chip.txt").write_text("\n".join(reversed(lines)) + "\n")
        changes = dict(epochs=1, max_steps_per_epoch=1)
    else:
        (folder / "meta.txt").write_text("".join(f"{v}\tOTHER{k}\n" for k, v in enumerate((1.0, 2.0, 3.0))))
        changes = dict(epochs=1, max_steps_per_epoch=1, factor="TFB", meta=True)
    stores_dir = tmp_path / "stores"
    shutil.copytree(toy["stores_dir"] / "genome.zarr", stores_dir / "genome.zarr")
    build_stores(BuildRequest(cell_dirs=(str(folder),), genome=str(toy["fasta"]),
                              stores_dir=str(stores_dir), chunk_bases=4096))
    config = make_config(toy, tmp_path / "model", valid_inputs=(str(stores_dir / "ToyC.zarr"),), **changes)
    with pytest.raises(FactorNetError, match="-vi"):
        run(config)

"""Nothing lost on a crash: killed builds resume to identical stores, half-built stores are never
opened, a training run that diverges keeps its last good checkpoint.

The kill trials use the same code as `benchmarks/kill_trials.py` (which runs many more, and
`train run` trials too; figures in docs/RELIABILITY.md).
"""
import importlib.util
import json
import math
from pathlib import Path

import numpy as np
import pytest

from conftest import random_sequence, write_fasta
from factornet_jax.cli import build_parser, chosen_command, run_command
from factornet_jax.errors import StoreError

REPO = Path(__file__).resolve().parents[1]


def _load_kill_trials():
    spec = importlib.util.spec_from_file_location("kill_trials", REPO / "benchmarks" / "kill_trials.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


kt = _load_kill_trials()


def cli(argv, capsys):
    argv = [str(a) for a in argv]
    code = run_command(build_parser(only=chosen_command(argv)), argv)
    out, err = capsys.readouterr()
    return code, out, err


# ------------------------------------------------------------------ SIGKILL at random moments

@pytest.fixture(scope="module")
def kill_dataset(tmp_path_factory):
    root = tmp_path_factory.mktemp("kill_trials")
    data = kt.write_dataset(root / "inputs", kt.genome_sizes(1.0), seed=1)
    reference, seconds = kt.reference_build(data, root / "reference")
    return {"root": root, "data": data, "reference": reference, "seconds": seconds}


def test_killed_build_reruns_to_identical_stores(kill_dataset):
    """5 builds killed with SIGKILL at moments spread over a whole build, each re-run: every store
    equals the uninterrupted build, and no killed store opens unless it is complete and equal."""
    d = kill_dataset
    rng = np.random.default_rng(2024)
    results = []
    for delay in kt.kill_delays(rng, 5, max(1.5, d["seconds"])):
        result = kt.build_trial(d["data"], d["root"] / "stores", d["reference"], delay)
        assert not result["problems"], result
        results.append(result)
    assert any(r["killed"] for r in results)


def test_snapshot_comparison_sees_a_changed_value(kill_dataset, tmp_path):
    """The trial's oracle is not vacuous: one changed base is a difference."""
    import shutil

    import zarr
    d = kill_dataset
    copy = tmp_path / "genome.zarr"
    shutil.copytree(d["root"] / "reference" / "genome.zarr", copy)
    array = zarr.open_array(str(copy / "sequence" / "chr2"), mode="r+")
    array[10] = (int(array[10]) + 1) % 5
    assert kt.differences(kt.snapshot(copy), d["reference"]["genome.zarr"]) == ["array sequence/chr2 differs"]


# ------------------------------------------------------------------ deterministic crashes

def _bad_then_good_fasta(tmp_path):
    """A FASTA whose chr2 holds a digit (the build stops after writing chr1), and a fixed copy
    in which chr1 is also different (same length)."""
    rng = np.random.default_rng(5)
    seqs = {"chr1": random_sequence(rng, 20_000), "chr2": random_sequence(rng, 9_000)}
    broken = dict(seqs, chr2=seqs["chr2"][:5000] + "7" + seqs["chr2"][5001:])
    fasta = tmp_path / "g.fa"
    write_fasta(fasta, broken)
    fixed = {"chr1": random_sequence(np.random.default_rng(6), 20_000), "chr2": seqs["chr2"]}
    return fasta, fixed


def test_failed_build_leaves_only_a_partial_that_never_opens(tmp_path, capsys):
    from factornet_jax.reader import open_genome_store
    fasta, _ = _bad_then_good_fasta(tmp_path)
    stores = tmp_path / "stores"
    code, _, err = cli(["preprocess", "build", "--genome", fasta, "--stores", stores,
                        "--chunk-bases", 4096], capsys)
    assert code == 2 and "position 5001" in err
    assert (stores / "g.zarr.partial").is_dir()
    assert not (stores / "g.zarr").exists()
    with pytest.raises(StoreError, match="interrupted"):
        open_genome_store(stores / "g.zarr")
    with pytest.raises(StoreError, match="incomplete"):
        open_genome_store(stores / "g.zarr.partial")


def test_resumed_build_discards_partial_from_other_inputs(tmp_path, capsys):
    """Build fails (or is killed) after chr1; the FASTA is then edited; the re-run must not keep
    the old chr1 from the partial store."""
    from factornet_jax.fasta import CODE_OF_BYTE
    from factornet_jax.reader import open_genome_store
    fasta, fixed = _bad_then_good_fasta(tmp_path)
    argv = ["preprocess", "build", "--genome", fasta, "--stores", tmp_path / "stores",
            "--chunk-bases", 4096]
    assert cli(argv, capsys)[0] == 2
    write_fasta(fasta, fixed)
    code, _, err = cli(argv, capsys)
    assert code == 0, err
    genome = open_genome_store(tmp_path / "stores" / "g.zarr")
    codes = genome.fetch_codes_batch(["chr1"], [0], 20_000)[0]
    expected = CODE_OF_BYTE[np.frombuffer(fixed["chr1"].encode(), np.uint8)]
    np.testing.assert_array_equal(codes, expected)
    code, out, err = cli(argv, capsys)            # and the store is up to date with the FASTA
    assert code == 0 and "up to date" in out, err


def test_fai_cut_short_by_a_crash_is_not_trusted(tmp_path, capsys):
    from factornet_jax.reader import open_genome_store
    rng = np.random.default_rng(8)
    fasta = tmp_path / "g.fa"
    write_fasta(fasta, {c: random_sequence(rng, 3000) for c in ("chr1", "chr2", "chr3")})
    from factornet_jax.fasta import read_fai
    read_fai(fasta)
    fai = Path(str(fasta) + ".fai")
    # what a kill during indexing leaves: the first line only, newer than the FASTA
    fai.write_text(fai.read_text().splitlines(keepends=True)[0])
    code, _, err = cli(["preprocess", "build", "--genome", fasta, "--stores", tmp_path / "stores"],
                       capsys)
    assert code == 0, err
    assert list(open_genome_store(tmp_path / "stores" / "g.zarr").chrom_sizes) == ["chr1", "chr2", "chr3"]


# ------------------------------------------------------------------ training that diverges

def test_nan_loss_stops_with_message_and_keeps_last_good_checkpoint(tiny_stores, tmp_path, capsys,
                                                                   monkeypatch):
    """Epoch 1 trains normally; from epoch 2 on the loss is NaN: one-line error naming -lr, the
    checkpoint and best.npz are epoch 1's, no final.npz, the run is not marked finished."""
    from factornet_jax import training
    from factornet_jax.modeldir import load_params
    real_make_steps = training.make_steps
    steps_per_epoch = 2

    def make_steps(*args, **kwargs):
        train, evaluate, data, replicated = real_make_steps(*args, **kwargs)
        calls = []

        def diverging(state, batch, key):
            state, loss = train(state, batch, key)
            calls.append(1)
            return state, (loss * np.nan if len(calls) > steps_per_epoch else loss)
        return diverging, evaluate, data, replicated

    monkeypatch.setattr(training, "make_steps", make_steps)
    out = tmp_path / "model"
    argv = ["train", "run", "-i", tiny_stores["cell_stores"][0], "-v", "chr11", "-t", "chr2",
            "-e", "2", "-L", "200", "-w", "10", "-k", "4", "-r", "2", "-d", "8",
            "--batch-size", "20", "--max-steps", str(steps_per_epoch), "-o", out]
    code, stdout, err = cli(argv, capsys)
    assert code == 2 and "Traceback" not in err
    lines = [line for line in err.strip().splitlines() if not line.startswith("epoch ")]  # progress
    assert len(lines) == 1 and "nan" in lines[0].lower() and "-lr" in lines[0]
    assert "epoch 2" in lines[0] and str(out) in lines[0]
    record = json.loads((out / "checkpoint" / "state.json").read_text())
    assert record["epoch"] == 1
    history = json.loads((out / "history.json").read_text())
    assert [h["epoch"] for h in history] == [1] and math.isfinite(history[0]["train_loss"])
    assert not (out / "final.npz").exists()
    assert not json.loads((out / "train_state.json").read_text())["finished"]
    best = load_params(out / "best.npz")
    checkpoint = load_params(out / "checkpoint" / "params.npz")
    flat_best = {k: v for k, v in _flatten(best)}
    assert all(np.isfinite(v).all() for v in flat_best.values())
    for key, value in _flatten(checkpoint):
        np.testing.assert_array_equal(value, flat_best[key])


def _flatten(tree, prefix=""):
    for key, value in tree.items():
        if isinstance(value, dict):
            yield from _flatten(value, f"{prefix}{key}/")
        else:
            yield f"{prefix}{key}", value

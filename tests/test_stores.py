"""`preprocess build` as a whole: no-op re-runs, --force, change detection, interval updates,
--chroms, --jobs, and the build lock."""
import gzip
import importlib.util
import os
import shutil
from pathlib import Path

import numpy as np
import pytest

from conftest import TINY_SIZES, write_bigwig
from factornet_jax.cli import build_parser, chosen_command, run_command
from factornet_jax.labels import GENCODE_FEATURES
from factornet_jax.reader import open_cell_store, open_genome_store
from factornet_jax.stores import StoreLock, read_store_attrs

REPO = Path(__file__).resolve().parents[1]
_spec = importlib.util.spec_from_file_location("kill_trials", REPO / "benchmarks" / "kill_trials.py")
kt = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(kt)


def cli(argv, capsys):
    argv = [str(a) for a in argv]
    code = run_command(build_parser(only=chosen_command(argv)), argv)
    out, err = capsys.readouterr()
    return code, out, err


def file_times(folder):
    """relative path -> mtime_ns of every file under `folder` (lock files left out)."""
    folder = Path(folder)
    return {str(p.relative_to(folder)): p.stat().st_mtime_ns
            for p in folder.rglob("*") if p.is_file() and not p.name.endswith(".lock")}


@pytest.fixture
def inputs(tmp_path, tiny_inputs):
    """Private copies of the tiny FASTA and both cell folders (tests modify them)."""
    root = tmp_path / "inputs"
    shutil.copytree(tiny_inputs["root"], root, ignore=shutil.ignore_patterns("*.fai"))
    return {"fasta": root / "genome.fa", "cells": [root / "CellA", root / "CellB"], "root": root}


def build_argv(inputs, stores, *extra):
    return ["preprocess", "build", "--genome", inputs["fasta"], "--stores", stores,
            "--chunk-bases", 4096, "-i", *inputs["cells"], *extra]


def write_annotations(folder, chrom_sizes, seed=0):
    """Six GENCODE-model BEDs named as the --annotations folder expects -> {feature: records}."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    expected = {}
    for feature in GENCODE_FEATURES:
        rows = []
        for chrom, size in chrom_sizes.items():
            for start in np.sort(rng.integers(0, size - 500, 5)):
                rows.append((chrom, int(start), int(start) + int(rng.integers(50, 400))))
        with gzip.open(folder / f"gencode.{feature}.bed.gz", "wt") as handle:
            handle.writelines(f"{c}\t{s}\t{e}\n" for c, s, e in rows)
        expected[feature] = rows
    return expected


def as_rows(interval_set, chrom_order):
    records = interval_set.to_records()
    return sorted(zip(records["chrom"].tolist(), records["start"].tolist(), records["end"].tolist()),
                  key=lambda r: (chrom_order.index(r[0]), r[1]))


def merged(rows, chrom_order):
    out = []
    for chrom, start, end in sorted(rows, key=lambda r: (chrom_order.index(r[0]), r[1])):
        if out and out[-1][0] == chrom and start <= out[-1][2]:
            out[-1] = (chrom, out[-1][1], max(out[-1][2], end))
        else:
            out.append((chrom, start, end))
    return out


# ------------------------------------------------------------------ re-runs

def test_rerun_is_a_noop_and_force_rebuilds(inputs, tmp_path, capsys):
    stores = tmp_path / "stores"
    argv = build_argv(inputs, stores)
    code, out, err = cli(argv, capsys)
    assert code == 0, err
    assert out.count(" built ") == 3
    before = file_times(stores)
    snaps = {n: kt.snapshot(stores / n) for n in ("genome.zarr", "CellA.zarr", "CellB.zarr")}

    code, out, err = cli(argv, capsys)
    assert code == 0, err
    assert out.count("up to date") == 3 and " built " not in out
    assert file_times(stores) == before          # not one file rewritten

    code, out, err = cli(argv + ["--force"], capsys)
    assert code == 0, err
    assert out.count(" built ") == 3
    after = file_times(stores)
    assert set(after) == set(before)
    assert all(after[f] != before[f] for f in before if f.endswith("zarr.json"))
    for name, snap in snaps.items():
        assert kt.differences(kt.snapshot(stores / name), snap) == []
    assert not list(stores.glob("*.partial")) and not list(stores.glob("*.old"))


@pytest.mark.parametrize("what", ["bigwig", "peaks", "fasta"])
def test_changed_input_is_detected(what, inputs, tmp_path, capsys):
    stores = tmp_path / "stores"
    argv = build_argv(inputs, stores)
    assert cli(argv, capsys)[0] == 0
    cell = inputs["cells"][1]
    if what == "bigwig":
        write_bigwig(cell / "Unique35.bw", TINY_SIZES, np.random.default_rng(11))
        store, words = stores / "CellB.zarr", ["bigwig Unique35", str(cell / "Unique35.bw")]
    elif what == "peaks":
        path = cell / "TFA.conservative.narrowPeak.gz"
        with gzip.open(path, "at") as handle:
            handle.write("chr1\t100\t300\n")
        store, words = stores / "CellB.zarr", ["peaks TFA conservative", str(path)]
    else:
        text = inputs["fasta"].read_text()
        first = text.index("\n") + 1                 # change one base of chr1, same length
        swapped = "C" if text[first] in "Aa" else "A"
        inputs["fasta"].write_text(text[:first] + swapped + text[first + 1:])
        store, words = stores / "genome.zarr", ["fasta", str(inputs["fasta"])]
    snap = kt.snapshot(store)
    code, out, err = cli(argv, capsys)
    assert code == 2 and len(err.strip().splitlines()) == 1
    assert str(store) in err and "--force" in err
    for word in words:
        assert word in err
    assert kt.differences(kt.snapshot(store), snap) == []     # the old store is left as it was
    code, out, err = cli(argv + ["--force"], capsys)
    assert code == 0, err
    code, out, err = cli(argv, capsys)
    assert code == 0 and out.count("up to date") == 3, err


def test_touched_but_unchanged_input_is_up_to_date(inputs, tmp_path, capsys):
    """A new mtime with the same bytes (copied back, `touch`) is not a change."""
    stores = tmp_path / "stores"
    argv = build_argv(inputs, stores)
    assert cli(argv, capsys)[0] == 0
    path = inputs["cells"][0] / "DGF.bw"
    path.write_bytes(path.read_bytes())
    os.utime(path, ns=(path.stat().st_atime_ns, path.stat().st_mtime_ns + 10**9))
    code, out, err = cli(argv, capsys)
    assert code == 0 and out.count("up to date") == 3, err


# ------------------------------------------------------------------ intervals

def test_annotations_added_without_rebuilding_sequences(inputs, tmp_path, capsys):
    stores = tmp_path / "stores"
    argv = build_argv(inputs, stores)
    assert cli(argv, capsys)[0] == 0
    sequence_times = {f: t for f, t in file_times(stores / "genome.zarr").items()
                      if f.startswith("sequence/")}
    genome = open_genome_store(stores / "genome.zarr")
    assert not genome.has_annotations and len(genome.blacklist()) == 0

    expected = write_annotations(tmp_path / "gencode", TINY_SIZES)
    blacklist = tmp_path / "blacklist.bed"
    blacklist.write_text("chr1\t1000\t2000\nchr11\t500\t800\nchr1\t1500\t2500\n")
    code, out, err = cli(argv + ["--annotations", tmp_path / "gencode", "--blacklist", blacklist], capsys)
    assert code == 0, err
    assert "genome.zarr up to date" in out
    assert {f: t for f, t in file_times(stores / "genome.zarr").items()
            if f.startswith("sequence/")} == sequence_times
    genome = open_genome_store(stores / "genome.zarr")
    order = list(TINY_SIZES)
    assert as_rows(genome.blacklist(), order) == [("chr1", 1000, 2500), ("chr11", 500, 800)]
    annotations = genome.annotations()
    assert list(annotations) == list(GENCODE_FEATURES)
    for feature, rows in expected.items():
        assert as_rows(annotations[feature], order) == merged(rows, order)
    # the cell stores still open against the updated genome store
    assert open_cell_store(stores / "CellA.zarr").genome.has_annotations


def test_failed_interval_update_changes_nothing(inputs, tmp_path, capsys):
    stores = tmp_path / "stores"
    write_annotations(tmp_path / "gencode", TINY_SIZES)
    old_blacklist = tmp_path / "old.bed"
    old_blacklist.write_text("chr1\t1000\t2000\n")
    argv = build_argv(inputs, stores, "--annotations", tmp_path / "gencode")
    assert cli(argv + ["--blacklist", old_blacklist], capsys)[0] == 0

    new_blacklist = tmp_path / "new.bed"
    new_blacklist.write_text("chr2\t5000\t6000\n")
    promoter = tmp_path / "gencode" / "gencode.promoter.bed.gz"
    good = promoter.read_bytes()
    with gzip.open(promoter, "wt") as handle:
        handle.write("chr1\t100\t999999\n")      # past the end of chr1: the update fails
    code, out, err = cli(argv + ["--blacklist", new_blacklist], capsys)
    assert code == 2 and str(promoter) in err

    promoter.write_bytes(good)                    # back to the inputs of the first build
    code, out, err = cli(argv + ["--blacklist", old_blacklist], capsys)
    assert code == 0, err
    blacklist = open_genome_store(stores / "genome.zarr").blacklist()
    assert as_rows(blacklist, list(TINY_SIZES)) == [("chr1", 1000, 2000)]


# ------------------------------------------------------------------ --chroms, --jobs, lock

def test_chroms_restriction_with_peaks_only_there(inputs, tmp_path, capsys):
    """--chroms chr1 chr11: stores hold only those chromosomes, in FASTA order."""
    for cell in inputs["cells"]:
        for path in cell.glob("*.narrowPeak.gz"):
            with gzip.open(path, "rt") as handle:
                keep = [line for line in handle if line.split("\t")[0] != "chr2"]
            with gzip.open(path, "wt") as handle:
                handle.writelines(keep)
    stores = tmp_path / "stores"
    code, out, err = cli(build_argv(inputs, stores, "--chroms", "chr11", "chr1"), capsys)
    assert code == 0, err
    cs = open_cell_store(stores / "CellA.zarr")
    assert list(cs.chrom_sizes) == ["chr1", "chr11"]
    assert list(cs.genome.chrom_sizes) == ["chr1", "chr11"]
    assert not (stores / "genome.zarr" / "sequence" / "chr2").exists()
    assert not (stores / "CellA.zarr" / "signal" / "chr2").exists()
    assert set(cs.peaks("TFA")["chrom"].tolist()) == {"chr1", "chr11"}


def test_chroms_restriction_drops_peaks_elsewhere(inputs, tmp_path, capsys):
    """A peak file covering the whole genome is fine with --chroms: peaks elsewhere are dropped."""
    stores = tmp_path / "stores"
    code, out, err = cli(build_argv(inputs, stores, "--chroms", "chr1", "chr11"), capsys)
    assert code == 0, err
    cs = open_cell_store(stores / "CellA.zarr")
    assert list(cs.chrom_sizes) == ["chr1", "chr11"]
    peaks = cs.peaks("TFA")
    assert set(peaks["chrom"].tolist()) == {"chr1", "chr11"}
    with gzip.open(inputs["cells"][0] / "TFA.conservative.narrowPeak.gz", "rt") as handle:
        wanted = [line for line in handle if line.split("\t")[0] in ("chr1", "chr11")]
    assert len(peaks) == len(wanted)


def test_jobs_2_equals_jobs_1(inputs, tmp_path, capsys):
    """Run as a real process: --jobs forks workers, which must not happen in this (JAX-loaded,
    multithreaded) test process."""
    import subprocess
    import sys
    one, two = tmp_path / "one", tmp_path / "two"
    assert cli(build_argv(inputs, one, "--jobs", 1), capsys)[0] == 0
    argv = [str(a) for a in build_argv(inputs, two, "--jobs", 2)]
    proc = subprocess.run([sys.executable, "-m", "preprocess", *argv[1:]], capture_output=True,
                          text=True, timeout=300, env=kt.child_env(),
                          cwd=Path(__file__).resolve().parents[1])   # the driver runs from a checkout
    assert proc.returncode == 0, proc.stderr
    for name in ("genome.zarr", "CellA.zarr", "CellB.zarr"):
        assert kt.differences(kt.snapshot(two / name), kt.snapshot(one / name)) == [], name


def test_second_build_of_a_store_refuses_while_locked(inputs, tmp_path, capsys):
    stores = tmp_path / "stores"
    stores.mkdir()
    with StoreLock(stores / "CellB.zarr"):
        code, out, err = cli(build_argv(inputs, stores), capsys)
    assert code == 2 and "Traceback" not in err
    lines = err.strip().splitlines()
    assert len(lines) == 1
    assert f"{stores / 'CellB.zarr'}.lock" in lines[0] and "another build" in lines[0]
    assert not (stores / "CellB.zarr").exists()
    assert read_store_attrs(stores / "CellA.zarr")["complete"]   # the unlocked stores were built
    code, out, err = cli(build_argv(inputs, stores), capsys)    # lock released: finishes
    assert code == 0 and "CellB.zarr built" in out, err


def test_lock_is_exclusive_and_released():
    import tempfile
    from factornet_jax.errors import StoreError
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "x.zarr"
        with StoreLock(path):
            with pytest.raises(StoreError, match="another build"):
                with StoreLock(path):
                    pass
        with StoreLock(path):
            pass


def test_a_build_shuts_its_encoder_threads_down(inputs, tmp_path, capsys, monkeypatch):
    """The chunk-encoding threads belong to one build (ChunkEncoder), not to the process."""
    import threading
    from factornet_jax import stores
    encoders = []

    class Recorded(stores.ChunkEncoder):
        def __init__(self, *args):
            super().__init__(*args)
            encoders.append(self)

    monkeypatch.setattr(stores, "ChunkEncoder", Recorded)
    monkeypatch.setattr(stores, "SHARD_CHUNKS", 4)                # sharded arrays
    monkeypatch.setattr(stores, "UNSHARDED_MAX_CHUNKS", 4)
    before = {t.ident for t in threading.enumerate()}
    argv = build_argv(inputs, tmp_path / "stores")
    code, out, err = cli(argv, capsys)
    assert code == 0, err
    assert len(encoders) == 3 and all(e._pool is None for e in encoders)  # one per store built
    left = [t.name for t in threading.enumerate() if t.ident not in before]
    assert not [name for name in left if name.startswith("encode")], left
    meta = (tmp_path / "stores" / "CellA.zarr" / "signal" / "chr1" / "zarr.json").read_text()
    assert "sharding_indexed" in meta
    with stores.ChunkEncoder(2) as encoder:
        assert encoder.map(len, [b"ab", b"c"]) == [2, 1]
    with pytest.raises(ValueError, match="closed"):
        encoder.map(len, [b"ab"])

"""Shared fixtures: a tiny genome, bigWigs and peaks written by the tests themselves."""
import gzip
import os
from pathlib import Path

import numpy as np
import pytest

SHARED = Path(__file__).resolve().parents[2] / "shared"
SHARED_DATA = SHARED / "data"

# Fake CPU devices for data-parallel tests; must be set before jax is imported anywhere.
os.environ.setdefault("XLA_FLAGS", "--xla_force_host_platform_device_count=4")
os.environ.setdefault("JAX_PLATFORMS", "cpu")


def write_fasta(path, seqs, width=60):
    with open(path, "w") as handle:
        for name, seq in seqs.items():
            handle.write(f">{name} description\n")
            for i in range(0, len(seq), width):
                handle.write(seq[i:i + width] + "\n")


def random_sequence(rng, n):
    letters = np.frombuffer(b"ACGTacgt", dtype=np.uint8)
    seq = letters[rng.integers(0, 8, n)].copy()
    seq[100:250] = ord("N")               # an N run
    seq[400:410] = np.frombuffer(b"RYKMSWBDHV", dtype=np.uint8)  # IUPAC codes
    return seq.tobytes().decode()


def write_bigwig(path, chrom_sizes, rng, with_nan=True, step_runs=True):
    """A bigWig with gaps (uncovered stretches), runs of equal values and some NaN."""
    import pyBigWig
    bw = pyBigWig.open(str(path), "w")
    bw.addHeader(list(chrom_sizes.items()))
    for chrom, size in chrom_sizes.items():
        edges = np.unique(np.concatenate([[0, size], rng.integers(0, size, size // 40)]))
        starts, ends = edges[:-1], edges[1:]
        keep = rng.random(starts.size) > 0.25          # gaps
        starts, ends = starts[keep], ends[keep]
        values = rng.gamma(1.0, 2.0, starts.size).astype(np.float64)
        if with_nan:
            values[rng.random(values.size) < 0.02] = np.nan
        bw.addEntries([chrom] * starts.size, starts.tolist(), ends=ends.tolist(), values=values.tolist())
    bw.close()


def flip_byte(path, index):
    """Corrupt one byte of a file in place (index may be negative)."""
    data = bytearray(path.read_bytes())
    data[index] ^= 0xFF
    path.write_bytes(bytes(data))


def write_text_file(path, text):
    """Write text to `path`, gzipped when the name ends in .gz; returns the path."""
    if str(path).endswith(".gz"):
        with gzip.open(path, "wt") as handle:
            handle.write(text)
    else:
        Path(path).write_text(text)
    return path


def write_peaks(path, chrom_sizes, rng, n=30, width=(150, 600)):
    rows = []
    for chrom, size in chrom_sizes.items():
        starts = np.sort(rng.integers(0, size - width[1], n))
        for s in starts:
            w = int(rng.integers(*width))
            rows.append(f"{chrom}\t{s}\t{s + w}\t.\t0\t.\t5.0\t-1\t-1\t{w // 2}\n")
    opener = gzip.open if str(path).endswith(".gz") else open
    with opener(path, "wt") as handle:
        handle.writelines(rows)


def make_cell_dir(root, name, chrom_sizes, seed, tfs=("TFA", "TFB"), tracks=("Unique35", "DGF"),
                  meta=True):
    rng = np.random.default_rng(seed)
    folder = Path(root) / name
    folder.mkdir(parents=True)
    with open(folder / "bigwig.txt", "w") as handle:
        for track in tracks:
            write_bigwig(folder / f"{track}.bw", chrom_sizes, rng)
            handle.write(f"{track}.bw\t{track}\n")
    with open(folder / "chip.txt", "w") as handle:
        for tf in tfs:
            write_peaks(folder / f"{tf}.conservative.narrowPeak.gz", chrom_sizes, rng)
            write_peaks(folder / f"{tf}.relaxed.narrowPeak.gz", chrom_sizes, rng, n=60)
            handle.write(f"{tf}.conservative.narrowPeak.gz\t{tf}\t{tf}.relaxed.narrowPeak.gz\n")
    if meta:
        with open(folder / "meta.txt", "w") as handle:
            for k, v in enumerate(rng.normal(size=3)):
                handle.write(f"{v:.6f}\tGEPC{k + 1}\n")
    return folder


TINY_SIZES = {"chr1": 50_000, "chr2": 33_333, "chr11": 20_000}


@pytest.fixture(scope="session")
def tiny_inputs(tmp_path_factory):
    """A FASTA (N runs, IUPAC, lowercase) and two cell folders with two tracks and two TFs."""
    root = tmp_path_factory.mktemp("tiny_inputs")
    rng = np.random.default_rng(7)
    seqs = {c: random_sequence(rng, n) for c, n in TINY_SIZES.items()}
    write_fasta(root / "genome.fa", seqs)
    cells = [make_cell_dir(root, name, TINY_SIZES, seed) for seed, name in enumerate(["CellA", "CellB"])]
    return {"root": root, "fasta": root / "genome.fa", "cells": cells, "seqs": seqs}


@pytest.fixture(scope="session")
def tiny_stores(tiny_inputs, tmp_path_factory):
    """Stores built from tiny_inputs with small chunks (so windows cross chunk boundaries)."""
    from factornet_jax.build import BuildRequest, build_stores
    stores = tmp_path_factory.mktemp("tiny_stores")
    request = BuildRequest(cell_dirs=tuple(str(c) for c in tiny_inputs["cells"]),
                           genome=str(tiny_inputs["fasta"]), stores_dir=str(stores),
                           chunk_bases=4096)
    build_stores(request)
    return {"dir": stores, "genome": stores / "genome.zarr",
            "cell_stores": [stores / "CellA.zarr", stores / "CellB.zarr"], **tiny_inputs}


@pytest.fixture(scope="session")
def blacklisted_stores(tiny_inputs, tmp_path_factory):
    """CellA built with a blacklist on chr2 and the six GENCODE annotation BEDs."""
    from factornet_jax.build import BuildRequest, build_stores
    root = tmp_path_factory.mktemp("bl_stores")
    blacklist = write_text_file(root / "blacklist.bed.gz", "chr2\t10000\t10500\n")
    rng = np.random.default_rng(11)
    ann = root / "annotations"
    ann.mkdir()
    for name in ("cpg", "cds", "intron", "promoter", "utr5", "utr3"):
        starts = np.sort(rng.integers(0, 33_000, 15))
        write_text_file(ann / f"{name}.bed", "".join(
            f"chr2\t{s}\t{s + int(rng.integers(50, 300))}\n" for s in starts))
    build_stores(BuildRequest(cell_dirs=(str(tiny_inputs["cells"][0]),),
                              genome=str(tiny_inputs["fasta"]), stores_dir=str(root / "stores"),
                              blacklist=str(blacklist), annotations=str(ann), chunk_bases=4096))
    return {"store": root / "stores" / "CellA.zarr", "annotations": ann}

"""Training examples and batches (batches.py) against oracles computed on per-base masks.

The toy dataset is written here with known peaks, blacklist and GENCODE annotations, so every
label, exclusion and flag can be recomputed independently of labels.py / intervals.py.
`build_toy_dataset` is also used by test_training.py.
"""
import gzip
from pathlib import Path

import numpy as np
import pytest

from conftest import random_sequence, write_bigwig, write_fasta

TOY_SIZES = {"chr1": 40_000, "chr2": 40_000, "chr11": 20_000}
TOY_TFS = ("TFA", "TFB")
TOY_META = {"ToyA": (0.5, -1.0, 2.0), "ToyB": (1.5, 0.25, -0.75)}
BLACKLIST = [("chr1", 20_000, 20_400), ("chr2", 15_000, 15_300), ("chr11", 8_000, 8_200)]
SEQ_LEN = 300


def _random_intervals(rng, sizes, n, width):
    """{chrom: (n, 2) int64 [start, end)} sorted by start."""
    out = {}
    for chrom, size in sizes.items():
        widths = rng.integers(width[0], width[1], n)
        starts = np.sort(rng.integers(0, size - width[1], n))
        out[chrom] = np.stack([starts, starts + widths], axis=1).astype(np.int64)
    return out


def _write_narrowpeak(path, intervals):
    with gzip.open(path, "wt") as handle:
        for chrom, rows in intervals.items():
            for start, end in rows:
                handle.write(f"{chrom}\t{start}\t{end}\t.\t0\t.\t5.0\t-1\t-1\t{(end - start) // 2}\n")


def _write_bed(path, intervals):
    with open(path, "w") as handle:
        for chrom, rows in intervals.items():
            for start, end in rows:
                handle.write(f"{chrom}\t{start}\t{end}\n")


def _write_array_bigwig(path, arrays):
    """bigWig of per-base float arrays, written as runs of equal values."""
    import pyBigWig
    bw = pyBigWig.open(str(path), "w")
    bw.addHeader([(c, len(a)) for c, a in arrays.items()])
    for chrom, values in arrays.items():
        edges = np.flatnonzero(np.diff(values)) + 1
        starts = np.concatenate([[0], edges])
        ends = np.concatenate([edges, [len(values)]])
        bw.addEntries([chrom] * len(starts), starts.tolist(), ends=ends.tolist(),
                      values=values[starts].astype(np.float64).tolist())
    bw.close()


def mask_of(intervals, size, chrom):
    """Boolean per-base mask of {chrom: (n, 2)} intervals on one chromosome."""
    mask = np.zeros(size, bool)
    for start, end in intervals.get(chrom, np.zeros((0, 2), np.int64)):
        mask[start:end] = True
    return mask


def dgf_values(cell_peaks, chrom, size):
    """(size,) float32 DGF track of a toy cell: 3 inside TFA peaks + 6 inside TFB peaks."""
    return (3.0 * mask_of(cell_peaks["TFA"], size, chrom)
            + 6.0 * mask_of(cell_peaks["TFB"], size, chrom)).astype(np.float32)


def build_toy_dataset(root):
    """FASTA + blacklist + six GENCODE BEDs + cells ToyA (with relaxed peaks) and ToyB (without),
    tracks Unique35 (random) and DGF (3 in TFA peaks + 6 in TFB peaks, else 0), built into stores.

    Returns a dict: stores (list of cell store paths), cells (folders), sizes, peaks
    {cell: {tf: {chrom: (n, 2)}}}, relaxed {cell: {tf: ...} or None}, blacklist, annotations.
    """
    from factornet_jax.build import BuildRequest, build_stores
    root = Path(root)
    rng = np.random.default_rng(2024)
    write_fasta(root / "genome.fa", {c: random_sequence(rng, n) for c, n in TOY_SIZES.items()})
    with open(root / "blacklist.bed", "w") as handle:
        handle.writelines(f"{c}\t{s}\t{e}\n" for c, s, e in BLACKLIST)
    annotations = {}
    (root / "gencode").mkdir()
    for name in ("cpg", "cds", "intron", "promoter", "utr5", "utr3"):
        annotations[name] = _random_intervals(rng, TOY_SIZES, 12, (50, 1500))
        _write_bed(root / "gencode" / f"{name}.bed", annotations[name])
    peaks, relaxed, cells = {}, {}, []
    for cell, meta in TOY_META.items():
        folder = root / cell
        folder.mkdir()
        peaks[cell] = {tf: _random_intervals(rng, TOY_SIZES, 30, (120, 600)) for tf in TOY_TFS}
        relaxed[cell] = ({tf: _random_intervals(rng, TOY_SIZES, 20, (200, 900)) for tf in TOY_TFS}
                         if cell == "ToyA" else None)
        dgf = {c: dgf_values(peaks[cell], c, n) for c, n in TOY_SIZES.items()}
        write_bigwig(folder / "u35.bw", TOY_SIZES, rng)
        _write_array_bigwig(folder / "dgf.bw", dgf)
        (folder / "bigwig.txt").write_text("u35.bw\tUnique35\ndgf.bw\tDGF\n")
        lines = []
        for tf in TOY_TFS:
            _write_narrowpeak(folder / f"{tf}.cons.narrowPeak.gz", peaks[cell][tf])
            line = f"{tf}.cons.narrowPeak.gz\t{tf}"
            if relaxed[cell] is not None:
                _write_narrowpeak(folder / f"{tf}.relax.narrowPeak.gz", relaxed[cell][tf])
                line += f"\t{tf}.relax.narrowPeak.gz"
            lines.append(line + "\n")
        (folder / "chip.txt").write_text("".join(lines))
        (folder / "meta.txt").write_text("".join(f"{v}\tGEPC{k}\n" for k, v in enumerate(meta)))
        cells.append(folder)
    stores_dir = root / "stores"
    build_stores(BuildRequest(cell_dirs=tuple(str(c) for c in cells), genome=str(root / "genome.fa"),
                              stores_dir=str(stores_dir), blacklist=str(root / "blacklist.bed"),
                              annotations=str(root / "gencode"), chunk_bases=4096))
    blacklist = {}
    for chrom, start, end in BLACKLIST:
        blacklist.setdefault(chrom, []).append((start, end))
    return {"root": root, "stores_dir": stores_dir, "cells": cells,
            "stores": [stores_dir / f"{c.name}.zarr" for c in cells], "sizes": TOY_SIZES,
            "peaks": peaks, "relaxed": relaxed, "annotations": annotations,
            "blacklist": {c: np.array(v, np.int64) for c, v in blacklist.items()},
            "fasta": root / "genome.fa"}


@pytest.fixture(scope="module")
def toy(tmp_path_factory):
    return build_toy_dataset(tmp_path_factory.mktemp("toy_pipeline"))


@pytest.fixture(scope="module")
def toy_stores(toy):
    from factornet_jax.reader import open_cell_store
    return [open_cell_store(p) for p in toy["stores"]]


# ------------------------------------------------------------------ oracles

def zone_mask(toy, chrom, seq_len=SEQ_LEN):
    """Blacklist widened by seq_len + the first/last seq_len bp of the chromosome."""
    size = toy["sizes"][chrom]
    zone = np.zeros(size, bool)
    zone[:seq_len] = zone[size - seq_len:] = True
    for start, end in toy["blacklist"].get(chrom, []):
        zone[max(start - seq_len, 0):min(end + seq_len, size)] = True
    return zone


def window_sum(mask, starts, width=200):
    """Number of True bases of `mask` in [start, start + width) for each start."""
    csum = np.concatenate([[0], np.cumsum(mask, dtype=np.int64)])
    starts = np.asarray(starts, np.int64)
    return csum[starts + width] - csum[starts]


def oracle_multitask_positives(toy, cell, chroms, seq_len=SEQ_LEN):
    """{(chrom, start): labels tuple} of grid bins covered > 100 bp by the union of the TFs."""
    out = {}
    for chrom in chroms:
        size = toy["sizes"][chrom]
        grid = np.arange(0, size - 200 + 1, 50)
        tf_cover = [window_sum(mask_of(toy["peaks"][cell][tf], size, chrom), grid) for tf in TOY_TFS]
        union = np.zeros(size, bool)
        for tf in TOY_TFS:
            union |= mask_of(toy["peaks"][cell][tf], size, chrom)
        keep = (window_sum(union, grid) > 100) & (window_sum(zone_mask(toy, chrom, seq_len), grid) == 0)
        for i in np.flatnonzero(keep):
            out[(chrom, int(grid[i]))] = tuple(int(c[i] > 100) for c in tf_cover)
    return out


def split_by_cell(examples, k):
    sel = examples.cell == k
    return examples.chrom[sel], examples.bin_start[sel], examples.labels[sel]


# ------------------------------------------------------------------ TrainingData, multi-task

def test_multitask_examples_match_oracle(toy, toy_stores):
    from factornet_jax.batches import TrainingData
    chroms = ["chr1", "chr2"]
    data = TrainingData(toy_stores, chroms, SEQ_LEN, factor=None, seed=3)
    assert data.tasks == list(TOY_TFS)
    examples = data.examples(np.random.default_rng(0), shift=False)
    assert examples.labels.shape == (len(examples), 2) and examples.labels.dtype == np.uint8
    for k, cell in enumerate(TOY_META):
        oracle = oracle_multitask_positives(toy, cell, chroms)
        assert len(oracle) > 50
        ex_chroms, ex_starts, ex_labels = split_by_cell(examples, k)
        is_pos = np.array([(c, int(s)) in oracle for c, s in zip(ex_chroms, ex_starts)])
        got = {(c, int(s)): tuple(int(v) for v in lab)
               for c, s, lab in zip(ex_chroms[is_pos], ex_starts[is_pos], ex_labels[is_pos])}
        assert is_pos.sum() == len(oracle), "a positive bin appears twice or a bin is missing"
        assert got == oracle
        # negatives: as many as positives, all-zero labels, clear of the zone and of every TF's
        # peaks widened by 200 bp (FactorNet: merged_chip_slop_bed.cat(blacklist))
        neg_chroms, neg_starts = ex_chroms[~is_pos], ex_starts[~is_pos]
        assert len(neg_starts) == len(oracle)
        assert not ex_labels[~is_pos].any()
        for chrom in chroms:
            size = toy["sizes"][chrom]
            forbidden = zone_mask(toy, chrom).copy()
            for tf in TOY_TFS:
                for a, b in toy["peaks"][cell][tf][chrom]:
                    forbidden[max(a - 200, 0):b + 200] = True
            starts = neg_starts[neg_chroms == chrom]
            assert ((starts >= 0) & (starts + 200 <= size)).all()
            assert (window_sum(forbidden, starts) == 0).all()
    assert set(examples.chrom) <= set(chroms)


def test_multitask_windows_shift_by_up_to_20_bp_each_read(toy_stores):
    """FactorNet shift_size = 20: every multi-task row, positive or negative, training or
    validation, moves by a uniform integer in [-20, 20] each time it is read."""
    from factornet_jax.batches import TrainingData
    data = TrainingData(toy_stores, ["chr1", "chr2"], SEQ_LEN, factor=None, seed=3)
    fixed = data.examples(np.random.default_rng(7), shift=False)
    moved = data.examples(np.random.default_rng(7))
    np.testing.assert_array_equal(moved.chrom, fixed.chrom)
    np.testing.assert_array_equal(moved.labels, fixed.labels)
    offsets = moved.bin_start - fixed.bin_start
    np.testing.assert_array_equal(moved.feature_start, fixed.bin_start)   # GENCODE flags: unshifted bin
    assert len(offsets) >= 600
    for rows in (fixed.labels.any(axis=1), ~fixed.labels.any(axis=1)):   # positives, negatives
        assert set(offsets[rows].tolist()) <= set(range(-20, 21))
    assert set(offsets.tolist()) == set(range(-20, 21))
    # validation: drawn once, unshifted; each epoch reads it with a fresh shift
    valid = data.validation_examples()
    e0, e1 = data.epoch_validation(valid, 0), data.epoch_validation(valid, 1)
    np.testing.assert_array_equal(e0.labels, valid.labels)
    assert set((e0.bin_start - valid.bin_start).tolist()) == set(range(-20, 21))
    assert not np.array_equal(e0.bin_start, e1.bin_start)
    np.testing.assert_array_equal(data.epoch_validation(valid, 1).bin_start, e1.bin_start)
    # --shift 0 turns it off
    still = TrainingData(toy_stores, ["chr1", "chr2"], SEQ_LEN, factor=None, seed=3, shift=0)
    np.testing.assert_array_equal(still.examples(np.random.default_rng(7)).bin_start,
                                  still.examples(np.random.default_rng(7), shift=False).bin_start)
    # single-task rows never shift this way (their positives jitter instead)
    single = TrainingData(toy_stores, ["chr2"], SEQ_LEN, factor="TFA", seed=3)
    v = single.validation_examples()
    np.testing.assert_array_equal(single.epoch_validation(v, 4).bin_start, v.bin_start)


def test_epoch_examples_deterministic_per_seed_and_epoch(toy, toy_stores):
    from factornet_jax.batches import TrainingData
    a = TrainingData(toy_stores, ["chr2"], SEQ_LEN, seed=5)
    b = TrainingData(toy_stores, ["chr2"], SEQ_LEN, seed=5)
    other_seed = TrainingData(toy_stores, ["chr2"], SEQ_LEN, seed=6)
    e1a, e1b = a.epoch_examples(1), b.epoch_examples(1)
    for field in ("cell", "chrom", "bin_start", "labels"):
        np.testing.assert_array_equal(getattr(e1a, field), getattr(e1b, field))
    # a's state does not leak between calls: epoch 1 again, after epoch 0, is the same
    a.epoch_examples(0)
    np.testing.assert_array_equal(a.epoch_examples(1).bin_start, e1a.bin_start)
    e0 = a.epoch_examples(0)
    assert len(e0) == len(e1a)
    assert not np.array_equal(e0.bin_start, e1a.bin_start)
    assert not np.array_equal(other_seed.epoch_examples(1).bin_start, e1a.bin_start)


# ------------------------------------------------------------------ TrainingData, single-task

def _usable_peaks(toy, cell, tf, chrom):
    """Conservative peaks whose own span misses the zone (FactorNet: intersect -v blacklist)."""
    rows = toy["peaks"][cell][tf][chrom]
    zone = zone_mask(toy, chrom)
    keep = np.array([not zone[a:b].any() for a, b in rows])
    return rows[keep]


@pytest.mark.parametrize("negatives", [1, 3])
def test_singletask_examples_match_oracle(toy, toy_stores, negatives):
    from factornet_jax.batches import TrainingData
    chroms, tf = ["chr1", "chr2"], "TFB"
    data = TrainingData(toy_stores, chroms, SEQ_LEN, factor=tf, negatives=negatives, seed=11)
    assert data.tasks == [tf]
    examples = data.epoch_examples(0)
    assert examples.labels.shape == (len(examples), 1)
    for k, cell in enumerate(TOY_META):
        ex_chroms, ex_starts, ex_labels = split_by_cell(examples, k)
        pos = ex_labels[:, 0] == 1
        n_pos = 0
        for chrom in chroms:
            size = toy["sizes"][chrom]
            usable = _usable_peaks(toy, cell, tf, chrom)
            n_pos += len(usable)
            starts = ex_starts[pos & (ex_chroms == chrom)]
            assert len(starts) == len(usable)
            # every jittered bin is within FactorNet's reach of a usable peak's centred bin:
            # |start - (mid - 100)| <= end - (mid - 100) - 76
            mids = (usable[:, 0] + usable[:, 1]) // 2
            reach = usable[:, 1] - (mids - 100) - 76
            near = (np.abs(starts[:, None] - (mids - 100)[None, :]) <= reach[None, :]).any(axis=1)
            assert near.all()
            # negatives: clear of the zone and of the relaxed peaks widened by 200 bp (the
            # conservative ones where the cell has no relaxed file)
            forbidden = zone_mask(toy, chrom).copy()
            relaxed = toy["relaxed"][cell]
            for a, b in (relaxed[tf][chrom] if relaxed is not None else usable):
                forbidden[max(a - 200, 0):b + 200] = True
            neg = ex_starts[~pos & (ex_chroms == chrom)]
            assert ((neg >= 0) & (neg + 200 <= size)).all()
            assert (window_sum(forbidden, neg) == 0).all()
        assert (~pos).sum() == negatives * n_pos
        assert n_pos > 20
    assert set(examples.chrom) <= set(chroms)


def test_singletask_jitter_changes_between_epochs(toy, toy_stores):
    from factornet_jax.batches import TrainingData
    data = TrainingData(toy_stores[:1], ["chr2"], SEQ_LEN, factor="TFA", seed=1)
    pos0 = np.sort(data.epoch_examples(0).bin_start[data.epoch_examples(0).labels[:, 0] == 1])
    pos1 = np.sort(data.epoch_examples(1).bin_start[data.epoch_examples(1).labels[:, 0] == 1])
    assert len(pos0) == len(pos1) and not np.array_equal(pos0, pos1)
    epoch = data.epoch_examples(0)
    positives = epoch.labels[:, 0] == 1
    moved = epoch.bin_start[positives] != epoch.feature_start[positives]
    assert moved.mean() > 0.9                       # jittered, but GENCODE flags of the centred bin
    usable = _usable_peaks(toy, "ToyA", "TFA", "chr2")
    np.testing.assert_array_equal(np.sort(epoch.feature_start[positives]),
                                  np.sort((usable[:, 0] + usable[:, 1]) // 2 - 100))
    fixed = data.validation_examples()
    np.testing.assert_array_equal(np.sort(fixed.bin_start[fixed.labels[:, 0] == 1]),
                                  np.sort((usable[:, 0] + usable[:, 1]) // 2 - 100))


def test_held_out_chromosomes_never_in_examples(toy_stores):
    from factornet_jax.batches import TrainingData
    for factor in (None, "TFA"):
        data = TrainingData(toy_stores, ["chr2"], SEQ_LEN, factor=factor, seed=2)
        for epoch in range(3):
            assert set(data.epoch_examples(epoch).chrom) == {"chr2"}


# ------------------------------------------------------------------ BatchLoader

def oracle_gencode(toy, chroms, starts):
    flags = np.zeros((len(starts), 6), np.float32)
    for k, name in enumerate(("cpg", "cds", "intron", "promoter", "utr5", "utr3")):
        for i, (chrom, start) in enumerate(zip(chroms, starts)):
            mask = mask_of(toy["annotations"][name], toy["sizes"][chrom], chrom)
            flags[i, k] = mask[start:start + 200].any()
    return flags


@pytest.fixture(scope="module")
def loader_examples(toy_stores):
    from factornet_jax.batches import TrainingData
    data = TrainingData(toy_stores, ["chr1", "chr2"], SEQ_LEN, seed=4)
    return data.epoch_examples(0).take(np.arange(37))   # 37 rows: last batch of 8 is padded


def _batches(toy_stores, examples, threads, rows=None, batch_size=8):
    from factornet_jax.batches import BatchLoader, BatchSpec
    loader = BatchLoader(toy_stores, examples, batch_size, BatchSpec(SEQ_LEN, True, True),
                         threads=threads, prefetch=2, rows=rows)
    return list(loader)


def test_batches_match_store_reads(toy, toy_stores, loader_examples):
    from factornet_jax.labels import window_starts
    examples = loader_examples
    assert len(np.unique(examples.cell)) == 2
    batches = _batches(toy_stores, examples, threads=1)
    assert len(batches) == 5
    for i, batch in enumerate(batches):
        assert set(batch) == {"codes", "signal", "labels", "weights", "meta", "gencode"}
        assert batch["codes"].shape == (8, SEQ_LEN) and batch["codes"].dtype == np.uint8
        assert batch["signal"].shape == (8, SEQ_LEN, 2) and batch["signal"].dtype == np.float32
        assert batch["labels"].shape == (8, 2) and batch["labels"].dtype == np.float32
        assert batch["weights"].shape == (8,) and batch["meta"].shape == (8, 3)
        assert batch["gencode"].shape == (8, 6)
        rows = examples.take(np.arange(i * 8, min(i * 8 + 8, len(examples))))
        n = len(rows)
        np.testing.assert_array_equal(batch["weights"], (np.arange(8) < n).astype(np.float32))
        np.testing.assert_array_equal(batch["labels"][:n], rows.labels)
        assert not batch["labels"][n:].any()
        for j in range(n):
            store = toy_stores[rows.cell[j]]
            start = window_starts(rows.bin_start[j:j + 1], 200, SEQ_LEN)
            codes, signal = store.fetch_batch(rows.chrom[j:j + 1], start, SEQ_LEN, pad=True, as_codes=True)
            np.testing.assert_array_equal(batch["codes"][j], codes[0])
            np.testing.assert_array_equal(batch["signal"][j], signal[0])
            np.testing.assert_allclose(batch["meta"][j], TOY_META[store.name], rtol=1e-6)
        # GENCODE flags describe the bin before its shift (FactorNet computes them once per example)
        np.testing.assert_array_equal(batch["gencode"][:n], oracle_gencode(toy, rows.chrom, rows.feature_start))
    # the window is centred on the bin: the DGF track equals the written values there
    first = examples.take(np.arange(1))
    chrom, bin_start = first.chrom[0], int(first.bin_start[0])
    dgf = dgf_values(toy["peaks"][list(TOY_META)[first.cell[0]]], chrom, toy["sizes"][chrom])
    offset = bin_start + 100 - SEQ_LEN // 2
    np.testing.assert_array_equal(batches[0]["signal"][0, :, 1], dgf[offset:offset + SEQ_LEN])
    flags = np.concatenate([b["gencode"] for b in batches])[: len(examples)]
    assert 0 < flags.sum() < flags.size          # the flags are not trivially constant


def test_batches_identical_with_threads_and_row_slices(toy_stores, loader_examples):
    one = _batches(toy_stores, loader_examples, threads=1)
    three = _batches(toy_stores, loader_examples, threads=3)
    halves = [_batches(toy_stores, loader_examples, threads=2, rows=slice(lo, lo + 4)) for lo in (0, 4)]
    assert len(one) == len(three) == len(halves[0])
    for i, batch in enumerate(one):
        for key in batch:
            np.testing.assert_array_equal(batch[key], three[i][key])
            joined = np.concatenate([halves[0][i][key], halves[1][i][key]])
            np.testing.assert_array_equal(batch[key], joined)


def test_batch_loader_max_batches_and_no_extras(toy_stores, loader_examples):
    from factornet_jax.batches import BatchLoader, BatchSpec
    loader = BatchLoader(toy_stores, loader_examples, 8, BatchSpec(SEQ_LEN, False, False), threads=2,
                         max_batches=2)
    batches = list(loader)
    assert len(loader) == len(batches) == 2
    assert set(batches[0]) == {"codes", "signal", "labels", "weights"}
    assert batches[1]["weights"].all()

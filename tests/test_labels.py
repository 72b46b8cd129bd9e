"""labels.py: hand-made golden cases, a slow per-base oracle (hypothesis), bedtools."""

import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from factornet_jax.bed import PEAK_DTYPE, read_bed, read_chrom_sizes
from factornet_jax.errors import FactorNetError
from factornet_jax.intervals import IntervalSet
from factornet_jax.labels import (
    BIN_SIZE, GENCODE_FEATURES, STRIDE, BinSet, exclusion_zone, gencode_flags,
    multitask_bins, multitask_negative_exclusion, sample_negative_bins,
    singletask_negative_exclusion, singletask_positives, window_starts,
)

BEDTOOLS = shutil.which("bedtools")
SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"


def iset(rows):
    if not rows:
        return IntervalSet.empty()
    c, s, e = zip(*rows)
    return IntervalSet.from_arrays(np.array(c), s, e)


def test_constants():
    assert (BIN_SIZE, STRIDE) == (200, 50)
    assert GENCODE_FEATURES == ("cpg", "cds", "intron", "promoter", "utr5", "utr3")


def test_exclusion_zone_golden():
    sizes = {"c1": 10_000, "c2": 3_000, "c3": 1_500}
    blacklist = iset([("c1", 5_000, 5_100), ("c1", 300, 400), ("chrM", 1, 5)])  # chrM ignored
    zone = exclusion_zone(blacklist, sizes, 1_000)
    assert zone.chroms == ("c1", "c2", "c3")
    assert [x.tolist() for x in zone.get("c1")] == [[0, 4_000, 9_000], [1_400, 6_100, 10_000]]
    assert [x.tolist() for x in zone.get("c2")] == [[0, 2_000], [1_000, 3_000]]
    assert [x.tolist() for x in zone.get("c3")] == [[0], [1_500]]  # shorter than 2 * seq_len


def test_multitask_bins_golden():
    sizes = {"c1": 2_000, "c2": 1_000}
    tf_a = iset([("c1", 500, 700)])            # one 200 bp peak
    tf_b = iset([("c1", 640, 760), ("c2", 100, 250)])
    exclude = iset([("c1", 0, 420)])
    bins = multitask_bins([tf_a, tf_b], ["c1", "c2"], sizes, exclude)
    # union on c1 = [500, 760): grid bins covering > 100 bp: 450 (150), 500 (200), 550 (200),
    # 600 (160), 650 (110); 400 covers 100 -> no; 350 covers 50 -> no.
    # c2 [100, 250): 50 (150? [50,250) covers 150), 100 (150), 0 (100 -> no), 150 (100 -> no)
    assert bins.chroms.tolist() == ["c1"] * 5 + ["c2"] * 2
    assert bins.starts.tolist() == [450, 500, 550, 600, 650, 50, 100]
    # tf_a [500,700): 450->150, 500->200, 550->150, 600->100 (no), 650->50 (no)
    # tf_b [640,760): 550->110, 600->120, 650->110; c2 bins both 150
    assert bins.labels.tolist() == [[1, 0], [1, 0], [1, 1], [0, 1], [0, 1], [0, 1], [0, 1]]
    assert bins.labels.dtype == np.uint8 and bins.starts.dtype == np.int64
    # the exclusion zone removes bins touching it: [0, 460) drops bin 450 only
    bins = multitask_bins([tf_a, tf_b], ["c1"], sizes, iset([("c1", 0, 451)]))
    assert bins.starts.tolist() == [500, 550, 600, 650]


def test_multitask_bins_stay_inside_chromosome():
    sizes = {"c1": 430}
    bins = multitask_bins([iset([("c1", 0, 430)])], ["c1"], sizes, IntervalSet.empty())
    assert bins.starts.tolist() == [0, 50, 100, 150, 200]  # 200 + 200 <= 430 < 250 + 200


# --- oracle -------------------------------------------------------------------------------
def slow_multitask(tfs_rows, chroms, sizes, exclude_rows, bin_size, stride):
    out_chroms, out_starts, out_labels = [], [], []
    for chrom in chroms:
        n = sizes[chrom]
        tf_masks = []
        for rows in tfs_rows:
            m = np.zeros(n, bool)
            for c, s, e in rows:
                if c == chrom:
                    m[s:e] = True
            tf_masks.append(m)
        union = np.any(tf_masks, axis=0) if tf_masks else np.zeros(n, bool)
        excl = np.zeros(n, bool)
        for c, s, e in exclude_rows:
            if c == chrom:
                excl[s:e] = True
        for start in range(0, n - bin_size + 1, stride):
            window = slice(start, start + bin_size)
            if union[window].sum() > bin_size / 2 and not excl[window].any():
                out_chroms.append(chrom)
                out_starts.append(start)
                out_labels.append([int(m[window].sum() > bin_size / 2) for m in tf_masks])
    return out_chroms, out_starts, out_labels


SIZES = {"c1": 1_300, "c2": 700, "c3": 150}


@st.composite
def rows(draw, max_size=6, max_width=400):
    out = []
    for _ in range(draw(st.integers(0, max_size))):
        chrom = draw(st.sampled_from(sorted(SIZES)))
        start = draw(st.integers(0, SIZES[chrom] - 1))
        end = draw(st.integers(start + 1, min(start + max_width, SIZES[chrom])))
        out.append((chrom, start, end))
    return out


@settings(max_examples=60, deadline=None)
@given(st.lists(rows(), min_size=1, max_size=3), rows(max_size=2, max_width=100),
       st.sampled_from([(200, 50), (100, 30), (20, 20)]))
def test_multitask_bins_matches_oracle(tfs_rows, exclude_rows, geometry):
    bin_size, stride = geometry
    chroms = ["c2", "c1", "c3"]
    got = multitask_bins([iset(r) for r in tfs_rows], chroms, SIZES, iset(exclude_rows),
                         bin_size=bin_size, stride=stride)
    want_chroms, want_starts, want_labels = slow_multitask(
        tfs_rows, chroms, SIZES, exclude_rows, bin_size, stride)
    assert got.chroms.tolist() == want_chroms
    assert got.starts.tolist() == want_starts
    assert got.labels.reshape(len(got), len(tfs_rows)).tolist() == (
        want_labels if want_labels else [])


@settings(max_examples=40, deadline=None)
@given(rows(max_size=8), st.integers(0, 2**32))
def test_negatives_never_touch_excluded(excluded_rows, seed):
    excluded = iset(excluded_rows)
    try:
        neg = sample_negative_bins(np.random.default_rng(seed), 50, excluded, ["c1", "c2"], SIZES,
                                   bin_size=100, num_tasks=3)
    except FactorNetError:
        return  # nothing left to draw from (possible for heavy exclusion)
    assert len(neg) == 50 and neg.labels.shape == (50, 3) and not neg.labels.any()
    assert not excluded.overlaps(neg.chroms, neg.starts, neg.starts + 100).any()
    sizes = np.array([SIZES[c] for c in neg.chroms])
    assert (neg.starts >= 0).all() and (neg.starts + 100 <= sizes).all()


def test_negative_exclusion_helpers():
    sizes = {"c1": 10_000}
    zone = iset([("c1", 0, 1_000), ("c1", 9_000, 10_000)])
    # multi-task: all TFs' peaks merged and widened by 200 bp (FactorNet merged_chip_slop_bed)
    tf_a = iset([("c1", 3_000, 3_100)])
    tf_b = iset([("c1", 3_050, 3_250), ("c1", 6_000, 6_010), ("chrUn", 1, 2)])
    ex = multitask_negative_exclusion([tf_a, tf_b], zone, sizes)
    assert [x.tolist() for x in ex.get("c1")] == [[0, 2_800, 5_800, 9_000], [1_000, 3_450, 6_210, 10_000]]
    relaxed = iset([("c1", 5_000, 5_300), ("chrUn", 1, 2)])
    ex = singletask_negative_exclusion(relaxed, zone, sizes)
    assert [x.tolist() for x in ex.get("c1")] == [[0, 4_800, 9_000], [1_000, 5_500, 10_000]]
    neg = sample_negative_bins(np.random.default_rng(0), 2_000, ex, ["c1"], sizes)
    assert not ex.overlaps("c1", neg.starts, neg.starts + 200).any()
    # every allowed start region is used: [1000, 4600] and [5500, 8800]
    assert neg.starts.min() < 1_100 and neg.starts.max() > 8_700
    assert ((neg.starts > 4_600) & (neg.starts < 5_500)).sum() == 0


def test_singletask_positives_keep_peaks_clear_of_the_zone():
    peaks = np.zeros(5, PEAK_DTYPE)
    peaks["chrom"] = ["c1", "c1", "c2", "c1", "c1"]
    peaks["start"] = [1_000, 2_000, 1_000, 1_150, 5_000]
    peaks["end"] = [1_101, 2_500, 1_200, 1_250, 5_400]
    exclude = iset([("c1", 0, 950), ("c1", 5_390, 5_400)])
    chroms, mids, widths = singletask_positives(peaks, ["c1"], exclude)
    # peak 2 on c2 dropped; peak 4 overlaps the zone (FactorNet: intersect -v on the peak itself)
    assert chroms.tolist() == ["c1", "c1", "c1"]
    assert mids.tolist() == [1_050, 2_250, 1_200] and widths.tolist() == [101, 500, 100]
    # only the peak's own span counts, not the bin centred on it
    assert len(singletask_positives(peaks[:1], ["c1"], iset([("c1", 900, 951)]))[0]) == 1
    assert len(singletask_positives(peaks[:1], ["c1"], iset([("c1", 900, 1_001)]))[0]) == 0


def test_gencode_flags_and_window_starts():
    names = list(GENCODE_FEATURES)
    annotations = {name: iset([("c1", 1_000 * (k + 1), 1_000 * (k + 1) + 10)])
                   for k, name in enumerate(names)}
    chroms = np.array(["c1", "c1", "c2", "c1"])
    starts = np.array([1_009, 1_900, 1_000, 800])  # [800, 1000) just misses cpg
    flags = gencode_flags(annotations, chroms, starts)
    assert flags.dtype == np.float32 and flags.shape == (4, 6)
    assert flags.tolist() == [[1, 0, 0, 0, 0, 0], [0, 1, 0, 0, 0, 0], [0] * 6, [0] * 6]
    with pytest.raises(FactorNetError, match="missing GENCODE annotation"):
        gencode_flags({"cpg": annotations["cpg"]}, chroms, starts)
    assert window_starts(np.array([1_000, 50]), 200, 1_000).tolist() == [600, -350]
    assert window_starts(np.array([1_000]), 200, 1_002).tolist() == [599]


def test_binset_take_concat():
    a = BinSet(np.array(["c1", "c2"]), np.array([0, 50]), np.array([[1, 0], [0, 1]], np.uint8))
    b = BinSet(np.array(["chr10"]), np.array([100]), np.zeros((1, 2), np.uint8))
    both = BinSet.concat([a, b])
    assert len(both) == 3 and both.chroms.tolist() == ["c1", "c2", "chr10"]
    assert both.take([2, 0]).starts.tolist() == [100, 0]
    assert both.take(both.labels[:, 1] == 1).chroms.tolist() == ["c2"]
    with pytest.raises(ValueError):
        BinSet.concat([a, BinSet.empty(3)])
    with pytest.raises(ValueError):
        BinSet(np.array(["c1"]), np.array([0, 1]), np.zeros((2, 1), np.uint8))


# --- bedtools cross-check -------------------------------------------------------------------
def bedtools(*args, stdout=None):
    return subprocess.run([BEDTOOLS, *map(str, args)], check=True, capture_output=stdout is None,
                          stdout=stdout, text=True).stdout


def write_rows(path, rows_):
    path.write_text("".join(f"{c}\t{s}\t{e}\n" for c, s, e in sorted(rows_)))  # numeric order
    return path


def bedtools_bins(tmp, sizes, tf_files, zone_file, bin_size=200, stride=50):
    """FactorNet-style bins with bedtools: makewindows, then summed overlap > half a bin."""
    genome = tmp / "g.sizes"
    genome.write_text("".join(f"{c}\t{n}\n" for c, n in sizes.items()))
    windows = tmp / "w.bed"
    with open(windows, "w") as handle:
        bedtools("makewindows", "-g", genome, "-w", bin_size, "-s", stride, stdout=handle)

    def covered_windows(peaks_file):
        merged = tmp / "m.bed"
        with open(merged, "w") as handle:
            bedtools("merge", "-i", peaks_file, stdout=handle)
        out = bedtools("intersect", "-a", windows, "-b", merged, "-wo")
        cover = {}
        for line in out.splitlines():
            f = line.split("\t")
            key = (f[0], int(f[1]), int(f[2]))
            cover[key] = cover.get(key, 0) + int(f[-1])
        return {k for k, v in cover.items() if v > bin_size / 2 and k[2] - k[1] == bin_size}

    everything = tmp / "all.bed"
    (tmp / "cat.bed").write_text("".join(f.read_text() for f in tf_files))
    with open(everything, "w") as handle:
        bedtools("sort", "-i", tmp / "cat.bed", stdout=handle)
    positive = covered_windows(everything)
    kept = tmp / "kept.bed"
    write_rows(kept, positive)
    survivors = bedtools("intersect", "-a", kept, "-b", zone_file, "-v")
    positive = [(f[0], int(f[1])) for f in (l.split("\t") for l in survivors.splitlines())]
    per_tf = [covered_windows(f) for f in tf_files]
    return positive, [[int((c, s, s + bin_size) in tf) for tf in per_tf] for c, s in positive]


@pytest.mark.skipif(BEDTOOLS is None, reason="bedtools not installed")
def test_multitask_bins_match_bedtools(tmp_path):
    rng = np.random.default_rng(3)
    sizes = {"chr1": 30_000, "chr2": 12_345}
    tf_sets, tf_files = [], []
    for t in range(3):
        chroms = rng.choice(list(sizes), 80)
        starts = np.array([rng.integers(0, sizes[c] - 50) for c in chroms])
        ends = np.minimum(starts + rng.integers(20, 600, len(chroms)), [sizes[c] for c in chroms])
        peak_rows = list(zip(chroms.tolist(), starts.tolist(), ends.tolist()))
        tf_sets.append(iset(peak_rows))
        tf_files.append(write_rows(tmp_path / f"tf{t}.bed", peak_rows))
    zone = exclusion_zone(iset([("chr1", 15_000, 15_500)]), sizes, 1_000)
    zone_file = write_rows(tmp_path / "zone.bed", [(c, int(s), int(e)) for c in zone.chroms
                                                  for s, e in zip(*zone.get(c))])
    want_bins, want_labels = bedtools_bins(tmp_path, sizes, tf_files, zone_file)
    got = multitask_bins(tf_sets, list(sizes), sizes, zone)
    assert len(got) > 100
    assert list(zip(got.chroms.tolist(), got.starts.tolist())) == want_bins
    assert got.labels.tolist() == want_labels


@pytest.mark.skipif(not SHARED.is_dir(), reason="../shared/data not present")
def test_real_hepg2_chr22():
    sizes = read_chrom_sizes(SHARED / "resources" / "hg19.autoX.chrom.sizes")
    cell = SHARED / "cells" / "HepG2"
    tfs = [IntervalSet.from_records(
        read_bed(cell / f"ChIPseq.HepG2.{tf}.conservative.train.narrowPeak.gz", sizes))
        for tf in ("CTCF", "REST")]
    blacklist = IntervalSet.from_records(
        read_bed(SHARED / "resources" / "blacklist.bed.gz", sizes, drop_unknown_chroms=True))
    zone = exclusion_zone(blacklist, sizes, 1_000)
    bins = multitask_bins(tfs, ["chr22"], sizes, zone)
    assert len(bins) > 1_000
    # a bin may be covered > 100 bp only by CTCF and REST together: positive, labels all 0
    union = tfs[0].union(tfs[1])
    assert (union.covered_bp("chr22", bins.starts, bins.starts + 200) > 100).all()
    assert bins.labels.any(axis=1).mean() > 0.99
    assert not zone.overlaps(bins.chroms, bins.starts, bins.starts + 200).any()
    assert (bins.starts % 50 == 0).all() and (np.diff(bins.starts) > 0).all()
    for t, peaks in enumerate(tfs):
        covered = peaks.covered_bp("chr22", bins.starts, bins.starts + 200)
        np.testing.assert_array_equal(bins.labels[:, t], covered > 100)

"""intervals.py against a per-base boolean-mask oracle (hypothesis) and against bedtools."""

import doctest
import shutil
import subprocess

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

import factornet_jax.intervals as intervals_module
from factornet_jax.errors import FactorNetError
from factornet_jax.intervals import IntervalSet, sample_outside

SIZES = {"a": 70, "b": 40, "c": 9}
BEDTOOLS = shutil.which("bedtools")


# --- oracle: one boolean per base ------------------------------------------------------
def masks(rows, sizes=SIZES):
    out = {c: np.zeros(n, bool) for c, n in sizes.items()}
    for chrom, start, end in rows:
        out[chrom][start:end] = True
    return out


def set_masks(iset, sizes=SIZES):
    out = {c: np.zeros(n, bool) for c, n in sizes.items()}
    for chrom in iset.chroms:
        starts, ends = iset.get(chrom)
        for s, e in zip(starts, ends):
            out[chrom][s:e] = True
    return out


def assert_canonical(iset):
    for chrom in iset.chroms:
        starts, ends = iset.get(chrom)
        assert len(starts) > 0 and starts.dtype == np.int64 and ends.dtype == np.int64
        assert (ends > starts).all()
        assert (starts[1:] > ends[:-1]).all()  # sorted, disjoint, not book-ended


def assert_same(iset, expected_masks):
    assert_canonical(iset)
    got = set_masks(iset)
    for chrom in SIZES:
        np.testing.assert_array_equal(got[chrom], expected_masks[chrom], err_msg=chrom)


@st.composite
def interval_rows(draw, max_size=12):
    rows = []
    for _ in range(draw(st.integers(0, max_size))):
        chrom = draw(st.sampled_from(sorted(SIZES)))
        start = draw(st.integers(0, SIZES[chrom]))
        end = draw(st.integers(start, SIZES[chrom]))
        rows.append((chrom, start, end))
    return rows


def build(rows):
    if not rows:
        return IntervalSet.from_arrays(np.zeros(0, "U1"), [], [])
    chroms, starts, ends = zip(*rows)
    return IntervalSet.from_arrays(np.array(chroms), starts, ends)


@st.composite
def queries(draw):
    chrom = draw(st.sampled_from(sorted(SIZES)))
    n = draw(st.integers(0, 8))
    starts = draw(st.lists(st.integers(0, SIZES[chrom]), min_size=n, max_size=n))
    widths = draw(st.lists(st.integers(0, 30), min_size=n, max_size=n))
    ends = [min(s + w, SIZES[chrom]) for s, w in zip(starts, widths)]
    return chrom, np.array(starts, np.int64), np.array(ends, np.int64)


FAST = settings(max_examples=60, deadline=None)


# --- golden ------------------------------------------------------------------------------
def test_golden_merge_and_access():
    s = IntervalSet.from_arrays(["b", "a", "a", "a", "a"], [5, 30, 0, 10, 20], [9, 40, 10, 15, 20])
    assert s.chroms == ("b", "a")  # first appearance
    assert [x.tolist() for x in s.get("a")] == [[0, 30], [15, 40]]  # book-ended merged, empty gone
    assert s.get("zz")[0].shape == (0,)
    assert len(s) == 3 and s.total_bp() == 15 + 10 + 4
    rec = s.to_records()
    assert rec["chrom"].tolist() == ["b", "a", "a"] and rec["end"].tolist() == [9, 15, 40]
    assert IntervalSet.from_records(rec) == s
    assert len(IntervalSet.empty()) == 0 and not IntervalSet.empty()
    with pytest.raises(ValueError):
        s.get("a")[0][0] = 3  # immutable
    assert s.covered_bp("a", [0, 12, 14, 50], [5, 35, 31, 60]).tolist() == [5, 8, 2, 0]
    assert s.contains("a", [1, 12, 14, 30], [15, 16, 31, 40]).tolist() == [True, False, False, True]


def test_doctests():
    assert doctest.testmod(intervals_module).failed == 0


def test_slop_unknown_chrom_is_an_error():
    with pytest.raises(FactorNetError, match="'chrZ'"):
        IntervalSet.from_arrays(["chrZ"], [1], [2]).slop(5, SIZES)


# --- properties against the oracle -----------------------------------------------------
@FAST
@given(interval_rows())
def test_from_arrays_matches_oracle(rows):
    assert_same(build(rows), masks(rows))


@FAST
@given(interval_rows(), interval_rows())
def test_set_algebra_matches_oracle(rows_a, rows_b):
    a, b = build(rows_a), build(rows_b)
    ma, mb = masks(rows_a), masks(rows_b)
    assert_same(a.union(b), {c: ma[c] | mb[c] for c in SIZES})
    assert_same(a.intersect(b), {c: ma[c] & mb[c] for c in SIZES})
    assert_same(a.subtract(b), {c: ma[c] & ~mb[c] for c in SIZES})
    comp = a.complement(SIZES)
    assert_same(comp, {c: ~ma[c] for c in SIZES})
    assert comp.chroms == tuple(c for c in SIZES if (~ma[c]).any())


@FAST
@given(interval_rows(), st.integers(0, 12), st.integers(0, 12))
def test_slop_matches_oracle(rows, left, right):
    expected = masks([(c, max(s - left, 0), min(e + right, SIZES[c])) for c, s, e in rows if e > s])
    assert_same(build(rows).slop(0, SIZES, left=left, right=right), expected)
    expected = masks([(c, max(s - left, 0), min(e + left, SIZES[c])) for c, s, e in rows if e > s])
    assert_same(build(rows).slop(left, SIZES), expected)


@FAST
@given(interval_rows(), queries())
def test_queries_match_oracle(rows, query):
    chrom, starts, ends = query
    mask = masks(rows)[chrom]
    s = build(rows)
    covered = np.array([mask[a:b].sum() for a, b in zip(starts, ends)], np.int64)
    np.testing.assert_array_equal(s.covered_bp(chrom, starts, ends), covered)
    np.testing.assert_array_equal(s.overlaps(chrom, starts, ends), covered > 0)
    full = np.array([b > a and mask[a:b].all() for a, b in zip(starts, ends)], bool)
    nonempty = ends > starts
    np.testing.assert_array_equal(s.contains(chrom, starts, ends)[nonempty], full[nonempty])
    # per-row chromosome arrays give the same answers
    np.testing.assert_array_equal(
        s.covered_bp(np.full(len(starts), chrom), starts, ends), covered)


@FAST
@given(interval_rows(), st.integers(1, 25), st.integers(0, 2**32))
def test_sample_outside_avoids_excluded_and_fits(rows, width, seed):
    excluded = build(rows)
    chroms = ["a", "c"]
    mask = masks(rows)
    allowed = {(c, s) for c in chroms for s in range(SIZES[c] - width + 1)
               if not mask[c][s:s + width].any()}
    rng = np.random.default_rng(seed)
    if not allowed:
        with pytest.raises(FactorNetError, match="no room"):
            sample_outside(rng, 5, width, excluded, SIZES, chroms)
        return
    names, starts = sample_outside(rng, 200, width, excluded, SIZES, chroms)
    assert names.shape == starts.shape == (200,) and starts.dtype == np.int64
    drawn = set(zip(names.tolist(), starts.tolist()))
    assert drawn <= allowed
    if len(allowed) <= 10:  # 200 uniform draws reach every one of <= 10 positions
        assert drawn == allowed


def test_sample_outside_is_uniform():
    excluded = IntervalSet.from_arrays(["a", "b"], [10, 0], [60, 30])
    # allowed starts of width 5: a 0..5 and 60..65 (12), b 30..35 (6): 18 positions
    names, starts = sample_outside(np.random.default_rng(1), 18_000, 5, excluded, SIZES, ["a", "b"])
    _, counts = np.unique(np.char.add(names, starts.astype(str)), return_counts=True)
    assert len(counts) == 18
    assert counts.min() > 850 and counts.max() < 1150  # expected 1000, sd ~31
    again = sample_outside(np.random.default_rng(1), 18_000, 5, excluded, SIZES, ["a", "b"])
    np.testing.assert_array_equal(again[1], starts)  # same seed, same draws


# --- bedtools cross-check ------------------------------------------------------------------
def write_bed(path, rows):
    path.write_text("".join(f"{c}\t{s}\t{e}\n" for c, s, e in rows))


def run_bedtools(*args):
    out = subprocess.run([BEDTOOLS, *map(str, args)], check=True, capture_output=True, text=True)
    return [(c, int(s), int(e)) for c, s, e, *_ in (line.split("\t") for line in out.stdout.splitlines())]


def records(iset):
    return [(c, int(s), int(e)) for c in iset.chroms for s, e in zip(*iset.get(c))]


@pytest.mark.skipif(BEDTOOLS is None, reason="bedtools not installed")
def test_against_bedtools(tmp_path):
    rng = np.random.default_rng(7)
    sizes = {"chr1": 5000, "chr2": 3000}
    genome = tmp_path / "g.sizes"
    genome.write_text("".join(f"{c}\t{n}\n" for c, n in sizes.items()))

    def random_rows(n):
        chroms = rng.choice(list(sizes), n)
        starts = np.array([rng.integers(0, sizes[c] - 1) for c in chroms])
        ends = np.minimum(starts + rng.integers(1, 300, n), [sizes[c] for c in chroms])
        order = np.lexsort((starts, chroms))
        return [(chroms[i], int(starts[i]), int(ends[i])) for i in order]

    for trial in range(3):
        rows_a, rows_b = random_rows(60), random_rows(40)
        fa, fb = tmp_path / f"a{trial}.bed", tmp_path / f"b{trial}.bed"
        write_bed(fa, rows_a)
        write_bed(fb, rows_b)
        a = IntervalSet.from_arrays(*map(np.array, zip(*rows_a)))
        b = IntervalSet.from_arrays(*map(np.array, zip(*rows_b)))
        merged_a = run_bedtools("merge", "-i", fa)
        assert records(a) == merged_a
        merged_b = tmp_path / f"mb{trial}.bed"
        write_bed(merged_b, run_bedtools("merge", "-i", fb))
        merged_a_file = tmp_path / f"ma{trial}.bed"
        write_bed(merged_a_file, merged_a)
        assert records(a.intersect(b)) == run_bedtools("intersect", "-a", merged_a_file, "-b", merged_b)
        assert records(a.subtract(b)) == run_bedtools("subtract", "-a", merged_a_file, "-b", merged_b)
        assert records(a.complement(sizes)) == run_bedtools("complement", "-i", merged_a_file, "-g", genome)
        slopped = run_bedtools("slop", "-i", merged_a_file, "-g", genome, "-b", 120)
        slopped_file = tmp_path / f"sl{trial}.bed"
        write_bed(slopped_file, slopped)
        assert records(a.slop(120, sizes)) == run_bedtools("merge", "-i", slopped_file)

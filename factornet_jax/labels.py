"""Bins, labels, negative sampling, jitter, shifts and GENCODE flags (FactorNet semantics).

Every rule here is FactorNet's (``utils.py`` of the original release); docs/FIDELITY.md lists
each one with the line of FactorNet it follows, and the few places where we differ.

Bins are ``BIN_SIZE`` (200) bp on a genome-wide grid of ``STRIDE`` (50) bp steps (bin starts
are multiples of the stride from each chromosome's start); the model sees ``seq_len`` bp
centred on a bin (``window_starts``).

Multi-task (one cell line, all its TFs)
    ``multitask_bins``: every grid bin covered by the union of all TFs' conservative peaks
    on more than half its length (> 100 bp) and not touching the exclusion zone; label t is
    1 when TF t's peaks cover > 100 bp of it. Negatives: ``sample_negative_bins`` outside
    ``multitask_negative_exclusion`` (all TFs' merged peaks widened by 200 bp, and the
    exclusion zone), as FactorNet's ``merged_chip_slop_bed.cat(blacklist)``. Every multi-task
    window, positive or negative, moves by ``shift_bins`` (a uniform integer in
    [-MULTITASK_SHIFT, +MULTITASK_SHIFT]) each time it is read.
Single-task (one TF, several cell lines)
    ``singletask_positives`` keeps conservative peaks clear of the exclusion zone;
    ``jitter_positive_bins`` centres a 200-bp bin on each peak's midpoint and moves it by a
    uniform integer in [-s, +s], s = peak_end - bin_start - JITTER_MIN_OVERLAP, fresh each
    epoch; negatives come from ``sample_negative_bins`` outside
    ``singletask_negative_exclusion`` (relaxed peaks + 200 bp, and the exclusion zone), so
    relaxed-only bins are never negatives.

Coverage is measured on merged peaks: a bin covered by two peaks of one TF, neither
covering > 100 bp alone but together more, is positive. (FactorNet's
``bedtools intersect -f 0.505`` asks the same of each single peak; the two differ only
for peaks of one TF closer than a bin.)
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping, Sequence

import numpy as np

from .errors import FactorNetError
from .intervals import IntervalSet, compact_names, covered_bases, merge_intervals, sample_outside

BIN_SIZE = 200
STRIDE = 50
MULTITASK_SHIFT = 20        # FactorNet utils.shift_size: multi-task windows move by [-20, +20] bp
JITTER_MIN_OVERLAP = 76     # FactorNet: shift_size = peak_stop - start - 75 - 1
NEGATIVE_MARGIN = BIN_SIZE  # FactorNet: peaks widened by genome_window_size before exclusion
GENCODE_FEATURES = ("cpg", "cds", "intron", "promoter", "utr5", "utr3")  # the one definition
GENCODE_SIZE = len(GENCODE_FEATURES)  # GENCODE flags per bin (model input width)

_NONE = np.zeros(0, np.int64)


@dataclass(frozen=True, eq=False)
class BinSet:
    """Labelled bins.

    Attributes
    ----------
    chroms : (N,) str_ array (``U<k>``, k the longest name: 1.6 M bins of ``U64`` would
        take 400 MB, of ``U5`` 32 MB)
    starts : (N,) int64, bin start (the bin is [start, start + bin_size))
    labels : (N, T) uint8, 0/1 per task
    """

    chroms: np.ndarray
    starts: np.ndarray
    labels: np.ndarray

    def __post_init__(self):
        n = len(self.starts)
        if self.chroms.shape != (n,) or self.labels.ndim != 2 or len(self.labels) != n:
            raise ValueError(
                f"inconsistent BinSet shapes: chroms {self.chroms.shape}, "
                f"starts {self.starts.shape}, labels {self.labels.shape}"
            )

    @classmethod
    def empty(cls, num_tasks: int) -> "BinSet":
        return cls(np.zeros(0, "U1"), np.zeros(0, np.int64),
                   np.zeros((0, num_tasks), np.uint8))

    @property
    def num_tasks(self) -> int:
        return self.labels.shape[1]

    def __len__(self) -> int:
        return len(self.starts)

    def take(self, idx) -> "BinSet":
        """Rows ``idx`` (integer indices or a boolean mask)."""
        return BinSet(self.chroms[idx], self.starts[idx], self.labels[idx])

    @classmethod
    def concat(cls, parts: Sequence["BinSet"]) -> "BinSet":
        """Rows of all ``parts`` in order; they must have the same number of tasks."""
        parts = list(parts)
        if not parts:
            raise ValueError("concat needs at least one BinSet")
        tasks = {p.num_tasks for p in parts}
        if len(tasks) != 1:
            raise ValueError(f"cannot concat BinSets with different task counts {sorted(tasks)}")
        return cls(
            np.concatenate([p.chroms for p in parts]),
            np.concatenate([p.starts for p in parts]),
            np.concatenate([p.labels for p in parts]),
        )

    def intervals(self, bin_size: int = BIN_SIZE) -> IntervalSet:
        """The bases the bins cover."""
        return IntervalSet.from_arrays(self.chroms, self.starts, self.starts + bin_size)


def exclusion_zone(
    blacklist: IntervalSet, chrom_sizes: Mapping[str, int], seq_len: int
) -> IntervalSet:
    """Blacklist widened by ``seq_len`` on both sides + the first/last ``seq_len`` bp of each
    chromosome (FactorNet's ``make_blacklist``). Blacklist intervals on chromosomes absent
    from ``chrom_sizes`` (alternative haplotypes, chrM, ...) are ignored.

    A bin may be used when it shares no base with this zone, so its ``seq_len`` window keeps
    clear of the blacklist and of the chromosome ends.
    """
    chroms = list(chrom_sizes)
    widened = blacklist.select(chroms).slop(seq_len, chrom_sizes)
    ends = IntervalSet.from_arrays(
        np.repeat(np.array(chroms), 2),
        np.array([[0, max(s - seq_len, 0)] for s in chrom_sizes.values()], np.int64).ravel(),
        np.array([[min(seq_len, s), s] for s in chrom_sizes.values()], np.int64).ravel(),
    )
    return widened.union(ends).select(chroms)


def _grid_bins(set_starts, set_ends, size, bin_size, stride, min_cover) -> np.ndarray:
    """Sorted grid bin starts (multiples of stride, bin inside [0, size)) covered by the
    merged intervals on more than ``min_cover`` bases. Candidates are generated only
    around the intervals."""
    if not len(set_starts):
        return np.zeros(0, np.int64)
    # Grid bins sharing >= 1 base with [a, b): start in (a - bin_size, b).
    first = -((-(set_starts - bin_size + 1)) // stride) * stride  # ceil to grid
    first = np.maximum(first, 0)
    last = np.minimum((set_ends - 1) // stride * stride, (size - bin_size) // stride * stride)
    # Neighbouring intervals share candidates: start each range after the previous one,
    # so the candidates come out strictly increasing (first and last are non-decreasing).
    first[1:] = np.maximum(first[1:], last[:-1] + stride)
    counts = np.maximum((last - first) // stride + 1, 0)
    total = int(counts.sum())
    if not total:
        return np.zeros(0, np.int64)
    offsets = np.arange(total, dtype=np.int64) - np.repeat(np.cumsum(counts) - counts, counts)
    candidates = np.repeat(first, counts) + offsets * stride
    covered = covered_bases(set_starts, set_ends, candidates, candidates + bin_size)
    return candidates[covered > min_cover]


def multitask_bins(
    conservative: Sequence[IntervalSet],
    chroms: Sequence[str],
    chrom_sizes: Mapping[str, int],
    exclude: IntervalSet,
    bin_size: int = BIN_SIZE,
    stride: int = STRIDE,
) -> BinSet:
    """Positive bins of multi-task training and their per-TF labels.

    Parameters
    ----------
    conservative : list of T IntervalSet, one per TF (conservative peaks)
    chroms : chromosomes to use (e.g. the training chromosomes)
    chrom_sizes : dict chrom -> size
    exclude : IntervalSet, bins touching it are dropped (``exclusion_zone``)
    bin_size, stride : bin length and grid step (bin starts are multiples of ``stride``)

    Returns
    -------
    BinSet with labels (N, T) uint8: every grid bin within its chromosome, covered by the
    union of all TFs' peaks on more than ``bin_size / 2`` bases and sharing no base with
    ``exclude``; label t = 1 when TF t's peaks cover more than ``bin_size / 2`` bases.
    Ordered by ``chroms`` then start.
    """
    num_tasks = len(conservative)
    min_cover = bin_size / 2
    parts = []
    for chrom in chroms:
        if chrom not in chrom_sizes:
            raise FactorNetError(f"chromosome '{chrom}' is not in the chrom sizes")
        size = chrom_sizes[chrom]
        union_starts, union_ends = merge_intervals(
            np.concatenate([p.get(chrom)[0] for p in conservative] + [_NONE]),
            np.concatenate([p.get(chrom)[1] for p in conservative] + [_NONE]),
        )
        starts = _grid_bins(union_starts, union_ends, size, bin_size, stride, min_cover)
        starts = starts[~exclude.overlaps(chrom, starts, starts + bin_size)]
        labels = np.zeros((len(starts), num_tasks), np.uint8)
        for t, peaks in enumerate(conservative):
            tf_starts = _grid_bins(*peaks.get(chrom), size, bin_size, stride, min_cover)
            # every TF-positive bin is union-positive; keep those that survived `exclude`
            rows = np.searchsorted(starts, tf_starts)
            hit = rows < len(starts)
            hit[hit] = starts[rows[hit]] == tf_starts[hit]
            labels[rows[hit], t] = 1
        parts.append(BinSet(np.full(len(starts), chrom), starts, labels))
    return BinSet.concat(parts) if parts else BinSet.empty(num_tasks)


def multitask_negative_exclusion(
    conservative: Sequence[IntervalSet],
    zone: IntervalSet,
    chrom_sizes: Mapping[str, int],
    margin: int = NEGATIVE_MARGIN,
) -> IntervalSet:
    """Where multi-task negatives must not fall: every TF's conservative peaks, merged and
    widened by ``margin`` (200 bp) on both sides, and the exclusion zone (FactorNet's
    ``merged_chip_bed.slop(b=200).cat(blacklist)``). Peaks on chromosomes absent from
    ``chrom_sizes`` are ignored."""
    chroms = list(chrom_sizes)
    merged = IntervalSet.empty() if not conservative else conservative[0]
    for peaks in conservative[1:]:
        merged = merged.union(peaks)
    return zone.union(merged.select(chroms).slop(margin, chrom_sizes))


def singletask_negative_exclusion(
    relaxed: IntervalSet,
    blacklist_zone: IntervalSet,
    chrom_sizes: Mapping[str, int],
    margin: int = NEGATIVE_MARGIN,
) -> IntervalSet:
    """Where single-task negatives must not fall: relaxed peaks widened by ``margin``
    (200 bp) on both sides, and the exclusion zone. Pass the conservative peaks when a
    cell line has no relaxed file. Peaks on chromosomes absent from ``chrom_sizes`` are
    ignored."""
    return blacklist_zone.union(relaxed.select(list(chrom_sizes)).slop(margin, chrom_sizes))


def sample_negative_bins(
    rng: np.random.Generator,
    n: int,
    excluded: IntervalSet,
    chroms: Sequence[str],
    chrom_sizes: Mapping[str, int],
    bin_size: int = BIN_SIZE,
    num_tasks: int = 1,
) -> BinSet:
    """``n`` random bins (any start, not on the grid) on ``chroms`` sharing no base with
    ``excluded``, labels all zero (n, num_tasks).

    ``excluded``: multi-task -> ``multitask_negative_exclusion`` (zone + merged peaks slopped 200 bp);
    single-task -> ``singletask_negative_exclusion`` (zone + relaxed peaks slopped 200 bp).
    Draws are uniform over all allowed bin positions (``intervals.sample_outside``).
    """
    names, starts = sample_outside(rng, n, bin_size, excluded, chrom_sizes, chroms)
    return BinSet(names, starts, np.zeros((n, num_tasks), np.uint8))


def singletask_positives(
    peaks: np.ndarray,
    chroms: Sequence[str],
    exclude: IntervalSet,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Conservative peaks usable as single-task positives.

    Keeps peaks on ``chroms`` that share no base with ``exclude`` (FactorNet's
    ``chip_bed.intersect(blacklist, v=True)``, the blacklist there being the exclusion zone).

    Parameters
    ----------
    peaks : (P,) ``bed.PEAK_DTYPE``

    Returns
    -------
    chroms : (N,) str_, midpoints : (N,) int64 ((start + end) // 2), widths : (N,) int64,
    in input order.
    """
    peaks = usable_peaks(peaks, chroms, exclude)
    mids = (peaks["start"] + peaks["end"]) // 2
    return (compact_names(peaks["chrom"]), mids.astype(np.int64),
            (peaks["end"] - peaks["start"]).astype(np.int64))


def usable_peaks(peaks: np.ndarray, chroms: Sequence[str], exclude: IntervalSet) -> np.ndarray:
    """The rows of ``peaks`` (``bed.PEAK_DTYPE``) on ``chroms`` sharing no base with ``exclude``."""
    peaks = peaks[np.isin(peaks["chrom"], np.asarray(list(chroms)))]
    return peaks[~exclude.overlaps(peaks["chrom"], peaks["start"], peaks["end"])]


def jitter_range(midpoints: np.ndarray, widths: np.ndarray, bin_size: int = BIN_SIZE) -> np.ndarray:
    """(N,) int64 FactorNet's largest jitter s of each peak's bin:
    ``s = peak_end - bin_start - JITTER_MIN_OVERLAP`` with ``bin_start = midpoint - bin_size // 2``
    (for 200-bp bins: ceil(width / 2) + 24, narrow peaks included).

    The peak is recovered as ``start = midpoint - width // 2`` (midpoint = (start + end) // 2,
    as ``singletask_positives`` returns it).
    """
    midpoints = np.asarray(midpoints, np.int64)
    widths = np.asarray(widths, np.int64)
    peak_ends = midpoints - widths // 2 + widths
    return peak_ends - (midpoints - bin_size // 2) - JITTER_MIN_OVERLAP


def jitter_positive_bins(
    rng: np.random.Generator,
    chroms: np.ndarray,
    midpoints: np.ndarray,
    widths: np.ndarray,
    bin_size: int = BIN_SIZE,
) -> np.ndarray:
    """Bin starts ``midpoint - bin_size // 2 + j``, j a uniform integer in [-s, +s] with s from
    ``jitter_range`` (FactorNet's ``np.random.randint(-shift, shift + 1)`` in DataIterator).

    Returns
    -------
    starts : (N,) int64
    """
    reach = jitter_range(midpoints, widths, bin_size)
    base = np.asarray(midpoints, np.int64) - bin_size // 2
    return base + rng.integers(-reach, reach + 1, dtype=np.int64)


def shift_bins(rng: np.random.Generator, starts: np.ndarray, max_shift: int = MULTITASK_SHIFT) -> np.ndarray:
    """(N,) int64 ``starts`` each moved by a uniform integer in [-max_shift, +max_shift]
    (FactorNet moves every multi-task window so, each time it is read)."""
    starts = np.asarray(starts, np.int64)
    if max_shift <= 0:
        return starts.copy()
    return starts + rng.integers(-max_shift, max_shift + 1, len(starts), dtype=np.int64)


def gencode_flags(
    annotations: Mapping[str, IntervalSet],
    chroms: np.ndarray,
    starts: np.ndarray,
    bin_size: int = BIN_SIZE,
) -> np.ndarray:
    """(N, 6) float32 flags in ``GENCODE_FEATURES`` order: 1.0 when the bin shares at least
    one base with the annotation (CpG island, CDS, intron, promoter, 5' UTR, 3' UTR)."""
    missing = [name for name in GENCODE_FEATURES if name not in annotations]
    if missing:
        raise FactorNetError(
            f"missing GENCODE annotation(s) {', '.join(missing)}; "
            f"expected {', '.join(GENCODE_FEATURES)}"
        )
    starts = np.asarray(starts, np.int64)
    flags = np.zeros((len(starts), len(GENCODE_FEATURES)), np.float32)
    for k, name in enumerate(GENCODE_FEATURES):
        flags[:, k] = annotations[name].overlaps(chroms, starts, starts + bin_size)
    return flags


def window_starts(bin_starts: np.ndarray, bin_size: int, seq_len: int) -> np.ndarray:
    """(N,) int64 start of the ``seq_len`` window centred on each bin:
    ``bin_start + bin_size // 2 - seq_len // 2`` (e.g. bin_start - 400 for 200 / 1000)."""
    return np.asarray(bin_starts, np.int64) + bin_size // 2 - seq_len // 2

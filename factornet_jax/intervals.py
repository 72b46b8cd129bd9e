"""IntervalSet: per-chromosome sorted, merged, half-open int64 intervals (vectorised numpy).

An ``IntervalSet`` is a set of bases: overlapping and book-ended intervals are merged, so
``[0, 10) + [10, 20)`` is the single interval ``[0, 20)`` (as ``bedtools merge``), and
empty intervals vanish. Every operation works on sorted arrays with ``searchsorted`` and
prefix sums; Python loops run over chromosomes only, never over intervals or queries.

    >>> s = IntervalSet.from_arrays(["chr1", "chr1"], [10, 15], [20, 30])
    >>> s.get("chr1")
    (array([10]), array([30]))
    >>> s.covered_bp("chr1", [0, 25], [12, 40]).tolist()
    [2, 5]
"""

from __future__ import annotations

from typing import Iterable, Mapping, Sequence

import numpy as np

from .errors import FactorNetError

_EMPTY = np.zeros(0, np.int64)


def merge_intervals(starts: np.ndarray, ends: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Sort and merge overlapping or book-ended intervals of one chromosome.

    starts, ends : (N,) int64 -> merged (M,) starts and ends; empty intervals dropped.
    """
    keep = ends > starts
    starts, ends = starts[keep], ends[keep]
    if not len(starts):
        return _EMPTY, _EMPTY
    order = np.argsort(starts, kind="stable")
    starts, ends = starts[order], ends[order]
    reach = np.maximum.accumulate(ends)
    new_group = np.empty(len(starts), bool)
    new_group[0] = True
    new_group[1:] = starts[1:] > reach[:-1]
    first = np.flatnonzero(new_group)
    last = np.append(first[1:] - 1, len(starts) - 1)
    return starts[first], reach[last]


def _inside(starts: np.ndarray, ends: np.ndarray, points: np.ndarray) -> np.ndarray:
    """Whether each point lies in a merged interval."""
    if not len(starts):
        return np.zeros(len(points), bool)
    j = np.searchsorted(starts, points, side="right") - 1
    return (j >= 0) & (ends[np.maximum(j, 0)] > points)


def _combine(a, b, keep) -> tuple[np.ndarray, np.ndarray]:
    """Boolean set operation on two merged interval lists of one chromosome.

    Cuts the line at every boundary of both sets; each elementary segment is in the
    result when ``keep(in_a, in_b)``.
    """
    bounds = np.unique(np.concatenate([a[0], a[1], b[0], b[1]]))
    if len(bounds) < 2:
        return _EMPTY, _EMPTY
    left, right = bounds[:-1], bounds[1:]
    chosen = keep(_inside(a[0], a[1], left), _inside(b[0], b[1], left))
    return merge_intervals(left[chosen], right[chosen])


def _factorize(chroms: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(unique names, first index of each, code of each element); fast when equal names
    come in runs (as in sorted or per-chromosome arrays)."""
    run_starts = np.flatnonzero(np.concatenate([[True], chroms[1:] != chroms[:-1]]))
    names, first_run, run_codes = np.unique(chroms[run_starts], return_index=True,
                                            return_inverse=True)
    run_lengths = np.diff(np.append(run_starts, len(chroms)))
    return names, run_starts[first_run], np.repeat(run_codes.reshape(-1), run_lengths)


def compact_names(chroms: np.ndarray) -> np.ndarray:
    """Chromosome names as a str_ array no wider than the longest name (U64 -> U5)."""
    chroms = np.asarray(chroms)
    if not len(chroms):
        return chroms.astype("U1")
    return chroms.astype(f"U{max(1, int(np.char.str_len(chroms).max()))}")


def _as_int64(values, n=None) -> np.ndarray:
    arr = np.asarray(values, dtype=np.int64).reshape(-1)
    if n is not None and arr.shape != (n,):
        raise ValueError(f"expected {n} values, got shape {arr.shape}")
    return arr


class IntervalSet:
    """Immutable set of half-open intervals, per chromosome sorted and merged.

    Build with ``from_arrays``, ``from_records`` or ``empty``; chromosomes keep their
    order of first appearance.
    """

    __slots__ = ("_data",)

    def __init__(self, data: Mapping[str, tuple[np.ndarray, np.ndarray]]):
        """Internal: ``data`` maps chrom -> (starts, ends), already sorted and merged."""
        frozen = {}
        for chrom, (starts, ends) in data.items():
            if len(starts):
                starts, ends = starts.copy(), ends.copy()
                starts.flags.writeable = False
                ends.flags.writeable = False
                frozen[str(chrom)] = (starts, ends)
        self._data = frozen

    # construction -------------------------------------------------------------------
    @classmethod
    def empty(cls) -> "IntervalSet":
        return cls({})

    @classmethod
    def from_arrays(cls, chroms, starts, ends) -> "IntervalSet":
        """From parallel arrays: chroms (N,) str, starts (N,) int, ends (N,) int.

        ``chroms`` may also be a single name for all intervals. Intervals with
        start >= end are dropped; start > end raises ValueError (a programming error:
        user files are validated by ``bed.read_bed``).
        """
        starts = _as_int64(starts)
        ends = _as_int64(ends, len(starts))
        if isinstance(chroms, str):
            chroms = np.full(len(starts), chroms)
        chroms = np.asarray(chroms).reshape(-1)
        if chroms.shape != starts.shape:
            raise ValueError(f"expected {len(starts)} chroms, got shape {chroms.shape}")
        if np.any(starts > ends):
            raise ValueError("interval with start > end")
        if not len(starts):
            return cls.empty()
        names, first, inverse = _factorize(chroms)
        data = {}
        order = np.argsort(inverse, kind="stable")
        bounds = np.searchsorted(inverse[order], np.arange(len(names) + 1))
        for code in np.argsort(first):
            rows = order[bounds[code]:bounds[code + 1]]
            data[str(names[code])] = merge_intervals(starts[rows], ends[rows])
        return cls(data)

    @classmethod
    def from_records(cls, records: np.ndarray) -> "IntervalSet":
        """From a structured array with ``chrom``, ``start``, ``end`` (e.g. ``PEAK_DTYPE``)."""
        return cls.from_arrays(records["chrom"], records["start"], records["end"])

    @classmethod
    def from_chrom_sizes(cls, chrom_sizes: Mapping[str, int]) -> "IntervalSet":
        """Whole chromosomes: [0, size) each."""
        return cls({c: (np.array([0], np.int64), np.array([s], np.int64))
                    for c, s in chrom_sizes.items()})

    # access -------------------------------------------------------------------------
    @property
    def chroms(self) -> tuple[str, ...]:
        """Chromosomes holding at least one interval."""
        return tuple(self._data)

    def get(self, chrom: str) -> tuple[np.ndarray, np.ndarray]:
        """(starts, ends) int64 (M,) read-only arrays of one chromosome (empty if absent)."""
        return self._data.get(chrom, (_EMPTY, _EMPTY))

    def __len__(self) -> int:
        return sum(len(s) for s, _ in self._data.values())

    def __bool__(self) -> bool:
        return bool(self._data)

    def __eq__(self, other) -> bool:
        if not isinstance(other, IntervalSet):
            return NotImplemented
        if set(self._data) != set(other._data):
            return False
        return all(
            np.array_equal(s, other._data[c][0]) and np.array_equal(e, other._data[c][1])
            for c, (s, e) in self._data.items()
        )

    __hash__ = None

    def __repr__(self) -> str:
        return f"IntervalSet({len(self)} intervals on {len(self._data)} chroms, {self.total_bp()} bp)"

    def total_bp(self) -> int:
        return int(sum(int((e - s).sum()) for s, e in self._data.values()))

    def to_records(self) -> np.ndarray:
        """(N,) ``bed.PEAK_DTYPE`` records, summit = midpoint, chromosome by chromosome."""
        from .bed import PEAK_DTYPE

        out = np.zeros(len(self), PEAK_DTYPE)
        at = 0
        for chrom, (s, e) in self._data.items():
            part = out[at:at + len(s)]
            part["chrom"], part["start"], part["end"] = chrom, s, e
            part["summit"] = (s + e) // 2
            at += len(s)
        return out

    def select(self, chroms: Iterable[str]) -> "IntervalSet":
        """Only the intervals on ``chroms`` (in that order)."""
        return IntervalSet({c: self._data[c] for c in chroms if c in self._data})

    # set algebra --------------------------------------------------------------------
    def _binary(self, other: "IntervalSet", keep, chroms) -> "IntervalSet":
        return IntervalSet({c: _combine(self.get(c), other.get(c), keep) for c in chroms})

    def union(self, other: "IntervalSet") -> "IntervalSet":
        chroms = list(self._data) + [c for c in other._data if c not in self._data]
        return self._binary(other, np.logical_or, chroms)

    def intersect(self, other: "IntervalSet") -> "IntervalSet":
        return self._binary(other, np.logical_and, [c for c in self._data if c in other._data])

    def subtract(self, other: "IntervalSet") -> "IntervalSet":
        return self._binary(other, lambda a, b: a & ~b, list(self._data))

    def _check_sizes(self, chrom_sizes: Mapping[str, int]) -> None:
        for chrom in self._data:
            if chrom not in chrom_sizes:
                raise FactorNetError(
                    f"chromosome '{chrom}' has intervals but is not in the chrom sizes; "
                    "use the same genome build and naming for all inputs"
                )

    def slop(
        self,
        bp: int,
        chrom_sizes: Mapping[str, int],
        *,
        left: int | None = None,
        right: int | None = None,
    ) -> "IntervalSet":
        """Widen every interval by ``bp`` (or ``left``/``right``) clipped to [0, size).

        Chromosomes with intervals must be in ``chrom_sizes`` (FactorNetError otherwise).
        """
        left = bp if left is None else left
        right = bp if right is None else right
        if left < 0 or right < 0:
            raise ValueError("slop must be non-negative")
        self._check_sizes(chrom_sizes)
        return IntervalSet({
            c: merge_intervals(np.maximum(s - left, 0), np.minimum(e + right, chrom_sizes[c]))
            for c, (s, e) in self._data.items()
        })

    def complement(self, chrom_sizes: Mapping[str, int]) -> "IntervalSet":
        """Bases of the chromosomes in ``chrom_sizes`` (their order) outside the set.

        Intervals on chromosomes absent from ``chrom_sizes`` are ignored.
        """
        whole = IntervalSet.from_chrom_sizes(chrom_sizes)
        return whole.subtract(self)

    # queries ------------------------------------------------------------------------
    def _per_chrom(self, chroms, starts, ends, fn, dtype) -> np.ndarray:
        starts = _as_int64(starts)
        ends = _as_int64(ends, len(starts))
        if isinstance(chroms, str):
            return fn(*self.get(chroms), starts, ends).astype(dtype, copy=False)
        chroms = np.asarray(chroms).reshape(-1)
        if chroms.shape != starts.shape:
            raise ValueError(f"expected {len(starts)} chroms, got shape {chroms.shape}")
        out = np.zeros(len(starts), dtype)
        if not len(starts):
            return out
        names, _, inverse = _factorize(chroms)
        for code, name in enumerate(names):
            rows = np.flatnonzero(inverse == code)
            out[rows] = fn(*self.get(str(name)), starts[rows], ends[rows])
        return out

    def covered_bp(self, chrom, starts, ends) -> np.ndarray:
        """Bases of each query [start, end) inside the set.

        Parameters
        ----------
        chrom : str, or (N,) str array
        starts, ends : (N,) int

        Returns
        -------
        (N,) int64
        """
        return self._per_chrom(chrom, starts, ends, covered_bases, np.int64)

    def overlaps(self, chrom, starts, ends) -> np.ndarray:
        """(N,) bool: query shares at least 1 bp with the set."""
        return self.covered_bp(chrom, starts, ends) > 0

    def contains(self, chrom, starts, ends) -> np.ndarray:
        """(N,) bool: query lies entirely inside one interval (an empty query: touches one)."""
        return self._per_chrom(chrom, starts, ends, _contained, bool)


def covered_bases(set_starts, set_ends, starts, ends) -> np.ndarray:
    """(N,) int64 bases of each query [starts, ends) inside merged intervals of one
    chromosome (set_starts, set_ends sorted and merged), via prefix sums of lengths."""
    if not len(set_starts):
        return np.zeros(len(starts), np.int64)
    before = np.concatenate([[0], np.cumsum(set_ends - set_starts)])

    def covered_below(x):  # bases of the set in [0, x)
        j = np.searchsorted(set_starts, x, side="right") - 1
        jj = np.maximum(j, 0)
        part = np.minimum(x, set_ends[jj]) - set_starts[jj]
        return np.where(j >= 0, before[jj] + part, 0)

    return np.maximum(covered_below(ends) - covered_below(starts), 0)


def _contained(set_starts, set_ends, starts, ends) -> np.ndarray:
    if not len(set_starts):
        return np.zeros(len(starts), bool)
    j = np.searchsorted(set_starts, starts, side="right") - 1
    return (j >= 0) & (set_ends[np.maximum(j, 0)] >= ends) & (ends >= starts)


def sample_outside(
    rng: np.random.Generator,
    n: int,
    width: int,
    excluded: IntervalSet,
    chrom_sizes: Mapping[str, int],
    chroms: Sequence[str],
) -> tuple[np.ndarray, np.ndarray]:
    """Draw ``n`` windows of ``width`` bp uniformly over every allowed start position.

    A start ``s`` on chromosome ``c`` is allowed when ``[s, s + width)`` lies within
    ``[0, chrom_sizes[c])`` and shares no base with ``excluded``. Allowed starts form
    ``[0, size - width]`` minus ``excluded`` widened to the left by ``width - 1``; a
    draw picks a position in their concatenation (by cumulative length), so every
    allowed window is equally likely, across all ``chroms``.

    Returns
    -------
    chroms : (n,) str_ array (width of the longest name)
    starts : (n,) int64

    Raises
    ------
    FactorNetError
        If no window fits (every start is excluded or the chromosomes are too short).
    """
    if width <= 0:
        raise ValueError("width must be positive")
    for chrom in chroms:
        if chrom not in chrom_sizes:
            raise FactorNetError(
                f"chromosome '{chrom}' is not in the chrom sizes; choose chromosomes of the genome"
            )
    room = {c: chrom_sizes[c] - width + 1 for c in chroms if chrom_sizes[c] >= width}
    # [s, s + width) meets an excluded [a, b) exactly when a - width < s < b.
    blocked = excluded.select(room).slop(0, room, left=width - 1)
    allowed = IntervalSet.from_chrom_sizes(room).subtract(blocked)
    names = list(allowed.chroms)
    if not names:
        raise FactorNetError(
            f"no room to draw {width} bp windows outside the excluded regions on "
            f"{', '.join(chroms) or 'no chromosomes'}; choose more or longer chromosomes"
        )
    seg_chrom = np.concatenate([np.full(len(allowed.get(c)[0]), i) for i, c in enumerate(names)])
    seg_start = np.concatenate([allowed.get(c)[0] for c in names])
    seg_len = np.concatenate([allowed.get(c)[1] - allowed.get(c)[0] for c in names])
    cum = np.cumsum(seg_len)
    draws = rng.integers(0, cum[-1], size=n, dtype=np.int64)
    seg = np.searchsorted(cum, draws, side="right")
    starts = seg_start[seg] + draws - (cum[seg] - seg_len[seg])
    return np.array(names)[seg_chrom[seg]], starts.astype(np.int64)

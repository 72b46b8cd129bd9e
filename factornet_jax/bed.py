"""BED / narrowPeak / chrom.sizes reading and writing, validated.

Coordinates are 0-based half-open int64. Records are numpy structured arrays of
``PEAK_DTYPE``::

    >>> import numpy as np
    >>> rec = np.zeros(1, PEAK_DTYPE)
    >>> rec.dtype.names
    ('chrom', 'start', 'end', 'summit')

``summit`` is an absolute position: ``start`` + narrowPeak column 10 when that column
is present and >= 0, else the midpoint ``(start + end) // 2``.

Parsing is vectorised (read all text, split, convert with numpy); a line-by-line scan
runs only after a failure, to name the offending line in the error message.
"""

from __future__ import annotations

import gzip
import itertools
import zlib
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np

from .errors import InputFileError

PEAK_DTYPE = np.dtype([("chrom", "U64"), ("start", "i8"), ("end", "i8"), ("summit", "i8")])

GZIP_MAGIC = b"\x1f\x8b"  # first bytes of every gzip (and bgzip) file
TRUNCATED_GZIP = "truncated or corrupt gzip file; download or compress it again"
_MAX_CHROM_NAME = 64
SKIP_PREFIXES = ("track", "browser", "#")  # BED/bedGraph header and comment lines
# narrowPeak keeps its summit offset in column 10; BED12 uses column 10 for blockCount.
_SUMMIT_COLUMN = 9
_BED12_COLUMNS = 12


def read_text(path, what="file") -> str:
    """Whole text of a plain or gzipped file (gzip detected by magic bytes, not name); `what`
    names the kind of file in the messages ("MEME file")."""
    path = Path(path)
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise InputFileError(path, f"{what} not found; check the path") from None
    except IsADirectoryError:
        raise InputFileError(path, f"is a directory, expected a {what}") from None
    except OSError as exc:
        raise InputFileError(path, f"cannot read {what} ({exc.strerror})") from None
    if raw[:2] == GZIP_MAGIC:
        try:
            raw = gzip.decompress(raw)
        except (EOFError, gzip.BadGzipFile, zlib.error, OSError):
            raise InputFileError(
                path, TRUNCATED_GZIP
            ) from None
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InputFileError(
            path, f"not a text {what} (undecodable byte at offset {exc.start})"
        ) from None


def open_maybe_gzip(path, what="file"):
    """Binary handle of a plain or gzipped file (gzip detected by its magic bytes, not its name)."""
    path = Path(path)
    try:
        handle = open(path, "rb")
    except FileNotFoundError:
        raise InputFileError(path, "file not found; check the path") from None
    except IsADirectoryError:
        raise InputFileError(path, f"is a directory, expected a {what}") from None
    except OSError as exc:
        raise InputFileError(path, f"cannot read file ({exc.strerror})") from None
    if handle.read(2) == GZIP_MAGIC:
        handle.close()
        return gzip.open(path, "rb")
    handle.seek(0)
    return handle


def is_data_line(line: str) -> bool:
    """Whether a BED/bedGraph line holds data (not blank, not a track/browser/# line)."""
    stripped = line.strip()
    return bool(stripped) and not stripped.startswith(SKIP_PREFIXES)


def _data_lines(text: str) -> tuple[list[str], list[str]]:
    """(all lines, data lines) of a BED-like text."""
    lines = text.splitlines()
    return lines, [line for line in lines if is_data_line(line)]


def _split(line: str, maxsplit: int) -> list[str]:
    """Tab-separated fields; whitespace-separated when the line has no tab."""
    fields = line.split("\t", maxsplit)
    if len(fields) < 3:
        fields = line.split()
        if len(fields) > maxsplit:
            fields = fields[:maxsplit] + ["\t".join(fields[maxsplit:])]
    return fields


def other_chrom_name(chrom: str) -> str:
    """The same chromosome in the other naming style: 'chr1' <-> '1'."""
    return chrom[3:] if chrom.startswith("chr") else "chr" + chrom


def chrom_naming_hint(chrom: str, known) -> str:
    """" (it has '1': use one chromosome naming)" when `known` names `chrom` the other way
    (chr1 vs 1), else ""; appended to a "chromosome not found" message."""
    other = other_chrom_name(chrom)
    return f" (it has '{other}': use one chromosome naming)" if other in known else ""


def unknown_chrom_message(chrom: str, chrom_sizes: Mapping[str, int], what: str) -> str:
    """One-line message for a chromosome missing from ``chrom_sizes``, with a naming hint."""
    other = other_chrom_name(chrom)
    if other in chrom_sizes:
        style = "chr1" if other.startswith("chr") else "1"
        return (
            f"chromosome '{chrom}' is not in the {what}, which names it '{other}'; "
            f"use {style} naming consistently"
        )
    return (
        f"chromosome '{chrom}' is not in the {what}; "
        "use the same genome build and naming for all inputs"
    )


def _line_numbers(lines: list[str]) -> np.ndarray:
    """1-based file line number of each data line."""
    return np.array([i + 1 for i, line in enumerate(lines) if is_data_line(line)], np.int64)


def _to_int(values: list[str]) -> np.ndarray | None:
    """int64 array of decimal strings, or None if any is not an integer."""
    try:
        return np.array(list(map(int, values)), np.int64)
    except (ValueError, OverflowError):
        return None


def _is_int(text: str) -> bool:
    try:
        np.int64(int(text))
    except (ValueError, OverflowError):
        return False
    return True


def read_bed(
    path,
    chrom_sizes: Mapping[str, int] | None = None,
    *,
    allow_empty: bool = True,
    drop_unknown_chroms: bool = False,
    sizes_from: str = "chrom sizes",
) -> np.ndarray:
    """Read a BED3+ or narrowPeak file (plain or gzipped) into ``PEAK_DTYPE`` records.

    Parameters
    ----------
    path : str or Path
    chrom_sizes : dict chrom -> size, optional
        When given, every interval must lie on one of these chromosomes and end within it.
    allow_empty : bool
        If False, a file without any interval is an error.
    drop_unknown_chroms : bool
        Silently drop intervals on chromosomes absent from ``chrom_sizes`` (for resource
        files that also cover alternative haplotypes, e.g. ``chr6_cox_hap2``). A naming
        mismatch (``1`` vs ``chr1``) is still an error.

    Returns
    -------
    records : (N,) PEAK_DTYPE, in file order (unsorted input is accepted).

    Raises
    ------
    InputFileError
        Naming the file, the line and what to do, for: unreadable or corrupt gzip file,
        fewer than 3 columns, non-integer coordinates, negative start, start > end,
        zero-length interval, summit offset past the peak end, unknown chromosome, end past
        the chromosome end, or (``allow_empty=False``) no intervals.
    """
    text = read_text(path)
    lines, data = _data_lines(text)
    if not data:
        if not allow_empty:
            raise InputFileError(path, "no intervals found; expected BED lines 'chrom start end'")
        return np.zeros(0, PEAK_DTYPE)

    fields = [line.split("\t", 3) for line in data]
    for i in [i for i, f in enumerate(fields) if len(f) < 3]:
        fields[i] = _split(data[i], 3)
    short = [i for i, f in enumerate(fields) if len(f) < 3]
    if short:
        _fail(path, lines, short[0],
              f"expected at least 3 columns (chrom start end), found {len(fields[short[0]])}")
    chroms = [f[0] for f in fields]
    starts = _to_int([f[1] for f in fields])
    ends = _to_int([f[2] for f in fields])
    if starts is None or ends is None:
        column = 2 if starts is None else 3
        values = [f[column - 1] for f in fields]
        bad = next(i for i, v in enumerate(values) if not _is_int(v))
        _fail(path, lines, bad, f"column {column} is not an integer coordinate: '{values[bad]}'")

    index: dict[str, int] = {}
    codes = np.array([index.setdefault(c, len(index)) for c in chroms], np.int64)
    names = list(index)
    too_long = [n for n in names if len(n) > _MAX_CHROM_NAME]
    if too_long:
        _fail(path, lines, chroms.index(too_long[0]),
              f"chromosome name longer than {_MAX_CHROM_NAME} characters")
    records = np.empty(len(fields), PEAK_DTYPE)
    records["chrom"] = np.array(names, "U64")[codes]
    records["start"] = starts
    records["end"] = ends
    records["summit"] = (starts + ends) // 2
    _check_coordinates(path, lines, starts, ends)
    _fill_summits(path, lines, fields, records)

    if chrom_sizes is not None:
        records = _check_chroms(path, lines, records, names, codes, chrom_sizes,
                                drop_unknown_chroms, sizes_from)
        if not len(records) and not allow_empty:
            raise InputFileError(path, f"no intervals on the chromosomes of the {sizes_from}")
    return records


def _fail(path, lines: list[str], data_index: int, message: str):
    line = int(_line_numbers(lines)[data_index])
    raise InputFileError(path, message, line)


def _check_coordinates(path, lines, starts: np.ndarray, ends: np.ndarray) -> None:
    checks = (
        (starts < 0, "negative start coordinate"),
        (starts > ends, "start is greater than end"),
        (starts == ends, "zero-length interval (start == end); BED intervals are half-open"),
    )
    for bad, message in checks:
        if bad.any():
            i = int(np.argmax(bad))
            _fail(path, lines, i, f"{message}: {starts[i]} {ends[i]}")


def _fill_summits(path, lines, fields, records: np.ndarray) -> None:
    """Absolute summits from column 10 on narrowPeak-like lines (>= 10 columns, not BED12)."""
    rows = [
        i for i, f in enumerate(fields)
        if len(f) > 3 and f[3].count("\t") + 4 > _SUMMIT_COLUMN
        and f[3].count("\t") + 4 != _BED12_COLUMNS
    ]
    if not rows:
        return
    texts = [fields[i][3].split("\t", _SUMMIT_COLUMN - 2)[_SUMMIT_COLUMN - 3] for i in rows]
    offsets = _to_int(texts)
    if offsets is None:  # free text in column 10: not a narrowPeak summit
        offsets = np.array([int(t) if _is_int(t) else -1 for t in texts], np.int64)
    rows = np.array(rows, np.int64)
    use = offsets >= 0
    rows, offsets = rows[use], offsets[use]
    widths = records["end"][rows] - records["start"][rows]
    past = offsets > widths
    if past.any():
        i = int(np.argmax(past))
        _fail(
            path, lines, int(rows[i]),
            f"summit offset (column 10) {offsets[i]} is past the peak end (width {widths[i]})",
        )
    records["summit"][rows] = records["start"][rows] + offsets


def _check_chroms(path, lines, records, names, codes, chrom_sizes, drop_unknown: bool,
                  sizes_from: str = "chrom sizes"):
    known = np.array([n in chrom_sizes for n in names], bool)
    for code in np.flatnonzero(~known):
        name = names[code]
        if not drop_unknown or other_chrom_name(name) in chrom_sizes:
            i = int(np.argmax(codes == code))
            _fail(path, lines, i, unknown_chrom_message(name, chrom_sizes, sizes_from))
    sizes = np.array([chrom_sizes.get(n, 0) for n in names], np.int64)[codes]
    keep = known[codes]
    past = keep & (records["end"] > sizes)
    if past.any():
        i = int(np.argmax(past))
        _fail(
            path, lines, i,
            f"interval ends at {records['end'][i]}, past the end of {records['chrom'][i]} "
            f"(size {sizes[i]}); check that the file and the {sizes_from} use the same genome build",
        )
    return records if keep.all() else records[keep]


def read_chrom_sizes(path) -> dict[str, int]:
    """Read a chrom.sizes (or .fai) file: chromosome name and size, in file order.

    Returns
    -------
    dict chrom -> size (int), in file order.

    Raises
    ------
    InputFileError
        For fewer than 2 columns, a non-integer or non-positive size, a duplicated name,
        or a file with no chromosomes.
    """
    text = read_text(path)
    lines, data = _data_lines(text)
    if not data:
        raise InputFileError(path, "no chromosomes found; expected lines 'chrom<TAB>size'")
    fields = [_split(line, 2) for line in data]
    sizes: dict[str, int] = {}
    for i, parts in enumerate(fields):
        if len(parts) < 2:
            _fail(path, lines, i, "expected 2 columns (chrom size)")
        name, size_text = parts[0], parts[1].strip()
        if not _is_int(size_text) or int(size_text) <= 0:
            _fail(path, lines, i, f"size is not a positive integer: '{size_text}'")
        if name in sizes:
            _fail(path, lines, i, f"chromosome '{name}' is listed twice")
        if len(name) > _MAX_CHROM_NAME:
            _fail(path, lines, i, f"chromosome name longer than {_MAX_CHROM_NAME} characters")
        sizes[name] = int(size_text)
    return sizes


def write_bed(
    path,
    records: np.ndarray,
    extra_columns: Sequence[np.ndarray] | Mapping[str, np.ndarray] | None = None,
) -> None:
    """Write ``chrom start end`` (+ extra columns) lines; gzipped when ``path`` ends ``.gz``.

    Parameters
    ----------
    path : str or Path
    records : (N,) structured array with fields ``chrom``, ``start``, ``end``
        (e.g. ``PEAK_DTYPE``).
    extra_columns : sequence of (N,) arrays, or a mapping (values in order), optional
        Appended as columns 4, 5, ... (each value written with ``str``).

    The file is written to a temporary name in the same folder and renamed into place, so
    an interrupted write never leaves a complete-looking file.
    """
    path = Path(path)
    columns = [records["chrom"].astype(str), records["start"], records["end"]]
    if extra_columns is not None:
        extra = list(extra_columns.values()) if isinstance(extra_columns, Mapping) else list(extra_columns)
        for col in extra:
            col = np.asarray(col)
            if col.shape != (len(records),):
                raise ValueError(f"extra column has shape {col.shape}, expected ({len(records)},)")
            columns.append(col)
    text_columns = [np.asarray(c).astype(str) for c in columns]
    if len(records):
        rows = text_columns[0]
        for col in text_columns[1:]:
            rows = np.char.add(np.char.add(rows, "\t"), col)
        body = "\n".join(rows.tolist()) + "\n"
    else:
        body = ""
    data = body.encode("utf-8")
    if path.name.endswith(".gz"):
        data = gzip.compress(data, mtime=0)
    from .outputs import write_file_atomically   # outputs imports this module
    write_file_atomically(path, lambda handle: handle.write(data))


# ---------------------------------------------------------------------------------------------
# Streamed in blocks (any size: predict's BEDs, the DREAM ladder of hg19)
# ---------------------------------------------------------------------------------------------

BED_BLOCK_LINES = 100_000   # file lines per block: memory stays bounded by one block
MAX_COUNTED_STEP = 100_000  # centre distances counted for the step statistics (StepCounts)


@dataclass(frozen=True)
class BedBlock:
    """Up to BED_BLOCK_LINES intervals of a BED file.

    chroms: (N,) str; starts, ends: (N,) int64; lines: (N,) int64, 1-based file line numbers.
    """
    chroms: np.ndarray
    starts: np.ndarray
    ends: np.ndarray
    lines: np.ndarray

    def __len__(self):
        return len(self.starts)


def _bad_line(path, line_no, line):
    """Raise the InputFileError that explains why one BED line does not parse."""
    fields = line.split()
    if len(fields) < 3:
        raise InputFileError(path, f"expected at least 3 columns (chrom start end), found "
                                   f"{len(fields)}", line_no)
    for column, text in ((2, fields[1]), (3, fields[2])):
        try:
            int(text)
        except ValueError:
            raise InputFileError(path, f"column {column} is not an integer coordinate: "
                                       f"'{text}'", line_no) from None
    start, end = int(fields[1]), int(fields[2])
    if start < 0:
        raise InputFileError(path, f"negative start coordinate: {start}", line_no)
    raise InputFileError(path, f"end {end} is not after start {start} (BED intervals are "
                               "half-open and not empty)", line_no)


def _parse_block(path, raw_lines, first_line):
    """Raw byte lines -> BedBlock of the data lines (track/browser/# and blank lines skipped)."""
    text = decode_lines(path, raw_lines, first_line)
    keep = [i for i, line in enumerate(text) if is_data_line(line)]
    fields = [text[i].split(None, 3) for i in keep]
    lines = first_line + np.asarray(keep, np.int64)
    try:
        if any(len(f) < 3 for f in fields):
            raise ValueError
        starts = np.asarray([f[1] for f in fields] or [0]).astype(np.int64)[: len(fields)]
        ends = np.asarray([f[2] for f in fields] or [0]).astype(np.int64)[: len(fields)]
    except (ValueError, OverflowError):
        for i, f in zip(keep, fields):
            try:
                if len(f) < 3:
                    raise ValueError
                int(f[1]), int(f[2])
            except ValueError:
                _bad_line(path, first_line + i, text[i])
        raise InputFileError(path, "could not parse this block of lines as BED",
                             first_line) from None
    bad = np.flatnonzero((starts < 0) | (ends <= starts))
    if bad.size:
        i = bad[0]
        _bad_line(path, int(lines[i]), text[keep[i]])
    chroms = np.asarray([f[0] for f in fields]) if fields else np.zeros(0, "U1")
    return BedBlock(chroms, starts, ends, lines)


def decode_lines(path, raw_lines, first_line):
    """Byte lines -> str lines (UTF-8); undecodable bytes are an InputFileError naming their
    line (`first_line` is the file line number of raw_lines[0])."""
    try:
        return [line.decode("utf-8") for line in raw_lines]
    except UnicodeDecodeError:
        for offset, line in enumerate(raw_lines):
            try:
                line.decode("utf-8")
            except UnicodeDecodeError:
                raise InputFileError(path, "not a text file (undecodable bytes)",
                                     first_line + offset) from None
        raise


def raw_line_blocks(path, what="file", block_lines=BED_BLOCK_LINES):
    """Yield (first line number, [raw byte lines]) of a plain or gzipped text file, at most
    `block_lines` lines at a time, in file order (BED, VCF: the streamed readers' one loop).
    A truncated or corrupt gzip is an InputFileError naming the line where it broke."""
    line_no = 1
    with open_maybe_gzip(path, what) as handle:
        while True:
            try:
                raw = list(itertools.islice(handle, block_lines))
            except (EOFError, gzip.BadGzipFile, zlib.error, OSError):
                raise InputFileError(path, TRUNCATED_GZIP, line_no) from None
            if not raw:
                return
            yield line_no, raw
            line_no += len(raw)


def iter_bed_blocks(path, block_lines=BED_BLOCK_LINES):
    """Yield BedBlocks of at most `block_lines` file lines each, in file order.

    Memory stays bounded by one block whatever the file size. Errors (missing file, truncated
    gzip, malformed line) are InputFileErrors naming the file and line.
    """
    for line_no, raw in raw_line_blocks(path, "BED file", block_lines):
        yield _parse_block(path, raw, line_no)


@dataclass
class BedScan:
    """What the checking pass learnt about a BED file."""
    n_bins: int
    chrom_order: list            # chromosomes in order of first appearance
    sorted_runs: bool            # each chromosome in one run, starts non-decreasing
    steps: StepCounts            # distances between consecutive centres (ladder detection)
    block_sizes: list            # intervals per block of `block_lines` lines, in file order

    def block_owners(self, n_processes):
        """(blocks,) int64: the process that scores each block (contiguous shares, balanced by
        intervals)."""
        sizes = np.asarray(self.block_sizes, np.int64)
        before = np.cumsum(sizes) - sizes
        return np.minimum(before * n_processes // self.n_bins, n_processes - 1)


def scan_bed(path, chrom_sizes, need_sorted=False, block_lines=BED_BLOCK_LINES, sorted_for="--bigwig"):
    """Check every interval of `path` against `chrom_sizes`; count them (one streaming pass).

    Raises InputFileError naming the file and line for an unknown chromosome, an interval
    past the chromosome end, a malformed line, an empty file, or (`need_sorted`, for the
    bigWig outputs named by `sorted_for`) an interval out of order.
    """
    n_bins, order, seen = 0, [], set()
    last_chrom, last_start, sorted_runs = None, -1, True
    steps = StepCounts()
    block_sizes = []
    for block in iter_bed_blocks(path, block_lines):
        if not len(block):
            continue
        names, first = np.unique(block.chroms, return_index=True)
        for name in names[np.argsort(first)]:
            name = str(name)
            if name not in chrom_sizes:
                i = int(np.argmax(block.chroms == name))
                raise InputFileError(path, unknown_chrom_message(name, chrom_sizes, "cell store"),
                                     int(block.lines[i]))
        sizes = np.fromiter((chrom_sizes[c] for c in block.chroms), np.int64, len(block))
        past = np.flatnonzero(block.ends > sizes)
        if past.size:
            i = past[0]
            raise InputFileError(path, f"interval ends at {block.ends[i]}, past the end of "
                                       f"{block.chroms[i]} (size {sizes[i]}); check that the BED "
                                       "and the stores use the same genome build",
                                 int(block.lines[i]))
        # order: chromosome runs and starts within each run
        change = np.flatnonzero(np.concatenate([[block.chroms[0] != last_chrom],
                                                block.chroms[1:] != block.chroms[:-1]]))
        for i in change:
            name = str(block.chroms[i])
            if name in seen:
                if sorted_runs and need_sorted:
                    raise InputFileError(path, f"{sorted_for} needs a BED sorted by chromosome and "
                                               f"start, but {name} comes back here after other "
                                               "chromosomes; sort it (sort -k1,1 -k2,2n) or drop "
                                               f"{sorted_for}", int(block.lines[i]))
                sorted_runs = False
            else:
                seen.add(name)
                order.append(name)
        prev = np.concatenate([[last_start], block.starts[:-1]])
        prev[change] = -1
        down = np.flatnonzero(block.starts < prev)
        if down.size:
            if need_sorted:
                i = down[0]
                raise InputFileError(path, f"{sorted_for} needs a BED sorted by chromosome and start, "
                                           f"but start {block.starts[i]} follows {prev[i]}; sort "
                                           f"it (sort -k1,1 -k2,2n) or drop {sorted_for}",
                                     int(block.lines[i]))
            sorted_runs = False
        last_chrom, last_start = str(block.chroms[-1]), int(block.starts[-1])
        steps.add(block.chroms, (block.starts + block.ends) // 2)
        n_bins += len(block)
        block_sizes.append(len(block))
    if not n_bins:
        raise InputFileError(path, "no intervals found; expected BED lines 'chrom start end'")
    return BedScan(n_bins, order, sorted_runs, steps, block_sizes)


@dataclass
class StepCounts:
    """Distances between the centres of consecutive intervals on one chromosome (positive,
    up to MAX_COUNTED_STEP), counted over a BED in one streaming pass (`add` per block)."""
    counts: Counter = field(default_factory=Counter)
    last_chrom: str | None = None
    last_mid: int = 0

    def add(self, chroms, mids):
        """Count one block: chroms (N,) str, mids (N,) int64, in file order."""
        if not len(mids):
            return
        prev_mid = np.concatenate([[self.last_mid], mids[:-1]])
        same = np.concatenate([[chroms[0] == self.last_chrom], chroms[1:] == chroms[:-1]])
        diffs = (mids - prev_mid)[same]
        diffs = diffs[(diffs > 0) & (diffs <= MAX_COUNTED_STEP)]
        values, counts = np.unique(diffs, return_counts=True)
        self.counts.update(dict(zip(values.tolist(), counts.tolist())))
        self.last_chrom, self.last_mid = str(chroms[-1]), int(mids[-1])

    def common_step(self):
        """(step, number of intervals that follow their predecessor at that step), or (None, 0)."""
        if not self.counts:
            return None, 0
        step, count = max(self.counts.items(), key=lambda item: (item[1], -item[0]))
        return int(step), int(count)

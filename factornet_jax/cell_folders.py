"""FactorNet's per-cell-line input folder: bigwig.txt, chip.txt, meta.txt, parsed and checked."""
import os
from dataclasses import dataclass

from factornet_jax.errors import InputFileError


@dataclass(frozen=True)
class Track:
    """One signal track: its bigWig path and the name the model knows it by."""
    path: str
    name: str


@dataclass(frozen=True)
class ChipEntry:
    """One TF's peak files: conservative (positives) and optional relaxed (not negatives)."""
    tf: str
    conservative: str
    relaxed: str | None


@dataclass(frozen=True)
class CellInputs:
    """Everything a cell folder lists, with paths made absolute."""
    name: str
    folder: str
    tracks: tuple
    chip: tuple
    meta_names: tuple
    meta_values: tuple


def _rows(path, min_cols, max_cols, what):
    """Tab/space separated non-blank, non-# rows of a small text file -> list[(line_no, fields)]."""
    rows = []
    with open(path) as handle:
        for line_no, line in enumerate(handle, 1):
            text = line.strip()
            if not text or text.startswith("#"):
                continue
            fields = text.split("\t") if "\t" in text else text.split()
            if not min_cols <= len(fields) <= max_cols:
                raise InputFileError(path, f"expected {what}, found {len(fields)} column(s)", line_no)
            rows.append((line_no, [f.strip() for f in fields]))
    return rows


def _existing(folder, listed_in, line_no, name):
    path = name if os.path.isabs(name) else os.path.join(folder, name)
    if not os.path.isfile(path):
        raise InputFileError(listed_in, f"listed file {name!r} not found in {folder}", line_no)
    return os.path.abspath(path)


def read_cell_inputs(folder):
    """Parse a FactorNet cell folder -> CellInputs; every listed file must exist."""
    folder = os.path.abspath(str(folder).rstrip("/"))
    if not os.path.isdir(folder):
        raise InputFileError(folder, "cell folder not found")
    name = os.path.basename(folder)
    bigwig_txt = os.path.join(folder, "bigwig.txt")
    if not os.path.isfile(bigwig_txt):
        raise InputFileError(bigwig_txt, "missing: a cell folder needs bigwig.txt "
                             "(bigWig file and track name per line)")
    tracks = []
    for line_no, fields in _rows(bigwig_txt, 2, 2, "2 columns: bigWig file, track name"):
        tracks.append(Track(_existing(folder, bigwig_txt, line_no, fields[0]), fields[1]))
    if not tracks:
        raise InputFileError(bigwig_txt, "lists no tracks")
    names = [t.name for t in tracks]
    if len(set(names)) != len(names):
        raise InputFileError(bigwig_txt, f"track names repeat: {names}")

    chip = []
    chip_txt = os.path.join(folder, "chip.txt")
    if os.path.isfile(chip_txt):
        seen = set()
        for line_no, fields in _rows(chip_txt, 2, 3, "2-3 columns: peak file, TF, [relaxed file]"):
            tf = fields[1]
            if tf in seen:
                raise InputFileError(chip_txt, f"TF {tf!r} listed twice", line_no)
            seen.add(tf)
            conservative = _existing(folder, chip_txt, line_no, fields[0])
            relaxed = _existing(folder, chip_txt, line_no, fields[2]) if len(fields) == 3 else None
            chip.append(ChipEntry(tf, conservative, relaxed))

    meta_names, meta_values = [], []
    meta_txt = os.path.join(folder, "meta.txt")
    if os.path.isfile(meta_txt):
        for line_no, fields in _rows(meta_txt, 2, 2, "2 columns: value, name"):
            try:
                value = float(fields[0])
            except ValueError:
                raise InputFileError(meta_txt, f"value {fields[0]!r} is not a number", line_no) from None
            if fields[1] in meta_names:
                raise InputFileError(meta_txt, f"meta name {fields[1]!r} repeats", line_no)
            meta_names.append(fields[1])
            meta_values.append(value)
    return CellInputs(name, folder, tuple(tracks), tuple(chip), tuple(meta_names), tuple(meta_values))


def check_consistent(cells):
    """Cells built or trained together must share track names (in order) and meta names."""
    first = cells[0]
    for cell in cells[1:]:
        if [t.name for t in cell.tracks] != [t.name for t in first.tracks]:
            raise InputFileError(os.path.join(cell.folder, "bigwig.txt"),
                                 f"track names {[t.name for t in cell.tracks]} differ from "
                                 f"{first.name}'s {[t.name for t in first.tracks]}; list the same "
                                 "tracks in the same order")
        if list(cell.meta_names) != list(first.meta_names):
            raise InputFileError(os.path.join(cell.folder, "meta.txt"),
                                 f"meta names {list(cell.meta_names)} differ from {first.name}'s "
                                 f"{list(first.meta_names)}; use the same names in the same order")

"""VCF input for `factornet variants`: streamed in blocks, validated, one row per ALT allele.

    counts = VcfCounts()
    for block in iter_vcf_blocks("calls.vcf.gz", chrom_sizes, counts=counts):
        keep = check_refs(block, genome_store, path, skip_mismatch=False, counts=counts)
        ...                           # block.chroms, block.positions, block.refs, block.alts

What is read
    Plain, gzipped or bgzipped (bgzip is multi-member gzip) text, detected by the magic bytes.
    Lines starting with ``#`` are the header (``##`` meta lines and the ``#CHROM`` line); they
    are kept in order (`VariantBlock.header`) for the annotated VCF. Blank lines are skipped.
    Data lines are tab-separated with at least the 8 fixed columns CHROM POS ID REF ALT QUAL
    FILTER INFO (genotype columns are carried along, not read). Records may come in any order;
    rows keep the input order.
Alleles
    A record with several ALT alleles gives one row per ALT (`allele` is its 0-based index among
    the record's ALTs). REF and ALT are sequences of A, C, G, T, N (any case). Skipped and
    counted in `VcfCounts`, never silently dropped:
    - symbolic and structural alleles: ``<DEL>``, ``<*>``, breakends (``G]17:198982]``,
      ``.A``), the spanning deletion ``*`` (``symbolic``);
    - the missing ALT ``.`` (``no_alt``);
    - REF or ALT longer than `max_allele_len` (``too_long``; `MAX_ALLELE_LEN` = 50 bp, lowered to
      seq_len // 4 for short models so that any scored allele sits well inside the window).
    SNVs, MNPs, insertions, deletions and complex substitutions within that size are scored;
    the allele replaces the REF bases, whatever anchor base the caller used.
Errors (InputFileError naming the file and line)
    fewer than 8 columns, a POS that is not an integer >= 1, a REF or ALT with other letters, a
    chromosome not in the genome store (with the chr1-vs-1 hint), a REF running past the
    chromosome end, undecodable bytes, a truncated gzip, a VCF without any record; REF bases
    that differ from the genome store (`check_refs`; counted as ``ref_mismatch`` and skipped
    instead with `skip_mismatch`). Genome N / IUPAC bases match a REF ``N`` only.
"""
from __future__ import annotations

import functools
from dataclasses import dataclass, field

import numpy as np

from factornet_jax.bed import raw_line_blocks, unknown_chrom_message
from factornet_jax.errors import InputFileError

BLOCK_LINES = 20_000        # VCF lines per block (memory is bounded by one block)
MAX_ALLELE_LEN = 50         # longest REF / ALT allele scored (bp); longer ones are skipped
FIXED_COLUMNS = ("CHROM", "POS", "ID", "REF", "ALT", "QUAL", "FILTER", "INFO")
_CODE_OF_BYTE = np.full(256, 4, np.uint8)
for _code, _letters in enumerate(("Aa", "Cc", "Gg", "Tt")):
    for _letter in _letters:
        _CODE_OF_BYTE[ord(_letter)] = _code
_SEQUENCE_LETTERS = frozenset("ACGTN")


def allele_codes(allele: str) -> np.ndarray:
    """'ACGTN' (any case) -> (len,) uint8 codes A=0 C=1 G=2 T=3, anything else 4 (the stores')."""
    return _CODE_OF_BYTE[np.frombuffer(allele.encode("ascii"), np.uint8)]


@dataclass
class VcfCounts:
    """What a pass over a VCF found (counts of records and ALT alleles)."""
    records: int = 0            # data lines
    alleles: int = 0            # ALT alleles scored (rows)
    symbolic: int = 0           # symbolic / structural / '*' alleles skipped
    no_alt: int = 0             # records whose ALT is '.' (nothing to score)
    too_long: int = 0           # alleles with REF or ALT longer than the limit, skipped
    ref_mismatch: int = 0       # alleles skipped by --skip-ref-mismatch

    def skipped(self) -> dict:
        """{reason: count} of the alleles not scored, reasons with a count only."""
        reasons = {"symbolic": self.symbolic, "no_alt": self.no_alt, "too_long": self.too_long,
                   "ref_mismatch": self.ref_mismatch}
        return {k: v for k, v in reasons.items() if v}


@dataclass
class VariantBlock:
    """The ALT alleles of up to BLOCK_LINES VCF lines, in file order (struct of arrays).

    chroms: (N,) str; positions: (N,) int64, 0-based start of REF (VCF POS - 1);
    refs, alts, ids: (N,) object str (REF / ALT upper case); lines: (N,) int64, 1-based file
    line; records: (N,) int64, index of the row's record in `record_lines`; allele: (N,) int64,
    index of the ALT among its record's ALTs. record_lines: the raw data lines of the block
    (no newline); record_alts: (R,) int64, ALT alleles of each record; header: header lines
    (no newline) found in this block, in order.
    """
    chroms: np.ndarray
    positions: np.ndarray
    refs: np.ndarray
    alts: np.ndarray
    ids: np.ndarray
    lines: np.ndarray
    records: np.ndarray
    allele: np.ndarray
    record_lines: list = field(default_factory=list)
    record_alts: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    header: list = field(default_factory=list)

    def __len__(self):
        return len(self.positions)

    @functools.cached_property
    def ref_lengths(self) -> np.ndarray:
        """(N,) int64 REF allele lengths (computed once)."""
        return np.fromiter((len(r) for r in self.refs), np.int64, len(self.refs))

    def take(self, rows) -> "VariantBlock":
        """The rows `rows` (records and header kept whole)."""
        return VariantBlock(self.chroms[rows], self.positions[rows], self.refs[rows],
                            self.alts[rows], self.ids[rows], self.lines[rows], self.records[rows],
                            self.allele[rows], self.record_lines, self.record_alts, self.header)


def _is_symbolic(alt: str) -> bool:
    return (alt == "*" or alt.startswith("<") or "[" in alt or "]" in alt
            or (len(alt) > 1 and (alt.startswith(".") or alt.endswith("."))))


def _check_letters(path, line_no, what, allele):
    if not allele or not set(allele.upper()) <= _SEQUENCE_LETTERS:
        raise InputFileError(path, f"{what} {allele!r} is not a sequence of A, C, G, T, N",
                             line_no)


def _parse_lines(path, raw_lines, first_line, chrom_sizes, max_allele_len, counts):
    """Raw byte lines -> VariantBlock (header lines kept, data lines checked and split)."""
    rows = {k: [] for k in ("chroms", "positions", "refs", "alts", "ids", "lines", "records",
                            "allele")}
    header, record_lines, record_alts = [], [], []
    for offset, raw in enumerate(raw_lines):
        line_no = first_line + offset
        try:
            text = raw.decode("utf-8").rstrip("\r\n")
        except UnicodeDecodeError:
            raise InputFileError(path, "not a text file (undecodable bytes)", line_no) from None
        if not text.strip():
            continue
        if text.startswith("#"):
            header.append(text)
            continue
        fields = text.split("\t", 8)
        if len(fields) < 8:
            raise InputFileError(path, f"expected at least 8 tab-separated columns "
                                       f"({' '.join(FIXED_COLUMNS)}), found {len(fields)}",
                                 line_no)
        chrom, pos_text, var_id, ref, alt_text = fields[:5]
        try:
            pos = int(pos_text)
        except ValueError:
            raise InputFileError(path, f"POS {pos_text!r} is not an integer", line_no) from None
        if pos < 1:
            raise InputFileError(path, f"POS {pos} is not a 1-based position (>= 1)", line_no)
        _check_letters(path, line_no, "REF", ref)
        if chrom_sizes is not None:
            if chrom not in chrom_sizes:
                raise InputFileError(path, unknown_chrom_message(chrom, chrom_sizes,
                                                                 "genome store"), line_no)
            if pos - 1 + len(ref) > chrom_sizes[chrom]:
                raise InputFileError(path, f"REF at {chrom}:{pos} ({len(ref)} bp) runs past the "
                                           f"end of {chrom} (size {chrom_sizes[chrom]}); check "
                                           "that the VCF and the stores use the same genome build",
                                     line_no)
        record = len(record_lines)
        record_lines.append(text)
        counts.records += 1
        alts = alt_text.split(",")
        record_alts.append(len(alts))
        if alt_text == ".":
            counts.no_alt += 1
            continue
        for index, alt in enumerate(alts):
            if _is_symbolic(alt):
                counts.symbolic += 1
                continue
            _check_letters(path, line_no, "ALT", alt)
            if len(ref) > max_allele_len or len(alt) > max_allele_len:
                counts.too_long += 1
                continue
            for key, value in (("chroms", chrom), ("positions", pos - 1), ("refs", ref.upper()),
                               ("alts", alt.upper()), ("ids", var_id), ("lines", line_no),
                               ("records", record), ("allele", index)):
                rows[key].append(value)
            counts.alleles += 1
    n = len(rows["positions"])
    strings = {k: np.array(rows[k], dtype=object) for k in ("refs", "alts", "ids")}
    return VariantBlock(np.array(rows["chroms"], dtype=str) if n else np.zeros(0, "U1"),
                        np.array(rows["positions"], np.int64), strings["refs"], strings["alts"],
                        strings["ids"], np.array(rows["lines"], np.int64),
                        np.array(rows["records"], np.int64), np.array(rows["allele"], np.int64),
                        record_lines, np.array(record_alts, np.int64), header)


def iter_vcf_blocks(path, chrom_sizes=None, max_allele_len=MAX_ALLELE_LEN,
                    block_lines=BLOCK_LINES, counts=None):
    """Yield a VariantBlock per `block_lines` lines of the VCF at `path`, in file order.

    Parameters
    ----------
    path : VCF, plain / gzip / bgzip
    chrom_sizes : {chrom: size} of the genome store, or None (no contig checks)
    max_allele_len : longer REF / ALT alleles are skipped and counted
    counts : a VcfCounts updated as blocks are read (None: a private one)

    Raises InputFileError (file and line) for the errors listed in the module docstring, and
    when the file holds no record at all.
    """
    counts = VcfCounts() if counts is None else counts
    records_before = counts.records
    for line_no, raw in raw_line_blocks(path, "VCF file", block_lines):
        yield _parse_lines(path, raw, line_no, chrom_sizes, max_allele_len, counts)
    if counts.records == records_before:
        raise InputFileError(path, "no variant records found; expected VCF lines "
                                   "CHROM POS ID REF ALT QUAL FILTER INFO after the # header")


def check_refs(block, genome, path, skip_mismatch=False, counts=None) -> np.ndarray:
    """(N,) bool: rows whose REF equals the genome store's bases (True everywhere, or an error).

    Parameters
    ----------
    block : VariantBlock (chromosomes and spans already checked against the genome's sizes)
    genome : reader.GenomeStore
    path : the VCF (named in the error)
    skip_mismatch : count mismatching rows as ``ref_mismatch`` and return them False, instead of
        raising InputFileError naming the first mismatching line
    """
    n = len(block)
    if not n:
        return np.zeros(0, bool)
    lengths = block.ref_lengths
    longest = int(lengths.max())
    stored = genome.fetch_codes_batch(block.chroms, block.positions, longest, pad=True)
    wanted = np.full((n, longest), 255, np.uint8)
    for i, ref in enumerate(block.refs):
        wanted[i, : len(ref)] = allele_codes(ref)
    inside = np.arange(longest)[None, :] < lengths[:, None]
    ok = ((stored == wanted) | ~inside).all(axis=1)
    if ok.all():
        return ok
    if not skip_mismatch:
        i = int(np.flatnonzero(~ok)[0])
        letters = "".join("ACGTN"[c] for c in stored[i, : lengths[i]])
        raise InputFileError(path, f"REF {block.refs[i]} at {block.chroms[i]}:"
                                   f"{block.positions[i] + 1} differs from the genome store "
                                   f"({letters}); check that the VCF and the stores use the same "
                                   "genome build, or skip such records with --skip-ref-mismatch",
                             int(block.lines[i]))
    if counts is not None:
        counts.ref_mismatch += int((~ok).sum())
        counts.alleles -= int((~ok).sum())
    return ok

"""FASTA (+ .fai) reading for the store build: sequence as uint8 codes, validated.

Codes: A=0, C=1, G=2, T=3, anything else (N, IUPAC ambiguity codes) = 4; lowercase
(soft-masked) letters are treated as uppercase. Bytes that are not letters at all are a user
error. Reads go straight through the .fai offsets (one `read` per block, newlines dropped with
numpy), so a chromosome is never held as a Python string.
"""
import hashlib
import os
from dataclasses import dataclass

import numpy as np

from factornet_jax.bed import GZIP_MAGIC
from factornet_jax.errors import InputFileError
from factornet_jax.outputs import hidden_sibling, replace_path

N_CODE = 4

# 256-entry lookup: byte -> code; 255 marks a byte that may not appear in sequence.
CODE_OF_BYTE = np.full(256, 255, dtype=np.uint8)
for _letter in b"ABCDEFGHIJKLMNOPQRSTUVWXYZ":
    CODE_OF_BYTE[_letter] = N_CODE
    CODE_OF_BYTE[_letter + 32] = N_CODE
for _code, _letter in enumerate(b"ACGT"):
    CODE_OF_BYTE[_letter] = _code
    CODE_OF_BYTE[_letter + 32] = _code
CODE_OF_BYTE[ord("-")] = N_CODE  # alignment gap, seen in some assemblies: unknown base
CODE_OF_BYTE[ord("*")] = N_CODE

# code -> one-hot row (A, C, G, T); code 4 is all-zero.
ONEHOT_OF_CODE = np.zeros((5, 4), dtype=np.uint8)
ONEHOT_OF_CODE[np.arange(4), np.arange(4)] = 1


@dataclass(frozen=True)
class FaiRecord:
    """One line of a .fai index: where a chromosome's bases lie in the FASTA file."""
    name: str
    length: int
    offset: int
    line_bases: int
    line_bytes: int


def codes_to_onehot(codes):
    """codes: (..., L) uint8 -> (..., L, 4) uint8 one-hot (A, C, G, T)."""
    return ONEHOT_OF_CODE[codes]


def _write_fai(fasta_path, fai_path):
    """Index a FASTA with pyfaidx into a temporary file, renamed into place when complete
    (a crash never leaves a cut-short .fai), turning pyfaidx's complaints into one-line errors."""
    import pyfaidx

    tmp = str(hidden_sibling(fai_path, "tmp"))
    try:
        pyfaidx.Faidx(str(fasta_path), indexname=tmp, build_index=True, rebuild=True)
        replace_path(tmp, fai_path)
    except OSError as err:
        raise InputFileError(fasta_path, f"could not write the .fai index beside it ({err}); "
                             "make the directory writable or index it with `samtools faidx`") from None
    except Exception as err:  # pyfaidx raises several types for malformed FASTA
        raise InputFileError(fasta_path, f"cannot index FASTA ({err}); fix the file "
                             f"(consistent line lengths, unique names)") from None
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def _fai_covers_file(records, fasta_path):
    """True when the last indexed chromosome ends where the FASTA file ends (only line breaks
    may follow): a .fai cut short, or one of another FASTA, is rebuilt rather than trusted."""
    last = records[-1]
    if last.line_bases <= 0:
        return False
    end = last.offset + (last.length // last.line_bases) * last.line_bytes + last.length % last.line_bases
    size = os.path.getsize(fasta_path)
    if size < end:
        return False
    with open(fasta_path, "rb") as handle:
        handle.seek(end)
        return not handle.read(4096).strip()


def read_fai(fasta_path):
    """Parse (building if needed) the .fai beside `fasta_path` -> list[FaiRecord]."""
    fasta_path = str(fasta_path)
    if not os.path.isfile(fasta_path):
        raise InputFileError(fasta_path, "FASTA file not found")
    with open(fasta_path, "rb") as handle:
        magic = handle.read(2)
    if magic == GZIP_MAGIC:
        raise InputFileError(fasta_path, "gzipped (or bgzipped) FASTA is not supported; "
                             "decompress it and pass the plain file")
    fai_path = fasta_path + ".fai"
    if not os.path.exists(fai_path) or os.path.getmtime(fai_path) < os.path.getmtime(fasta_path):
        _write_fai(fasta_path, fai_path)
    records = _parse_fai(fasta_path, fai_path)
    if not _fai_covers_file(records, fasta_path):
        _write_fai(fasta_path, fai_path)
        records = _parse_fai(fasta_path, fai_path)
    return records


def _parse_fai(fasta_path, fai_path):
    records, seen = [], set()
    with open(fai_path) as handle:
        for line_no, line in enumerate(handle, 1):
            fields = line.rstrip("\n").split("\t")
            if len(fields) < 5:
                raise InputFileError(fai_path, "malformed .fai line; delete the .fai to rebuild it",
                                     line_no)
            name = fields[0]
            if name in seen:
                raise InputFileError(fasta_path, f"chromosome {name!r} appears twice; "
                                     f"keep one record per name")
            seen.add(name)
            records.append(FaiRecord(name, *(int(x) for x in fields[1:5])))
    if not records:
        raise InputFileError(fasta_path, "FASTA holds no sequences")
    return records


def read_codes(fasta_path, record, start, end, handle=None):
    """Bases [start, end) of one chromosome as uint8 codes, shape (end - start,).

    Raises InputFileError naming the chromosome and position of any byte that is not a letter.
    """
    lb, lbytes = record.line_bases, record.line_bytes
    first = record.offset + (start // lb) * lbytes + start % lb
    last = record.offset + ((end - 1) // lb) * lbytes + (end - 1) % lb + 1
    own = handle is None
    handle = handle or open(fasta_path, "rb")
    try:
        handle.seek(first)
        raw = np.frombuffer(handle.read(last - first), dtype=np.uint8)
    finally:
        if own:
            handle.close()
    raw = raw[(raw != 10) & (raw != 13)]
    if raw.size != end - start:
        raise InputFileError(fasta_path, f"chromosome {record.name!r} is shorter than its .fai "
                             "says (ragged lines?); fix the line lengths and delete the .fai")
    codes = CODE_OF_BYTE[raw]
    bad = np.flatnonzero(codes == 255)
    if bad.size:
        pos = start + int(bad[0])
        raise InputFileError(fasta_path, f"chromosome {record.name!r} position {pos + 1} has "
                             f"character {chr(raw[bad[0]])!r}, not a base letter; fix the FASTA")
    return codes


def file_digest(path, block=1 << 22):
    """blake2b hex digest of a file's bytes (the content fingerprint of an input)."""
    digest = hashlib.blake2b(digest_size=16)
    with open(path, "rb") as handle:
        while chunk := handle.read(block):
            digest.update(chunk)
    return digest.hexdigest()

"""MEME minimal motif format (version 4) and position-weight-matrix helpers.

A PWM is a float array ``(width, 4)`` of letter probabilities in A, C, G, T order, each
row summing to 1. Sequences are either codes ``(..., L)`` uint8 (A=0 C=1 G=2 T=3, 4 = N
or any other letter) or one-hot ``(..., L, 4)`` (N rows all zero), as in the stores.

The format (https://meme-suite.org/meme/doc/meme-format.html)::

    MEME version 4

    ALPHABET= ACGT

    strands: + -

    Background letter frequencies
    A 0.30 C 0.20 G 0.20 T 0.30

    MOTIF CTCF_f2 CTCF
    letter-probability matrix: alength= 4 w= 19 nsites= 2861 E= 0
     0.07 0.33 0.44 0.16
     ...
"""
from __future__ import annotations

import dataclasses
import gzip
from pathlib import Path
from typing import Sequence

import numpy as np

from .bed import read_text
from .errors import FactorNetError, InputFileError

LETTERS = "ACGT"
UNIFORM_BACKGROUND = np.full(4, 0.25)
# A row may miss summing to 1 by this much (rounding in the file); it is renormalised.
ROW_SUM_TOLERANCE = 0.02


@dataclasses.dataclass(frozen=True, eq=False)
class Motif:
    """One motif: `pwm` (width, 4) float64 letter probabilities, rows sum to 1."""

    name: str  # identifier after MOTIF, e.g. "CTCF_f2"
    alt_name: str | None  # optional second word after MOTIF, e.g. "CTCF"
    pwm: np.ndarray  # (width, 4) float64, A C G T columns
    nsites: int | None = None  # sites the matrix was built from (nsites=)
    evalue: float | None = None  # E= value, None when absent

    @property
    def width(self) -> int:
        return int(self.pwm.shape[0])

    def __eq__(self, other):
        if not isinstance(other, Motif):
            return NotImplemented
        return (self.name, self.alt_name, self.nsites, self.evalue) == (
            other.name, other.alt_name, other.nsites, other.evalue
        ) and self.pwm.shape == other.pwm.shape and bool(np.all(self.pwm == other.pwm))

    __hash__ = None


@dataclasses.dataclass(frozen=True)
class MemeFile:
    """Contents of a MEME file: motifs in file order and the background (4,) A C G T."""

    motifs: tuple[Motif, ...]
    background: np.ndarray
    strands: str = "+ -"


def _parse_keyvalues(text: str) -> dict[str, str]:
    """'alength= 4 w= 19 nsites= 20 E= 0' -> {'alength': '4', 'w': '19', ...}."""
    words = text.replace("=", "= ").split()
    out = {}
    for i, word in enumerate(words[:-1]):
        if word.endswith("="):
            out[word[:-1]] = words[i + 1]
    return out


def _parse_background(path, words, line_no) -> np.ndarray:
    """Background from 'A 0.3 C 0.2 G 0.2 T 0.3' words."""
    if len(words) != 8:
        raise InputFileError(path, "background needs 'A p C p G p T p'", line_no)
    freqs = {}
    for letter, value in zip(words[0::2], words[1::2]):
        try:
            freqs[letter.upper()] = float(value)
        except ValueError:
            raise InputFileError(path, f"background frequency {value!r} is not a number", line_no) from None
    if sorted(freqs) != list(LETTERS):
        raise InputFileError(path, "background must give A, C, G and T", line_no)
    background = np.array([freqs[c] for c in LETTERS])
    if np.any(background <= 0) or abs(background.sum() - 1) > ROW_SUM_TOLERANCE:
        raise InputFileError(path, "background frequencies must be positive and sum to 1", line_no)
    return background / background.sum()


def read_meme_file(path) -> MemeFile:
    """Parse a MEME minimal-format file (plain or gzipped) into a `MemeFile`.

    Raises `InputFileError` naming the file and line for anything malformed: a missing
    version line, a non-DNA alphabet, a matrix with the wrong number of rows or columns,
    non-numeric values, or rows that do not sum to 1.
    """
    lines = read_text(path, "MEME file").splitlines()
    motifs: list[Motif] = []
    background = UNIFORM_BACKGROUND.copy()
    strands = "+ -"
    seen_version = False
    current = None  # (name, alt_name, line_no)
    i = 0
    n = len(lines)
    while i < n:
        line_no = i + 1
        line = lines[i].strip()
        i += 1
        if not line:
            continue
        if line.startswith("MEME version"):
            seen_version = True
            continue
        if not seen_version:
            raise InputFileError(path, "not a MEME file: expected 'MEME version 4' first", line_no)
        if line.startswith("ALPHABET="):
            alphabet = line.split("=", 1)[1].strip().upper()
            if alphabet != LETTERS:
                raise InputFileError(path, f"alphabet {alphabet!r} is not supported (only ACGT)", line_no)
        elif line.startswith("ALPHABET"):
            # Custom alphabet block (MEME 5): accept DNA, skip to END ALPHABET.
            if "DNA" not in line.upper():
                raise InputFileError(path, "only DNA alphabets are supported", line_no)
            while i < n and not lines[i].strip().upper().startswith("END ALPHABET"):
                i += 1
            i += 1
        elif line.startswith("strands:"):
            strands = line.split(":", 1)[1].strip()
        elif line.startswith("Background letter frequencies"):
            words = []
            while i < n and len(words) < 8 and lines[i].strip():
                words += lines[i].split()
                i += 1
            background = _parse_background(path, words, line_no + 1)
        elif line.startswith("MOTIF"):
            words = line.split()
            if len(words) < 2:
                raise InputFileError(path, "MOTIF line without a name", line_no)
            current = (words[1], words[2] if len(words) > 2 else None, line_no)
        elif line.startswith("letter-probability matrix"):
            if current is None:
                raise InputFileError(path, "letter-probability matrix before any MOTIF line", line_no)
            keys = _parse_keyvalues(line.split(":", 1)[1] if ":" in line else "")
            try:
                alength = int(keys.get("alength", 4))
                width = int(keys["w"])
                nsites = int(float(keys["nsites"])) if "nsites" in keys else None
                evalue = float(keys["E"]) if "E" in keys else None
            except (KeyError, ValueError):
                raise InputFileError(path, "matrix header needs 'alength= 4 w= N' with numbers", line_no) from None
            if alength != 4 or width < 1:
                raise InputFileError(path, f"matrix header alength= {alength} w= {width}: "
                                     "need alength= 4 and w >= 1", line_no)
            rows = []
            while len(rows) < width:
                if i >= n:
                    raise InputFileError(path, f"motif {current[0]}: file ends after {len(rows)} of {width} rows", n)
                row_text = lines[i].strip()
                i += 1
                if not row_text:
                    continue
                try:
                    values = [float(v) for v in row_text.split()]
                except ValueError:
                    raise InputFileError(path, f"motif {current[0]}: matrix row is not numbers", i) from None
                if len(values) != 4:
                    raise InputFileError(path, f"motif {current[0]}: matrix row has {len(values)} values, "
                                         "expected 4", i)
                total = sum(values)
                if min(values) < 0 or abs(total - 1) > ROW_SUM_TOLERANCE:
                    raise InputFileError(path, f"motif {current[0]}: matrix row sums to {total:.4f}, expected 1", i)
                rows.append(values)
            pwm = np.asarray(rows, dtype=np.float64)
            pwm /= pwm.sum(axis=1, keepdims=True)
            motifs.append(Motif(current[0], current[1], pwm, nsites, evalue))
            current = None
        # other lines (URL, log-odds matrices, comments) are skipped
    if not seen_version:
        raise InputFileError(path, "not a MEME file: no 'MEME version' line")
    return MemeFile(tuple(motifs), background, strands)


def read_meme(path) -> list[Motif]:
    """Motifs of a MEME minimal-format file, in file order."""
    return list(read_meme_file(path).motifs)


def _format_evalue(evalue: float | None) -> str:
    if evalue is None or evalue == 0:
        return "0"
    return f"{evalue:.1e}"


def format_meme(motifs: Sequence[Motif], background=None) -> str:
    """MEME version 4 text for `motifs` (probabilities written with 6 decimals)."""
    background = UNIFORM_BACKGROUND if background is None else np.asarray(background, dtype=float)
    out = ["MEME version 4", "", "ALPHABET= ACGT", "", "strands: + -", "",
           "Background letter frequencies",
           " ".join(f"{c} {p:.5f}" for c, p in zip(LETTERS, background)), ""]
    for motif in motifs:
        pwm = np.asarray(motif.pwm, dtype=float)
        out.append(f"MOTIF {motif.name}" + (f" {motif.alt_name}" if motif.alt_name else ""))
        nsites = motif.nsites if motif.nsites is not None else 20
        out.append(f"letter-probability matrix: alength= 4 w= {pwm.shape[0]} nsites= {nsites} "
                   f"E= {_format_evalue(motif.evalue)}")
        out.extend(" " + "\t".join(f"{p:.6f}" for p in row) for row in pwm)
        out.append("")
    return "\n".join(out) + "\n"


def write_meme(path, motifs: Sequence[Motif], background=None) -> None:
    """Write `motifs` to `path` in MEME minimal format (gzipped when the name ends .gz)."""
    text = format_meme(motifs, background).encode()
    path = Path(path)
    if path.suffix == ".gz":
        text = gzip.compress(text, mtime=0)
    path.write_bytes(text)


def factornet_motif(motifs: Sequence[Motif], tf: str) -> Motif | None:
    """The motif FactorNet's -mo takes for `tf`, or None.

    FactorNet (utils.load_motif_db) keys each motif by the last word of its MOTIF line (the alt
    name when there is one), upper-cased, into a dict, so the last motif of that name in the
    file wins; a TF absent from the dict gets no motif.
    """
    key = tf.strip().upper()
    found = [m for m in motifs if (m.alt_name or m.name).upper() == key]
    return found[-1] if found else None


def find_motif(motifs: Sequence[Motif], name: str) -> Motif:
    """The motif called `name`, trying in turn (first match in file order wins):

    1. exact motif name, 2. exact alt name, 3. case-insensitive name or alt name,
    4. case-insensitive prefix followed by a separator ('CTCF' -> 'CTCF_f2',
    'CTCF_HUMAN.H11MO.0.A'), 5. case-insensitive prefix, 6. case-insensitive substring.
    Raises `FactorNetError` when nothing matches.
    """
    query = name.strip()
    low = query.lower()

    def names(m):
        return [m.name] + ([m.alt_name] if m.alt_name else [])

    rules = [
        lambda m: m.name == query,
        lambda m: m.alt_name == query,
        lambda m: any(x.lower() == low for x in names(m)),
        lambda m: any(x.lower().startswith(low) and x[len(low):len(low) + 1] in ("_", ".", "-", "+", ":")
                      for x in names(m)),
        lambda m: any(x.lower().startswith(low) for x in names(m)),
        lambda m: any(low in x.lower() for x in names(m)),
    ]
    for rule in rules:
        for motif in motifs:
            if rule(motif):
                return motif
    some = ", ".join(m.name for m in list(motifs)[:5])
    raise FactorNetError(f"no motif matches {name!r} among {len(motifs)} motifs (e.g. {some}); "
                         "check the TF name or the MEME file")


def reverse_complement(pwm) -> np.ndarray:
    """PWM of the opposite strand: rows reversed, A<->T and C<->G swapped. (width, 4)."""
    return np.asarray(pwm)[::-1, ::-1].copy()


def log_odds(pwm, background=None, pseudocount: float = 0.01) -> np.ndarray:
    """Log2-odds scores (width, 4): log2(p' / b), p' = (p + pseudocount * b) / (1 + pseudocount)."""
    pwm = np.asarray(pwm, dtype=np.float64)
    background = UNIFORM_BACKGROUND if background is None else np.asarray(background, dtype=np.float64)
    smoothed = (pwm + pseudocount * background) / (1.0 + pseudocount)
    with np.errstate(divide="ignore"):          # pseudocount 0: a zero probability is -inf
        return np.log2(smoothed / background)


def information_content(pwm, background=None) -> np.ndarray:
    """Information content per position in bits (width,): sum_b p log2(p / background_b)."""
    pwm = np.asarray(pwm, dtype=np.float64)
    background = UNIFORM_BACKGROUND if background is None else np.asarray(background, dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        terms = np.where(pwm > 0, pwm * np.log2(pwm / background), 0.0)
    return terms.sum(axis=1)


def _as_codes(seqs, onehot: bool | None) -> np.ndarray | None:
    """Codes (..., L) from codes or a 0/1 one-hot (..., L, 4); None for a soft one-hot.

    `onehot=None` infers: a trailing axis of size 4 (with at least 2 axes) means one-hot.
    """
    seqs = np.asarray(seqs)
    if onehot is None:
        onehot = seqs.ndim >= 2 and seqs.shape[-1] == 4
    if onehot:
        if np.any((seqs != 0) & (seqs != 1)):
            return None
        return np.where(seqs.sum(axis=-1) == 0, 4, seqs.argmax(axis=-1)).astype(np.uint8)
    return seqs


def scan_scores(seqs, scores, onehot: bool | None = None) -> np.ndarray:
    """Forward-strand motif scores at every offset.

    Parameters
    ----------
    seqs : (..., L) uint8 codes or (..., L, 4) one-hot
    scores : (width, 4) log-odds matrix (see `log_odds`); N positions score 0.
    onehot : whether `seqs` is one-hot; None infers it from a trailing axis of 4
        (pass False for codes of windows 4 bp long).

    Returns
    -------
    (..., L - width + 1) float64 score of the window starting at each offset.
    """
    scores = np.asarray(scores, dtype=np.float64)
    width = scores.shape[0]
    codes = _as_codes(seqs, onehot)
    if codes is None:  # soft one-hot: weighted sum per position
        onehot = np.asarray(seqs, dtype=np.float64)
        n_out = onehot.shape[-2] - width + 1
        if n_out < 1:
            return np.zeros(onehot.shape[:-2] + (0,))
        out = np.zeros(onehot.shape[:-2] + (n_out,))
        for k in range(width):
            out += onehot[..., k:k + n_out, :] @ scores[k]
        return out
    n_out = codes.shape[-1] - width + 1
    if n_out < 1:
        return np.zeros(codes.shape[:-1] + (0,))
    table = np.concatenate([scores, np.zeros((width, 1))], axis=1)  # code 4 (N) scores 0
    idx = np.minimum(codes, 4).astype(np.intp)
    out = np.zeros(codes.shape[:-1] + (n_out,))
    for k in range(width):
        out += table[k][idx[..., k:k + n_out]]
    return out


def scan_max(seqs, pwm, background=None, pseudocount: float = 0.01, onehot: bool | None = None) -> np.ndarray:
    """Best log2-odds score of `pwm` over all offsets and both strands of each window.

    Parameters
    ----------
    seqs : (..., L) uint8 codes or (..., L, 4) one-hot windows
    pwm : (width, 4) letter probabilities
    background, pseudocount : as in `log_odds`
    onehot : as in `scan_scores`

    Returns
    -------
    (...,) float64; -inf for windows shorter than the motif.
    """
    scores = log_odds(pwm, background, pseudocount)
    both = np.concatenate([scan_scores(seqs, scores, onehot),
                           scan_scores(seqs, reverse_complement(scores), onehot)], axis=-1)
    if both.shape[-1] == 0:
        return np.full(both.shape[:-1], -np.inf)
    return both.max(axis=-1)


def max_score(pwm, background=None, pseudocount: float = 0.01) -> float:
    """Highest log2-odds score any sequence can reach."""
    return float(log_odds(pwm, background, pseudocount).max(axis=1).sum())


def consensus(pwm) -> str:
    """Most likely letter per position."""
    return "".join(LETTERS[i] for i in np.asarray(pwm).argmax(axis=1))


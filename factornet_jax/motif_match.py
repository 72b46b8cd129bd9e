"""Motif similarity: rank the motifs of a database by how well they match a learned motif.

Method (the column-comparison idea of Tomtom, Gupta et al. 2007, without its p-values):

* Each column of a letter-probability matrix (4 values, A C G T) is compared with a column
  of the other motif by the **Pearson correlation coefficient** of the two 4-vectors. A
  column whose 4 values are all equal (uniform, or all-zero) has no defined correlation and
  scores 0 against everything.
* An **alignment** places the first column of the database motif at column ``offset`` of
  the learned (query) motif: query column ``i`` faces database column ``i - offset``.
  ``offset`` runs over every value that leaves an overlap of at least
  ``min(min_overlap, query width, database width)`` columns (default ``min_overlap`` 5), so
  negative offsets (the database motif hangs off the left end) and offsets past the right
  end are both tried.
* The **score** of an alignment is the mean of the column correlations over the
  overlapping columns (in [-1, 1]; 1 when the overlap is identical up to per-column affine
  changes). Only the overlap counts: a short database motif lying wholly inside a wide
  learned kernel is scored over its own columns, ignoring the kernel's flanks.
* Both strands of the database motif are tried: strand ``"-"`` is its reverse complement
  (rows reversed, A<->T, C<->G), and ``offset`` is then the position of the reverse
  complement's first column.
* For each query the best alignment of each database motif (over offsets and strands) is
  kept, and database motifs are ranked by **score x coverage**, where coverage is the share
  of the learned motif's information content (bits, uniform background) that lies in the
  overlap (ties: file order, then ``+`` before ``-``, then the smallest offset). The mean
  correlation alone lets a short database motif that fits 6 columns of a 20-column learned
  motif outrank the motif that explains all of it; weighting by covered information keeps a
  short motif on top only when the learned motif's information lies in those columns.

Vectorised: the columns are z-scored once (centred, scaled to unit length), so every
column-pair correlation of one query against the whole database (both strands, motifs
zero-padded to the widest) is one matrix product ``(2D, wq, W)``; the per-offset sums are
gathered along diagonals with a precomputed index, so a 26-wide query against 428 HOCOMOCO
motifs costs a few milliseconds.
"""
from __future__ import annotations

import dataclasses
from typing import Sequence

import numpy as np

from factornet_jax.meme import Motif

DEFAULT_MIN_OVERLAP = 5
_FLAT_COLUMN = 1e-9  # a column with centred norm below this has no defined correlation


@dataclasses.dataclass(frozen=True)
class MotifMatch:
    """One database motif aligned to a learned motif (rank 1 = best)."""

    rank: int               # 1-based rank among the database motifs for this query
    motif: str              # database motif name (MOTIF word 2)
    alt_name: str | None    # database alt name (MOTIF word 3), None when absent
    score: float            # mean column Pearson correlation over the overlap, in [-1, 1]
    offset: int             # query column facing the database motif's first column (may be < 0)
    strand: str             # "+" database motif as given, "-" its reverse complement
    overlap: int            # number of aligned columns the score averages over
    index: int              # position of the database motif in the database sequence
    coverage: float = 1.0   # share of the learned motif's information inside the overlap


def standardized_columns(pwm) -> np.ndarray:
    """Columns centred and scaled to unit length, so a dot product is a Pearson correlation.

    Parameters
    ----------
    pwm : (..., w, 4) letter probabilities (any scale)

    Returns
    -------
    (..., w, 4) float64; rows with (near) zero spread become all-zero (correlate as 0).
    """
    pwm = np.asarray(pwm, dtype=np.float64)
    centred = pwm - pwm.mean(axis=-1, keepdims=True)
    norm = np.sqrt((centred ** 2).sum(axis=-1, keepdims=True))
    return np.where(norm > _FLAT_COLUMN, centred / np.maximum(norm, _FLAT_COLUMN), 0.0)


def column_correlation(a, b) -> float:
    """Pearson correlation of two 4-vectors (0 when either is flat). The slow, obvious oracle."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    if np.ptp(a) <= _FLAT_COLUMN or np.ptp(b) <= _FLAT_COLUMN:
        return 0.0
    return float(np.corrcoef(a, b)[0, 1])


class MotifDatabase:
    """A set of motifs prepared for matching (both strands z-scored and padded once).

    Parameters
    ----------
    motifs : sequence of `meme.Motif`
    """

    def __init__(self, motifs: Sequence[Motif]):
        self.motifs = list(motifs)
        if not self.motifs:
            raise ValueError("motif database is empty")
        self.widths = np.array([m.width for m in self.motifs], dtype=np.int64)   # (D,)
        self.max_width = int(self.widths.max())
        n = len(self.motifs)
        # (2D, W, 4): rows 0..D-1 forward strand, D..2D-1 reverse complements; zero-padded
        padded = np.zeros((2 * n, self.max_width, 4))
        for d, motif in enumerate(self.motifs):
            z = standardized_columns(motif.pwm)
            padded[d, :motif.width] = z
            padded[n + d, :motif.width] = z[::-1, ::-1]
        self.columns = padded
        self.both_widths = np.concatenate([self.widths, self.widths])           # (2D,)

    def __len__(self):
        return len(self.motifs)

    def scores(self, query_pwm, min_overlap: int = DEFAULT_MIN_OVERLAP):
        """Score of every alignment of one query against every database motif and strand.

        Parameters
        ----------
        query_pwm : (wq, 4) letter probabilities of the learned motif

        Returns
        -------
        scores : (2D, n_offsets) float64 mean column correlation; -inf where the overlap is
            shorter than ``min(min_overlap, wq, wd)`` (or empty). Rows: D forward, D reverse.
        offsets : (n_offsets,) int64, the offset of each column (see module docstring)
        overlaps : (2D, n_offsets) int64 aligned columns
        """
        query = standardized_columns(query_pwm)
        wq = query.shape[0]
        width = self.max_width
        offsets = np.arange(-(width - 1), wq, dtype=np.int64)                    # (O,)
        # similarity of every query column with every database column: (2D, wq, W)
        similarity = np.einsum("qa,dwa->dqw", query, self.columns)
        j = np.arange(width)                                                     # database column
        i = offsets[:, None] + j[None, :]                                        # (O, W) query column
        inside = (i >= 0) & (i < wq)
        gathered = similarity[:, np.clip(i, 0, wq - 1), j[None, :]]             # (2D, O, W)
        valid = inside[None] & (j[None, None, :] < self.both_widths[:, None, None])
        overlaps = valid.sum(axis=-1)
        totals = np.where(valid, gathered, 0.0).sum(axis=-1)
        needed = np.minimum(min_overlap, np.minimum(wq, self.both_widths))[:, None]
        with np.errstate(invalid="ignore", divide="ignore"):
            scores = np.where((overlaps >= needed) & (overlaps > 0), totals / np.maximum(overlaps, 1), -np.inf)
        return scores, offsets, overlaps

    def best(self, query_pwm, top: int = 3, min_overlap: int = DEFAULT_MIN_OVERLAP) -> list[MotifMatch]:
        """The `top` best-matching database motifs for one learned motif, best first."""
        scores, offsets, overlaps = self.scores(query_pwm, min_overlap)
        n = len(self.motifs)
        n_offsets = offsets.size
        # best alignment per motif over (strand, offset); argmax takes the first of ties,
        # i.e. strand "+" before "-", then the smallest offset
        coverage = self._coverage(query_pwm, offsets)                              # (2D, O)
        finite = np.isfinite(scores)
        ranking = np.full_like(scores, -np.inf)
        ranking[finite] = scores[finite] * coverage[finite]
        per_motif = ranking.reshape(2, n, n_offsets).transpose(1, 0, 2).reshape(n, 2 * n_offsets)
        flat = np.argmax(per_motif, axis=1)                                       # (D,)
        best_ranking = per_motif[np.arange(n), flat]
        strand_of, offset_of = np.divmod(flat, n_offsets)
        best_scores = scores[strand_of * n + np.arange(n), offset_of]
        order = np.argsort(-best_ranking, kind="stable")[:top]
        out = []
        for rank, d in enumerate(order, start=1):
            if not np.isfinite(best_scores[d]):
                break
            strand_index, o = divmod(int(flat[d]), n_offsets)
            row = strand_index * n + d
            motif = self.motifs[d]
            out.append(MotifMatch(rank=rank, motif=motif.name, alt_name=motif.alt_name,
                                  score=float(best_scores[d]), offset=int(offsets[o]),
                                  strand="+-"[strand_index], overlap=int(overlaps[row, o]),
                                  index=int(d), coverage=float(coverage[row, o])))
        return out

    def _coverage(self, query_pwm, offsets):
        """(2D, O) share of the query's information content inside each alignment's overlap."""
        pwm = np.asarray(query_pwm, dtype=np.float64)
        p = pwm / np.maximum(pwm.sum(axis=1, keepdims=True), 1e-12)
        with np.errstate(divide="ignore", invalid="ignore"):
            bits = 2.0 + np.where(p > 0, p * np.log2(p), 0.0).sum(axis=1)          # (wq,)
        bits = np.clip(bits, 0.0, None)
        cumulative = np.r_[0.0, np.cumsum(bits)]
        wq = len(bits)
        lo = np.clip(offsets[None, :], 0, wq)                                     # (1, O)
        hi = np.clip(offsets[None, :] + self.both_widths[:, None], 0, wq)          # (2D, O)
        covered = cumulative[np.maximum(hi, lo)] - cumulative[lo]
        total = cumulative[-1]
        return covered / total if total > 0 else np.ones_like(covered)


def match_motifs(query_pwms, database: Sequence[Motif] | MotifDatabase, top: int = 3,
                 min_overlap: int = DEFAULT_MIN_OVERLAP) -> list[list[MotifMatch]]:
    """Best database matches for each learned motif.

    Parameters
    ----------
    query_pwms : sequence of (w, 4) letter-probability matrices
    database : motifs (e.g. `meme.read_meme(path)`) or a prepared `MotifDatabase`
    top : matches kept per query
    min_overlap : shortest overlap considered (capped by the shorter motif's width)

    Returns
    -------
    list (one per query) of up to `top` `MotifMatch`, best first
    """
    db = database if isinstance(database, MotifDatabase) else MotifDatabase(database)
    return [db.best(pwm, top=top, min_overlap=min_overlap) for pwm in query_pwms]

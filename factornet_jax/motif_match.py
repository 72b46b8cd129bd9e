"""Motif similarity: TOMTOM p- and q-values of learned motifs against a motif database.

TOMTOM (Gupta et al. 2007) through memelite's implementation (the optional extra
``factornet-jax[motifs]``; `require_tomtom` names it when missing):

* columns of the query and of each database motif (letter-probability matrices, A C G T)
  are compared by Pearson correlation; every offset and both strands of the database motif
  are tried, and the best alignment's score is turned into a p-value against the null
  distribution of scores of that query's columns against the whole database;
* q-values: Benjamini-Hochberg over the database, per query (TOMTOM's own q-values);
* ``offset`` is the query column facing the database motif's first column (negative when the
  database motif hangs off the query's left end); on strand ``"-"`` the database motif's
  reverse complement is aligned, and ``offset`` is that of its first column;
* ``overlap`` is the number of aligned columns.

Used by `factornet visualize` (matches.tsv: the kernels' PWMs) and `factornet explain --motifs`
(motif_discovery: the TF-MoDISco patterns).
"""
from __future__ import annotations

import dataclasses
from typing import Sequence

import numpy as np

from factornet_jax.errors import ConfigError
from factornet_jax.meme import Motif

INSTALL_HINT = "install factornet-jax[motifs] (pip install modisco-lite memelite)"


@dataclasses.dataclass(frozen=True)
class MotifMatch:
    """One database motif aligned to a query motif (rank 1 = smallest p-value)."""

    rank: int               # 1-based rank among the database motifs for this query
    motif: str              # database motif name (MOTIF word 2)
    alt_name: str | None    # database alt name (MOTIF word 3), None when absent
    p_value: float          # TOMTOM p-value of the best alignment
    q_value: float          # Benjamini-Hochberg over the database, this query
    offset: int             # query column facing the database motif's first column (may be < 0)
    strand: str             # "+" database motif as given, "-" its reverse complement
    overlap: int            # number of aligned columns
    index: int              # position of the database motif in the database sequence


def require_tomtom(what="motif matching"):
    """Raise ConfigError (one line) when memelite is not installed."""
    try:
        import memelite  # noqa: F401
    except ImportError:
        raise ConfigError(f"{what} needs TOMTOM from the package memelite: {INSTALL_HINT}") from None


def benjamini_hochberg(p_values) -> np.ndarray:
    """q-values of a 1-d array of p-values (BH step-up, made monotone, clipped to 1)."""
    p = np.asarray(p_values, np.float64)
    n = p.size
    if not n:
        return p
    order = np.argsort(p, kind="stable")
    ranked = p[order] * n / np.arange(1, n + 1)
    q = np.minimum.accumulate(ranked[::-1])[::-1]
    out = np.empty(n)
    out[order] = np.clip(q, 0.0, 1.0)
    return out


def match_motifs(query_pwms, database: Sequence[Motif], top: int = 3) -> list:
    """TOMTOM matches of each query against the database.

    Parameters
    ----------
    query_pwms : sequence of (w, 4) letter-probability matrices
    database : motifs (e.g. `meme.read_meme(path)`)
    top : matches kept per query

    Returns
    -------
    list (one per query) of up to `top` MotifMatch, by p-value (ties: database order)
    """
    require_tomtom()
    from memelite import tomtom
    if not len(query_pwms):
        return []
    queries = [np.ascontiguousarray(np.asarray(q, np.float64).T) for q in query_pwms]
    targets = [np.ascontiguousarray(np.asarray(m.pwm, np.float64).T) for m in database]
    p, _, offsets, overlaps, strands = tomtom(queries, targets, n_jobs=1)[:5]
    out = []
    for i in range(len(queries)):
        q = benjamini_hochberg(p[i])
        best = np.argsort(p[i], kind="stable")[:top]
        out.append([MotifMatch(rank + 1, database[j].name, database[j].alt_name,
                               float(p[i, j]), float(q[j]), -int(offsets[i, j]),
                               "-" if int(strands[i, j]) == 1 else "+", int(overlaps[i, j]), int(j))
                    for rank, j in enumerate(best.tolist())])
    return out

"""Motifs from contributions: TF-MoDISco (modisco-lite) patterns matched with TOMTOM (memelite).

Both packages are the optional extra ``factornet-jax[motifs]``; they are imported inside the
functions, and `require_packages` turns their absence into one line saying what to install.

    patterns = run_modisco(hypothetical, onehot)              # (N, L, 4) each
    matches = tomtom_matches([p.ppm for p in patterns], database)

TOMTOM: `motif_match.match_motifs` (memelite; p-values, Benjamini-Hochberg q-values per query).
A pattern is trimmed first to the columns whose summed |contribution| is at least 30 % of its
maximum (modisco-lite's report does the same).
"""
from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np

from factornet_jax.errors import ConfigError, FactorNetError
from factornet_jax.motif_match import INSTALL_HINT

TRIM_FRACTION = 0.3
TOP_MATCHES = 3
MATCH_COLUMNS = ("pattern", "sign", "seqlets", "rank", "motif", "alt_name", "p_value", "q_value",
                 "offset", "strand", "overlap")


def require_packages():
    """Raise ConfigError (one line) when modisco-lite or memelite is missing."""
    for name in ("modiscolite", "memelite"):
        try:
            __import__(name)
        except ImportError:
            raise ConfigError(f"--motifs needs the package {name}: {INSTALL_HINT}") from None


def load_database(motif_db=None):
    """(path, motifs) of a MEME motif file; None: the packaged HOCOMOCO v9."""
    from factornet_jax.meme import read_meme
    from factornet_jax.reference_files import default_motif_db
    path = default_motif_db() if motif_db is None else motif_db
    motifs = read_meme(path)
    if not motifs:
        raise FactorNetError(f"--motif-db {path}: no motifs in the file")
    return str(path), motifs


# ------------------------------------------------------------------ TOMTOM

def trim_by(weights, pwm, fraction=TRIM_FRACTION):
    """Rows of `pwm` from the first to the last whose weight is >= fraction * max weight."""
    weights = np.asarray(weights, np.float64)
    keep = np.flatnonzero(weights >= fraction * weights.max()) if weights.size and weights.max() > 0 \
        else np.arange(len(weights))
    return np.asarray(pwm)[keep[0]: keep[-1] + 1]


def tomtom_matches(query_pwms, database, top=TOP_MATCHES) -> list:
    """`motif_match.match_motifs` (TOMTOM p / q-values), one list of matches per query."""
    from factornet_jax.motif_match import match_motifs
    return match_motifs(query_pwms, database, top=top)


# ------------------------------------------------------------------ TF-MoDISco

@dataclasses.dataclass(frozen=True)
class Pattern:
    """A MoDISco pattern: name (pos_0, neg_1, ...), ppm / cwm / hypothetical cwm (w, 4),
    number of seqlets."""
    name: str
    sign: int
    ppm: np.ndarray
    cwm: np.ndarray
    hcwm: np.ndarray
    seqlets: int

    def trimmed_ppm(self, fraction=TRIM_FRACTION):
        return trim_by(np.abs(self.cwm).sum(axis=1), self.ppm, fraction)

    def trimmed_cwm(self, fraction=TRIM_FRACTION):
        return trim_by(np.abs(self.cwm).sum(axis=1), self.cwm, fraction)


def run_modisco(hypothetical, onehot, max_seqlets=2000, min_seqlets=30, window=21,
                n_leiden_runs=8) -> list:
    """TF-MoDISco patterns of sequence contributions.

    Parameters
    ----------
    hypothetical : (N, L, 4) float32 hypothetical contributions
    onehot : (N, L, 4) uint8
    max_seqlets : seqlets kept per metacluster; min_seqlets : the smallest metacluster (and
        final cluster) worth a pattern (modisco-lite's defaults 100 / 20 fit whole genomes)
    window : seqlet core width (bp)

    Returns
    -------
    list of Pattern, positive ones first, each in MoDISco's order
    """
    require_packages()
    settings = dict(sliding_window_size=window, flank_size=5, min_metacluster_size=min_seqlets,
                    max_seqlets_per_metacluster=max_seqlets,
                    final_min_cluster_size=max(5, min_seqlets // 2), n_leiden_runs=n_leiden_runs,
                    trim_to_window_size=window + 4, initial_flank_to_add=5, verbose=False)
    # modisco-lite forks worker children; forking a process that holds JAX's threads can
    # deadlock, so MoDISco runs in a fresh (spawned) interpreter without JAX
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor
    with ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn")) as pool:
        found = pool.submit(_modisco_patterns, np.asarray(hypothetical, np.float32),
                            np.asarray(onehot, np.float32), settings).result()
    return [Pattern(*fields) for fields in found]


def _modisco_patterns(hyp, seq, settings):
    """TF-MoDISco in this (spawned) process -> Pattern fields, positive patterns first."""
    import modiscolite
    pos, neg = modiscolite.tfmodisco.TFMoDISco(one_hot=seq, hypothetical_contribs=hyp, **settings)
    out = []
    for sign, patterns in ((1, pos), (-1, neg)):
        for k, pattern in enumerate(patterns or []):
            out.append((f"{'pos' if sign > 0 else 'neg'}_{k}", sign,
                        np.asarray(pattern.sequence, np.float64),
                        np.asarray(pattern.contrib_scores, np.float64),
                        np.asarray(pattern.hypothetical_contribs, np.float64),
                        len(pattern.seqlets)))
    return out


def discover_and_match(hypothetical, actual, onehot, database, folder, seed=0, top=TOP_MATCHES):
    """MoDISco patterns -> `folder`/patterns.meme, matches.tsv, logos/<pattern>.png.

    `database` is (path, motifs) from `load_database`. Returns the number of patterns.
    """
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from factornet_jax.explain import draw_contribution_logo
    from factornet_jax.meme import Motif, write_meme
    from factornet_jax.progress import warn
    from factornet_jax.visualize import draw_logo
    del actual, seed        # MoDISco recomputes actual = hypothetical * onehot; it is deterministic
    folder = Path(folder)
    (folder / "logos").mkdir(parents=True)
    patterns = run_modisco(hypothetical, onehot)
    if not patterns:
        warn("TF-MoDISco found no pattern (too few regions or too few strong seqlets); "
             "explain more regions for --motifs")
    _, motifs = database
    matches = tomtom_matches([p.trimmed_ppm() for p in patterns], motifs, top=top)
    write_meme(folder / "patterns.meme",
               [Motif(p.name, f"seqlets={p.seqlets}", p.trimmed_ppm(), nsites=p.seqlets)
                for p in patterns])
    rows = ["\t".join(MATCH_COLUMNS) + "\n"]
    for p, found in zip(patterns, matches):
        for m in found:
            rows.append("\t".join(str(v) for v in (
                p.name, "+" if p.sign > 0 else "-", p.seqlets, m.rank, m.motif, m.alt_name or "",
                f"{m.p_value:.3g}", f"{m.q_value:.3g}", m.offset, m.strand, m.overlap)) + "\n")
    (folder / "matches.tsv").write_text("".join(rows), encoding="utf-8")
    for p, found in zip(patterns, matches):
        fig, axes = plt.subplots(2, 1, figsize=(8, 4))
        draw_contribution_logo(axes[0], p.trimmed_cwm())
        best = found[0] if found else None
        axes[0].set_title(f"{p.name} ({p.seqlets} seqlets)"
                          + (f": best match {best.motif} q={best.q_value:.2g}" if best else ""),
                          fontsize=9)
        draw_logo(axes[1], p.trimmed_ppm(), axis_labels=False)
        fig.tight_layout()
        fig.savefig(folder / "logos" / f"{p.name}.png", dpi=90)
        plt.close(fig)
    return len(patterns)

"""`factornet visualize`: what the first layers of a trained model respond to.

Over the intervals of a BED file on one chromosome, the model's first two layers are run on
windows of ``seq_len`` bp centred on each interval midpoint (``labels.window_starts``;
windows running off the chromosome are skipped and counted), on both strands exactly as the
model builds them (forward input, and the one-hot reversed on both axes with every track
reversed in time and ``_fwd``/``_rev`` tracks swapped):

* layer ``conv``: relu(Conv1D) activations ``(2N, L - w + 1, K)``;
* layer ``position_dense``: relu(Dense) of those, per position, ``(2N, L - w + 1, K)``;
  its receptive field at position p is the same ``w`` input bases ``[p, p + w)``.

Sites (FactorNet's kernel-visualisation method): for every kernel, sequence and strand the
best-activating position (first of ties), kept when its activation is > 0. The input under a
site, ``w`` bases of that strand's input as the kernel saw it, is summed per kernel:

* one-hot -> a count matrix ``(w, 4)``; normalised per column it is the kernel's letter-
  probability matrix (a column with no A/C/G/T under any site, only N, becomes uniform);
* signal tracks -> a ``(w,)`` mean profile per track (channel i is labelled ``track_names[i]``
  on both strands, i.e. the channel the kernel weight sees, after the ``_fwd``/``_rev`` swap).

A kernel with no positive activation anywhere has no sites: it is left out of the MEME
files, the logos and the matches, its rows of the mean-signal arrays are NaN, and the
summary names it.

Output folder (written as a hidden ``.OUT.partial-*`` beside it and swapped into place last,
``outputs.write_dir_atomically``)::

    .factornet-output.json     marks the folder as visualize output (what -oc may replace)

    motifs.txt                 MEME: one motif "kernel_<k>" per conv kernel with sites, nsites=
    motifs2.txt                MEME: the same for the position-dense layer
    <track>_meansignal.npy     (K, w) float32 mean signal under conv sites; NaN rows: no sites
    <track>_meansignal2.npy    (K, w) float32, position-dense layer
    logos/conv_<k>.png         information-content sequence logo per conv kernel with sites
    logos/position_dense_<k>.png
    overview.png / overview2.png   all logos of a layer in one grid
    matches.tsv                top 3 database matches per learned motif: TOMTOM p- and q-values
                               (motif_match; needs the optional extra factornet-jax[motifs],
                               without it the file is left out with a warning)

Track names are made file-name safe by replacing characters other than letters, digits,
``.``, ``_`` and ``-`` with ``_``.
"""
from __future__ import annotations

import dataclasses
import functools
import math
import re
import time
from pathlib import Path

import numpy as np

from factornet_jax.errors import FactorNetError
from factornet_jax.outputs import VISUALIZATION, check_output, write_dir_atomically

LAYERS = ("conv", "position_dense")
LAYER_SUFFIX = {"conv": "", "position_dense": "2"}   # motifs.txt / motifs2.txt etc.
DEFAULT_BATCH = 128
TOP_MATCHES = 3
LOGO_COLORS = {"A": "#109648", "C": "#255C99", "G": "#F7B32B", "T": "#D62839"}
MATCH_COLUMNS = ("kernel", "layer", "rank", "motif", "alt_name", "p_value", "q_value", "offset", "strand",
                 "overlap")


@dataclasses.dataclass(frozen=True)
class KernelSites:
    """Sums under the sites of every kernel of one layer.

    counts: (K, w, 4) float64 one-hot sums; signal: (K, w, S) float64 signal sums;
    nsites: (K,) int64 number of sites (sequence x strand with a positive maximum).
    """

    layer: str
    counts: np.ndarray
    signal: np.ndarray
    nsites: np.ndarray

    @property
    def kernels_with_sites(self) -> np.ndarray:
        """(n,) int64 indices of kernels with at least one site."""
        return np.flatnonzero(self.nsites > 0)

    def pwm(self, kernel: int) -> np.ndarray:
        """(w, 4) letter probabilities of one kernel (uniform columns where only N was seen)."""
        counts = self.counts[kernel]
        totals = counts.sum(axis=1, keepdims=True)
        return np.where(totals > 0, counts / np.maximum(totals, 1e-300), 0.25)

    def mean_signal(self) -> np.ndarray:
        """(K, w, S) float32 mean signal under the sites; NaN for kernels without sites."""
        n = self.nsites[:, None, None].astype(np.float64)
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(n > 0, self.signal / np.maximum(n, 1), np.nan).astype(np.float32)


@dataclasses.dataclass(frozen=True)
class VisualizeSummary:
    """What one `visualize` run did."""

    out_dir: str
    chrom: str
    n_intervals: int             # BED intervals on `chrom`
    n_windows: int               # windows scanned (each on both strands)
    n_off_chrom: int             # intervals skipped: window off the chromosome
    kernels: int
    kernel_width: int
    nsites: tuple                # (K,) sites per conv kernel
    nsites2: tuple               # (K,) sites per position-dense kernel
    motif_db: str | None         # database matched against (None: no matches.tsv)
    seconds: float

    @property
    def skipped(self) -> tuple:
        """Conv kernels without a positive activation (no motif written)."""
        return tuple(k for k, n in enumerate(self.nsites) if n == 0)

    @property
    def skipped2(self) -> tuple:
        """Position-dense kernels without a positive activation."""
        return tuple(k for k, n in enumerate(self.nsites2) if n == 0)

    def line(self) -> str:
        """One-line summary."""
        def kernels_text(skipped, layer):
            text = f"{self.kernels - len(skipped)}/{self.kernels} {layer} kernels with sites"
            if skipped:
                shown = ", ".join(str(k) for k in skipped[:10]) + (", ..." if len(skipped) > 10 else "")
                text += f" (skipped, never positive: {shown})"
            return text
        off = f" ({self.n_off_chrom} off the chromosome skipped)" if self.n_off_chrom else ""
        matched = f"; matched against {Path(self.motif_db).name}" if self.motif_db else "; no motif database"
        return (f"visualize: {self.n_windows} windows on {self.chrom}{off}; "
                f"{kernels_text(self.skipped, 'conv')}; {kernels_text(self.skipped2, 'position-dense')}"
                f"{matched}; wrote {self.out_dir} in {self.seconds:.1f} s")


# ---------------------------------------------------------------------------------------------
# Windows
# ---------------------------------------------------------------------------------------------

def interval_windows(records, chrom: str, chrom_size: int, seq_len: int):
    """Starts of the ``seq_len`` windows centred on the midpoints of the intervals on `chrom`.

    Parameters
    ----------
    records : (N,) bed.PEAK_DTYPE intervals (any chromosomes)

    Returns
    -------
    starts : (n,) int64 window starts inside ``[0, chrom_size - seq_len]``, sorted
    n_on_chrom : int, intervals on `chrom`
    n_off : int, of those, windows skipped because they run off the chromosome
    """
    from factornet_jax.labels import window_starts

    on = records[records["chrom"] == chrom]
    lengths = on["end"] - on["start"]
    starts = window_starts(on["start"], lengths, seq_len)
    inside = (starts >= 0) & (starts + seq_len <= chrom_size)
    return np.sort(starts[inside]), int(len(on)), int((~inside).sum())


# ---------------------------------------------------------------------------------------------
# The first layers, jit-compiled
# ---------------------------------------------------------------------------------------------

def strand_inputs(model_config, onehot, signal):
    """Both strands' inputs as the model builds them (`FactorNet.strands`: reverse complement,
    _fwd/_rev tracks swapped, the model's signal transform): (2N, L, 4 + S) float32.

    onehot: (N, L, 4) uint8/float; signal: (N, L, S) float32. Rows interleave the strands
    ([x0+, x0-, x1+, ...]); the sums over windows do not depend on the order.
    """
    from factornet_jax.model import make_model
    return make_model(model_config).apply({"params": {}}, onehot, signal, method="strands")


def layer_activations(model_config, params, x):
    """relu activations of the conv and position-dense layers (`FactorNet.activations`).

    Parameters
    ----------
    params : model params
    x : (B, L, 4 + S) float32 inputs (e.g. from `strand_inputs`)

    Returns
    -------
    conv, dense : (B, L - w + 1, K) float32 each
    """
    from factornet_jax.model import make_model
    return make_model(model_config).apply({"params": params}, x, method="activations")


@functools.lru_cache(maxsize=8)
def make_site_sums(model_config):
    """A jitted ``fn(params, onehot, signal, valid) -> (counts, signal_sums, nsites)``.

    onehot: (B, L, 4) uint8; signal: (B, L, S) float32; valid: (B,) bool (False rows are
    padding and count nowhere). Returns, stacked over the two layers in `LAYERS` order,
    counts (2, K, w, 4), signal_sums (2, K, w, S) float32 and nsites (2, K) int32, summed
    over both strands of the valid windows. Cached per ModelConfig (one compile per batch
    shape in a process).
    """
    import jax
    import jax.numpy as jnp

    width = model_config.kernel_width

    def under_sites(x, activation, keep):
        best = jnp.argmax(activation, axis=1)                               # (2B, K)
        top = jnp.max(activation, axis=1)                                   # (2B, K)
        weight = ((top > 0) & keep[:, None]).astype(jnp.float32)            # (2B, K)
        # the w input positions under each (sequence, kernel) site: (2B, K, w, C)
        windows = jax.vmap(lambda xb, pb: xb[pb[:, None] + jnp.arange(width)])(x, best)
        sums = jnp.einsum("bk,bkwc->kwc", weight, windows)
        return sums, weight.sum(axis=0).astype(jnp.int32)

    def site_sums(params, onehot, signal, valid):
        x = strand_inputs(model_config, onehot, signal)                     # (2B, L, C)
        keep = jnp.repeat(valid, 2)                                          # strands interleaved
        sums, counts = zip(*(under_sites(x, act, keep)
                             for act in layer_activations(model_config, params, x)))
        sums = jnp.stack(sums)                                              # (2, K, w, C)
        return sums[..., :4], sums[..., 4:], jnp.stack(counts)

    return jax.jit(site_sums)


def collect_sites(cell_store, model, chrom, starts, batch_size=DEFAULT_BATCH, progress=None):
    """Run the first layers over the windows and sum the inputs under every kernel's sites.

    Parameters
    ----------
    cell_store : reader.CellStore
    model : modeldir.LoadedModel
    starts : (N,) int64 window starts on `chrom` (windows of model seq_len)
    progress : optional `Progress`, updated with windows done

    Returns
    -------
    dict layer -> KernelSites
    """
    cfg = model.model_config
    width, kernels, tracks = cfg.kernel_width, cfg.kernels, cfg.num_tracks
    counts = np.zeros((2, kernels, width, 4))
    signal_sums = np.zeros((2, kernels, width, tracks))
    nsites = np.zeros((2, kernels), np.int64)
    batch_size = max(1, min(int(batch_size), len(starts)))
    fn = make_site_sums(cfg)
    params = {name: model.params[name] for name in LAYERS}
    for first in range(0, len(starts), batch_size):
        batch = starts[first:first + batch_size]
        onehot, signal = cell_store.fetch_batch([chrom] * len(batch), batch, cfg.seq_len)
        valid = np.zeros(batch_size, bool)
        valid[:len(batch)] = True
        if len(batch) < batch_size:   # pad so the function compiles once
            pad = batch_size - len(batch)
            onehot = np.concatenate([onehot, np.zeros((pad,) + onehot.shape[1:], onehot.dtype)])
            signal = np.concatenate([signal, np.zeros((pad,) + signal.shape[1:], signal.dtype)])
        c, s, n = fn(params, onehot, signal, valid)
        counts += np.asarray(c, np.float64)
        signal_sums += np.asarray(s, np.float64)
        nsites += np.asarray(n, np.int64)
        if progress is not None:
            progress.update(len(batch))
    return {layer: KernelSites(layer, counts[i], signal_sums[i], nsites[i])
            for i, layer in enumerate(LAYERS)}


# ---------------------------------------------------------------------------------------------
# Motifs and logos
# ---------------------------------------------------------------------------------------------

def motif_name(kernel: int) -> str:
    return f"kernel_{kernel}"


def learned_motifs(sites: KernelSites):
    """`meme.Motif` per kernel with sites: name kernel_<k>, alt name the layer."""
    from factornet_jax.meme import Motif
    return [Motif(motif_name(int(k)), sites.layer, sites.pwm(int(k)), nsites=int(sites.nsites[k]))
            for k in sites.kernels_with_sites]


def logo_stack(pwm):
    """Letter heights of an information-content logo.

    Each column is drawn as its letters stacked smallest at the bottom, letter b having
    height ``p_b * IC`` with ``IC = 2 - H`` bits (uniform background, no small-sample
    correction), so a column's total height is its information content.

    Parameters
    ----------
    pwm : (w, 4) letter probabilities

    Returns
    -------
    order : (w, 4) int64 letter index (A C G T = 0..3) bottom to top
    bottoms, heights : (w, 4) float64 in bits, in `order`
    """
    from factornet_jax.meme import information_content

    pwm = np.asarray(pwm, np.float64)
    ic = np.clip(information_content(pwm), 0.0, 2.0)
    heights = pwm * ic[:, None]
    order = np.argsort(heights, axis=1, kind="stable")
    stacked = np.take_along_axis(heights, order, axis=1)
    bottoms = np.cumsum(stacked, axis=1) - stacked
    return order, bottoms, stacked


_LETTER_PATHS = {}


def _letter_path(letter):
    """Glyph outline of `letter` (bold sans), normalised to the unit square."""
    if letter not in _LETTER_PATHS:
        from matplotlib.font_manager import FontProperties
        from matplotlib.textpath import TextPath
        from matplotlib.transforms import Affine2D
        path = TextPath((0, 0), letter, size=1, prop=FontProperties(family="DejaVu Sans", weight="bold"))
        box = path.get_extents()
        norm = Affine2D().translate(-box.x0, -box.y0).scale(1.0 / box.width, 1.0 / box.height)
        _LETTER_PATHS[letter] = norm.transform_path(path)
    return _LETTER_PATHS[letter]


def draw_logo(ax, pwm, title=None, axis_labels=True):
    """Draw the information-content logo of `pwm` (w, 4) on a matplotlib axes; returns the letters.

    Letters are glyph outlines (DejaVu Sans Bold) stretched to their box, drawn as one
    PathCollection (one patch per letter is ~50x slower: each updates the data limits).
    """
    from matplotlib.collections import PathCollection
    from matplotlib.transforms import Affine2D

    order, bottoms, heights = logo_stack(pwm)
    width = order.shape[0]
    cols, rows = np.nonzero(heights >= 1e-3)
    paths, colors = [], []
    for col, row in zip(cols.tolist(), rows.tolist()):
        letter = "ACGT"[order[col, row]]
        place = Affine2D().scale(0.9, heights[col, row]).translate(col + 0.05, bottoms[col, row])
        paths.append(place.transform_path(_letter_path(letter)))
        colors.append(LOGO_COLORS[letter])
    # offsets / sizes unused: the paths are in data coordinates
    letters = PathCollection(paths, facecolors=colors, linewidths=0, transform=ax.transData)
    ax.add_collection(letters, autolim=False)
    ax.set_xlim(0, width)
    ax.set_ylim(0, 2)
    ax.spines[["top", "right"]].set_visible(False)
    if axis_labels:
        ax.set_ylabel("bits")
        ax.set_xticks(np.arange(width) + 0.5, [str(i + 1) for i in range(width)], fontsize=6)
        ax.set_yticks([0, 1, 2])
    else:
        ax.set_xticks([])
        ax.set_yticks([])
    if title:
        ax.set_title(title, fontsize=8 if not axis_labels else 10)
    return letters


def write_logos(folder, sites: KernelSites, overview_path):
    """logos/<layer>_<k>.png per kernel with sites, and a grid of all of them at overview_path."""
    import matplotlib
    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    kernels = sites.kernels_with_sites
    digits = len(str(max(len(sites.nsites) - 1, 0)))
    folder.mkdir(exist_ok=True)
    width = sites.counts.shape[1]
    # one Figure (not pyplot: no global registry) reused for every kernel: only the letters
    # and the title change, so the axes and ticks are laid out once
    fig = Figure(figsize=(max(3.0, 0.3 * width + 1), 2.2), dpi=100)
    ax = fig.add_axes((0.7 / fig.get_figwidth(), 0.14, 1 - 0.9 / fig.get_figwidth(), 0.72))
    for k in kernels:
        letters = draw_logo(ax, sites.pwm(int(k)), f"{sites.layer} kernel {k} ({sites.nsites[k]} sites)")
        fig.savefig(folder / f"{sites.layer}_{int(k):0{digits}d}.png")
        letters.remove()
    columns = 4 if len(kernels) <= 16 else 8
    rows = max(1, math.ceil(len(kernels) / columns))
    fig = Figure(figsize=(columns * 2.6, rows * 1.1 + 0.5), dpi=100)
    grid = fig.subplots(rows, columns, squeeze=False,
                        gridspec_kw=dict(left=0.01, right=0.99, bottom=0.02, top=1 - 0.5 / (rows * 1.1 + 0.5),
                                         hspace=0.45, wspace=0.08))
    for ax in grid.ravel():
        ax.set_axis_off()
    for ax, k in zip(grid.ravel(), kernels):
        ax.set_axis_on()
        draw_logo(ax, sites.pwm(int(k)), f"{k} (n={sites.nsites[k]})", axis_labels=False)
    fig.suptitle(f"{sites.layer} kernels with sites ({len(kernels)}/{len(sites.nsites)})", fontsize=10)
    fig.savefig(overview_path)


# ---------------------------------------------------------------------------------------------
# Output
# ---------------------------------------------------------------------------------------------

def safe_name(track: str) -> str:
    """A track name usable as a file name (other characters -> '_')."""
    return re.sub(r"[^A-Za-z0-9._-]", "_", track) or "_"


def match_rows(sites_by_layer, database) -> list:
    """Rows of matches.tsv (MATCH_COLUMNS) for every learned motif of every layer."""
    from factornet_jax.motif_match import match_motifs

    rows = []
    for layer in LAYERS:
        sites = sites_by_layer[layer]
        kernels = sites.kernels_with_sites
        found = match_motifs([sites.pwm(int(k)) for k in kernels], database, top=TOP_MATCHES)
        for k, matches in zip(kernels, found):
            for m in matches:
                rows.append((int(k), layer, m.rank, m.motif, m.alt_name or "", f"{m.p_value:.3g}",
                             f"{m.q_value:.3g}", m.offset, m.strand, m.overlap))
    return rows


def write_outputs(folder, sites_by_layer, track_names, database):
    """Write every output file into `folder` (see the module docstring)."""
    from factornet_jax.meme import write_meme

    folder = Path(folder)
    for layer in LAYERS:
        sites = sites_by_layer[layer]
        suffix = LAYER_SUFFIX[layer]
        write_meme(folder / f"motifs{suffix}.txt", learned_motifs(sites))
        mean = sites.mean_signal()                                   # (K, w, S)
        for i, track in enumerate(track_names):
            np.save(folder / f"{safe_name(track)}_meansignal{suffix}.npy",
                    np.ascontiguousarray(mean[:, :, i]), allow_pickle=False)
        write_logos(folder / "logos", sites, folder / f"overview{suffix}.png")
    if database is not None and _have_tomtom():
        rows = [MATCH_COLUMNS] + match_rows(sites_by_layer, database)
        (folder / "matches.tsv").write_text("".join("\t".join(str(v) for v in r) + "\n" for r in rows))


def _have_tomtom():
    """True when TOMTOM (memelite) is installed; else a warning that matches.tsv is left out."""
    from factornet_jax.motif_match import INSTALL_HINT
    try:
        import memelite  # noqa: F401
    except ImportError:
        from factornet_jax.progress import warn
        warn(f"matches.tsv left out: matching kernels to known motifs needs TOMTOM; {INSTALL_HINT}")
        return False
    return True


def _load_database(motif_db):
    """(path, motifs) of the motif database: `motif_db`, else the packaged HOCOMOCO v9."""
    from factornet_jax.meme import read_meme
    from factornet_jax.reference_files import default_motif_db

    if motif_db is None:
        motif_db = default_motif_db()
    motifs = read_meme(motif_db)
    if not motifs:
        raise FactorNetError(f"--motif-db {motif_db}: no motifs in the file")
    return str(motif_db), motifs


def visualize(cell_store, model_dir, bed_path, out_dir, chrom="chr11", motif_db=None,
              overwrite=False, batch_size=DEFAULT_BATCH, stores_dir="stores"):
    """Motifs, logos, mean signal and database matches of a model's first-layer kernels.

    Parameters
    ----------
    cell_store : cell store path (or a cell folder built into `stores_dir`)
    model_dir : model directory (best.npz, else final.npz)
    bed_path : BED/narrowPeak whose intervals on `chrom` give the windows
    out_dir : output folder (outputs.check_output: a new one, or with `overwrite` (-oc) an
        earlier visualize folder, replaced atomically)
    motif_db : MEME file to match against (default: the packaged HOCOMOCO v9)
    batch_size : windows per compiled call

    Returns
    -------
    VisualizeSummary
    """
    from factornet_jax.bed import read_bed
    from factornet_jax.modeldir import load_model
    from factornet_jax.progress import Progress
    from factornet_jax.reader import open_cell_store, resolve_store

    began = time.perf_counter()
    inputs = (cell_store, model_dir, bed_path, motif_db)
    check_output(out_dir, overwrite, VISUALIZATION, inputs)   # fail before the long part
    if int(batch_size) < 1:
        raise FactorNetError(f"--batch {batch_size}: must be at least 1")
    model = load_model(model_dir)
    cfg = model.model_config
    store = open_cell_store(resolve_store(cell_store, stores_dir))
    if list(store.track_names) != list(cfg.track_names):
        raise FactorNetError(f"-i {store.path}: track names {store.track_names} differ from the "
                             f"model's {list(cfg.track_names)} ({model_dir}); use a store built "
                             "with the model's bigwig.txt tracks")
    if chrom not in store.chrom_sizes:
        from factornet_jax.bed import unknown_chrom_message
        raise FactorNetError(f"-c {chrom}: {unknown_chrom_message(chrom, store.chrom_sizes, 'cell store')}")
    db_path, database = _load_database(motif_db)
    records = read_bed(bed_path)
    starts, n_on, n_off = interval_windows(records, chrom, store.chrom_sizes[chrom], cfg.seq_len)
    if n_on == 0:
        names = ", ".join(sorted(set(records["chrom"].tolist()))[:6]) or "none"
        raise FactorNetError(f"{bed_path}: no intervals on {chrom} (the file has {names}); "
                             "choose the chromosome with -c")
    if len(starts) == 0:
        raise FactorNetError(f"{bed_path}: all {n_on} windows of {cfg.seq_len} bp centred on the "
                             f"intervals on {chrom} run off the chromosome")
    with store, Progress(f"visualize {chrom}", total=len(starts), unit="windows") as bar:
        sites = collect_sites(store, model, chrom, starts, batch_size, progress=bar)
    write_dir_atomically(out_dir, overwrite,
                         lambda folder: write_outputs(folder, sites, cfg.track_names, database),
                         VISUALIZATION, inputs + (store.path,))
    return VisualizeSummary(
        out_dir=str(out_dir), chrom=chrom, n_intervals=n_on, n_windows=int(len(starts)),
        n_off_chrom=n_off, kernels=cfg.kernels, kernel_width=cfg.kernel_width,
        nsites=tuple(int(n) for n in sites["conv"].nsites),
        nsites2=tuple(int(n) for n in sites["position_dense"].nsites),
        motif_db=db_path, seconds=time.perf_counter() - began)

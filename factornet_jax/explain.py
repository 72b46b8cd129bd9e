"""`factornet explain`: per-base contributions of sequence and signal tracks to one TF's score.

    summary = explain(ExplainConfig(cell_store="stores/CellC.zarr", model_dir="models/CTCF",
                                    bed="peaks.bed", out="explain/CTCF", method="ism"))

Regions
    Each BED interval is explained on the model's window centred on its midpoint, as
    `predict` scores it: window start ``(start + end) // 2 - seq_len // 2``. A window leaving
    its chromosome is an error naming the BED line (checked for every line before anything
    is computed). What is explained is f, the logit of the strand-averaged probability of the
    TF (`contributions.strand_average_logit`; the prediction is sigmoid(f)).
Sequence contributions (--method)
    ism        in-silico mutagenesis, exact (3 L forward passes per region); hypothetical =
               the ISM row centred on its mean over the four bases, actual = that at the
               observed base.
    ig         integrated gradients from a sequence baseline (--baseline shuffle: a
               dinucleotide shuffle of the window, seeded by --seed and the region's index;
               uniform: 0.25 per base), the cell's signal kept; --steps intervals.
    saliency   gradient x input: hypothetical = the gradient, actual = gradient at the base.
Track contributions and the split (every method)
    One integrated-gradients path moves every input from a baseline at once: the sequence
    from its baseline (as above), each track from its background level (the track's mean
    over --background-windows random windows of the store; --track-baseline zero: 0), meta
    features and GENCODE flags from 0. Its attributions are the track contributions
    (regions, L, S) and the split: ``sequence``, each track, ``meta`` and ``gencode`` (logit
    units), which sum to f(x) - f(baseline) (IG completeness; the summary reports the gap).
    Occlusion: f(x) - f(x with a track set to its background level in a sliding window of
    --occlusion-width bp), spread back to bases (`contributions.occlusion`).
Outputs (a folder, written whole: hidden ``.OUT.partial-*`` swapped in last)::

    .factornet-output.json       marks the folder as explain output (what -oc may replace)
    contributions.zarr/          zarr v3, one row per region, in BED order, written as computed:
        hypothetical (R, L, 4) float32   sequence, all four bases
        actual       (R, L, 4) float32   sequence, the observed base (0 elsewhere)
        tracks       (R, L, S) float32   integrated gradients of each track
        occlusion    (R, L, S) float32   occlusion of each track, per base
        meta (R, M), gencode (R, 6) float32  (when the model has them)
        onehot (R, L, 4) uint8, signal (R, L, S) float32   the inputs explained
        meta_input (R, M), gencode_input (R, 6) float32    (when the model has them)
        regions/{chrom_index,start,end,window_start,line}  the region table
        value, baseline_value, prediction (R,) float32
        attributes "factornet": tf, method, steps, baseline, track names, backgrounds, chroms
    summary.tsv                  one line per region: coordinates, prediction, logit, the
                                 split (logit units and shares), completeness gap
    bigwig/sequence.bw           actual sequence contribution per base   (--bigwig)
    bigwig/<track>.bw            each track's contribution per base     (--bigwig)
    regions/<rank>_<chrom>_<start>.png   the top --plots regions by prediction
    motifs/                      (--motifs) motif_discovery's patterns, matches and logos

Overlapping windows in the bigWigs (deterministic): windows are taken in (chromosome, window
start) order, later duplicates of a window dropped, and each base goes to the window whose
centre is nearest (a tie to the leftmost window); bases outside every window are left out.
Share of a part = its contribution / the sum of the absolute contributions of all parts.
"""
from __future__ import annotations

import dataclasses
import time
from pathlib import Path

import numpy as np

from factornet_jax.errors import ConfigError, FactorNetError, InputFileError
from factornet_jax.outputs import OutputKind, check_output, write_dir_atomically

EXPLANATION = OutputKind("explain", "folder of explanations")
METHODS = ("ism", "ig", "saliency")
BASELINES = ("shuffle", "uniform")
TRACK_BASELINES = ("mean", "zero")
ZARR_NAME = "contributions.zarr"
SUMMARY_NAME = "summary.tsv"
LOGO_SPAN = 60                      # bp of the strongest stretch drawn in the region plots
COMPLETENESS_WARN = 0.01            # relative IG gap above which the summary warns


@dataclasses.dataclass(frozen=True)
class ExplainConfig:
    """One explain run (the CLI flags are a view of it)."""
    cell_store: str                 # -i: cell store (or a cell folder built into stores_dir)
    model_dir: str                  # -m
    bed: str                        # -b: intervals; each is explained on its centred window
    out: str                        # -o / -oc folder
    tf: str | None = None           # -f: the TF (needed for a multi-task model)
    method: str = "ism"             # --method: ism | ig | saliency (sequence contributions)
    steps: int = 50                 # --steps: integrated-gradients intervals
    baseline: str = "shuffle"       # --baseline: sequence baseline, shuffle | uniform
    track_baseline: str = "mean"    # --track-baseline: mean (the track's background) | zero
    background_windows: int = 256   # --background-windows: random windows for a track's mean
    occlusion_width: int = 50       # --occlusion-width: bp set to background at a time
    bigwig: bool = False            # --bigwig: genome-browser tracks
    plots: int = 10                 # --plots: PNGs of the top regions by prediction
    motifs: bool = False            # --motifs: TF-MoDISco + TOMTOM (optional extra)
    motif_db: str | None = None     # --motif-db: MEME file for --motifs (default HOCOMOCO v9)
    batch_size: int | None = None   # --batch: windows per compiled call (default 64)
    chunk: int = 16                 # regions computed (and written) together
    seed: int = 0                   # --seed: shuffles and background windows
    overwrite: bool = False         # -oc
    stores_dir: str = "stores"      # --stores
    checkpoint: str = "best"        # --checkpoint


@dataclasses.dataclass(frozen=True)
class ExplainSummary:
    out_dir: str
    tf: str
    method: str
    n_regions: int
    seconds: float                  # whole run
    regions_per_second: float       # contribution pass only
    worst_gap: float                # largest relative IG completeness gap
    median_gap: float
    n_plots: int
    n_patterns: int | None          # --motifs: patterns found

    def line(self) -> str:
        motifs = "" if self.n_patterns is None else f", {self.n_patterns} MoDISco pattern(s)"
        return (f"explain: {self.n_regions} region(s) of {self.tf} by {self.method} in "
                f"{self.seconds:.1f} s ({self.regions_per_second:.2f} regions/s); IG completeness "
                f"gap median {self.median_gap:.2%}, worst {self.worst_gap:.2%}; {self.n_plots} "
                f"plot(s){motifs}; wrote {self.out_dir}")


@dataclasses.dataclass(frozen=True)
class Regions:
    """The BED intervals explained, in file order: chroms (R,) str; starts, ends,
    window_starts, lines (R,) int64 (lines: 1-based BED line numbers)."""
    chroms: np.ndarray
    starts: np.ndarray
    ends: np.ndarray
    window_starts: np.ndarray
    lines: np.ndarray

    def __len__(self):
        return len(self.starts)


def read_regions(bed_path, chrom_sizes, seq_len) -> Regions:
    """Every interval of the BED with its window; an unknown chromosome, a malformed line or
    a window leaving its chromosome is an InputFileError naming the line."""
    from factornet_jax.bed import iter_bed_blocks, scan_bed
    scan_bed(bed_path, chrom_sizes)                       # file:line errors for bad lines
    parts = []
    for block in iter_bed_blocks(bed_path):
        if not len(block):
            continue
        window = (block.starts + block.ends) // 2 - seq_len // 2
        sizes = np.fromiter((chrom_sizes[c] for c in block.chroms), np.int64, len(block))
        bad = np.flatnonzero((window < 0) | (window + seq_len > sizes))
        if bad.size:
            i = bad[0]
            raise InputFileError(bed_path, f"the {seq_len}-bp window centred on "
                                           f"{block.chroms[i]}:{block.starts[i]}-{block.ends[i]} "
                                           f"({window[i]}-{window[i] + seq_len}) leaves the "
                                           f"chromosome (size {sizes[i]}); drop or move the interval",
                                 int(block.lines[i]))
        parts.append((block.chroms, block.starts, block.ends, window, block.lines))
    return Regions(*(np.concatenate([p[k] for p in parts]) for k in range(5)))


def track_background(store, seq_len, n_windows=256, seed=0) -> np.ndarray:
    """(S,) float32 mean of each track over `n_windows` random windows of the store (a
    window's chromosome drawn in proportion to its usable length), a track's background."""
    rng = np.random.default_rng([seed, 1])
    names = [c for c, size in store.chrom_sizes.items() if size >= seq_len]
    if not names:
        raise FactorNetError(f"-i {store.path}: no chromosome holds a {seq_len}-bp window")
    room = np.array([store.chrom_sizes[c] - seq_len + 1 for c in names], np.float64)
    chroms = np.asarray(names)[rng.choice(len(names), n_windows, p=room / room.sum())]
    starts = np.array([rng.integers(0, store.chrom_sizes[c] - seq_len + 1) for c in chroms], np.int64)
    _, signal = store.fetch_batch(chroms, starts, seq_len)
    return signal.mean(axis=(0, 1)).astype(np.float32)


def check_config(config: ExplainConfig):
    """Refuse bad flag values (ConfigError naming the flag)."""
    if config.method not in METHODS:
        raise ConfigError(f"--method {config.method}: choose one of {', '.join(METHODS)}")
    if config.baseline not in BASELINES:
        raise ConfigError(f"--baseline {config.baseline}: choose one of {', '.join(BASELINES)}")
    if config.track_baseline not in TRACK_BASELINES:
        raise ConfigError(f"--track-baseline {config.track_baseline}: choose one of "
                          f"{', '.join(TRACK_BASELINES)}")
    for flag, value, low in (("--steps", config.steps, 1), ("--occlusion-width", config.occlusion_width, 1),
                             ("--plots", config.plots, 0), ("--background-windows", config.background_windows, 1)):
        if int(value) < low:
            raise ConfigError(f"{flag} {value}: must be at least {low}")
    if config.batch_size is not None and int(config.batch_size) < 1:
        raise ConfigError(f"--batch {config.batch_size}: must be at least 1")
    if config.motif_db is not None and not config.motifs:
        raise ConfigError("--motif-db is used by --motifs only; add --motifs")


# ------------------------------------------------------------------ one chunk of regions

def chunk_inputs(store, model, regions, rows):
    """(onehot (n, L, 4) uint8, signal (n, L, S), meta (n, M) | None, gencode (n, 6) | None)
    of the regions `rows`."""
    from factornet_jax.labels import BIN_SIZE, gencode_flags
    cfg = model.model_config
    chroms, windows = regions.chroms[rows], regions.window_starts[rows]
    onehot, signal = store.fetch_batch(chroms, windows, cfg.seq_len)
    meta = np.tile(store.meta_values, (len(rows), 1)).astype(np.float32) if cfg.num_meta else None
    gencode = None
    if cfg.use_gencode:
        mids = (regions.starts[rows] + regions.ends[rows]) // 2
        gencode = gencode_flags(store.genome.annotations(), chroms, mids - BIN_SIZE // 2)
    return onehot, signal, meta, gencode


def explain_chunk(model, inputs, rows, task, config: ExplainConfig, background) -> dict:
    """Every contribution of one chunk of regions (`rows`: their indices, for the seeds).

    Returns a dict of arrays: hypothetical, actual (n, L, 4); tracks, occlusion (n, L, S);
    meta (n, M) | None; gencode (n, 6) | None; value, baseline_value, split_sequence (n,)
    and split_tracks (n, S).
    """
    from factornet_jax import contributions as C
    onehot, signal, meta, gencode = inputs
    kw = dict(meta=meta, gencode=gencode, task=task, batch_size=config.batch_size)
    if config.baseline == "uniform":
        seq_base = C.sequence_baseline(onehot, "uniform")
    else:
        seq_base = np.stack([C.dinucleotide_shuffle(w, np.random.default_rng([config.seed, int(r)]))
                             for w, r in zip(onehot, rows)]).astype(np.float32)
    if config.method == "ism":
        hyp, act = C.ism_hypothetical(C.ism(model, onehot, signal, **kw), onehot)
    elif config.method == "ig":
        seq_ig = C.integrated_gradients(model, onehot, signal, baseline={"onehot": seq_base},
                                        steps=config.steps, **kw)
        hyp, act = C.hypothetical_from_gradients(seq_ig["mean_gradient"]["onehot"], onehot, seq_base)
    else:
        grads = C.gradients(model, onehot, signal, **kw)
        hyp, act = C.hypothetical_from_gradients(grads["onehot"], onehot)
    full = {"onehot": seq_base, "signal": np.broadcast_to(background, signal.shape)}
    if meta is not None:
        full["meta"] = np.zeros_like(meta)
    if gencode is not None:
        full["gencode"] = np.zeros_like(gencode)
    joint = C.integrated_gradients(model, onehot, signal, baseline=full, steps=config.steps, **kw)
    occ = C.occlusion(model, onehot, signal, background, width=config.occlusion_width, **kw)
    return {"hypothetical": hyp, "actual": act, "tracks": joint["signal"],
            "occlusion": occ["per_base"], "meta": joint["meta"], "gencode": joint["gencode"],
            "value": joint["value"], "baseline_value": joint["baseline_value"],
            "split_sequence": joint["onehot"].sum(axis=(1, 2)),
            "split_tracks": joint["signal"].sum(axis=1)}


def summary_header(track_names, has_meta, has_gencode):
    parts = ["sequence"] + [f"track:{t}" for t in track_names] + (["meta"] if has_meta else []) \
        + (["gencode"] if has_gencode else [])
    columns = ["region", "chrom", "start", "end", "window_start", "prediction", "logit",
               "baseline_logit"] + [f"contrib:{p}" for p in parts] + [f"share:{p}" for p in parts] \
        + ["ig_sum", "completeness_gap", "sequence_max_bp"]
    return columns


def summary_lines(regions, rows, result) -> tuple:
    """(TSV lines, relative completeness gaps (n,)) of one chunk."""
    parts = [result["split_sequence"][:, None], result["split_tracks"]]
    if result["meta"] is not None:
        parts.append(result["meta"].sum(axis=1)[:, None])
    if result["gencode"] is not None:
        parts.append(result["gencode"].sum(axis=1)[:, None])
    contrib = np.concatenate(parts, axis=1)                              # (n, P)
    shares = contrib / np.maximum(np.abs(contrib).sum(axis=1, keepdims=True), 1e-12)
    total = contrib.sum(axis=1)
    diff = result["value"] - result["baseline_value"]
    gap = np.abs(total - diff) / np.maximum(np.abs(diff), 1e-3)
    strongest = np.abs(result["actual"].sum(axis=-1)).argmax(axis=1)
    lines = []
    for k, r in enumerate(rows):
        fields = [str(int(r)), str(regions.chroms[r]), str(int(regions.starts[r])),
                  str(int(regions.ends[r])), str(int(regions.window_starts[r])),
                  f"{1.0 / (1.0 + np.exp(-float(result['value'][k]))):.6g}",
                  f"{result['value'][k]:.6g}", f"{result['baseline_value'][k]:.6g}"]
        fields += [f"{v:.6g}" for v in contrib[k]] + [f"{v:.4f}" for v in shares[k]]
        fields += [f"{total[k]:.6g}", f"{gap[k]:.4g}",
                   str(int(regions.window_starts[r] + strongest[k]))]
        lines.append("\t".join(fields) + "\n")
    return lines, gap


# ------------------------------------------------------------------ output files

def _create_store(path, n, cfg, has_meta, has_gencode, chunk):
    import zarr
    group = zarr.open_group(str(path), mode="w-", zarr_format=3)
    seq_len, s = cfg.seq_len, cfg.num_tracks
    rows = max(1, min(chunk, n))
    arrays = {"hypothetical": ((n, seq_len, 4), "float32"), "actual": ((n, seq_len, 4), "float32"),
              "tracks": ((n, seq_len, s), "float32"), "occlusion": ((n, seq_len, s), "float32"),
              "onehot": ((n, seq_len, 4), "uint8"), "signal": ((n, seq_len, s), "float32"),
              "value": ((n,), "float32"), "baseline_value": ((n,), "float32"),
              "prediction": ((n,), "float32")}
    if has_meta:
        arrays["meta"] = ((n, cfg.num_meta), "float32")
        arrays["meta_input"] = ((n, cfg.num_meta), "float32")
    if has_gencode:
        arrays["gencode"] = ((n, 6), "float32")
        arrays["gencode_input"] = ((n, 6), "float32")
    out = {}
    for name, (shape, dtype) in arrays.items():
        out[name] = group.create_array(name, shape=shape, dtype=dtype,
                                       chunks=(rows,) + tuple(shape[1:]), fill_value=0)
    return group, out


def _write_region_table(group, regions, chroms):
    index = {c: i for i, c in enumerate(chroms)}
    table = {"chrom_index": np.array([index[c] for c in regions.chroms], np.int32),
             "start": regions.starts, "end": regions.ends, "window_start": regions.window_starts,
             "line": regions.lines}
    sub = group.create_group("regions")
    for name, values in table.items():
        arr = sub.create_array(name, shape=values.shape, dtype=values.dtype,
                               chunks=(max(1, min(len(values), 65536)),))
        arr[:] = values


def bigwig_spans(chroms, window_starts, seq_len, chrom_order) -> tuple:
    """Which bases each window writes to a bigWig (the rule in the module docstring).

    Returns
    -------
    order : (K,) int64 region indices, in writing order (later duplicate windows left out)
    lo, hi : (K,) int64 absolute [lo, hi) written by each
    """
    rank = {c: i for i, c in enumerate(chrom_order)}
    key = np.array([rank[c] for c in chroms], np.int64)
    order = np.lexsort((np.arange(len(chroms)), window_starts, key))
    k, w = key[order], window_starts[order]
    first = np.ones(len(order), bool)
    first[1:] = (k[1:] != k[:-1]) | (w[1:] != w[:-1])
    order, k, w = order[first], k[first], w[first]
    centre = w + seq_len // 2
    same_next = np.zeros(len(order), bool)
    same_next[:-1] = k[1:] == k[:-1]
    boundary = np.where(same_next, (centre + np.roll(centre, -1)) // 2 + 1, np.iinfo(np.int64).max)
    previous = np.concatenate([[np.iinfo(np.int64).min], boundary[:-1]])
    previous[np.concatenate([[True], ~same_next[:-1]])] = np.iinfo(np.int64).min
    lo = np.maximum(w, previous)
    hi = np.minimum(w + seq_len, boundary)
    return order, lo, hi


def write_bigwigs(folder, arrays, regions, track_names, chrom_sizes):
    """bigwig/sequence.bw and bigwig/<track>.bw from the written arrays (read back region by
    region in genome order, so memory stays one window)."""
    import pyBigWig

    from factornet_jax.visualize import safe_name
    seq_len = arrays["actual"].shape[1]
    folder = Path(folder)
    folder.mkdir()
    order, lo, hi = bigwig_spans(regions.chroms, regions.window_starts, seq_len, list(chrom_sizes))
    files = {"sequence": str(folder / "sequence.bw")}
    files.update({t: str(folder / f"{safe_name(t)}.bw") for t in track_names})
    handles = {}
    try:
        for name, path in files.items():
            handles[name] = pyBigWig.open(path, "w")
            handles[name].addHeader([(c, int(s)) for c, s in chrom_sizes.items()])
        for r, a, b in zip(order.tolist(), lo.tolist(), hi.tolist()):
            if b <= a:
                continue
            w = int(regions.window_starts[r])
            chrom = str(regions.chroms[r])
            values = {"sequence": np.asarray(arrays["actual"][r]).sum(axis=-1)}
            tracks = np.asarray(arrays["tracks"][r])
            values.update({t: tracks[:, i] for i, t in enumerate(track_names)})
            for name, v in values.items():
                handles[name].addEntries(chrom, a, values=v[a - w:b - w].astype(np.float64).tolist(),
                                         span=1, step=1)
    finally:
        for handle in handles.values():
            handle.close()


def strongest_span(actual_per_base, span=LOGO_SPAN, core=20) -> int:
    """Start of the `span`-bp stretch centred on the `core`-bp stretch with the largest sum of
    |actual contribution| (clipped to the window)."""
    score = np.abs(np.asarray(actual_per_base, np.float64))
    if len(score) <= span:
        return 0
    core = min(core, span)
    centre = int(np.argmax(np.convolve(score, np.ones(core), mode="valid"))) + core // 2
    return int(np.clip(centre - span // 2, 0, len(score) - span))


def draw_contribution_logo(ax, contributions):
    """Letters of (w, 4) signed contributions: each base's letter with its height, stacked up
    from 0 for positive values and down for negative ones."""
    from matplotlib.collections import PathCollection
    from matplotlib.transforms import Affine2D

    from factornet_jax.visualize import LOGO_COLORS, _letter_path
    c = np.asarray(contributions, np.float64)
    paths, colors = [], []
    for col in range(c.shape[0]):
        up, down = 0.0, 0.0
        for b in np.argsort(np.abs(c[col])):
            h = c[col, b]
            if abs(h) < 1e-9:
                continue
            bottom = up if h > 0 else down - abs(h)
            place = Affine2D().scale(0.9, abs(h)).translate(col + 0.05, bottom)
            paths.append(place.transform_path(_letter_path("ACGT"[b])))
            colors.append(LOGO_COLORS["ACGT"[b]])
            if h > 0:
                up += h
            else:
                down -= abs(h)
    ax.add_collection(PathCollection(paths, facecolors=colors, linewidths=0,
                                     transform=ax.transData), autolim=False)
    pos = np.clip(c, 0, None).sum(axis=1).max(initial=0.0)
    neg = np.clip(c, None, 0).sum(axis=1).min(initial=0.0)
    pad = 0.05 * max(pos - neg, 1e-6)
    ax.set_xlim(0, c.shape[0])
    ax.set_ylim(neg - pad, pos + pad)
    ax.axhline(0, color="0.6", linewidth=0.5)


def plot_region(path, title, actual, signal, tracks, track_names, window_start):
    """A region PNG: the contribution logo over its strongest LOGO_SPAN bp, each track's signal
    and its contribution over the same bases underneath."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    start = strongest_span(actual.sum(axis=-1))
    stop = min(start + LOGO_SPAN, actual.shape[0])
    x = np.arange(start, stop) + window_start
    fig, axes = plt.subplots(3, 1, figsize=(10, 6), sharex=False,
                             gridspec_kw={"height_ratios": [2, 1, 1]})
    draw_contribution_logo(axes[0], actual[start:stop])
    axes[0].set_ylabel("sequence\n(logit)")
    axes[0].set_xticks([])
    axes[0].set_title(title, fontsize=9)
    for i, name in enumerate(track_names):
        axes[1].plot(x, signal[start:stop, i], label=name, linewidth=1)
        axes[2].plot(x, tracks[start:stop, i], label=name, linewidth=1)
    axes[1].set_ylabel("signal")
    axes[2].set_ylabel("track\ncontribution")
    axes[2].axhline(0, color="0.6", linewidth=0.5)
    axes[2].set_xlabel("position")
    if track_names:
        axes[1].legend(fontsize=7, loc="upper right")
    for ax in axes[1:]:
        ax.set_xlim(x[0] - 0.5, x[-1] + 0.5)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


# ------------------------------------------------------------------ the run

def explain(config: ExplainConfig, progress=None) -> ExplainSummary:
    """Explain every BED interval of `config.bed` (see the module docstring); returns a summary.

    Everything is checked before the folder is started (flags, model/store fit, TF, every BED
    line and window, --motifs' optional packages and database); the folder is built hidden and
    swapped in last, so a failure leaves nothing.
    """
    from factornet_jax.modeldir import load_model
    from factornet_jax.progress import Progress, warn
    from factornet_jax.reader import open_cell_store, resolve_store

    began = time.perf_counter()
    check_config(config)
    inputs = tuple(p for p in (config.cell_store, config.model_dir, config.bed, config.motif_db)
                   if p is not None)
    check_output(config.out, config.overwrite, EXPLANATION, inputs)
    database = None
    if config.motifs:
        from factornet_jax import motif_discovery
        motif_discovery.require_packages()
        database = motif_discovery.load_database(config.motif_db)
    model = load_model(config.model_dir, which=config.checkpoint)
    store = open_cell_store(resolve_store(config.cell_store, config.stores_dir))
    task = model.check_store(store, config.tf)
    from factornet_jax.drift import normalize_for_model
    normalize_for_model(model, store)   # the read-time normalisation the model was trained with
    tf = model.tfs[task]
    cfg = model.model_config
    regions = read_regions(config.bed, store.chrom_sizes, cfg.seq_len)
    n = len(regions)
    if config.track_baseline == "zero":
        background = np.zeros(cfg.num_tracks, np.float32)
    else:
        background = track_background(store, cfg.seq_len, config.background_windows, config.seed)
    has_meta, has_gencode = bool(cfg.num_meta), bool(cfg.use_gencode)
    chroms = list(store.chrom_sizes)
    found = {}

    def write_contents(folder):
        folder = Path(folder)
        group, arrays = _create_store(folder / ZARR_NAME, n, cfg, has_meta, has_gencode, config.chunk)
        group.attrs["factornet"] = {
            "format": "factornet-jax/explain", "version": 1, "tf": tf, "task": task,
            "method": config.method, "steps": config.steps, "baseline": config.baseline,
            "track_baseline": config.track_baseline, "track_background": background.tolist(),
            "occlusion_width": config.occlusion_width, "track_names": list(cfg.track_names),
            "meta_names": list(model.meta_names), "chroms": chroms, "seq_len": cfg.seq_len,
            "model_dir": str(Path(config.model_dir).resolve()), "store": store.path,
            "explained": "logit of the strand-averaged probability"}
        _write_region_table(group, regions, chroms)
        gaps = np.zeros(n, np.float64)
        t0 = time.perf_counter()
        with open(folder / SUMMARY_NAME, "w", encoding="utf-8") as tsv, \
                Progress(f"explain {tf} ({config.method})", total=n, unit="regions",
                         enabled=progress) as bar:
            tsv.write("\t".join(summary_header(cfg.track_names, has_meta, has_gencode)) + "\n")
            for lo in range(0, n, config.chunk):
                rows = np.arange(lo, min(lo + config.chunk, n))
                chunk = chunk_inputs(store, model, regions, rows)
                result = explain_chunk(model, chunk, rows, task, config, background)
                sl = slice(rows[0], rows[-1] + 1)
                for name in ("hypothetical", "actual", "tracks", "occlusion", "value",
                             "baseline_value"):
                    arrays[name][sl] = result[name]
                arrays["prediction"][sl] = 1.0 / (1.0 + np.exp(-result["value"]))
                arrays["onehot"][sl] = chunk[0]
                arrays["signal"][sl] = chunk[1]
                if has_meta:
                    arrays["meta"][sl] = result["meta"]
                    arrays["meta_input"][sl] = chunk[2]
                if has_gencode:
                    arrays["gencode"][sl] = result["gencode"]
                    arrays["gencode_input"][sl] = chunk[3]
                lines, gaps[sl] = summary_lines(regions, rows, result)
                tsv.writelines(lines)
                bar.update(len(rows))
        found["rate"] = n / max(time.perf_counter() - t0, 1e-9)
        found["gaps"] = gaps
        if np.max(gaps) > COMPLETENESS_WARN:
            worst = int(np.argmax(gaps))
            warn(f"integrated gradients miss completeness by {gaps[worst]:.1%} on region {worst} "
                 f"({regions.chroms[worst]}:{regions.starts[worst]}); raise --steps (now "
                 f"{config.steps}) for tighter figures")
        if config.bigwig:
            write_bigwigs(folder / "bigwig", arrays, regions, cfg.track_names, store.chrom_sizes)
        prediction = np.asarray(arrays["prediction"][:])
        top = np.argsort(-prediction, kind="stable")[: config.plots]
        if len(top):
            (folder / "regions").mkdir()
        for rank, r in enumerate(top.tolist()):
            title = (f"{tf} {regions.chroms[r]}:{regions.starts[r]}-{regions.ends[r]}  "
                     f"prediction {prediction[r]:.3f}  ({config.method})")
            plot_region(folder / "regions" / f"{rank + 1:03d}_{regions.chroms[r]}_{regions.starts[r]}.png",
                        title, np.asarray(arrays["actual"][r]), np.asarray(arrays["signal"][r]),
                        np.asarray(arrays["tracks"][r]), list(cfg.track_names),
                        int(regions.window_starts[r]))
        found["plots"] = len(top)
        if config.motifs:
            from factornet_jax import motif_discovery
            found["patterns"] = motif_discovery.discover_and_match(
                np.asarray(arrays["hypothetical"][:]), np.asarray(arrays["actual"][:]),
                np.asarray(arrays["onehot"][:]), database, folder / "motifs", seed=config.seed)

    with store:   # closes its open shard files and decode threads at the end
        write_dir_atomically(config.out, config.overwrite, write_contents, EXPLANATION,
                             inputs + (store.path,))
    gaps = found["gaps"]
    return ExplainSummary(str(config.out), tf, config.method, n, time.perf_counter() - began,
                          found["rate"], float(gaps.max()), float(np.median(gaps)), found["plots"],
                          found.get("patterns"))

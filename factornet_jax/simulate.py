"""A simulated FactorNet dataset: genome, annotations, and per-cell DNase, mappability and peaks.

`simulate(out_dir, SimulationConfig(...))` writes::

    out_dir/
      genome.fa, genome.fa.fai, genome.chrom.sizes
      blacklist.bed.gz           a few excluded regions (with artefact signal, like the real one)
      ladder.bed.gz              200 bp bins at 50 bp steps over the test chromosomes
      truth.tsv.gz               the simulator's binding probability per candidate site
      motifs.meme                the TF and co-factor motifs that were planted
      simulation.json            config, motif source and counts
      .factornet-output.json     marks the folder as simulate output (what -oc may replace)
      annotations/{cpg,cds,intron,promoter,utr5,utr3}.bed.gz
      cells/<cell>/              one FactorNet input folder per cell line:
        bigwig.txt chip.txt meta.txt Unique35.bigWig <cell>.1x.bw
        ChIPseq.<cell>.<TF>.conservative.train.narrowPeak.gz  (.relaxed.narrowPeak.gz)

How binding is made (so that it has to be learned from sequence *and* accessibility):

- The genome is random sequence with regional GC (~40 %), CpG depletion, CpG islands
  (mostly at promoters), soft-masked repeat copies (young ones unmappable), N gaps.
- Sites are laid out at least `feature_spacing` apart: TF motif sites (instances drawn
  from the real PWM with varying sharpness, a share with a co-factor motif nearby),
  co-factor-only sites, motif-less open regions, and gene promoters.
- Each site is open in a cell either in every cell (constitutive) or cell by cell.
- An open motif site is bound with probability sigmoid(base + motif * rank + cofactor),
  rank = the instance's PWM score rank among the TF's sites: from ~5 % (weak motif, no
  co-factor) to ~95 %, ~40 % on average; closed sites are never bound. About
  `motifless_fraction` of bound sites are open sites without the motif (co-factor-only
  sites preferred).
- DNase: read-start noise over a regional background, a peak at every open site, higher
  where bound, with a footprint (dip over the motif, raised shoulders) at bound motifs.
- ChIP: bound sites give peaks; most are conservative; relaxed = all bound sites (wider)
  plus noise peaks at unbound open sites, at random and in blacklisted regions.

Everything derives from `config.seed` through per-stage generators, and gzip files are
written with mtime 0, so one seed gives byte-identical files. The truth table gives the
binding probability of every candidate site (TF motif sites, and motif-less sites that
some cell could bind); the peaks are one draw from it.
"""
from __future__ import annotations

import dataclasses
import gzip
import json
import shutil
from pathlib import Path
from typing import Mapping

import numpy as np

from .errors import ConfigError, FactorNetError
from .intervals import merge_intervals
from .labels import GENCODE_FEATURES
from .meme import Motif, find_motif, log_odds, read_meme_file, write_meme
from .outputs import SIMULATION, check_output, write_dir_atomically
from .reference_files import default_motif_db

# hg19 chromosome sizes (UCSC); the simulated genome keeps their proportions.
HG19_SIZES = {
    "chr1": 249250621, "chr2": 243199373, "chr3": 198022430, "chr4": 191154276,
    "chr5": 180915260, "chr6": 171115067, "chr7": 159138663, "chr8": 146364022,
    "chr9": 141213431, "chr10": 135534747, "chr11": 135006516, "chr12": 133851895,
    "chr13": 115169878, "chr14": 107349540, "chr15": 102531392, "chr16": 90354753,
    "chr17": 81195210, "chr18": 78077248, "chr19": 59128983, "chr20": 63025520,
    "chr21": 48129895, "chr22": 51304566, "chrX": 155270560,
}
MIN_CHROM_SIZE = 20_000
KIND_NAMES = ("motif", "ocr", "promoter", "cofactor")  # site kinds, in truth.tsv
MOTIF, OCR, PROMOTER, COFACTOR = range(4)
MAPPABILITY_TRACK = "Unique35"
DNASE_TRACK = "DGF"
META_NAMES = tuple(f"GEPC{i}" for i in range(1, 9))
LADDER_BIN, LADDER_STEP = 200, 50
KERNEL_HALF = 400  # DNase peak drawn over centre +- this many bp


@dataclasses.dataclass(frozen=True)
class SimulationConfig:
    """Everything that shapes a simulated dataset; one seed drives all randomness."""

    seed: int = 0  # the one seed: same seed and config -> byte-identical files
    genome_mb: float = 20.0  # total genome size in Mb (chromosomes keep hg19 proportions)
    chroms: tuple[str, ...] = ("chr1", "chr2", "chr3", "chr4", "chr5", "chr8", "chr11", "chr21")
    test_chroms: tuple[str, ...] = ("chr1", "chr8", "chr21")  # ladder.bed.gz covers these
    cells: tuple[str, ...] = ("CellA", "CellB", "CellC")  # one input folder each
    tfs: tuple[str, ...] = ("CTCF", "GABPA")  # motif names looked up with meme.find_motif
    # co-factor motif per TF (a nearby co-factor motif raises binding); others get SP1 (or YY1)
    cofactors: tuple[tuple[str, str], ...] = (("CTCF", "ZNF143"), ("GABPA", "SP1"))
    motifs_path: str | None = None  # MEME file; None: the packaged HOCOMOCO v9
    # --- genome ---
    gc_mean: float = 0.40  # mean GC fraction
    gc_sd: float = 0.035  # sd of the regional GC (100 kb knots, linearly interpolated)
    cpg_depletion: float = 0.75  # share of CpGs mutated to TpG/CpA outside islands
    repeat_fraction: float = 0.40  # share of the genome in (soft-masked) repeat copies
    genes_per_mb: float = 8.0  # gene models (TSS, exons, introns, UTRs)
    island_promoter_share: float = 0.6  # promoters with a CpG island
    orphan_islands_per_mb: float = 1.5  # CpG islands away from genes
    # --- sites and accessibility ---
    tf_sites_per_mb: float = 300.0  # motif sites per TF (candidate binding sites)
    ocr_per_mb: float = 150.0  # open-chromatin regions without a motif
    cofactor_sites_per_mb: float = 60.0  # co-factor motif without the TF motif
    feature_spacing: int = 400  # minimum distance between site centres
    cofactor_share: float = 0.35  # TF motif sites with a co-factor motif 20-80 bp away
    motif_sharpness: tuple[float, float] = (0.5, 1.6)  # PWM exponent range for instances
    # (constitutive probability, per-cell probability, DNase peak height) per site kind
    open_motif: tuple[float, float, float] = (0.35, 0.30, 8.0)
    open_ocr: tuple[float, float, float] = (0.25, 0.35, 7.0)
    open_promoter: tuple[float, float, float] = (0.65, 0.50, 12.0)
    open_cofactor: tuple[float, float, float] = (0.25, 0.35, 6.0)
    # --- binding ---
    bind_base: float = -3.0  # logit of binding at the weakest motif, no co-factor
    bind_motif: float = 4.0  # logit added from weakest to strongest motif (score rank)
    bind_cofactor: float = 1.8  # logit added by a nearby co-factor motif
    motifless_fraction: float = 0.10  # share of bound sites without the TF motif
    conservative_share: float = 0.85  # about this share of bound sites are conservative peaks
    relaxed_noise: float = 0.15  # unbound open candidate sites given a relaxed peak
    random_peaks_per_mb: float = 5.0  # relaxed peaks at random places
    # --- DNase ---
    dnase_background: float = 0.4  # mean background coverage before 1x normalisation
    dnase_read_len: int = 15  # reads (both strands) spread cuts into coverage
    bound_boost: float = 1.6  # DNase peak height factor at bound sites
    footprint_depth: float = 0.15  # cut rate factor over a bound motif (+-4 bp)
    footprint_shoulder: float = 1.6  # cut rate factor 15 bp either side of the footprint


@dataclasses.dataclass(frozen=True)
class CellFiles:
    """Paths of one cell line's input folder."""

    folder: Path
    bigwig_txt: Path
    chip_txt: Path
    meta_txt: Path
    bigwigs: Mapping[str, Path]  # track name -> bigWig
    conservative: Mapping[str, Path]  # TF -> conservative narrowPeak.gz
    relaxed: Mapping[str, Path]  # TF -> relaxed narrowPeak.gz


@dataclasses.dataclass(frozen=True)
class SimulationResult:
    """Paths of everything `simulate` wrote, and the chromosome sizes."""

    out_dir: Path
    fasta: Path
    fai: Path
    chrom_sizes_path: Path
    chrom_sizes: Mapping[str, int]
    blacklist: Path
    ladder: Path
    truth: Path
    motifs: Path
    summary: Path
    annotations: Mapping[str, Path]  # name in GENCODE_FEATURES -> BED.gz
    cells: Mapping[str, CellFiles]
    counts: Mapping[str, int]  # headline counts (peaks, sites) for a one-line report


# ----------------------------------------------------------------------------- helpers


def _rng(seed: int, *stage: int) -> np.random.Generator:
    """Independent generator per stage (and chromosome / cell), all from the one seed."""
    return np.random.default_rng([seed, *stage])


def chrom_sizes_for(config: SimulationConfig) -> dict[str, int]:
    """Chromosome sizes: hg19 proportions scaled to `genome_mb` in total, FASTA order."""
    unknown = [c for c in config.chroms if c not in HG19_SIZES]
    if unknown:
        raise ConfigError(f"unknown chromosome {unknown[0]!r}: use hg19 names chr1..chr22, chrX")
    total = sum(HG19_SIZES[c] for c in config.chroms)
    scale = config.genome_mb * 1e6 / total
    return {c: max(MIN_CHROM_SIZE, int(round(HG19_SIZES[c] * scale))) for c in config.chroms}


def _check_config(config: SimulationConfig) -> None:
    if not config.genome_mb > 0 or config.genome_mb > 500:
        raise ConfigError(f"--genome-mb {config.genome_mb}: give a size in Mb between 0 and 500")
    for flag, names in (("--cells", config.cells), ("--tf", config.tfs)):
        if not names:
            raise ConfigError(f"{flag}: give at least one name")
        if len(set(names)) != len(names):
            raise ConfigError(f"{flag}: names must be unique, got {' '.join(names)}")
        bad = [n for n in names if not n or any(ch in n for ch in " \t/\\.")]
        if bad:
            raise ConfigError(f"{flag}: {bad[0]!r} is not a usable name (no spaces, dots or slashes)")
    missing = [c for c in config.test_chroms if c not in config.chroms]
    if missing:
        raise ConfigError(f"test chromosome {missing[0]} is not among the simulated chromosomes")
    if len(set(config.chroms)) != len(config.chroms):
        raise ConfigError("chromosome names must be unique")


def _motifs_for(config: SimulationConfig) -> tuple[Path, list[Motif], list[Motif]]:
    """(source file, TF motifs in config.tfs order, co-factor motif per TF)."""
    path = Path(config.motifs_path) if config.motifs_path else default_motif_db()
    motifs = read_meme_file(path).motifs
    tf_motifs = []
    for tf in config.tfs:
        try:
            tf_motifs.append(find_motif(motifs, tf))
        except FactorNetError:
            raise ConfigError(f"--tf {tf}: no motif of that name in {path}; "
                              "give a TF named in the MEME file (--motifs)") from None
    pairs = dict(config.cofactors)
    cof_motifs = []
    for tf in config.tfs:
        name = pairs.get(tf) or ("YY1" if tf.upper() == "SP1" else "SP1")
        try:
            cof_motifs.append(find_motif(motifs, name))
        except FactorNetError:  # the file lacks the co-factor: take it from HOCOMOCO v9
            cof_motifs.append(find_motif(read_meme_file(default_motif_db()).motifs, name))
    return path, tf_motifs, cof_motifs


def _gzip_bytes(text: str) -> bytes:
    return gzip.compress(text.encode(), compresslevel=6, mtime=0)


def _write_gz(path: Path, lines) -> None:
    text = "".join(lines)
    path.write_bytes(_gzip_bytes(text))


def _bed_lines(chrom: str, starts, ends) -> list[str]:
    return [f"{chrom}\t{s}\t{e}\n" for s, e in zip(starts.tolist(), ends.tolist())]


def _sample_positions(rng, allowed: np.ndarray, n: int) -> np.ndarray:
    """Up to n sorted distinct positions drawn uniformly where `allowed` is True."""
    if n <= 0 or not allowed.any():
        return np.zeros(0, dtype=np.int64)
    frac = allowed.mean()
    draw = rng.integers(0, len(allowed), int(n / max(frac, 1e-3) * 1.3) + 20)
    draw = draw[allowed[draw]][:n]
    return np.unique(draw).astype(np.int64)


def _space_out(positions: np.ndarray, spacing: int) -> np.ndarray:
    """Sorted positions with neighbours closer than `spacing` dropped (greedy, left to right)."""
    if len(positions) == 0:
        return positions
    keep = [int(positions[0])]
    # vectorised first pass removes most clashes; the loop is over the survivors only
    positions = positions[np.r_[True, np.diff(positions) >= spacing]]
    for p in positions[1:].tolist():
        if p - keep[-1] >= spacing:
            keep.append(p)
    return np.asarray(keep, dtype=np.int64)


def _mask_from(size: int, starts, ends) -> np.ndarray:
    """Boolean mask (size,) True inside the intervals."""
    delta = np.zeros(size + 1, dtype=np.int32)
    np.add.at(delta, np.clip(starts, 0, size), 1)
    np.add.at(delta, np.clip(ends, 0, size), -1)
    return np.cumsum(delta[:-1]) > 0


def _interp_knots(rng, size: int, step: int, mean: float, sd: float, lo: float, hi: float, log=False):
    """Smooth regional profile (size,) float32: random knots every `step` bp, interpolated."""
    n_knots = size // step + 2
    knots = rng.normal(mean, sd, n_knots)
    if log:
        knots = np.exp(knots)
    knots = np.clip(knots, lo, hi)
    return np.interp(np.arange(size, dtype=np.float64), np.arange(n_knots) * step, knots).astype(np.float32)


# ----------------------------------------------------------------------------- layout


@dataclasses.dataclass
class _Chrom:
    """Layout of one chromosome (internal, filled in stages)."""

    index: int
    name: str
    size: int
    gaps: tuple[np.ndarray, np.ndarray]  # N gaps, merged
    blacklist: tuple[np.ndarray, np.ndarray]
    allowed: np.ndarray  # (size,) bool: sites may be centred here
    genes: dict  # annotation name -> (starts, ends) unmerged; "tss", "strand" arrays
    islands: tuple[np.ndarray, np.ndarray]


def _layout_chrom(config: SimulationConfig, index: int, name: str, size: int) -> _Chrom:
    """Gaps, blacklist, gene models and CpG islands of one chromosome."""
    rng = _rng(config.seed, 1, index)
    telomere = min(10_000, size // 100)
    gap_starts = [0, size - telomere]
    gap_ends = [telomere, size]
    cen_len = max(500, int(size * rng.uniform(0.005, 0.015)))
    cen_start = int(size * rng.uniform(0.35, 0.5))
    gap_starts.append(cen_start)
    gap_ends.append(cen_start + cen_len)
    for _ in range(1 + rng.poisson(size / 2e6)):
        length = int(rng.integers(100, 3000))
        start = int(rng.integers(telomere + 2000, max(telomere + 2001, size - telomere - 2000 - length)))
        gap_starts.append(start)
        gap_ends.append(start + length)
    gaps = merge_intervals(np.asarray(gap_starts, np.int64), np.asarray(gap_ends, np.int64))
    gap_mask = _mask_from(size, *gaps)

    # blacklist: one region beside the centromere gap, one or more elsewhere
    bl_starts = [cen_start + cen_len]
    bl_ends = [cen_start + cen_len + int(rng.integers(1000, 4000))]
    free = ~gap_mask
    free[:telomere + 5000] = False
    free[size - telomere - 5000:] = False
    for pos in _sample_positions(rng, free, 1 + rng.poisson(size / 5e6)).tolist():
        bl_starts.append(pos)
        bl_ends.append(min(size, pos + int(rng.integers(500, 5000))))
    blacklist = merge_intervals(np.asarray(bl_starts, np.int64), np.minimum(np.asarray(bl_ends, np.int64), size))

    margin = 1000
    blocked = _mask_from(size, np.r_[gaps[0], blacklist[0]] - margin, np.r_[gaps[1], blacklist[1]] + margin)
    blocked[:2000] = True
    blocked[size - 2000:] = True
    allowed = ~blocked

    genes = _gene_models(config, rng, size, allowed)
    islands = _islands(config, rng, size, allowed, genes["tss"])
    return _Chrom(index, name, size, gaps, blacklist, allowed, genes, islands)


def _gene_models(config, rng, size: int, allowed: np.ndarray) -> dict:
    """Simple gene models: annotation name -> (starts, ends), plus 'tss' and 'strand'."""
    n_genes = max(1, rng.poisson(config.genes_per_mb * size / 1e6))
    tss = _space_out(_sample_positions(rng, allowed, n_genes), 3000)
    strand = rng.choice(np.array([1, -1]), len(tss))
    max_length = max(3000, min(120_000, size // 8))  # small test chromosomes get short genes
    length = np.clip(rng.lognormal(np.log(15_000), 0.8, len(tss)), 3000, max_length).astype(np.int64)
    blocked_cum = np.r_[0, np.cumsum(~allowed)]
    lo = np.where(strand > 0, tss - 300, tss - length + 1)
    hi = np.where(strand > 0, tss + length, tss + 301)
    ok = (lo >= 0) & (hi <= size)
    ok[ok] = blocked_cum[hi[ok]] - blocked_cum[lo[ok]] == 0
    tss, strand, length = tss[ok], strand[ok], length[ok]
    parts = {name: ([], []) for name in GENCODE_FEATURES if name != "cpg"}  # CpG islands: _islands
    for t, s, glen in zip(tss.tolist(), strand.tolist(), length.tolist()):
        first = int(rng.integers(150, 500))
        last = int(rng.integers(600, min(3000, glen - first - 200)))  # last exon after the first
        exons = [(0, first)]
        inner_lo, inner_hi = first + 200, glen - last - 200 - 250
        if inner_hi > inner_lo:
            n_inner = int(rng.integers(0, 11))
            pos = np.sort(rng.integers(inner_lo, inner_hi, n_inner))
            lens = rng.integers(80, 250, n_inner)
            for p, n in zip(pos.tolist(), lens.tolist()):
                if p >= exons[-1][1] + 100:
                    exons.append((p, p + n))
        exons.append((glen - last, glen))
        utr5 = int(rng.integers(40, first - 40))
        utr3 = int(rng.integers(200, last - 100))
        local = {
            "utr5": [(0, utr5)],
            "utr3": [(glen - utr3, glen)],
            "cds": [(utr5, first)] + exons[1:-1] + [(glen - last, glen - utr3)],
            "intron": [(a[1], b[0]) for a, b in zip(exons[:-1], exons[1:])],
            "promoter": [(-300, 100)],
        }
        for name, intervals in local.items():
            for a, b in intervals:
                # local offset o maps to t + o on '+', t - o on '-'
                parts[name][0].append(t + a if s > 0 else t - b + 1)
                parts[name][1].append(t + b if s > 0 else t - a + 1)
    genes = {name: (np.asarray(st, np.int64), np.asarray(en, np.int64)) for name, (st, en) in parts.items()}
    genes["tss"] = tss
    genes["strand"] = strand
    return genes


def _islands(config, rng, size: int, allowed: np.ndarray, tss: np.ndarray):
    """CpG islands: at a share of promoters, and a few orphans; merged."""
    at_promoter = tss[rng.random(len(tss)) < config.island_promoter_share]
    starts = at_promoter - rng.integers(200, 800, len(at_promoter))
    ends = at_promoter + rng.integers(300, 1200, len(at_promoter))
    orphans = _sample_positions(rng, allowed, rng.poisson(config.orphan_islands_per_mb * size / 1e6))
    starts = np.r_[starts, orphans]
    ends = np.r_[ends, orphans + rng.integers(300, 1500, len(orphans))]
    return merge_intervals(np.clip(starts, 0, size), np.clip(ends, 0, size))


# ----------------------------------------------------------------------------- sites


def _sample_instances(rng, pwm: np.ndarray, n: int, sharpness: tuple[float, float]):
    """n motif instances (n, width) uint8 codes drawn from pwm**tau (tau per instance),
    and their log-odds scores (n,) under the original PWM."""
    width = pwm.shape[0]
    tau = rng.uniform(sharpness[0], sharpness[1], n)
    probs = np.maximum(pwm, 1e-4)[None] ** tau[:, None, None]
    cdf = np.cumsum(probs / probs.sum(axis=2, keepdims=True), axis=2)
    codes = np.minimum((rng.random((n, width, 1)) > cdf).sum(axis=2), 3).astype(np.uint8)
    scores = log_odds(pwm)[np.arange(width), codes].sum(axis=1) if n else np.zeros(0)
    return codes, scores


def _layout_sites(config, chroms: list[_Chrom], tf_motifs, cof_motifs) -> dict:
    """All sites (TF motif, co-factor-only, motif-less open region, promoter) as arrays (F,).

    Keys: chrom, center, kind, tf (TF index of a motif site, else -1), motif_start,
    motif_end, motif_score (nan when none), cofactor (index into unique co-factor
    motifs, -1 none), cof_start, cof_end; plus 'plantings': list of (motif, chrom, start, codes).
    """
    n_tfs = len(tf_motifs)
    unique_cofs = list({m.name: m for m in cof_motifs}.values())
    cof_index_of_tf = np.array([[m.name for m in unique_cofs].index(m.name) for m in cof_motifs])
    rates = np.array([config.tf_sites_per_mb] * n_tfs + [config.ocr_per_mb, config.cofactor_sites_per_mb])
    cols = {k: [] for k in ("chrom", "center", "kind", "tf")}
    for chrom in chroms:
        rng = _rng(config.seed, 4, chrom.index)
        n_draw = int(rates.sum() * chrom.allowed.sum() / 1e6 * 1.3)
        centers = _space_out(_sample_positions(rng, chrom.allowed, n_draw), config.feature_spacing)
        choice = rng.choice(len(rates), len(centers), p=rates / rates.sum())
        kind = np.where(choice < n_tfs, MOTIF, np.where(choice == n_tfs, OCR, COFACTOR))
        tss = chrom.genes["tss"]
        prom_centers = tss - 50 * chrom.genes["strand"]
        cols["chrom"] += [np.full(len(centers) + len(tss), chrom.index)]
        cols["center"] += [centers, prom_centers]
        cols["kind"] += [kind, np.full(len(tss), PROMOTER)]
        cols["tf"] += [np.where(choice < n_tfs, choice, -1), np.full(len(tss), -1)]
    sites = {k: np.concatenate(v).astype(np.int64) for k, v in cols.items()}
    n = len(sites["center"])
    sites["motif_start"] = np.full(n, -1, np.int64)
    sites["motif_end"] = np.full(n, -1, np.int64)
    sites["motif_score"] = np.full(n, np.nan)
    sites["cofactor"] = np.full(n, -1, np.int64)
    sites["cof_start"] = np.full(n, -1, np.int64)
    sites["cof_end"] = np.full(n, -1, np.int64)
    plantings = []
    rng = _rng(config.seed, 5)
    for t, motif in enumerate(tf_motifs):
        idx = np.flatnonzero(sites["tf"] == t)
        codes, scores = _sample_instances(rng, motif.pwm, len(idx), config.motif_sharpness)
        minus = rng.random(len(idx)) < 0.5
        codes[minus] = 3 - codes[minus, ::-1]
        start = sites["center"][idx] - motif.width // 2
        sites["motif_start"][idx] = start
        sites["motif_end"][idx] = start + motif.width
        sites["motif_score"][idx] = scores
        plantings.append((sites["chrom"][idx], start, codes))
        has_cof = rng.random(len(idx)) < config.cofactor_share
        sites["cofactor"][idx[has_cof]] = cof_index_of_tf[t]
    decoys = np.flatnonzero(sites["kind"] == COFACTOR)
    sites["cofactor"][decoys] = rng.integers(0, len(unique_cofs), len(decoys))
    for c, motif in enumerate(unique_cofs):
        idx = np.flatnonzero(sites["cofactor"] == c)
        is_decoy = sites["kind"][idx] == COFACTOR
        width = motif.width
        tf_width = np.array([m.width for m in tf_motifs])[np.maximum(sites["tf"][idx], 0)]
        near = (tf_width + width) // 2 + 4
        offset = rng.integers(0, 81 - near.min(), len(idx)) + near
        offset = np.minimum(offset, 80) * rng.choice(np.array([-1, 1]), len(idx))
        centre = sites["center"][idx] + np.where(is_decoy, 0, offset)
        start = centre - width // 2
        codes, _ = _sample_instances(rng, motif.pwm, len(idx), config.motif_sharpness)
        minus = rng.random(len(idx)) < 0.5
        codes[minus] = 3 - codes[minus, ::-1]
        sites["cof_start"][idx] = start
        sites["cof_end"][idx] = start + width
        plantings.append((sites["chrom"][idx], start, codes))
    order = np.lexsort((sites["center"], sites["chrom"]))
    sites = {k: v[order] for k, v in sites.items()}
    sites["plantings"] = plantings
    sites["unique_cofactors"] = unique_cofs
    sites["cofactor_of_tf"] = cof_index_of_tf
    return sites


# ----------------------------------------------------------------------------- binding


def _sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


def _accessibility(config, sites: dict, n_cells: int) -> dict:
    """Openness (F, C) bool, DNase peak height (F, C) and width (F,) per site."""
    rng = _rng(config.seed, 6)
    params = np.array([config.open_motif, config.open_ocr, config.open_promoter, config.open_cofactor])
    kind = sites["kind"]
    n = len(kind)
    constitutive = rng.random(n) < params[kind, 0]
    is_open = constitutive[:, None] | (rng.random((n, n_cells)) < params[kind, 1][:, None])
    strength = rng.lognormal(0.0, 0.5, n)
    height = params[kind, 2][:, None] * strength[:, None] * rng.lognormal(0.0, 0.3, (n, n_cells))
    width = rng.uniform(50.0, 100.0, n)
    return {"open": is_open, "height": height, "width": width}


def _binding(config, sites: dict, access: dict, n_tfs: int) -> list[dict]:
    """Per TF: candidate site indices (n,), probability (n, C), bound (n, C)."""
    rng = _rng(config.seed, 7)
    kind = sites["kind"]
    is_open = access["open"]
    motifless = np.flatnonzero(kind != MOTIF)
    out = []
    for t in range(n_tfs):
        idx = np.flatnonzero(sites["tf"] == t)
        scores = sites["motif_score"][idx]
        rank = np.argsort(np.argsort(scores, kind="stable"), kind="stable") / max(len(idx) - 1, 1)
        has_cof = sites["cofactor"][idx] >= 0
        p_given_open = _sigmoid(config.bind_base + config.bind_motif * rank + config.bind_cofactor * has_cof)
        prob_motif = p_given_open[:, None] * is_open[idx]
        # motif-less binding: open sites, co-factor-only sites of this TF's co-factor preferred
        weight = np.where(kind[motifless] == PROMOTER, 1.5, 1.0)
        own_cof = sites["cofactor"][motifless] == sites["cofactor_of_tf"][t]
        weight = np.where((kind[motifless] == COFACTOR) & own_cof, 3.0, weight)
        open_weight = weight[:, None] * is_open[motifless]
        share = config.motifless_fraction / max(1.0 - config.motifless_fraction, 1e-9)
        target = share * prob_motif.sum(axis=0)
        scale = target / np.maximum(open_weight.sum(axis=0), 1e-9)
        prob_ml = np.minimum(0.9, open_weight * scale[None, :])
        keep = prob_ml.max(axis=1) > 0
        cand = np.r_[idx, motifless[keep]]
        prob = np.concatenate([prob_motif, prob_ml[keep]], axis=0)
        bound = rng.random(prob.shape) < prob
        order = np.argsort(cand, kind="stable")
        out.append({"sites": cand[order], "prob": prob[order], "bound": bound[order]})
    return out


# ----------------------------------------------------------------------------- sequence

# repeat family kinds: (count, consensus length range, share of instances)
_REPEAT_KINDS = {"sine": (12, (280, 320), 0.5), "line": (6, (5000, 6500), 0.25), "ltr": (10, (500, 1500), 0.15)}
_SIMPLE_SHARE = 0.10
_YOUNG_DIVERGENCE = 0.03
MAPPABILITY_VALUES = np.array([1.0, 0.5, 1 / 3, 0.25, 0.0], dtype=np.float32)  # Unique35 levels


def _repeat_families(seed: int) -> list[tuple[str, np.ndarray, int]]:
    """(kind, consensus codes, mappability level of young copies) per family."""
    rng = _rng(seed, 2)
    families = []
    for kind, (count, (lo, hi), _) in _REPEAT_KINDS.items():
        for _ in range(count):
            length = int(rng.integers(lo, hi))
            gc = rng.uniform(0.35, 0.55)
            bit = rng.integers(0, 2, length)
            codes = np.where(rng.random(length) < gc, 1 + bit, 3 * bit).astype(np.uint8)
            level = 4 if kind == "sine" else int(rng.integers(1, 5))
            families.append((kind, codes, level))
    return families


def _chrom_sequence(config, chrom: _Chrom, families, plantings) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Codes (size,) uint8 (4 = N), soft-mask (size,) bool, mappability level (size,) uint8."""
    rng = _rng(config.seed, 3, chrom.index)
    size = chrom.size
    gc = _interp_knots(rng, size, 100_000, config.gc_mean, config.gc_sd, 0.30, 0.55)
    bit = rng.integers(0, 2, size, dtype=np.uint8)
    codes = np.where(rng.random(size, dtype=np.float32) < gc, 1 + bit, 3 * bit).astype(np.uint8)

    masked = np.zeros(size, bool)
    divergence = np.zeros(size, np.float32)
    young_level = np.zeros(size, np.uint8)
    by_kind = {k: [f for f in families if f[0] == k] for k in _REPEAT_KINDS}
    kinds = list(_REPEAT_KINDS) + ["simple"]
    shares = np.array([v[2] for v in _REPEAT_KINDS.values()] + [_SIMPLE_SHARE])
    mean_len = 0.5 * 300 + 0.25 * 1200 + 0.15 * 900 + 0.10 * 100
    n_inst = int(config.repeat_fraction * size / mean_len * 1.3)
    inst_kind = rng.choice(len(kinds), n_inst, p=shares / shares.sum())
    inst_pos = rng.integers(0, size, n_inst)
    inst_div = np.where(rng.random(n_inst) < 0.15, rng.uniform(0.0, _YOUNG_DIVERGENCE, n_inst),
                        rng.uniform(_YOUNG_DIVERGENCE, 0.3, n_inst)).astype(np.float32)
    inst_family = rng.integers(0, 1 << 30, n_inst)
    inst_len = np.clip(rng.lognormal(np.log(900), 0.7, n_inst), 100, 6000).astype(np.int64)
    inst_rc = rng.random(n_inst) < 0.5
    for k, pos, div, fam, frag, rc in zip(inst_kind.tolist(), inst_pos.tolist(), inst_div.tolist(),
                                          inst_family.tolist(), inst_len.tolist(), inst_rc.tolist()):
        kind = kinds[k]
        if kind == "simple":
            unit = rng.integers(0, 4, 1 + fam % 6).astype(np.uint8)
            seq = np.tile(unit, 200)[: 20 + fam % 180]
            level = 4
        else:
            _, consensus, level = by_kind[kind][fam % len(by_kind[kind])]
            if kind == "line":  # 5'-truncated copies keep the 3' end
                seq = consensus[-min(frag, len(consensus)):]
            else:
                seq = consensus
        if rc:
            seq = 3 - seq[::-1]
        end = min(size, pos + len(seq))
        codes[pos:end] = seq[: end - pos]
        masked[pos:end] = True
        divergence[pos:end] = div
        young_level[pos:end] = level if div < _YOUNG_DIVERGENCE else 0
    mutated = masked & (rng.random(size, dtype=np.float32) < divergence)
    codes[mutated] = rng.integers(0, 4, int(mutated.sum()), dtype=np.uint8)

    # CpG depletion (deamination): CpG -> TpG or CpA
    cpg = np.flatnonzero((codes[:-1] == 1) & (codes[1:] == 2))
    hit = cpg[rng.random(len(cpg)) < config.cpg_depletion]
    to_t = rng.random(len(hit)) < 0.5
    codes[hit[to_t]] = 3
    codes[hit[~to_t] + 1] = 0

    # CpG islands: GC-rich, CpG not depleted, not masked
    island = _mask_from(size, *chrom.islands)
    n_island = int(island.sum())
    bit = rng.integers(0, 2, n_island, dtype=np.uint8)
    codes[island] = np.where(rng.random(n_island) < 0.65, 1 + bit, 3 * bit)
    masked[island] = False
    young_level[island] = 0

    for chrom_of, starts, inst in plantings:
        here = chrom_of == chrom.index
        if here.any():
            pos = starts[here][:, None] + np.arange(inst.shape[1])
            codes[pos] = inst[here]
            young_level[pos] = 0

    # Unique35-like: a 35-mer lying wholly on unmutated young-repeat bases maps to several places
    identical = (young_level > 0) & ~mutated
    run = np.r_[0, np.cumsum(identical, dtype=np.int64)]
    mappability = np.zeros(size, np.uint8)  # index into MAPPABILITY_VALUES, 0 = unique
    k = 35
    if size > k:
        low = (run[k:] - run[:-k]) == k
        mappability[: size - k + 1][low] = young_level[: size - k + 1][low]

    gap = _mask_from(size, *chrom.gaps)
    codes[gap] = 4
    mappability[gap] = 4
    return codes, masked, mappability


def _fasta_bytes(name: str, codes: np.ndarray, masked: np.ndarray, line_bases: int = 60) -> tuple[bytes, bytes]:
    """(header line, sequence lines) of one FASTA record, soft-masked lower case."""
    letters = np.frombuffer(b"ACGTN", np.uint8)[codes]
    letters = np.where(masked & (codes < 4), letters + 32, letters).astype(np.uint8)
    n_full = len(letters) // line_bases
    body = np.concatenate([letters[: n_full * line_bases].reshape(n_full, line_bases),
                           np.full((n_full, 1), ord("\n"), np.uint8)], axis=1).tobytes()
    rest = letters[n_full * line_bases:]
    if len(rest):
        body += rest.tobytes() + b"\n"
    return f">{name}\n".encode(), body


# ----------------------------------------------------------------------------- DNase


def _footprint_flags(sites: dict, binding: list[dict], n_cells: int):
    """(bound by any TF, bound at its own motif, bound with a co-factor motif) (F, C) bool."""
    n = len(sites["kind"])
    bound_any = np.zeros((n, n_cells), bool)
    at_motif = np.zeros((n, n_cells), bool)
    for t, b in enumerate(binding):
        bound_any[b["sites"]] |= b["bound"]
        own = sites["tf"][b["sites"]] == t
        at_motif[b["sites"][own]] |= b["bound"][own]
    with_cof = (sites["cofactor"] >= 0)[:, None] & bound_any
    return bound_any, at_motif, with_cof


def _dnase_rate(config, chrom: _Chrom, cell: int, sites: dict, access: dict, flags, mappability, rng):
    """Expected DNase coverage (size,) float64 before read sampling."""
    size = chrom.size
    rate = _interp_knots(rng, size, 100_000, np.log(config.dnase_background), 0.3, 0.05, 5.0, log=True)
    rate = rate.astype(np.float64)
    sel = np.flatnonzero((sites["chrom"] == chrom.index) & access["open"][:, cell])
    if len(sel):
        bound_any, at_motif, with_cof = (f[sel, cell] for f in flags)
        centre = sites["center"][sel]
        offsets = np.arange(-KERNEL_HALF, KERNEL_HALF + 1)
        height = access["height"][sel, cell] * np.where(bound_any, config.bound_boost, 1.0)
        kernel = height[:, None] * np.exp(-0.5 * (offsets[None, :] / access["width"][sel, None]) ** 2)
        lo = (sites["motif_start"][sel] - centre)[:, None] - 4
        hi = (sites["motif_end"][sel] - centre)[:, None] + 4
        dip = at_motif[:, None] & (offsets >= lo) & (offsets < hi)
        left = (offsets >= lo - 15) & (offsets < lo)
        right = (offsets >= hi) & (offsets < hi + 15)
        shoulder = at_motif[:, None] & (left | right)
        cof_lo = (sites["cof_start"][sel] - centre)[:, None] - 2
        cof_hi = (sites["cof_end"][sel] - centre)[:, None] + 2
        cof_dip = with_cof[:, None] & (offsets >= cof_lo) & (offsets < cof_hi)
        kernel *= np.where(dip, config.footprint_depth, np.where(shoulder, config.footprint_shoulder, 1.0))
        kernel *= np.where(cof_dip & ~dip, 0.5, 1.0)
        pos = centre[:, None] + offsets
        inside = (pos >= 0) & (pos < size)
        rate += np.bincount(pos[inside], weights=kernel[inside], minlength=size)
    rate *= MAPPABILITY_VALUES[mappability]  # reads from repeated or N sequence do not map
    for start, end in zip(*chrom.blacklist):  # artefact signal, as in real blacklisted regions
        rate[start:end] += 15.0 * rng.uniform(0.5, 1.5)
    return rate


def _sample_coverage(rng, rate: np.ndarray, read_len: int) -> np.ndarray:
    """Coverage (size,) int32 of reads whose 5' ends follow `rate`; reads go either strand."""
    size = len(rate)
    cumulative = np.cumsum(rate)
    total = float(cumulative[-1]) if size else 0.0
    n_reads = rng.poisson(total / read_len) if total > 0 else 0
    # sorted draws make the search cache-friendly (and the multinomial is order-free)
    cuts = np.searchsorted(cumulative, np.sort(rng.random(n_reads)) * total, side="right")
    cuts = np.minimum(cuts, size - 1)
    plus = rng.random(n_reads) < 0.5
    starts = np.where(plus, cuts, cuts - read_len + 1).clip(0, size)
    ends = np.where(plus, cuts + read_len, cuts + 1).clip(0, size)
    delta = np.bincount(starts, minlength=size + 1) - np.bincount(ends, minlength=size + 1)
    return np.cumsum(delta[:size]).astype(np.int32)


def _runs(values: np.ndarray, covered: np.ndarray):
    """bedGraph-style runs (starts, ends, values) of equal values where `covered`."""
    marked = np.where(covered, values.astype(np.float64), -1.0)
    change = np.flatnonzero(marked[1:] != marked[:-1]) + 1
    starts = np.r_[0, change]
    ends = np.r_[change, len(values)]
    run_values = marked[starts]
    keep = run_values >= 0
    return starts[keep].astype(np.int64), ends[keep].astype(np.int64), run_values[keep]


def _write_bigwig(path: Path, chrom_sizes: Mapping[str, int], runs_by_chrom) -> None:
    """bigWig from per-chromosome (starts, ends, values) runs, in chrom_sizes order."""
    import pyBigWig

    bw = pyBigWig.open(str(path), "w")
    try:
        bw.addHeader(list(chrom_sizes.items()), maxZooms=10)
        for chrom, (starts, ends, values) in runs_by_chrom:
            if len(starts):
                bw.addEntries([chrom] * len(starts), starts, ends=ends, values=values.astype(np.float64))
    finally:
        bw.close()


# ----------------------------------------------------------------------------- peaks

PEAK_FIELDS = ("chrom", "start", "end", "summit", "signal")


def _peak_geometry(rng, chroms: list[_Chrom], chrom_idx, centres, signal) -> dict:
    """Peak intervals: 200-400 bp, summit near the centre, clipped to the chromosome."""
    n = len(centres)
    sizes = np.array([c.size for c in chroms])[chrom_idx]
    summit = np.clip(centres + np.round(rng.normal(0, 8, n)).astype(np.int64), 0, sizes - 1)
    width = rng.integers(200, 401, n)
    start = np.maximum(summit - (width * rng.uniform(0.35, 0.65, n)).astype(np.int64), 0)
    end = np.minimum(start + width, sizes)
    return {"chrom": chrom_idx, "start": start, "end": end, "summit": summit, "signal": signal}


def _concat(parts: list[dict]) -> dict:
    return {k: np.concatenate([p[k] for p in parts]) for k in PEAK_FIELDS}


def _peaks_for(config, rng, chroms, sites, access, b: dict, cell: int):
    """(conservative, relaxed) peak arrays for one TF in one cell."""
    from statistics import NormalDist

    cand = b["sites"]
    prob, bound = b["prob"][:, cell], b["bound"][:, cell]
    on = cand[bound]
    z = rng.normal(0, 1, len(on))
    enrichment = np.exp(np.log(30.0) + (prob[bound] - 0.5) + 0.7 * z)
    cut = NormalDist().inv_cdf(1.0 - config.conservative_share)
    conservative = (prob[bound] - 0.5) + 0.7 * z > 0.7 * cut
    peaks = _peak_geometry(rng, chroms, sites["chrom"][on], sites["center"][on], enrichment)
    relaxed_bound = dict(peaks)
    relaxed_bound["start"] = np.maximum(peaks["start"] - rng.integers(0, 61, len(on)), 0)
    sizes = np.array([c.size for c in chroms])[peaks["chrom"]]
    relaxed_bound["end"] = np.minimum(peaks["end"] + rng.integers(0, 61, len(on)), sizes)
    cons = {k: v[conservative] for k, v in peaks.items()}

    noisy = cand[~bound & access["open"][cand, cell] & (rng.random(len(cand)) < config.relaxed_noise)]
    noise = _peak_geometry(rng, chroms, sites["chrom"][noisy], sites["center"][noisy],
                           np.exp(np.log(5.0) + 0.5 * rng.normal(0, 1, len(noisy))))
    extra = []
    for chrom in chroms:
        n = rng.poisson(config.random_peaks_per_mb * chrom.size / 1e6)
        where = _sample_positions(rng, chrom.allowed, n)
        extra.append(_peak_geometry(rng, chroms, np.full(len(where), chrom.index), where,
                                    np.exp(np.log(4.0) + 0.5 * rng.normal(0, 1, len(where)))))
        bl_start, bl_end = chrom.blacklist
        hit = rng.random(len(bl_start)) < 0.5
        mid = (bl_start[hit] + bl_end[hit]) // 2
        extra.append(_peak_geometry(rng, chroms, np.full(len(mid), chrom.index), mid,
                                    np.exp(np.log(20.0) + 0.5 * rng.normal(0, 1, len(mid)))))
    relaxed = _concat([relaxed_bound, noise] + extra)
    return cons, relaxed


def _narrowpeak_lines(peaks: dict, chroms: list[_Chrom]) -> list[str]:
    """narrowPeak (10 columns) lines sorted by chromosome (FASTA order), start, end."""
    order = np.lexsort((peaks["end"], peaks["start"], peaks["chrom"]))
    names = [c.name for c in chroms]
    lines = []
    for ci, start, end, summit, signal in zip(*(peaks[k][order].tolist() for k in PEAK_FIELDS)):
        score = min(1000, int(signal * 20))
        qvalue = np.log10(1.0 + signal)
        lines.append(f"{names[ci]}\t{start}\t{end}\t.\t{score}\t.\t{signal:.5f}\t-1\t{qvalue:.5f}\t{summit - start}\n")
    return lines


# ----------------------------------------------------------------------------- writing


def _result(root: Path, config: SimulationConfig, chrom_sizes, counts) -> SimulationResult:
    cells = {}
    for cell in config.cells:
        folder = root / "cells" / cell
        cells[cell] = CellFiles(
            folder=folder,
            bigwig_txt=folder / "bigwig.txt",
            chip_txt=folder / "chip.txt",
            meta_txt=folder / "meta.txt",
            bigwigs={MAPPABILITY_TRACK: folder / f"{MAPPABILITY_TRACK}.bigWig", DNASE_TRACK: folder / f"{cell}.1x.bw"},
            conservative={tf: folder / f"ChIPseq.{cell}.{tf}.conservative.train.narrowPeak.gz" for tf in config.tfs},
            relaxed={tf: folder / f"ChIPseq.{cell}.{tf}.relaxed.narrowPeak.gz" for tf in config.tfs},
        )
    return SimulationResult(
        out_dir=root, fasta=root / "genome.fa", fai=root / "genome.fa.fai",
        chrom_sizes_path=root / "genome.chrom.sizes", chrom_sizes=dict(chrom_sizes),
        blacklist=root / "blacklist.bed.gz", ladder=root / "ladder.bed.gz", truth=root / "truth.tsv.gz",
        motifs=root / "motifs.meme", summary=root / "simulation.json",
        annotations={name: root / "annotations" / f"{name}.bed.gz" for name in GENCODE_FEATURES},
        cells=cells, counts=dict(counts),
    )


def _write_genome(config, chroms, families, plantings, paths: SimulationResult) -> dict[str, np.ndarray]:
    """genome.fa, .fai and chrom.sizes; returns the mappability level per chromosome."""
    mappability = {}
    fai_lines = []
    offset = 0
    with open(paths.fasta, "wb") as fasta:
        for chrom in chroms:
            codes, masked, mappability[chrom.name] = _chrom_sequence(config, chrom, families, plantings)
            header, body = _fasta_bytes(chrom.name, codes, masked)
            fasta.write(header)
            fasta.write(body)
            offset += len(header)
            fai_lines.append(f"{chrom.name}\t{chrom.size}\t{offset}\t60\t61\n")
            offset += len(body)
    paths.fai.write_text("".join(fai_lines))
    paths.chrom_sizes_path.write_text("".join(f"{c.name}\t{c.size}\n" for c in chroms))
    return mappability


def _write_annotations(chroms, paths: SimulationResult) -> None:
    paths.annotations["cpg"].parent.mkdir(parents=True, exist_ok=True)
    for name in GENCODE_FEATURES:
        lines = []
        for chrom in chroms:
            starts, ends = chrom.islands if name == "cpg" else chrom.genes[name]
            starts, ends = merge_intervals(np.clip(starts, 0, chrom.size), np.clip(ends, 0, chrom.size))
            lines += _bed_lines(chrom.name, starts, ends)
        _write_gz(paths.annotations[name], lines)
    _write_gz(paths.blacklist, [line for c in chroms for line in _bed_lines(c.name, *c.blacklist)])


def _write_ladder(config, chroms, paths: SimulationResult) -> int:
    """200 bp bins at 50 bp steps over the test chromosomes, minus those touching the blacklist."""
    lines = []
    for chrom in chroms:
        if chrom.name not in config.test_chroms:
            continue
        starts = np.arange(0, chrom.size - LADDER_BIN + 1, LADDER_STEP, dtype=np.int64)
        bl_start, bl_end = chrom.blacklist
        nxt = np.searchsorted(bl_end, starts, side="right")  # first blacklist region ending after start
        hits = nxt < len(bl_start)
        hits[hits] = bl_start[nxt[hits]] < starts[hits] + LADDER_BIN
        starts = starts[~hits]
        lines += _bed_lines(chrom.name, starts, starts + LADDER_BIN)
    _write_gz(paths.ladder, lines)
    return len(lines)


def _write_truth(config, chroms, sites, binding, paths: SimulationResult) -> None:
    """truth.tsv.gz: one row per candidate site, TF and cell, sorted by position."""
    cols = {k: [] for k in ("chrom", "start", "end", "tf", "cell", "prob", "bound", "kind", "score", "cof")}
    n_cells = len(config.cells)
    for t, b in enumerate(binding):
        idx = b["sites"]
        own = sites["tf"][idx] == t
        start = np.where(own, sites["motif_start"][idx], sites["center"][idx] - 100)
        end = np.where(own, sites["motif_end"][idx], sites["center"][idx] + 100)
        rep = lambda a: np.repeat(a, n_cells)  # noqa: E731
        cols["chrom"].append(rep(sites["chrom"][idx]))
        cols["start"].append(rep(start))
        cols["end"].append(rep(end))
        cols["tf"].append(np.full(len(idx) * n_cells, t))
        cols["cell"].append(np.tile(np.arange(n_cells), len(idx)))
        cols["prob"].append(b["prob"].ravel())
        cols["bound"].append(b["bound"].ravel())
        cols["kind"].append(rep(sites["kind"][idx]))
        cols["score"].append(rep(np.where(own, sites["motif_score"][idx], np.nan)))
        cols["cof"].append(rep(sites["cofactor"][idx] >= 0))
    cols = {k: np.concatenate(v) for k, v in cols.items()}
    order = np.lexsort((cols["cell"], cols["tf"], cols["end"], cols["start"], cols["chrom"]))
    names = [c.name for c in chroms]
    lines = ["chrom\tstart\tend\ttf\tcell\tprobability\tbound\tkind\tmotif_score\tcofactor\n"]
    for ci, s, e, t, c, p, bd, k, sc, cf in zip(*(cols[k][order].tolist() for k in cols)):
        score = "." if sc != sc else f"{sc:.3f}"
        lines.append(f"{names[ci]}\t{s}\t{e}\t{config.tfs[t]}\t{config.cells[c]}\t{p:.4f}\t{int(bd)}\t"
                     f"{KIND_NAMES[k]}\t{score}\t{int(cf)}\n")
    _write_gz(paths.truth, lines)


def _write_cells(config, chroms, sites, access, binding, mappability, paths: SimulationResult) -> dict:
    """Per cell: bigWigs, peaks, bigwig.txt, chip.txt, meta.txt. Returns peak counts."""
    chrom_sizes = paths.chrom_sizes
    gap_masks = {c.name: _mask_from(c.size, *c.gaps) for c in chroms}
    first = paths.cells[config.cells[0]]
    first.folder.mkdir(parents=True, exist_ok=True)
    mappability_runs = []
    for chrom in chroms:
        level = mappability[chrom.name]
        starts, ends, values = _runs(level, ~gap_masks[chrom.name])
        mappability_runs.append((chrom.name, (starts, ends, MAPPABILITY_VALUES[values.astype(np.int64)])))
    _write_bigwig(first.bigwigs[MAPPABILITY_TRACK], chrom_sizes, mappability_runs)

    flags = _footprint_flags(sites, binding, len(config.cells))
    counts = {}
    for c, cell in enumerate(config.cells):
        files = paths.cells[cell]
        files.folder.mkdir(parents=True, exist_ok=True)
        if c > 0:
            shutil.copyfile(first.bigwigs[MAPPABILITY_TRACK], files.bigwigs[MAPPABILITY_TRACK])
        rng = _rng(config.seed, 8, c)
        coverage = {}
        for chrom in chroms:
            rate = _dnase_rate(config, chrom, c, sites, access, flags, mappability[chrom.name], rng)
            coverage[chrom.name] = _sample_coverage(rng, rate, config.dnase_read_len)
        covered_sum = sum(int(coverage[n][~gap_masks[n]].sum(dtype=np.int64)) for n in coverage)
        covered_len = sum(int((~gap_masks[n]).sum()) for n in coverage)
        scale = covered_len / max(covered_sum, 1)  # "1x": mean coverage 1 over non-gap bases
        dnase_runs = []
        for chrom in chroms:
            starts, ends, values = _runs(coverage[chrom.name], ~gap_masks[chrom.name])
            dnase_runs.append((chrom.name, (starts, ends, (values * scale).astype(np.float32))))
        _write_bigwig(files.bigwigs[DNASE_TRACK], chrom_sizes, dnase_runs)
        del coverage, dnase_runs

        rng = _rng(config.seed, 9, c)
        chip_lines = []
        for t, tf in enumerate(config.tfs):
            cons, relaxed = _peaks_for(config, rng, chroms, sites, access, binding[t], c)
            _write_gz(files.conservative[tf], _narrowpeak_lines(cons, chroms))
            _write_gz(files.relaxed[tf], _narrowpeak_lines(relaxed, chroms))
            chip_lines.append(f"{files.conservative[tf].name}\t{tf}\t{files.relaxed[tf].name}\n")
            counts[f"{tf}.{cell}.conservative"] = len(cons["start"])
            counts[f"{tf}.{cell}.relaxed"] = len(relaxed["start"])
        files.chip_txt.write_text("".join(chip_lines))
        files.bigwig_txt.write_text("".join(f"{files.bigwigs[track].name}\t{track}\n"
                                            for track in (MAPPABILITY_TRACK, DNASE_TRACK)))
        meta = _rng(config.seed, 10, c).normal(0.0, 0.15, len(META_NAMES))
        files.meta_txt.write_text("".join(f"{v:.6g}\t{n}\n" for v, n in zip(meta, META_NAMES)))
    return counts


def _binding_counts(config, sites, access, binding) -> dict:
    """Headline numbers per TF and cell: sites, open motif sites, bound, motif-less share."""
    out = {}
    for t, tf in enumerate(config.tfs):
        b = binding[t]
        own = sites["tf"][b["sites"]] == t
        for c, cell in enumerate(config.cells):
            bound = b["bound"][:, c]
            open_motif = own & access["open"][b["sites"], c]
            out[f"{tf}.{cell}.motif_sites"] = int(own.sum())
            out[f"{tf}.{cell}.open_motif_sites"] = int(open_motif.sum())
            out[f"{tf}.{cell}.bound"] = int(bound.sum())
            out[f"{tf}.{cell}.bound_open_motif"] = int((bound & open_motif).sum())
            out[f"{tf}.{cell}.bound_without_motif"] = int((bound & ~own).sum())
    return out


def _jsonable(value):
    if isinstance(value, tuple):
        return [_jsonable(v) for v in value]
    return value


def simulate(out_dir, config: SimulationConfig = SimulationConfig(), overwrite: bool = False) -> SimulationResult:
    """Write the simulated dataset described by `config` into `out_dir`.

    Writes into a hidden folder beside `out_dir` and swaps it into place at the end
    (outputs.write_dir_atomically), so an interrupted run never leaves a complete-looking
    dataset. Raises `ConfigError` for bad settings, and `OutputError` for an existing
    `out_dir` that is not empty (unless `overwrite` (-oc) and it holds an earlier simulation).
    """
    _check_config(config)
    out_dir = Path(out_dir)
    inputs = [config.motifs_path]
    check_output(out_dir, overwrite, SIMULATION, inputs)
    motif_path, tf_motifs, cof_motifs = _motifs_for(config)
    counts = {}
    write_dir_atomically(out_dir, overwrite, lambda partial: counts.update(
        _simulate_into(partial, config, motif_path, tf_motifs, cof_motifs)), SIMULATION, inputs)
    return _result(out_dir, config, chrom_sizes_for(config), counts)


def _simulate_into(root: Path, config, motif_path, tf_motifs, cof_motifs) -> dict:
    chrom_sizes = chrom_sizes_for(config)
    paths = _result(root, config, chrom_sizes, {})
    chroms = [_layout_chrom(config, i, name, size) for i, (name, size) in enumerate(chrom_sizes.items())]
    sites = _layout_sites(config, chroms, tf_motifs, cof_motifs)
    access = _accessibility(config, sites, len(config.cells))
    binding = _binding(config, sites, access, len(config.tfs))

    families = _repeat_families(config.seed)
    mappability = _write_genome(config, chroms, families, sites["plantings"], paths)
    _write_annotations(chroms, paths)
    n_ladder = _write_ladder(config, chroms, paths)
    _write_truth(config, chroms, sites, binding, paths)
    used = list({m.name: m for m in list(tf_motifs) + list(cof_motifs)}.values())
    write_meme(paths.motifs, used)
    counts = _write_cells(config, chroms, sites, access, binding, mappability, paths)
    counts.update(_binding_counts(config, sites, access, binding))
    counts["genome_bp"] = sum(chrom_sizes.values())
    counts["ladder_bins"] = n_ladder
    counts["sites"] = len(sites["center"])
    summary = {
        "format": "factornet-jax/simulation", "version": 1,
        "config": {k: _jsonable(v) for k, v in dataclasses.asdict(config).items()},
        "motif_source": str(motif_path),
        "motifs": {tf: m.name for tf, m in zip(config.tfs, tf_motifs)},
        "cofactors": {tf: m.name for tf, m in zip(config.tfs, cof_motifs)},
        "chrom_sizes": chrom_sizes,
        "counts": dict(sorted(counts.items())),
    }
    paths.summary.write_text(json.dumps(summary, indent=1) + "\n")
    return counts


def rescaled_cell(source, target, factor: float, tracks=None) -> None:
    """Copy the cell folder `source` to `target` (which must not exist) with the bigWigs of
    `tracks` (track names of bigwig.txt; None: every track) multiplied by `factor`: the same
    cell line sequenced at `factor` x the depth, for depth-drift checks."""
    import pyBigWig
    source, target = Path(source), Path(target)
    shutil.copytree(source, target)
    for line in (target / "bigwig.txt").read_text().splitlines():
        name, label = line.split("\t")[:2]
        if tracks is not None and label not in tracks:
            continue
        src, out = pyBigWig.open(str(source / name)), pyBigWig.open(str(target / name), "w")
        try:
            sizes = list(src.chroms().items())
            out.addHeader(sizes)
            for chrom, _ in sizes:
                entries = src.intervals(chrom) or []
                if entries:
                    out.addEntries([chrom] * len(entries), [e[0] for e in entries],
                                   ends=[e[1] for e in entries],
                                   values=[factor * e[2] for e in entries])
        finally:
            src.close()
            out.close()

"""Variant effects: score the REF and ALT allele of every VCF variant in every cell store.

    summary = score_variants(["stores/HepG2.zarr"], "models/CTCF", "calls.vcf.gz", "effects/")

Windows (what is scored)
    A variant's REF allele spans [p, p + r) (p = VCF POS - 1, r = len(REF)). Its window is the
    ``seq_len`` window centred on that span as `predict` centres an interval: centre
    c = p + r // 2, start w = c - seq_len // 2 (for a SNV: the window predict scores for the
    1-bp interval [p, p + 1)). The reference window is the genome's [w, w + seq_len).
    The alternative window keeps the same start w and is read from the ALT haplotype
    genome[:p] + ALT + genome[p + r:]: bases before p are the reference's, then the ALT
    allele, then the reference from p + r on, cut to ``seq_len``. So a deletion pulls in the
    bases downstream of the window end, an insertion pushes the last bases out, and a SNV
    changes one base. The signal tracks of both windows are the cell's signal at the reference
    coordinates [w, w + seq_len) (held, not shifted: window position i carries the reference
    signal at w + i for REF and ALT alike; the variant is not in the DNase data). Meta features
    and GENCODE flags (of the 200-bp bin centred on the window) are the same for both.
    Both strands go through the model and are averaged (the model's siamese average), as in
    `predict`. `tests/test_variants.py` checks the ALT score against a store rebuilt from a FASTA
    edited by hand, for SNVs, an insertion and a deletion.
Effects
    ref_prob, alt_prob (binding probability), diff = alt_prob - ref_prob and
    log_odds_diff = logit(alt_prob) - logit(ref_prob) (probabilities clipped to
    [1e-7, 1 - 1e-7]). With ``scan`` N > 0, windows centred at c + d for every multiple d of
    50 bp (the ladder step) with |d| <= N are scored too (the variant then sits off-centre;
    the ALT window is built the same way from its own start), and ``scan_diff`` is the diff of
    largest magnitude over those windows, ``scan_offset`` its d.
Excluded variants
    As in `predict`: a window is scored only when it lies inside the chromosome and the span
    from the window centre to the REF allele shares no base with the exclusion zone (the
    blacklist widened by seq_len, and the first / last seq_len bp of each chromosome). An
    excluded variant is written with ``NA`` values and status ``excluded`` and counted
    (`VariantSummary.n_excluded`); predict's 0 would read as a real probability.
Outputs (a folder, -o / -oc, written whole: factornet_jax.outputs)
    variants.tsv.gz      one row per ALT allele x cell x TF, in VCF order: chrom, pos (VCF POS),
                         id, ref, alt, cell, tf, ref_prob, alt_prob, diff, log_odds_diff,
                         [scan_diff, scan_offset,] status
    variants.vcf.gz      (vcf_out) the input VCF with INFO fields FN_REF_, FN_ALT_, FN_DIFF_,
                         FN_LOD_<cell>_<tf> (Number=A; '.' for an allele not scored); gzip, not
                         bgzip (run `bgzip -d | bgzip` before tabix)
    manhattan.png        diff along the genome, one panel per cell x TF (the largest gain and
                         loss in each of 2,000 genome bins, so memory stays flat)
    top_variants.png     (top > 0) the variants of largest |diff|: ISM contributions
                         (contributions.ism, actual-base hypothetical contribution) of the REF
                         and ALT windows around the variant, and their difference
Streaming
    The VCF is read twice in blocks (vcf.iter_vcf_blocks): a checking pass (columns, contigs,
    REF against the genome store) that fails before any output, then the scoring pass.
    Batches are filled by predict's loader (`batches.BatchAssembler` in a thread, or
    `--loader-processes` workers), one store read per variant row of ``seq_len +
    max_allele_len`` bases (the extra bases feed deletions), and run through predict's
    compiled eval step (`predict._eval_step`) as 2 windows per row (REF rows, then ALT rows).
    Memory is bounded by a block, whatever the number of variants (BENCHMARKS.md).
"""
from __future__ import annotations

import gzip
import heapq
import os
import re
import time
from collections import deque
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from factornet_jax.batch_processes import batch_workers
from factornet_jax.batches import BatchAssembler, BatchSpec, Examples, empty_batch, ordered_map
from factornet_jax.errors import ConfigError, FactorNetError
from factornet_jax.fasta import codes_to_onehot
from factornet_jax.labels import BIN_SIZE, STRIDE, exclusion_zone
from factornet_jax.outputs import OutputKind, check_output, write_dir_atomically
from factornet_jax.progress import Progress
from factornet_jax.steps import check_compute_settings
from factornet_jax.vcf import (BLOCK_LINES, MAX_ALLELE_LEN, VcfCounts, allele_codes, check_refs,
                               iter_vcf_blocks)

VARIANTS = OutputKind("variants", "variants folder")
TSV_NAME = "variants.tsv.gz"
VCF_NAME = "variants.vcf.gz"
MANHATTAN_NAME = "manhattan.png"
TOP_NAME = "top_variants.png"
PROBABILITY_CLIP = 1e-7
MANHATTAN_BINS = 2000       # genome bins of the Manhattan plot (largest gain and loss of each)
MANHATTAN_PANELS = 8        # cell x TF panels drawn at most
TOP_FLANK = 40              # bp either side of the variant in the top-variants figure


@dataclass(frozen=True)
class VariantSummary:
    """What one `score_variants` run did."""
    out_dir: str
    cells: tuple                # cell names, in -i order
    tfs: tuple                  # TFs written
    counts: VcfCounts           # records, alleles scored, alleles skipped by reason
    n_rows: int                 # allele x cell pairs (TSV rows / number of TFs)
    n_excluded: int             # allele x cell pairs not scored (window excluded) -> NA
    n_windows: int              # windows through the model (2 per scored allele x cell x offset)
    batch_size: int             # windows per compiled call
    devices: int
    seconds: float              # whole run
    variants_per_second: float  # scored allele x cell pairs / seconds of the scoring pass
    windows_per_second: float


# ------------------------------------------------------------------ windows

def max_allele_len(seq_len) -> int:
    """Longest REF / ALT scored with a model of `seq_len`: MAX_ALLELE_LEN, or seq_len // 4."""
    return max(1, min(MAX_ALLELE_LEN, seq_len // 4))


def scan_offsets(scan, seq_len) -> np.ndarray:
    """(K,) int64 window-centre offsets: 0 first, then the multiples of STRIDE within +-scan."""
    if scan < 0:
        raise ConfigError(f"--scan {scan}: must be 0 or more")
    most = seq_len // 2 - max_allele_len(seq_len)
    if scan > most:
        raise ConfigError(f"--scan {scan}: at most {most} bp for a model of seq_len {seq_len} "
                          "(the variant must stay inside every window)")
    steps = np.arange(-(scan // STRIDE), scan // STRIDE + 1, dtype=np.int64) * STRIDE
    return np.concatenate([[0], steps[steps != 0]]).astype(np.int64)


def window_starts(positions, ref_lengths, seq_len, offsets) -> np.ndarray:
    """(N, K) int64 start of each variant's window, centred on the REF span moved by `offsets`."""
    centre = np.asarray(positions, np.int64) + np.asarray(ref_lengths, np.int64) // 2
    return centre[:, None] + np.asarray(offsets, np.int64)[None, :] - seq_len // 2


def alt_windows(ext_codes, starts, positions, ref_lengths, alts, seq_len) -> np.ndarray:
    """The ALT-haplotype windows (module docstring): reference codes with the allele applied.

    Parameters
    ----------
    ext_codes : (B, seq_len + D) uint8 reference codes from each window start (D >= the
        longest deletion)
    starts, positions, ref_lengths : (B,) int64 window start, REF start, REF length
    alts : (B,) str ALT alleles

    Returns
    -------
    (B, seq_len) uint8 codes
    """
    out = np.array(ext_codes[:, :seq_len])
    at = np.asarray(positions) - np.asarray(starts)
    alt_lengths = np.fromiter((len(a) for a in alts), np.int64, len(alts))
    snv = (np.asarray(ref_lengths) == 1) & (alt_lengths == 1)
    rows = np.flatnonzero(snv)
    if rows.size:
        out[rows, at[rows]] = np.fromiter((allele_codes(alts[i])[0] for i in rows), np.uint8,
                                          rows.size)
    for i in np.flatnonzero(~snv):
        k, r = int(at[i]), int(ref_lengths[i])
        haplotype = np.concatenate([ext_codes[i, :k], allele_codes(alts[i]), ext_codes[i, k + r:]])
        out[i] = haplotype[:seq_len]
    return out


def usable_windows(block, starts, offsets, seq_len, zone, chrom_sizes) -> np.ndarray:
    """(N, K) bool: window inside the chromosome, and the span from its centre to the REF allele
    clear of the exclusion zone (predict's rule for the interval scored)."""
    n, k = starts.shape
    lengths = block.ref_lengths
    sizes = np.fromiter((chrom_sizes[c] for c in block.chroms), np.int64, n)
    centre = starts + seq_len // 2
    lo = np.minimum(centre, block.positions[:, None])
    hi = np.maximum(centre + 1, (block.positions + lengths)[:, None])
    inside = (starts >= 0) & (starts + seq_len <= sizes[:, None])
    chroms = np.repeat(block.chroms, k)
    clear = ~zone.overlaps(chroms, lo.ravel(), hi.ravel()).reshape(n, k) if n else inside
    return inside & clear


# ------------------------------------------------------------------ effects

def log_odds(p) -> np.ndarray:
    """logit of probabilities clipped to [PROBABILITY_CLIP, 1 - PROBABILITY_CLIP] (float64)."""
    p = np.clip(np.asarray(p, np.float64), PROBABILITY_CLIP, 1 - PROBABILITY_CLIP)
    return np.log(p) - np.log1p(-p)


@dataclass
class BlockEffects:
    """Scores of one VariantBlock: ref, alt (A, C, K, T) float32, NaN where not scored."""
    block: object
    ref: np.ndarray
    alt: np.ndarray
    remaining: int = 0           # batches not yet scored

    def diff(self):
        """(A, C, T) alt - ref of the centred window."""
        return self.alt[:, :, 0] - self.ref[:, :, 0]

    def scan(self):
        """(A, C, T) diff of largest magnitude over the offsets, and (A, C, T) its offset index
        (-1 where no window was scored)."""
        d = self.alt - self.ref
        magnitude = np.where(np.isnan(d), -1.0, np.abs(d))
        best = magnitude.argmax(axis=2)
        value = np.take_along_axis(d, best[:, :, None], axis=2)[:, :, 0]
        return value, np.where(np.isnan(value), -1, best)


def _fmt(value):
    return "NA" if value != value else f"{value:.6g}"


def tsv_header(scan):
    cols = ["chrom", "pos", "id", "ref", "alt", "cell", "tf", "ref_prob", "alt_prob", "diff",
            "log_odds_diff"] + (["scan_diff", "scan_offset"] if scan else []) + ["status"]
    return "\t".join(cols) + "\n"


def tsv_lines(effects, cells, tfs, task_columns, offsets) -> str:
    """The TSV rows of one block: alleles in VCF order, then cells, then TFs."""
    block = effects.block
    ref = effects.ref[:, :, 0][:, :, task_columns]
    alt = effects.alt[:, :, 0][:, :, task_columns]
    diff = alt - ref
    lod = log_odds(alt) - log_odds(ref)
    scanning = len(offsets) > 1
    if scanning:
        scan_value, scan_index = effects.scan()
        scan_value, scan_index = scan_value[:, :, task_columns], scan_index[:, :, task_columns]
    out = []
    for i in range(len(block)):
        head = (f"{block.chroms[i]}\t{block.positions[i] + 1}\t{block.ids[i]}\t{block.refs[i]}\t"
                f"{block.alts[i]}\t")
        for k, cell in enumerate(cells):
            for t, tf in enumerate(tfs):
                scored = ref[i, k, t] == ref[i, k, t]
                row = [_fmt(ref[i, k, t]), _fmt(alt[i, k, t]), _fmt(diff[i, k, t]),
                       _fmt(lod[i, k, t])]
                if scanning:
                    j = scan_index[i, k, t]
                    row += [_fmt(scan_value[i, k, t]), "NA" if j < 0 else str(offsets[j])]
                out.append(f"{head}{cell}\t{tf}\t" + "\t".join(row)
                           + ("\tscored\n" if scored else "\texcluded\n"))
    return "".join(out)


def info_key(kind, cell, tf) -> str:
    """INFO key of one value: FN_<kind>_<cell>_<tf>, other characters than [0-9A-Za-z_.] -> _."""
    return re.sub(r"[^0-9A-Za-z_.]", "_", f"FN_{kind}_{cell}_{tf}")


_INFO_KINDS = (("REF", "reference-allele binding probability"),
               ("ALT", "alternative-allele binding probability"),
               ("DIFF", "ALT minus REF binding probability"),
               ("LOD", "log-odds difference logit(ALT) - logit(REF)"))


def info_header_lines(cells, tfs):
    return [f'##INFO=<ID={info_key(kind, cell, tf)},Number=A,Type=Float,Description="factornet '
            f'variants: {what} of {tf} in {cell}, window centred on REF">'
            for cell in cells for tf in tfs for kind, what in _INFO_KINDS]


class VcfAnnotator:
    """Writes the input VCF, header and records in order, with the effects as INFO fields."""

    def __init__(self, handle, cells, tfs, task_columns):
        self.handle = handle
        self.cells, self.tfs, self.task_columns = cells, tfs, task_columns
        self.info_written = False

    def _info_lines(self):
        if not self.info_written:
            self.info_written = True
            self.handle.write("".join(line + "\n" for line in info_header_lines(self.cells,
                                                                                  self.tfs)))

    def add(self, effects):
        block = effects.block
        for line in block.header:
            if line.startswith("#CHROM"):
                self._info_lines()
            self.handle.write(line + "\n")
        if not block.record_lines:
            return
        self._info_lines()
        ref = effects.ref[:, :, 0][:, :, self.task_columns]
        alt = effects.alt[:, :, 0][:, :, self.task_columns]
        values = {"REF": ref, "ALT": alt, "DIFF": alt - ref,
                  "LOD": log_odds(alt) - log_odds(ref)}
        by_record = {}
        for i, (record, allele) in enumerate(zip(block.records.tolist(), block.allele.tolist())):
            by_record.setdefault(record, []).append((allele, i))
        lines = []
        for record, text in enumerate(block.record_lines):
            rows = by_record.get(record)
            if rows is None:
                lines.append(text + "\n")
                continue
            n_alts = int(block.record_alts[record])
            extra = []
            for k, cell in enumerate(self.cells):
                for t, tf in enumerate(self.tfs):
                    for kind, _ in _INFO_KINDS:
                        cells = ["."] * n_alts
                        for allele, i in rows:
                            v = values[kind][i, k, t]
                            cells[allele] = "." if v != v else f"{v:.6g}"
                        extra.append(f"{info_key(kind, cell, tf)}={','.join(cells)}")
            fields = text.split("\t")
            info = fields[7]
            fields[7] = ";".join(extra) if info in (".", "") else info + ";" + ";".join(extra)
            lines.append("\t".join(fields) + "\n")
        self.handle.write("".join(lines))


class EffectMap:
    """Fixed-size summary of the effects for the plots: per cell x TF, the largest gain and loss
    in each of MANHATTAN_BINS genome bins, and the `top` rows of largest |diff|."""

    def __init__(self, chrom_sizes, n_cells, n_tfs, top):
        self.chroms = list(chrom_sizes)
        sizes = np.array([chrom_sizes[c] for c in self.chroms], np.int64)
        self.chrom_offset = dict(zip(self.chroms, np.concatenate([[0], np.cumsum(sizes)[:-1]])))
        self.chrom_sizes = dict(chrom_sizes)
        self.genome_size = int(sizes.sum())
        self.width = max(1, -(-self.genome_size // MANHATTAN_BINS))
        shape = (n_cells, n_tfs, MANHATTAN_BINS)
        self.high = np.full(shape, -np.inf)
        self.high_at = np.zeros(shape, np.int64)
        self.low = np.full(shape, np.inf)
        self.low_at = np.zeros(shape, np.int64)
        self.top = top
        self._heap = []              # (|diff|, tiebreak, record dict), the smallest first
        self._count = 0

    def add(self, effects, task_columns, cells):
        block = effects.block
        if not len(block):
            return
        diff = effects.diff()[:, :, task_columns]                      # (A, C, T)
        x = block.positions + np.fromiter((self.chrom_offset[c] for c in block.chroms),
                                          np.int64, len(block))
        bins = np.minimum(x // self.width, MANHATTAN_BINS - 1)
        for k in range(diff.shape[1]):
            for t in range(diff.shape[2]):
                d = diff[:, k, t]
                ok = np.flatnonzero(d == d)
                order = ok[np.argsort(d[ok], kind="stable")]
                for best, best_at, rows, better in (
                        (self.high, self.high_at, order, np.greater),
                        (self.low, self.low_at, order[::-1], np.less)):
                    cand = np.full(MANHATTAN_BINS, np.nan)
                    cand_at = np.zeros(MANHATTAN_BINS, np.int64)
                    cand[bins[rows]] = d[rows]          # the last write per bin wins
                    cand_at[bins[rows]] = x[rows]
                    win = better(cand, best[k, t]) & (cand == cand)
                    best[k, t][win], best_at[k, t][win] = cand[win], cand_at[win]
        if self.top:
            magnitude = np.abs(np.nan_to_num(diff, nan=0.0)).ravel()
            pick = np.argsort(-magnitude, kind="stable")[: self.top]
            for flat in pick:
                if magnitude[flat] <= 0:
                    break
                i, k, t = np.unravel_index(flat, diff.shape)
                item = (float(magnitude[flat]), -self._count, {
                    "chrom": str(block.chroms[i]), "position": int(block.positions[i]),
                    "ref": block.refs[i], "alt": block.alts[i], "id": block.ids[i],
                    "cell": int(k), "task": int(task_columns[t]), "tf_index": int(t),
                    "diff": float(diff[i, k, t])})
                self._count += 1
                if len(self._heap) < self.top:
                    heapq.heappush(self._heap, item)
                elif item[0] > self._heap[0][0]:
                    heapq.heapreplace(self._heap, item)

    def top_variants(self):
        """The rows of largest |diff|, largest first (dicts)."""
        return [item[2] for item in sorted(self._heap, key=lambda it: (-it[0], -it[1]))]


def plot_manhattan(path, effect_map, cells, tfs):
    """manhattan.png: diff along the genome (largest gain and loss per bin), a panel per cell x TF."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    panels = [(k, t) for k in range(len(cells)) for t in range(len(tfs))][:MANHATTAN_PANELS]
    fig, axes = plt.subplots(len(panels), 1, figsize=(12, 2.4 * len(panels) + 0.6), squeeze=False)
    starts = np.array([effect_map.chrom_offset[c] for c in effect_map.chroms])
    for ax, (k, t) in zip(axes[:, 0], panels):
        for values, at in ((effect_map.high[k, t], effect_map.high_at[k, t]),
                           (effect_map.low[k, t], effect_map.low_at[k, t])):
            ok = np.isfinite(values)
            chrom_index = np.searchsorted(starts, at[ok], side="right") - 1
            ax.scatter(at[ok], values[ok], s=4, c=np.where(chrom_index % 2, "#1f77b4", "#ff7f0e"),
                       rasterized=True)
        ax.axhline(0, color="grey", lw=0.5)
        ax.set_ylabel("ALT - REF")
        ax.set_title(f"{tfs[t]} in {cells[k]}", fontsize=9)
        ax.set_xlim(0, effect_map.genome_size)
        mids = [effect_map.chrom_offset[c] + effect_map.chrom_sizes[c] / 2 for c in effect_map.chroms]
        if len(mids) <= 40:
            ax.set_xticks(mids)
            ax.set_xticklabels(effect_map.chroms, rotation=0 if len(mids) <= 12 else 90,
                               fontsize=7)
    axes[-1, 0].set_xlabel("genome position (largest gain and loss per "
                           f"{effect_map.width:,}-bp bin)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_top_variants(path, top, model, stores, seq_len, cells, batch_size=None):
    """top_variants.png: ISM contributions (actual base) of the REF and ALT windows of each of
    `top` (EffectMap.top_variants) around the variant, and ALT - REF."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from factornet_jax.contributions import ism, ism_hypothetical
    from factornet_jax.labels import gencode_flags
    extra = max_allele_len(seq_len)
    fig, axes = plt.subplots(len(top), 1, figsize=(10, 2.2 * len(top) + 0.4), squeeze=False)
    for ax, item in zip(axes[:, 0], top):
        store = stores[item["cell"]]
        ref_len = len(item["ref"])
        start = int(window_starts([item["position"]], [ref_len], seq_len, [0])[0, 0])
        ext, signal = store.fetch_batch([item["chrom"]], [start], seq_len + extra, pad=True,
                                        as_codes=True)
        alt = alt_windows(ext, np.array([start]), np.array([item["position"]]),
                          np.array([ref_len]), np.array([item["alt"]], object), seq_len)
        codes = np.concatenate([ext[:, :seq_len], alt])
        onehot = codes_to_onehot(codes)
        sig = np.repeat(signal[:, :seq_len], 2, axis=0)
        meta = np.tile(store.meta_values, (2, 1)) if model.model_config.num_meta else None
        gencode = None
        if model.model_config.use_gencode:
            anchor = np.array([start + seq_len // 2 - BIN_SIZE // 2] * 2)
            gencode = gencode_flags(store.genome.annotations(), np.array([item["chrom"]] * 2),
                                    anchor)
        values = ism(model, onehot, sig, meta, gencode, task=item["task"], batch_size=batch_size)
        contribution = ism_hypothetical(values, onehot)[1].sum(axis=-1)      # (2, L)
        at = item["position"] - start
        lo, hi = max(0, at - TOP_FLANK), min(seq_len, at + ref_len + TOP_FLANK)
        x = np.arange(lo, hi) - at
        ax.plot(x, contribution[0, lo:hi], label="REF", lw=1)
        ax.plot(x, contribution[1, lo:hi], label="ALT", lw=1)
        ax.bar(x, contribution[1, lo:hi] - contribution[0, lo:hi], color="grey", alpha=0.5,
               label="ALT - REF")
        ax.axvspan(-0.5, ref_len - 0.5, color="red", alpha=0.1)
        ax.set_title(f"{item['chrom']}:{item['position'] + 1} {item['ref']}>{item['alt']} "
                     f"{model.tfs[item['task']]} in {cells[item['cell']]}: diff "
                     f"{item['diff']:+.3g}", fontsize=9)
        ax.set_ylabel("ISM contribution")
        ax.legend(fontsize=7, loc="upper right")
    axes[-1, 0].set_xlabel("bp from the variant (window positions; ALT bases after an indel "
                           "are shifted)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


# ------------------------------------------------------------------ the run

@dataclass(frozen=True)
class _Geometry:
    """The fixed shapes of a run."""
    seq_len: int                # model window
    ext_len: int                # bases read per row: seq_len + the longest deletion
    offsets: np.ndarray         # (K,) window-centre offsets, 0 first
    n_cells: int
    n_tasks: int                # model outputs
    rows: int                   # variant rows per compiled call (2 * rows windows)
    zone: object                # IntervalSet: the exclusion zone
    chrom_sizes: dict


@dataclass(frozen=True)
class _Batch:
    """Rows of one compiled call: (allele, cell, offset) indices into `effects`."""
    effects: BlockEffects
    allele: np.ndarray          # (n,) int64
    cell: np.ndarray            # (n,) int64
    offset: np.ndarray          # (n,) int64
    starts: np.ndarray          # (n,) int64 window starts

    def examples(self, geometry):
        """The rows as batches.Examples: windows of ext_len from each start, GENCODE flags of
        the 200-bp bin centred on the model window."""
        block, n = self.effects.block, len(self.allele)
        # window start w = bin_start + BIN_SIZE // 2 - ext_len // 2 (labels.window_starts)
        return Examples(self.cell.astype(np.int32), block.chroms[self.allele],
                        self.starts - BIN_SIZE // 2 + geometry.ext_len // 2,
                        np.zeros((n, 0), np.uint8),
                        self.starts + geometry.seq_len // 2 - BIN_SIZE // 2)

    def model_inputs(self, batch, geometry):
        """Loaded batch (codes (R, ext_len), signal (R, ext_len, S), ...) -> the model's batch
        of 2R windows: REF rows, then ALT rows, the same signal / meta / GENCODE for both."""
        block, n, seq_len = self.effects.block, len(self.allele), geometry.seq_len
        ext = batch["codes"]
        alt = np.full((geometry.rows, seq_len), 4, np.uint8)
        alt[:n] = alt_windows(ext[:n], self.starts, block.positions[self.allele],
                              block.ref_lengths[self.allele], block.alts[self.allele], seq_len)
        signal = np.ascontiguousarray(batch["signal"][:, :seq_len])
        inputs = {"codes": np.concatenate([ext[:, :seq_len], alt]),
                  "signal": np.concatenate([signal, signal])}
        for key in ("meta", "gencode"):
            if key in batch:
                inputs[key] = np.concatenate([batch[key], batch[key]])
        return inputs


def plan_block(block, geometry):
    """A block's empty BlockEffects, its _Batches (allele-major, then offset, then cell order
    of the usable windows) and the number of allele x cell pairs excluded."""
    n, n_cells, n_offsets = len(block), geometry.n_cells, len(geometry.offsets)
    starts = window_starts(block.positions, block.ref_lengths, geometry.seq_len, geometry.offsets)
    usable = usable_windows(block, starts, geometry.offsets, geometry.seq_len, geometry.zone,
                            geometry.chrom_sizes)
    shape = (n, n_cells, n_offsets, geometry.n_tasks)
    effects = BlockEffects(block, np.full(shape, np.nan, np.float32),
                           np.full(shape, np.nan, np.float32))
    allele, offset = np.nonzero(usable)
    allele, offset = np.repeat(allele, n_cells), np.repeat(offset, n_cells)
    cell = np.tile(np.arange(n_cells), len(allele) // n_cells)
    batches = [_Batch(effects, allele[lo: lo + geometry.rows], cell[lo: lo + geometry.rows],
                      offset[lo: lo + geometry.rows],
                      starts[allele[lo: lo + geometry.rows], offset[lo: lo + geometry.rows]])
               for lo in range(0, len(allele), geometry.rows)]
    effects.remaining = len(batches)
    return effects, batches, int((~usable[:, 0]).sum()) * n_cells


def _check_inputs(batch_size, threads, loader_processes, compute_dtype, top):
    if batch_size is not None and batch_size < 2:
        raise ConfigError(f"--batch {batch_size}: must be at least 2 (a REF and an ALT window)")
    check_compute_settings(threads, loader_processes, compute_dtype)
    if top < 0:
        raise ConfigError(f"--top {top}: must be 0 or more")


def _open_stores(paths, stores_dir, model, tf):
    """Cell stores of -i (same tracks and meta, one genome), checked against the model."""
    from factornet_jax.reader import open_stores
    stores = open_stores(paths, stores_dir, "-i")
    for store in stores:
        model.check_store(store, tf if tf is not None else model.tfs[0])
        if store.genome.fingerprint != stores[0].genome.fingerprint:
            raise FactorNetError(f"-i {store.path}: built on another genome than {stores[0].path}; "
                                 "score cell stores of one genome together")
    names = [store.name for store in stores]
    if len(set(names)) != len(names):
        raise FactorNetError(f"-i: two stores of the same cell name {names}; give each once")
    return stores


def _common_sizes(stores):
    """{chrom: size} of the chromosomes every store holds, in the first store's order."""
    sizes = dict(stores[0].chrom_sizes)
    for store in stores[1:]:
        sizes = {c: s for c, s in sizes.items() if c in store.chrom_sizes}
    return sizes


def _scan_vcf(vcf_path, stores, chrom_sizes, limit, skip_ref_mismatch, block_lines):
    """The checking pass: every line parsed, contigs and REF checked; VcfCounts of the file."""
    counts = VcfCounts()
    for block in iter_vcf_blocks(vcf_path, chrom_sizes, limit, block_lines, counts):
        check_refs(block, stores[0].genome, vcf_path, skip_ref_mismatch, counts)
    return counts


def score_variants(cell_stores, model_dir, vcf_path, out_dir, tf=None, vcf_out=False, scan=0,
                   top=5, batch_size=None, threads=1, prefetch=4, loader_processes=0,
                   overwrite=False, stores_dir="stores", checkpoint="best",
                   compute_dtype="float32", lstm_backend="scan", skip_ref_mismatch=False,
                   plots=True, block_lines=BLOCK_LINES, progress=None) -> VariantSummary:
    """Score every variant of `vcf_path` in every cell store; write the folder `out_dir`.

    Parameters
    ----------
    cell_stores : cell store paths (or cell folders built into `stores_dir`), same tracks
    model_dir : model directory; tf : the TF to write (None: every TF of the model)
    vcf_path : VCF, plain / gzip / bgzip, any order (vcf.py says what is read and skipped)
    out_dir : the output folder (module docstring); overwrite : -oc
    vcf_out : also write variants.vcf.gz; scan : also the largest effect over windows moved
        by multiples of 50 bp within +-scan; top : variants in top_variants.png (0: none)
    batch_size : windows per compiled call (2 per variant row; default as predict's)
    threads, prefetch, loader_processes : batch loading, as in predict
    skip_ref_mismatch : skip (and count) alleles whose REF differs from the genome store
    plots : write the PNGs

    Returns
    -------
    VariantSummary
    """
    import jax

    from factornet_jax.model import check_lstm_backend
    from factornet_jax.modeldir import load_model
    from factornet_jax.predict import (ACCELERATOR_BATCH_PER_DEVICE, CPU_BATCH_PER_DEVICE,
                                       _eval_step)
    from factornet_jax.steps import global_batch

    t_start = time.perf_counter()
    _check_inputs(batch_size, threads, loader_processes, compute_dtype, top)
    cell_stores = [cell_stores] if isinstance(cell_stores, (str, os.PathLike)) else list(cell_stores)
    inputs = tuple(cell_stores) + (model_dir, vcf_path)
    check_output(out_dir, overwrite, VARIANTS, inputs)

    model = load_model(model_dir, which=checkpoint)
    stores = _open_stores(cell_stores, stores_dir, model, tf)
    from factornet_jax.drift import normalize_for_model
    for store in stores:   # the read-time normalisation the model was trained with
        normalize_for_model(model, store)
    cfg = model.model_config
    if cfg.recurrent > 0:
        check_lstm_backend(lstm_backend, cfg.lstm_cell)
    seq_len = cfg.seq_len
    limit = max_allele_len(seq_len)
    offsets = scan_offsets(scan, seq_len)
    task_columns = [model.tfs.index(tf)] if tf is not None else list(range(len(model.tfs)))
    tfs = tuple(model.tfs[i] for i in task_columns)
    cells = tuple(store.name for store in stores)
    chrom_sizes = _common_sizes(stores)
    counts = _scan_vcf(vcf_path, stores, chrom_sizes, limit, skip_ref_mismatch, block_lines)

    n_cells, n_offsets = len(stores), len(offsets)
    n_devices = jax.device_count()
    if batch_size is None:
        per_device = (CPU_BATCH_PER_DEVICE if jax.default_backend() == "cpu"
                      else ACCELERATOR_BATCH_PER_DEVICE)
        batch_size = per_device * n_devices
    rows_per_batch = max(1, min(batch_size // 2, counts.alleles * n_cells * n_offsets))
    rows_per_batch = -(-rows_per_batch // n_devices) * n_devices
    eval_step, data_sharding, replicated = _eval_step(cfg, n_devices, compute_dtype, lstm_backend)
    params = jax.device_put(model.params, replicated)
    zone = exclusion_zone(stores[0].genome.blacklist(), chrom_sizes, seq_len)
    ext_len = seq_len + limit
    spec = BatchSpec(ext_len, bool(cfg.num_meta), cfg.use_gencode)
    assembler = BatchAssembler(stores, spec)
    layout = assembler.layout(rows_per_batch, 0)
    effect_map = EffectMap(chrom_sizes, n_cells, len(tfs), top if plots else 0)
    geometry = _Geometry(seq_len, ext_len, offsets, n_cells, len(model.tfs), rows_per_batch, zone,
                         chrom_sizes)
    pending = deque()            # BlockEffects in VCF order, written when fully scored
    scheduled = deque()          # _Batch (or the BlockEffects of a block without rows)
    totals = {"rows": 0, "excluded": 0, "windows": 0}

    def batches_of_blocks():
        for block in iter_vcf_blocks(vcf_path, chrom_sizes, limit, block_lines):
            keep = check_refs(block, stores[0].genome, vcf_path, skip_ref_mismatch)
            effects, batches, n_excluded = plan_block(block.take(np.flatnonzero(keep)), geometry)
            totals["rows"] += len(effects.block) * n_cells
            totals["excluded"] += n_excluded
            pending.append(effects)
            bar.update(n_excluded)
            yield from batches if batches else [effects]

    def row_batches():
        for item in batches_of_blocks():
            scheduled.append(item)
            yield None if isinstance(item, BlockEffects) else item.examples(geometry)

    def write_finished(tsv, vcf_writer):
        while pending and pending[0].remaining == 0:
            effects = pending.popleft()
            tsv.write(tsv_lines(effects, cells, tfs, task_columns, offsets))
            if vcf_writer is not None:
                vcf_writer.add(effects)
            effect_map.add(effects, task_columns, cells)

    def collect(item, probs):
        probs = np.asarray(jax.device_get(probs))
        n = len(item.allele)
        where = (item.allele, item.cell, item.offset)
        item.effects.ref[where] = probs[:n]
        item.effects.alt[where] = probs[rows_per_batch: rows_per_batch + n]   # ALT rows follow
        item.effects.remaining -= 1
        bar.update(int((item.offset == 0).sum()))

    timing = {}

    def write_contents(folder):
        t_scoring = time.perf_counter()
        vcf_handle = None
        with gzip.open(Path(folder) / TSV_NAME, "wt", encoding="utf-8") as tsv, \
                batch_workers(loader_processes, layout) as workers:
            tsv.write(tsv_header(n_offsets > 1))
            if vcf_out:
                vcf_handle = gzip.open(Path(folder) / VCF_NAME, "wt", encoding="utf-8")
            vcf_writer = (VcfAnnotator(vcf_handle, cells, tfs, task_columns)
                          if vcf_handle is not None else None)
            try:
                if workers is not None:
                    loaded = workers.map(stores, spec, layout,
                                         row_batches())
                else:
                    loaded = ordered_map(
                        lambda rows: assembler.fill(empty_batch(layout), layout, rows),
                        row_batches(), threads, max(prefetch, threads))
                in_flight = None
                for batch in loaded:
                    item = scheduled.popleft()
                    if batch is None:
                        write_finished(tsv, vcf_writer)
                        continue
                    probs = eval_step(params, global_batch(item.model_inputs(batch, geometry),
                                                           data_sharding))
                    totals["windows"] += 2 * len(item.allele)
                    if in_flight is not None:
                        collect(*in_flight)
                    in_flight = (item, probs)
                    write_finished(tsv, vcf_writer)
                if in_flight is not None:
                    collect(*in_flight)
                write_finished(tsv, vcf_writer)
                assert not pending, "every block is written once its batches are scored"
            finally:
                if vcf_handle is not None:
                    vcf_handle.close()
        timing["scoring"] = time.perf_counter() - t_scoring
        if plots:
            plot_manhattan(Path(folder) / MANHATTAN_NAME, effect_map, cells, tfs)
            chosen = effect_map.top_variants()
            if chosen:
                plot_top_variants(Path(folder) / TOP_NAME, chosen, model, stores, seq_len, cells)

    try:
        with Progress("variants", total=counts.alleles * n_cells, unit="variants",
                      enabled=progress) as bar:
            write_dir_atomically(out_dir, overwrite, write_contents, VARIANTS, inputs)
    finally:   # the stores' open shard files and decode threads
        for store in stores:
            store.close()
    scored = totals["rows"] - totals["excluded"]
    seconds = time.perf_counter() - t_start
    scoring = max(timing.get("scoring", 0.0), 1e-9)
    return VariantSummary(str(out_dir), cells, tfs, counts, totals["rows"], totals["excluded"],
                          totals["windows"], 2 * rows_per_batch, n_devices, seconds,
                          scored / scoring, totals["windows"] / scoring)


def format_summary(summary: VariantSummary) -> str:
    """The one-line summary the CLI prints."""
    skipped = summary.counts.skipped()
    skipped_text = (", skipped " + ", ".join(f"{n:,} {why}" for why, n in skipped.items())
                    if skipped else "")
    return (f"variants: {summary.counts.records:,} records, {summary.counts.alleles:,} alleles "
            f"x {len(summary.cells)} cell(s) x {len(summary.tfs)} TF(s) "
            f"({summary.n_excluded:,} allele x cell excluded -> NA{skipped_text}) in "
            f"{summary.seconds:.1f} s, {summary.variants_per_second:,.0f} variants/s "
            f"({summary.windows_per_second:,.0f} windows/s) on {summary.devices} device(s); "
            f"wrote {summary.out_dir}")


def read_effects(path) -> list:
    """Rows of a variants.tsv.gz as dicts (str values; tests and scripts)."""
    with gzip.open(path, "rt", encoding="utf-8") as handle:
        header = handle.readline().rstrip("\n").split("\t")
        return [dict(zip(header, line.rstrip("\n").split("\t"))) for line in handle]

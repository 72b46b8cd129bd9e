"""Label building at hg19 scale from the real FactorNet peaks, against bedtools.

    python benchmarks/labels_bench.py [--shared ../shared/data] [--no-bedtools]

Multi-task: all HepG2 conservative peak files -> positive bins (200 bp, 50 bp grid, > 100 bp
covered) with per-TF labels, outside the exclusion zone (blacklist +/- L, chromosome ends),
plus one epoch of as many negatives. Single-task: CTCF over the 6 cell lines with peak files
-> positives (midpoints, jittered) and one epoch of negatives outside relaxed peaks (+200 bp)
and the exclusion zone. Training chromosomes: all but chr11 (validation) and chr1, chr8, chr21
(test).

Peer, timed in the same run: FactorNet's way, `bedtools makewindows -w 200 -s 50 |
bedtools intersect -wo` against the merged peaks (summed overlap > 100 bp), windows touching
the exclusion zone removed with `intersect -v`, then one `intersect -wo` per TF for the
labels. The bin sets and labels must be identical.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from factornet_jax.bed import read_bed, read_chrom_sizes, write_bed
from factornet_jax.intervals import IntervalSet
from factornet_jax.labels import (
    exclusion_zone, jitter_positive_bins, multitask_bins, multitask_negative_exclusion,
    sample_negative_bins, singletask_negative_exclusion, singletask_positives,
)

HELD_OUT = ("chr1", "chr8", "chr11", "chr21")
CTCF_CELLS = ("A549", "H1-hESC", "HeLa-S3", "HepG2", "IMR-90", "K562")
# Sum the -wo overlaps of each window (consecutive lines with -sorted), keep > half a bin.
AWK_SUM = (
    "awk -v OFS='\\t' -v half={half} '{{k=$1 OFS $2 OFS $3; "
    "if (k != prev) {{ if (prev != \"\" && s > half) print prev; prev = k; s = 0 }} s += $NF }} "
    "END {{ if (prev != \"\" && s > half) print prev }}'"
)


class Timer:
    def __init__(self):
        self.rows = []

    def __call__(self, name, fn, count=lambda r: ""):
        start = time.perf_counter()
        result = fn()
        seconds = time.perf_counter() - start
        self.rows.append((name, seconds, count(result)))
        print(f"  {name:<58} {seconds:8.2f} s  {count(result)}", file=sys.stderr)
        return result


def sh(command: str) -> None:
    subprocess.run(["bash", "-o", "pipefail", "-c", command], check=True)


def multitask(args, sizes, chroms, timer):
    cell = args.shared / "cells" / "HepG2"
    files = sorted(cell.glob("ChIPseq.HepG2.*.conservative.train.narrowPeak.gz"))
    tfs = [p.name.split(".")[2] for p in files]

    def load():
        peaks = [IntervalSet.from_records(read_bed(p, sizes)) for p in files]
        blacklist = IntervalSet.from_records(
            read_bed(args.shared / "resources" / "blacklist.bed.gz", sizes, drop_unknown_chroms=True))
        return peaks, exclusion_zone(blacklist, sizes, args.seq_len)

    peaks, zone = timer(f"multi-task: read {len(files)} HepG2 peak files + zone", load)
    bins = timer("multi-task: positive bins + labels (ours)",
                 lambda: multitask_bins(peaks, chroms, sizes, zone), lambda b: f"{len(b):,} bins")
    rng = np.random.default_rng(args.seed)
    negatives = timer(
        "multi-task: one epoch of negatives (ours)",
        lambda: sample_negative_bins(rng, len(bins), multitask_negative_exclusion(peaks, zone, sizes),
                                     chroms, sizes, num_tasks=len(tfs)),
        lambda b: f"{len(b):,} bins")
    assert not multitask_negative_exclusion(peaks, zone, sizes).overlaps(
        negatives.chroms, negatives.starts, negatives.starts + 200).any()
    return files, tfs, peaks, zone, bins


def multitask_bedtools(args, sizes, chroms, files, zone, bins, timer, tmp: Path):
    """FactorNet's bedtools pipeline; returns whether it matches ``bins`` exactly."""
    genome = tmp / "train.genome"  # lexicographic order, as `sort -k1,1` gives the BEDs
    genome.write_text("".join(f"{c}\t{sizes[c]}\n" for c in sorted(chroms)))
    zone_bed = tmp / "zone.bed"
    write_bed(zone_bed, zone.select(sorted(chroms)).to_records())
    keep_chroms = "|".join(chroms)
    half = 100

    def merged(out: Path, sources) -> str:
        names = " ".join(str(s) for s in sources)
        return (f"zcat {names} | cut -f1-3 | grep -E '^({keep_chroms})\\s' "
                f"| sort -k1,1 -k2,2n -S 1G | bedtools merge > {out}")

    def positives():
        sh(merged(tmp / "union.bed", files))
        sh(f"bedtools makewindows -g {genome} -w 200 -s 50 "
           f"| awk '$3 - $2 == 200' "
           f"| bedtools intersect -sorted -g {genome} -a stdin -b {tmp / 'union.bed'} -wo "
           f"| {AWK_SUM.format(half=half)} "
           f"| bedtools intersect -sorted -g {genome} -a stdin -b {zone_bed} -v "
           f"> {tmp / 'positive.bed'}")

    def labels():
        for i, path in enumerate(files):
            sh(merged(tmp / f"tf{i}.bed", [path]))
            sh(f"bedtools intersect -sorted -g {genome} -a {tmp / 'positive.bed'} "
               f"-b {tmp / f'tf{i}.bed'} -wo | {AWK_SUM.format(half=half)} > {tmp / f'lab{i}.bed'}")

    timer("multi-task: bedtools makewindows | intersect (positives)", positives)
    timer(f"multi-task: bedtools intersect per TF (labels, {len(files)} TFs)", labels)

    # untimed: read the bedtools results back
    code = {c: i for i, c in enumerate(chroms)}

    def keys(records):  # one int64 per bin: chromosome index and start
        index = np.array([code[c] for c in records["chrom"].tolist()], np.int64)
        return (index << 32) + records["start"]

    positive = read_bed(tmp / "positive.bed")
    all_keys = keys(positive)
    columns = [np.isin(all_keys, keys(read_bed(tmp / f"lab{i}.bed"))) for i in range(len(files))]
    bt_labels = np.stack(columns, axis=1).astype(np.uint8)
    print(f"  bedtools: {len(positive):,} positive bins", file=sys.stderr)

    # same bins and labels? (ours is in `chroms` order, bedtools in lexicographic order)
    ours = np.lexsort((bins.starts, bins.chroms))
    theirs = np.lexsort((positive["start"], positive["chrom"]))
    same = (
        len(ours) == len(theirs)
        and np.array_equal(bins.chroms[ours], positive["chrom"][theirs])
        and np.array_equal(bins.starts[ours], positive["start"][theirs])
        and np.array_equal(bins.labels[ours], bt_labels[theirs])
    )
    return same


def singletask(args, sizes, chroms, timer):
    blacklist = IntervalSet.from_records(
        read_bed(args.shared / "resources" / "blacklist.bed.gz", sizes, drop_unknown_chroms=True))
    zone = exclusion_zone(blacklist, sizes, args.seq_len)
    rng = np.random.default_rng(args.seed)

    def build():
        totals = [0, 0]
        for cell in CTCF_CELLS:
            folder = args.shared / "cells" / cell
            conservative = read_bed(folder / f"ChIPseq.{cell}.CTCF.conservative.train.narrowPeak.gz", sizes)
            relaxed = IntervalSet.from_records(
                read_bed(folder / f"ChIPseq.{cell}.CTCF.relaxed.narrowPeak.gz", sizes))
            pos_chroms, mids, widths = singletask_positives(conservative, chroms, zone)
            starts = jitter_positive_bins(rng, pos_chroms, mids, widths)
            excluded = singletask_negative_exclusion(relaxed, zone, sizes)
            negatives = sample_negative_bins(rng, args.negatives * len(starts), excluded, chroms, sizes)
            assert not excluded.overlaps(negatives.chroms, negatives.starts, negatives.starts + 200).any()
            totals[0] += len(starts)
            totals[1] += len(negatives)
        return totals

    timer("single-task CTCF x6 cells: read + positives + negatives",
          build, lambda t: f"{t[0]:,} pos / {t[1]:,} neg")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shared", type=Path,
                        default=Path(__file__).resolve().parents[2] / "shared" / "data")
    parser.add_argument("--seq-len", type=int, default=1000)
    parser.add_argument("--negatives", type=int, default=1, help="negatives per positive")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--no-bedtools", action="store_true")
    args = parser.parse_args(argv)
    if not args.shared.is_dir():
        print(f"{args.shared}: reference data not found; pass --shared", file=sys.stderr)
        return 1
    sizes = read_chrom_sizes(args.shared / "resources" / "hg19.autoX.chrom.sizes")
    chroms = [c for c in sizes if c not in HELD_OUT]
    timer = Timer()
    print(f"hg19 training chromosomes: {len(chroms)} ({sum(sizes[c] for c in chroms) / 1e9:.2f} Gb)",
          file=sys.stderr)
    files, tfs, peaks, zone, bins = multitask(args, sizes, chroms, timer)
    singletask(args, sizes, chroms, timer)
    same = None
    if not args.no_bedtools and shutil.which("bedtools"):
        with tempfile.TemporaryDirectory() as tmp:
            same = multitask_bedtools(args, sizes, chroms, files, zone, bins, timer, Path(tmp))

    print("\n| step | seconds | result |\n|---|---:|---|")
    for name, seconds, count in timer.rows:
        print(f"| {name} | {seconds:.2f} | {count} |")
    ours = dict((n, s) for n, s, _ in timer.rows)
    if same is not None:
        bt = (ours["multi-task: bedtools makewindows | intersect (positives)"]
              + ours[f"multi-task: bedtools intersect per TF (labels, {len(files)} TFs)"])
        mine = ours["multi-task: positive bins + labels (ours)"]
        read = ours[f"multi-task: read {len(files)} HepG2 peak files + zone"]
        print(f"\nmulti-task bins + labels: ours {mine:.2f} s ({mine + read:.2f} s with reading "
              f"the peaks), bedtools {bt:.2f} s (bedtools / ours = {bt / mine:.0f}x, "
              f"{bt / (mine + read):.0f}x with reading); identical bin sets and labels: {same}")
        if not same:
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())

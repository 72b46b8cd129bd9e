"""Peak memory of training on a genome-sized store (issue 8: <= 2 GB where FactorNet needs ~24 GB).

    python benchmarks/rss_genome_scale.py [--work DIR] [--sizes ../shared/data/resources/hg19.autoX.chrom.sizes]
                                          [--scale 1.0] [--steps 40]

Writes a random genome with hg19's chromosome sizes (chr1-22, X: 3.1 Gb), a flat mappability
bigWig and a DNase-like bigWig open at the real HepG2 CTCF peaks (../shared/data), with those
real peak files as chip.txt; builds the stores; then trains a default-size onePeak CTCF model
(-k 32 -r 32 -d 128, L 1000, batch 100) for a few steps in a fresh process and reports its peak
RSS (VmHWM), beside the same run on a store `--small-scale` times smaller (two genome sizes:
memory should not grow with the genome). `--scale` shrinks every chromosome (e.g. 0.1) for a
quicker run.
"""
import argparse
import gzip
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"


def write_genome(path, sizes, rng):
    """Random ACGT FASTA, 60 bases a line, written in blocks (bounded memory)."""
    with open(path, "wb") as handle:
        for chrom, size in sizes.items():
            handle.write(f">{chrom}\n".encode())
            lines_left, tail = divmod(size, 60)
            block = 200_000
            letters = np.frombuffer(b"ACGT", dtype=np.uint8)
            while lines_left:
                n = min(block, lines_left)
                rows = np.empty((n, 61), dtype=np.uint8)
                rows[:, :60] = letters[rng.integers(0, 4, (n, 60))]
                rows[:, 60] = 10
                handle.write(rows.tobytes())
                lines_left -= n
            if tail:
                handle.write(letters[rng.integers(0, 4, tail)].tobytes() + b"\n")


def read_peaks(path, sizes):
    rows = []
    with gzip.open(path, "rt") as handle:
        for line in handle:
            f = line.split("\t")
            if f[0] in sizes and int(f[2]) <= sizes[f[0]]:
                rows.append(f[:10])
    return rows


def write_cell(folder, sizes, peaks_src, relaxed_src):
    import pyBigWig
    folder.mkdir(parents=True, exist_ok=True)
    conservative = read_peaks(peaks_src, sizes)
    relaxed = read_peaks(relaxed_src, sizes)
    for name, rows in (("CTCF.conservative.narrowPeak.gz", conservative),
                       ("CTCF.relaxed.narrowPeak.gz", relaxed)):
        with gzip.open(folder / name, "wt") as handle:
            handle.writelines("\t".join(r) + "\n" for r in rows)
    by_chrom = {}
    for r in relaxed:
        by_chrom.setdefault(r[0], []).append((int(r[1]), int(r[2])))
    bw = pyBigWig.open(str(folder / "dnase.bw"), "w")
    bw.addHeader(list(sizes.items()))
    for chrom in sizes:
        spans = sorted(by_chrom.get(chrom, []))
        starts, ends, last = [], [], -1
        for s, e in spans:
            s = max(s, last)
            if e > s:
                starts.append(s)
                ends.append(e)
                last = e
        if starts:
            bw.addEntries([chrom] * len(starts), starts, ends=ends, values=[5.0] * len(starts))
    bw.close()
    bw = pyBigWig.open(str(folder / "map.bw"), "w")
    bw.addHeader(list(sizes.items()))
    for chrom, size in sizes.items():
        bw.addEntries([chrom], [0], ends=[size], values=[1.0])
    bw.close()
    (folder / "bigwig.txt").write_text("map.bw\tUnique35\ndnase.bw\tDGF\n")
    (folder / "chip.txt").write_text("CTCF.conservative.narrowPeak.gz\tCTCF\tCTCF.relaxed.narrowPeak.gz\n")


def peak_rss_of(cmd):
    """Run cmd; return (seconds, peak RSS in MB) of that process (VmHWM via wait4)."""
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    out = proc.stdout.read()
    _, status, usage = os.wait4(proc.pid, 0)
    if status != 0:
        raise SystemExit(f"command failed: {' '.join(cmd)}\n{out[-2000:]}")
    return time.perf_counter() - t0, usage.ru_maxrss / 1024


def prepare(work, sizes):
    rng = np.random.default_rng(0)
    work.mkdir(parents=True, exist_ok=True)
    fasta = work / "genome.fa"
    if not (work / "genome.done").exists():
        write_genome(fasta, sizes, rng)
        write_cell(work / "HepG2", sizes, SHARED / "cells/HepG2/ChIPseq.HepG2.CTCF.conservative.train.narrowPeak.gz",
                   SHARED / "cells/HepG2/ChIPseq.HepG2.CTCF.relaxed.narrowPeak.gz")
        blacklist = read_peaks(SHARED / "resources/blacklist.bed.gz", sizes)
        with gzip.open(work / "blacklist.bed.gz", "wt") as handle:
            handle.writelines("\t".join(r[:3]).rstrip("\n") + "\n" for r in blacklist)
        (work / "genome.done").touch()
    build = [sys.executable, "-m", "preprocess", "build", "-i", str(work / "HepG2"), "--genome",
             str(fasta), "--stores", str(work / "stores"),
             "--blacklist", str(work / "blacklist.bed.gz")]
    seconds, rss = peak_rss_of(build)
    return seconds, rss


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", default="bench_data/genome_scale")
    parser.add_argument("--sizes", default=str(SHARED / "resources/hg19.autoX.chrom.sizes"))
    parser.add_argument("--scale", type=float, default=1.0)
    parser.add_argument("--small-scale", type=float, default=0.1)
    parser.add_argument("--steps", type=int, default=40)
    args = parser.parse_args()
    full = {}
    for line in open(args.sizes):
        name, size = line.split()[:2]
        full[name] = int(size)
    rows = []
    for scale in (args.scale * args.small_scale, args.scale):
        sizes = {c: int(s * scale) for c, s in full.items()}
        work = Path(args.work) / f"scale{scale:g}"
        build_s, build_rss = prepare(work, sizes)
        train = [sys.executable, "-m", "train", "run", "-i", str(work / "stores" / "HepG2.zarr"),
                 "-f", "CTCF", "-e", "1", "--max-steps", str(args.steps), "--batch-size", "100",
                 "-oc", str(work / "model")]
        train_s, train_rss = peak_rss_of(train)
        rows.append((sum(sizes.values()), build_s, build_rss, train_s, train_rss))
    print("genome Gb   build s   build peak RSS   train s   train peak RSS")
    for bases, build_s, build_rss, train_s, train_rss in rows:
        print(f"{bases / 1e9:9.2f}   {build_s:7.0f}   {build_rss:11.0f} MB   {train_s:7.0f}   "
              f"{train_rss:11.0f} MB")


if __name__ == "__main__":
    main()

"""`factornet variants`: speed against predict, peak RSS against the number of variants, and the
effects of simulated variants at planted motifs (issue 18). Results: docs/BENCHMARKS.md.

    python benchmarks/variants_bench.py --work DIR [--sim SIM_DIR --stores STORES_DIR]
        [--cell CellC] [--model TRAINED_MODEL_DIR] [--speed-n 3000] [--rss 10000,100000,1000000]
        [--effects 500] [--sections speed,rss,effects]

Without --sim / --stores a 4-Mb dataset is simulated and built in --work. Sections:

speed    N random SNVs of the cell store as a VCF, and the N 1-bp intervals at the same
         positions as a BED: `predict_bed` windows/s and `score_variants` variants/s, same model
         (default size: L 1000, -k 32 -r 32 -d 128, random weights; speed does not depend on
         training), same batch (64 windows: 32 variants x REF/ALT), same loader, alternated
         twice after a warm-up in one process; the ratio is variants/s over predict windows/s.
rss      peak RSS (VmHWM) of a fresh process scoring 1e4, 1e5, 1e6 random SNVs (a small model:
         L 200, -k 8 -r 8 -d 16, so 1e6 variants take minutes on a CPU; memory must not grow with N).
effects  with --model (a model trained on the simulated data, e.g. the demo's): three groups of
         variants, in the cell given: (a) the planted motif of a site bound in that cell replaced
         base by base (each base -> the next of A C G T) - a destroyed motif; (b) the same at
         motif sites closed in that cell (truth probability 0); (c) random SNVs >= 2 kb from
         every truth site. Prints each group's distribution of ALT - REF.
"""
import argparse
import gzip
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

HEADER = "##fileformat=VCFv4.2\n#CHROM\tPOS\tID\tREF\tALT\tQUAL\tFILTER\tINFO\n"
LETTERS = np.array(list("ACGTN"))


def vm_hwm_mb():
    with open("/proc/self/status") as handle:
        for line in handle:
            if line.startswith("VmHWM"):
                return int(line.split()[1]) / 1024
    return float("nan")


def random_model(folder, track_names, seq_len, kernels, recurrent, dense, seed=0):
    """A model dir of the given size with random weights."""
    import jax

    from factornet_jax import modeldir
    from factornet_jax.model import ModelConfig, abstract_params
    if Path(folder, "config.json").exists():
        return folder
    cfg = ModelConfig(seq_len=seq_len, track_names=tuple(track_names), kernels=kernels,
                      recurrent=recurrent, dense=dense)
    rng = np.random.default_rng(seed)
    params = jax.tree_util.tree_map(lambda leaf: rng.normal(0, 0.2, leaf.shape).astype(np.float32),
                                    abstract_params(cfg))
    Path(folder).mkdir(parents=True)
    modeldir.write_config(folder, modeldir.make_config(cfg, ["TF"], list(track_names)))
    modeldir.save_params(Path(folder) / "best.npz", params)
    return folder


def random_snvs(store, n, rng, margin=2_000):
    """(chroms, positions, refs) of n random SNV positions with an A/C/G/T reference base, in
    genome order shuffled (the VCF need not be sorted)."""
    sizes = store.chrom_sizes
    names = list(sizes)
    lengths = np.array([max(sizes[c] - 2 * margin, 0) for c in names], np.float64)
    chroms = rng.choice(len(names), n, p=lengths / lengths.sum())
    positions = margin + (rng.random(n) * lengths[chroms]).astype(np.int64)
    chrom_names = np.array(names)[chroms]
    codes = np.concatenate([store.genome.fetch_codes_batch(chrom_names[lo:lo + 100_000],
                                                           positions[lo:lo + 100_000], 1)[:, 0]
                            for lo in range(0, n, 100_000)])
    keep = codes < 4
    return chrom_names[keep], positions[keep], codes[keep]


def write_snv_vcf(path, chroms, positions, ref_codes, rng, prefix="v"):
    alt_codes = (ref_codes + rng.integers(1, 4, len(ref_codes))) % 4
    with gzip.open(path, "wt", compresslevel=1) as handle:
        handle.write(HEADER)
        for lo in range(0, len(positions), 100_000):
            sl = slice(lo, lo + 100_000)
            handle.write("".join(
                f"{c}\t{p + 1}\t{prefix}{lo + i}\t{r}\t{a}\t.\tPASS\t.\n" for i, (c, p, r, a) in
                enumerate(zip(chroms[sl], positions[sl].tolist(), LETTERS[ref_codes[sl]],
                              LETTERS[alt_codes[sl]]))))
    return path


def prepare_data(args):
    """(stores dir, sim dir): given, or simulated and built in --work."""
    if args.stores and args.sim:
        return Path(args.stores), Path(args.sim)
    from factornet_jax.build import BuildRequest, build_stores
    from factornet_jax.simulate import SimulationConfig, simulate
    sim_dir, stores = Path(args.work) / "sim", Path(args.work) / "stores"
    if not (sim_dir / "truth.tsv.gz").exists():
        simulate(sim_dir, SimulationConfig(seed=1, genome_mb=4.0))
    if not (stores / f"{args.cell}.zarr").exists():
        cells = sorted(p for p in (sim_dir / "cells").iterdir() if p.is_dir())
        build_stores(BuildRequest(cell_dirs=tuple(str(c) for c in cells),
                                  genome=str(sim_dir / "genome.fa"), stores_dir=str(stores),
                                  blacklist=str(sim_dir / "blacklist.bed.gz")))
    return stores, sim_dir


def section_speed(args, store_path, work):
    from factornet_jax.predict import predict_bed
    from factornet_jax.reader import open_cell_store
    from factornet_jax.variants import score_variants
    store = open_cell_store(store_path)
    model = random_model(work / "model_default", store.track_names, 1000, 32, 32, 128)
    rng = np.random.default_rng(1)
    chroms, positions, refs = random_snvs(store, args.speed_n, rng)
    vcf = write_snv_vcf(work / "speed.vcf.gz", chroms, positions, refs, rng)
    bed = work / "speed.bed"
    bed.write_text("".join(f"{c}\t{p}\t{p + 1}\n" for c, p in zip(chroms, positions.tolist())))
    warm = work / "warm.bed"
    warm.write_text("".join(f"{c}\t{p}\t{p + 1}\n" for c, p in
                            zip(chroms[:128], positions[:128].tolist())))
    common = dict(batch_size=64, threads=1, loader_processes=args.loader_processes)
    predict_bed(store_path, model, warm, work / "warm.bedGraph.gz", overwrite=True, **common)
    rows = []
    for repeat in range(2):
        p = predict_bed(store_path, model, bed, work / "speed.bedGraph.gz", overwrite=True, **common)
        v = score_variants([store_path], model, vcf, work / "speed_out", overwrite=True,
                           plots=False, **common)
        rows.append((p.windows_per_second, v.variants_per_second, v.windows_per_second))
    print(f"\n### speed: {len(positions)} SNVs, {store.name}, L 1000 default model, batch 64 "
          f"windows, loader_processes {args.loader_processes}, {os.cpu_count()} CPUs\n")
    print("| run | predict windows/s | variants/s | variants windows/s | variants/s / predict windows/s |")
    print("|---|---|---|---|---|")
    for i, (pw, vv, vw) in enumerate(rows):
        print(f"| {i + 1} | {pw:,.0f} | {vv:,.0f} | {vw:,.0f} | {vv / pw:.2f} |")
    med = np.median(np.array(rows), axis=0)
    print(f"| median | {med[0]:,.0f} | {med[1]:,.0f} | {med[2]:,.0f} | {med[1] / med[0]:.2f} |")


def rss_child(args):
    from factornet_jax.variants import score_variants
    t0 = time.perf_counter()
    summary = score_variants([args.store], args.model, args.vcf, args.out, overwrite=True, top=2,
                             batch_size=256, loader_processes=args.loader_processes)
    print(f"RESULT {summary.counts.alleles} {vm_hwm_mb():.0f} {time.perf_counter() - t0:.1f} "
          f"{summary.variants_per_second:.0f}")


def section_rss(args, store_path, work):
    from factornet_jax.reader import open_cell_store
    store = open_cell_store(store_path)
    model = random_model(work / "model_small", store.track_names, 200, 8, 8, 16)
    print(f"\n### peak RSS against the number of variants ({store.name}, L 200 -k 8 -r 8 -d 16, "
          "batch 256, plots on)\n")
    print("| variants | peak RSS (MB) | seconds | variants/s |")
    print("|---|---|---|---|")
    for n in [int(x) for x in args.rss.split(",") if x]:
        rng = np.random.default_rng(n)
        vcf = work / f"rss_{n}.vcf.gz"
        if not vcf.exists():
            write_snv_vcf(vcf, *random_snvs(store, n, rng), rng)
        out = subprocess.run([sys.executable, __file__, "--rss-child", "--store", str(store_path),
                              "--model", str(model), "--vcf", str(vcf), "--out",
                              str(work / f"rss_out_{n}"), "--loader-processes",
                              str(args.loader_processes)],
                             capture_output=True, text=True, check=True)
        result = [line for line in out.stdout.splitlines() if line.startswith("RESULT")][0].split()
        print(f"| {int(result[1]):,} | {result[2]} | {result[3]} | {float(result[4]):,.0f} |",
              flush=True)


def section_effects(args, store_path, sim_dir, work):
    from factornet_jax.reader import open_cell_store
    from factornet_jax.variants import read_effects, score_variants
    store = open_cell_store(store_path)
    truth = np.genfromtxt(gzip.open(sim_dir / "truth.tsv.gz", "rt"), delimiter="\t", names=True,
                          dtype=None, encoding="utf-8")
    mine = truth[(truth["tf"] == args.tf) & (truth["cell"] == store.name)]
    motif = mine[mine["kind"] == "motif"]
    rng = np.random.default_rng(5)
    groups = {"bound": motif[motif["bound"] == 1], "closed": motif[motif["probability"] == 0]}
    records = []
    for name, sites in groups.items():
        sites = sites[rng.permutation(len(sites))[: args.effects]]
        codes = store.genome.fetch_codes_batch(sites["chrom"], sites["start"],
                                               int((sites["end"] - sites["start"]).max()))
        for k, site in enumerate(sites):
            width = int(site["end"] - site["start"])
            ref = codes[k, :width]
            if (ref > 3).any():
                continue
            records.append((site["chrom"], int(site["start"]), f"{name}_{k}",
                            "".join(LETTERS[ref]), "".join(LETTERS[(ref + 1) % 4])))
    # random SNVs >= 2 kb from every truth site (any TF, any kind)
    chroms, positions, refs = random_snvs(store, 100 * args.effects, rng)
    far = np.ones(len(positions), bool)
    for chrom in np.unique(chroms):
        on = truth[truth["chrom"] == chrom]
        edges = np.sort(np.concatenate([on["start"], on["end"]]))
        sel = np.flatnonzero(chroms == chrom)
        idx = np.searchsorted(edges, positions[sel])
        left = np.abs(positions[sel] - edges[np.clip(idx - 1, 0, len(edges) - 1)])
        right = np.abs(edges[np.clip(idx, 0, len(edges) - 1)] - positions[sel])
        far[sel] = np.minimum(left, right) >= 2_000
    pick = np.flatnonzero(far)[: args.effects]
    alts = (refs[pick] + rng.integers(1, 4, len(pick))) % 4
    records += [(chroms[i], int(positions[i]), f"random_{j}", LETTERS[refs[i]], LETTERS[a])
                for j, (i, a) in enumerate(zip(pick, alts))]
    vcf = work / "effects.vcf"
    vcf.write_text(HEADER + "".join(f"{c}\t{p + 1}\t{i}\t{r}\t{a}\t.\tPASS\t.\n"
                                    for c, p, i, r, a in records))
    out = work / "effects_out"
    summary = score_variants([store_path], args.model, vcf, out, tf=args.tf, overwrite=True,
                             top=3)
    rows = read_effects(out / "variants.tsv.gz")
    print(f"\n### effects of simulated variants: {args.tf} in {store.name}, model {args.model}\n")
    print(f"({summary.n_excluded} excluded; outputs in {out})\n")
    print("| group | n | mean ALT-REF | median | 5% | 95% | mean abs | mean REF prob | "
          "median log-odds diff | 5% | 95% |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for name in ("bound", "closed", "random"):
        got = [r for r in rows if r["id"].startswith(name + "_") and r["status"] == "scored"]
        d = np.array([float(r["diff"]) for r in got])
        ref = np.array([float(r["ref_prob"]) for r in got])
        lod = np.array([float(r["log_odds_diff"]) for r in got])
        q5, q50, q95 = np.quantile(d, [0.05, 0.5, 0.95])
        l5, l50, l95 = np.quantile(lod, [0.05, 0.5, 0.95])
        print(f"| {name} | {len(d)} | {d.mean():+.2g} | {q50:+.2g} | {q5:+.2g} | {q95:+.2g} | "
              f"{np.abs(d).mean():.2g} | {ref.mean():.3g} | {l50:+.2f} | {l5:+.2f} | {l95:+.2f} |")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--work", default="variants_bench_work")
    parser.add_argument("--sim", default=None)
    parser.add_argument("--stores", default=None)
    parser.add_argument("--cell", default="CellC")
    parser.add_argument("--tf", default="CTCF")
    parser.add_argument("--model", default=None, help="trained model (effects section)")
    parser.add_argument("--speed-n", type=int, default=3000)
    parser.add_argument("--rss", default="10000,100000,1000000")
    parser.add_argument("--effects", type=int, default=500, help="variants per effects group")
    parser.add_argument("--sections", default="speed,rss,effects")
    parser.add_argument("--loader-processes", type=int, default=0)
    parser.add_argument("--rss-child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--store", help=argparse.SUPPRESS)
    parser.add_argument("--vcf", help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.rss_child:
        rss_child(args)
        return
    work = Path(args.work).resolve()
    work.mkdir(parents=True, exist_ok=True)
    stores, sim_dir = prepare_data(args)
    store_path = stores / f"{args.cell}.zarr"
    sections = args.sections.split(",")
    print(f"variants_bench: {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, "
          f"{os.cpu_count()} CPUs, store {store_path}")
    if "speed" in sections:
        section_speed(args, store_path, work)
    if "rss" in sections:
        section_rss(args, store_path, work)
    if "effects" in sections:
        if args.model is None:
            print("\n(effects: skipped, needs --model, a model trained on the simulated data)")
        else:
            section_effects(args, store_path, sim_dir, work)


if __name__ == "__main__":
    main()

"""`factornet explain` on simulated data: speed per method, and whether the contributions are right.

    python benchmarks/explain_bench.py --sim /tmp/factornet_learning/sim \
        --stores /tmp/factornet_learning/stores --model /tmp/factornet_learning/models/n10mo/CTCF/seed1 \
        --out /tmp/explain_bench.json

The dataset and model are docs/LEARNING.md's (benchmarks/learning_curves.py --settings n10mo:
20 Mb simulated genome, CTCF onePeak model trained on CellA + CellB); everything here runs on
the held-out cell line CellC, test chromosomes chr1, chr8, chr21. Figures (docs/INTERPRETATION.md
and docs/BENCHMARKS.md "explain"):

speed        predict's windows/s (LoadedModel.predict, batch 64) against ISM's mutated windows/s;
             regions/s of each method alone (ism, ig --steps 50, saliency) and of the whole
             per-region work of `explain` (method + joint IG split + occlusion)
motif ratio  bound motif sites (truth kind "motif", bound in CellC): mean |actual sequence
             contribution| per base inside the planted motif / outside it, in the window (ISM
             and IG)
split        joint-IG shares (sequence vs DNase) at bound motif sites and at sites bound without
             the TF's motif (kinds "ocr" / "cofactor": bound because they are open), with the
             completeness gap
modisco      TF-MoDISco on IG hypothetical contributions of bound sites + unbound open sites,
             each pattern's best TOMTOM hit in HOCOMOCO v9 (the planted CTCF motif is CTCF_f2)

Separate sections (each runs alone and writes --out):

--ig-speed   integrated gradients' gradient evaluations/s (regions x (steps + 1); one evaluation
             = f and df/dinputs of one window, both strands) against a plain jitted
             jax.value_and_grad of the same f on device-resident batches of 64, interleaved,
             --ig-repeats (3) repeats, medians
--cofactor   bound CTCF sites with a planted ZNF143 co-factor (truth cofactor 1): MoDISco on
             their IG hypothetical contributions, TOMTOM against the simulator's motifs.meme
             and HOCOMOCO; the contribution inside the planted ZNF143 (located by PWM scan,
             IG and ISM) vs the flanks; the logit drop when it is shuffled away
--prepare-cofactor WORK
             the same check on a dataset and model made for it (prepare_cofactor: a decisive
             co-factor, a model reading sequence only), built in WORK when absent:
             python benchmarks/explain_bench.py --prepare-cofactor /tmp/cofactor \
                 --out /tmp/explain_cofactor.json
"""
import argparse
import gzip
import json
import os
import time

import numpy as np

os.environ.setdefault("JAX_PLATFORMS", "cpu")


def read_truth(path, tf, cell, chroms):
    rows = []
    with gzip.open(path, "rt") as handle:
        header = handle.readline().rstrip("\n").split("\t")
        for line in handle:
            f = dict(zip(header, line.rstrip("\n").split("\t")))
            if f["tf"] == tf and f["cell"] == cell and f["chrom"] in chroms:
                rows.append(f)
    return rows


def windows_for(rows, seq_len):
    chroms = np.array([r["chrom"] for r in rows])
    starts = np.array([int(r["start"]) for r in rows], np.int64)
    ends = np.array([int(r["end"]) for r in rows], np.int64)
    return chroms, starts, ends, (starts + ends) // 2 - seq_len // 2


# The co-factor dataset: the simulator's co-factor made decisive for binding (an open CTCF site
# with a ZNF143 motif nearby is bound at logit +3.5 instead of +1.8; half of the sites have one
# instead of 35 %), and a model that reads sequence only (the Unique35 track, the same in every
# cell line, instead of DNase). With DNase the co-factor is redundant: the simulator raises the
# signal at bound sites (bound_boost), so a model reading DNase sees binding directly and needs
# no ZNF143 detector. Kernels 2 and 3 start from ZNF143 (--motif-extra), as kernels 0 and 1 from
# CTCF (-mo): in 10 epochs of this small set a model does not find a second motif from random
# kernels (the plateau of docs/LEARNING.md), and what is checked here is whether explain finds
# a co-factor the model uses, not whether training discovers one (docs/INTERPRETATION.md).
COFACTOR_SIMULATION = {"seed": 1, "genome_mb": 20.0, "bind_cofactor": 3.5, "cofactor_share": 0.5}
COFACTOR_TRAINING = {"negatives": 10, "motif": True, "motif_extra": ("ZNF143",), "epochs": 10,
                     "seed": 1}


def prepare_cofactor(work, tf):
    """Simulate, build sequence-only stores and train the co-factor model in `work` (each step
    skipped when its output is there) -> (sim folder, stores folder, model dir)."""
    from pathlib import Path

    from factornet_jax.build import BuildRequest, build_stores
    from factornet_jax.simulate import SimulationConfig, simulate
    from factornet_jax.train_config import TrainConfig
    from factornet_jax.training import train_and_evaluate

    work = Path(work)
    sim, cells, stores = work / "sim", work / "cells_sequence_only", work / "stores"
    model = work / "models" / f"sequence_only_{tf}"
    if not (sim / "simulation.json").is_file():
        simulate(sim, SimulationConfig(cells=("CellA", "CellB", "CellC"), **COFACTOR_SIMULATION),
                 overwrite=True)
    for cell in ("CellA", "CellB", "CellC"):   # the cell folders, with Unique35 as the only track
        folder = cells / cell
        folder.mkdir(parents=True, exist_ok=True)
        for source in (sim / "cells" / cell).iterdir():
            if source.name != "bigwig.txt" and not (folder / source.name).exists():
                (folder / source.name).symlink_to(source.resolve())
        (folder / "bigwig.txt").write_text("Unique35.bigWig\tUnique35\n")
    build_stores(BuildRequest(cell_dirs=tuple(str(cells / c) for c in ("CellA", "CellB", "CellC")),
                              genome=str(sim / "genome.fa"), stores_dir=str(stores),
                              blacklist=str(sim / "blacklist.bed.gz"),
                              annotations=str(sim / "annotations")))
    if not (model / "final.npz").is_file():
        t = COFACTOR_TRAINING
        config = TrainConfig(inputs=(str(stores / "CellA.zarr"), str(stores / "CellB.zarr")),
                             output=str(model), valid_chroms=("chr11",),
                             test_chroms=("chr1", "chr8", "chr21"), factor=tf,
                             epochs=t["epochs"], negatives=t["negatives"], seed=t["seed"],
                             motif=t["motif"], motif_extra=t["motif_extra"],
                             motif_db=str(sim / "motifs.meme"))
        train_and_evaluate(config, overwrite=True, log=lambda m, **k: print(f"train: {m}", flush=True))
    return str(sim), str(stores), str(model)


def fetch(store, chroms, wstarts, seq_len):
    return store.fetch_batch(chroms, wstarts, seq_len)


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--sim", default="/tmp/factornet_learning/sim")
    p.add_argument("--stores", default="/tmp/factornet_learning/stores")
    p.add_argument("--model", default="/tmp/factornet_learning/models/n10mo/CTCF/seed1")
    p.add_argument("--tf", default="CTCF")
    p.add_argument("--cell", default="CellC")
    p.add_argument("--ism-regions", type=int, default=24)
    p.add_argument("--split-regions", type=int, default=60)
    p.add_argument("--modisco-regions", type=int, default=600)
    p.add_argument("--out", default="/tmp/explain_bench.json")
    p.add_argument("--speed-only", action="store_true", help="only the speed figures")
    p.add_argument("--ig-speed", action="store_true",
                   help="only IG's gradient evaluations/s against a plain jitted value_and_grad")
    p.add_argument("--ig-regions", type=int, default=32)
    p.add_argument("--ig-steps", type=int, default=50)
    p.add_argument("--ig-repeats", type=int, default=3)
    p.add_argument("--cofactor", action="store_true",
                   help="only the co-factor check: MoDISco on bound CTCF sites with a planted ZNF143")
    p.add_argument("--cofactor-regions", type=int, default=224)
    p.add_argument("--cofactor-ism-regions", type=int, default=16)
    p.add_argument("--prepare-cofactor", metavar="WORK", default=None,
                   help="simulate the co-factor dataset and train its sequence-only model in WORK "
                        "(reused when there), then run --cofactor on it")
    args = p.parse_args()
    if args.prepare_cofactor:
        args.sim, args.stores, args.model = prepare_cofactor(args.prepare_cofactor, args.tf)
        args.cofactor = True

    import jax

    from factornet_jax import contributions as C
    from factornet_jax.explain import ExplainConfig, explain_chunk, track_background
    from factornet_jax.modeldir import load_model
    from factornet_jax.reader import open_cell_store

    results = {"date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
               "machine": f"{os.cpu_count()} CPU cores, JAX {jax.__version__} {jax.default_backend()}",
               "model": args.model}
    model = load_model(args.model)
    cfg = model.model_config
    L = cfg.seq_len
    store = open_cell_store(os.path.join(args.stores, f"{args.cell}.zarr"))
    test = {"chr1", "chr8", "chr21"}
    truth = read_truth(os.path.join(args.sim, "truth.tsv.gz"), args.tf, args.cell, test)
    rng = np.random.default_rng(0)
    bound_motif = [r for r in truth if r["kind"] == "motif" and r["bound"] == "1"]
    bound_open = [r for r in truth if r["kind"] in ("ocr", "cofactor") and r["bound"] == "1"]
    unbound_open = [r for r in truth if r["kind"] in ("ocr", "cofactor", "motif") and r["bound"] == "0"]
    rng.shuffle(bound_motif), rng.shuffle(bound_open), rng.shuffle(unbound_open)
    print(f"truth: {len(bound_motif)} bound motif sites, {len(bound_open)} bound motif-less, "
          f"{len(unbound_open)} unbound candidate sites ({args.cell}, test chromosomes)", flush=True)
    background = track_background(store, L)
    results["track_background"] = dict(zip(cfg.track_names, background.tolist()))
    if args.ig_speed:
        results["ig_speed"] = ig_speed(model, store, bound_motif, L, args.ig_regions, args.ig_steps,
                                       args.ig_repeats)
        print(json.dumps(results["ig_speed"], indent=1), flush=True)
    if args.cofactor:
        results["cofactor"] = cofactor_check(model, store, truth, L, args)
        print(json.dumps(results["cofactor"], indent=1), flush=True)
    if args.ig_speed or args.cofactor:
        with open(args.out, "w") as handle:
            json.dump(results, handle, indent=1)
        print(f"wrote {args.out}")
        return

    # ---------------------------------------------------------------- speed
    # every timed call runs once before on other regions of the same shapes (compilation)
    chroms, starts, ends, w = windows_for(bound_motif[:512], L)
    onehot, signal = fetch(store, chroms, w, L)

    def timed(fn, n, repeats=1):
        fn(slice(n, 2 * n))
        rates = []
        for _ in range(repeats):
            t = time.perf_counter()
            fn(slice(0, n))
            rates.append(n / (time.perf_counter() - t))
        return float(np.median(rates))

    # predict and ISM interleaved, 3 repeats each, medians: the host is shared
    n_ism = 2
    mutated_per_region = float((onehot[:n_ism] == 0).sum()) / n_ism
    predict_rates, ism_rates = [], []
    for _ in range(3):
        predict_rates.append(timed(lambda s: model.predict(onehot[s], signal[s], batch_size=64), 256))
        ism_rates.append(timed(lambda s: C.ism(model, onehot[s], signal[s], batch_size=64), n_ism))
    ism_rate = float(np.median(ism_rates))
    speed = {"predict_windows_per_s": float(np.median(predict_rates)),
             "ism_mutated_windows_per_s": ism_rate * mutated_per_region, "ism_regions_per_s": ism_rate,
             "ism_over_predict_each_repeat": [i * mutated_per_region / p
                                              for i, p in zip(ism_rates, predict_rates)]}
    seq_base = C.sequence_baseline(onehot[:16], "shuffle")
    speed["ig50_regions_per_s"] = timed(lambda s: C.integrated_gradients(
        model, onehot[s], signal[s], baseline={"onehot": seq_base[s]}, steps=50), 8)
    speed["saliency_regions_per_s"] = timed(lambda s: C.gradients(model, onehot[s], signal[s]), 256)
    for method, n in (("ism", 4), ("ig", 8), ("saliency", 16)):
        config = ExplainConfig("", "", "", "", method=method)
        speed[f"explain_{method}_regions_per_s"] = timed(lambda s: explain_chunk(
            model, (onehot[s], signal[s], None, None), np.arange(n), 0, config, background), n)
    results["speed"] = speed
    print(json.dumps(speed, indent=1), flush=True)
    if args.speed_only:
        with open(args.out, "w") as handle:
            json.dump(results, handle, indent=1)
        return

    # ---------------------------------------------------------------- motif vs outside
    def inside_outside(actual, rows, wstarts):
        per_base = np.abs(actual.sum(axis=-1))                          # (n, L)
        ratios, ins, outs, peak_inside = [], [], [], []
        for k, r in enumerate(rows):
            lo, hi = int(r["start"]) - wstarts[k], int(r["end"]) - wstarts[k]
            mask = np.zeros(L, bool)
            mask[lo:hi] = True
            ins.append(per_base[k, mask].mean())
            outs.append(per_base[k, ~mask].mean())
            ratios.append(ins[-1] / max(outs[-1], 1e-12))
            peak_inside.append(bool(mask[np.argmax(per_base[k])]))
        return {"n": len(rows), "median_ratio": float(np.median(ratios)),
                "ratio_of_means": float(np.mean(ins) / np.mean(outs)),
                "peak_base_in_motif": float(np.mean(peak_inside))}

    rows = bound_motif[:args.ism_regions]
    chroms, starts, ends, w = windows_for(rows, L)
    onehot, signal = fetch(store, chroms, w, L)
    t = time.perf_counter()
    _, actual = C.ism_hypothetical(C.ism(model, onehot, signal, batch_size=64), onehot)
    motif = {"ism": inside_outside(actual, rows, w)}
    motif["ism"]["seconds"] = time.perf_counter() - t
    base = C.sequence_baseline(onehot, "shuffle")
    ig = C.integrated_gradients(model, onehot, signal, baseline={"onehot": base}, steps=50)
    motif["ig"] = inside_outside(ig["onehot"], rows, w)
    g = C.gradients(model, onehot, signal)
    motif["saliency"] = inside_outside(g["onehot"] * onehot, rows, w)
    results["motif_vs_outside"] = motif
    print(json.dumps(motif, indent=1), flush=True)

    # ---------------------------------------------------------------- the split
    split = {}
    dnase = [i for i, t in enumerate(cfg.track_names) if t != "Unique35"]
    for name, group in (("bound_motif", bound_motif), ("bound_without_motif", bound_open),
                        ("unbound", unbound_open)):
        rows = group[:args.split_regions]
        chroms, starts, ends, w = windows_for(rows, L)
        onehot, signal = fetch(store, chroms, w, L)
        base = C.sequence_baseline(onehot, "shuffle")
        joint = C.integrated_gradients(model, onehot, signal,
                                       baseline={"onehot": base, "signal": np.broadcast_to(background, signal.shape)},
                                       steps=100)
        seq = joint["onehot"].sum(axis=(1, 2))
        tracks = joint["signal"].sum(axis=1)
        total = np.abs(seq) + np.abs(tracks).sum(axis=1)
        diff = joint["value"] - joint["baseline_value"]
        gap = np.abs(seq + tracks.sum(axis=1) - diff) / np.maximum(np.abs(diff), 1e-3)
        split[name] = {"n": len(rows), "median_prediction": float(np.median(1 / (1 + np.exp(-joint["value"])))),
                       "median_sequence_share": float(np.median(seq / total)),
                       "median_dnase_share": float(np.median(tracks[:, dnase].sum(axis=1) / total)),
                       "track_share_dominates": float(np.mean(np.abs(tracks).sum(axis=1) > np.abs(seq))),
                       "median_completeness_gap": float(np.median(gap)),
                       "max_completeness_gap": float(np.max(gap))}
    results["split"] = split
    print(json.dumps(split, indent=1), flush=True)

    # ---------------------------------------------------------------- MoDISco
    try:
        from factornet_jax.motif_discovery import load_database, run_modisco, tomtom_matches
        n_bound = min(args.modisco_regions, len(bound_motif) + len(bound_open))
        rows = (bound_motif + bound_open)[:n_bound]
        chroms, starts, ends, w = windows_for(rows, L)
        onehot, signal = fetch(store, chroms, w, L)
        t = time.perf_counter()
        base = C.sequence_baseline(onehot, "shuffle")
        hyp = []
        for lo in range(0, len(onehot), 64):
            ig = C.integrated_gradients(model, onehot[lo:lo + 64], signal[lo:lo + 64],
                                        baseline={"onehot": base[lo:lo + 64]}, steps=20)
            hyp.append(C.hypothetical_from_gradients(ig["mean_gradient"]["onehot"],
                                                     onehot[lo:lo + 64], base[lo:lo + 64])[0])
        hyp = np.concatenate(hyp)
        ig_seconds = time.perf_counter() - t
        t = time.perf_counter()
        patterns = run_modisco(hyp, onehot)
        modisco_seconds = time.perf_counter() - t
        _, db = load_database()
        matches = tomtom_matches([pt.trimmed_ppm() for pt in patterns], db)
        results["modisco"] = {
            "regions": n_bound, "ig_seconds": ig_seconds, "modisco_seconds": modisco_seconds,
            "patterns": [{"name": pt.name, "seqlets": pt.seqlets,
                          "matches": [(m.motif, m.alt_name, m.p_value, m.q_value) for m in found]}
                         for pt, found in zip(patterns, matches)]}
        print(json.dumps(results["modisco"], indent=1), flush=True)
    except Exception as err:          # noqa: BLE001 - a benchmark reports what failed
        results["modisco"] = {"error": f"{type(err).__name__}: {err}"}
        print(results["modisco"], flush=True)
    with open(args.out, "w") as handle:
        json.dump(results, handle, indent=1)
    print(f"wrote {args.out}")


def ig_speed(model, store, rows, seq_len, n, steps, repeats=3):
    """IG's rate in gradient evaluations per second against a plain jitted value_and_grad.

    One *evaluation* = f and df/d(onehot, signal) of one 1000-bp window, both strands (the
    model's siamese forward + backward), batch 64. IG of a region with `steps` intervals is
    steps + 1 evaluations (its path points), so IG's rate is n (steps + 1) / seconds of
    `contributions.integrated_gradients` (host side included: the interpolation index arrays,
    the transfers, the weighted sums into the (n, L, 4) attributions). The reference is
    jax.jit(jax.value_and_grad) of the same f (strand-averaged logit, make_model(cfg).apply)
    w.r.t. the inputs, on device-resident batches of 64 windows, results blocked on; the
    same number of evaluations rounded up to whole batches. Interleaved, `repeats` times,
    medians; every timed function runs once before on the same shapes (compilation).
    """
    import jax
    import jax.numpy as jnp

    from factornet_jax import contributions as C
    from factornet_jax.model import make_model
    cfg = model.model_config
    chroms, _, _, w = windows_for(rows[:2 * n], seq_len)
    onehot, signal = fetch(store, chroms, w, seq_len)
    base = C.sequence_baseline(onehot, "shuffle")
    module = make_model(cfg)

    def total(params, inputs):
        logits = module.apply({"params": params}, inputs[0], inputs[1], None, None, train=False)
        values = C.strand_average_logit(logits)[:, 0]
        return values.sum(), values
    plain = jax.jit(jax.value_and_grad(total, argnums=1, has_aux=True))
    batch = C.DEFAULT_BATCH
    evaluations = n * (steps + 1)
    n_batches = -(-evaluations // batch)
    # the reference's batches: path-like points of the first n regions (values differ, shapes not)
    pool = np.concatenate([onehot[:n]] * (-(-n_batches * batch // n)))[: n_batches * batch]
    sig_pool = np.concatenate([signal[:n]] * (-(-n_batches * batch // n)))[: n_batches * batch]
    dev = [(jax.device_put(jnp.asarray(pool[i * batch:(i + 1) * batch], jnp.float32)),
            jax.device_put(sig_pool[i * batch:(i + 1) * batch])) for i in range(n_batches)]

    def run_plain():
        out = [plain(model.params, d) for d in dev]
        jax.block_until_ready(out)

    def run_ig(sl):
        C.integrated_gradients(model, onehot[sl], signal[sl], baseline={"onehot": base[sl]},
                               steps=steps)

    run_plain()
    run_ig(slice(n, 2 * n))
    ig_rates, plain_rates = [], []
    for _ in range(repeats):
        t = time.perf_counter()
        run_ig(slice(0, n))
        ig_rates.append(evaluations / (time.perf_counter() - t))
        t = time.perf_counter()
        run_plain()
        plain_rates.append(n_batches * batch / (time.perf_counter() - t))
    ig_rate, plain_rate = float(np.median(ig_rates)), float(np.median(plain_rates))
    return {"regions": n, "steps": steps, "evaluations_per_repeat": evaluations,
            "computed_per_repeat": n_batches * batch, "batch": batch,
            "ig_evaluations_per_s": ig_rate, "plain_value_and_grad_windows_per_s": plain_rate,
            "ratio": ig_rate / plain_rate,
            "median_of_per_repeat_ratios": float(np.median([a / b for a, b in zip(ig_rates, plain_rates)])),
            "ig_each_repeat": ig_rates, "plain_each_repeat": plain_rates,
            "ratio_each_repeat": [a / b for a, b in zip(ig_rates, plain_rates)]}


def best_hit(onehot, pwm, centre, lo, hi):
    """Start and strand of the best log-odds hit of `pwm` with its centre `lo`..`hi` bp from
    `centre` (either side), both strands. onehot (L, 4)."""
    lod = np.log(np.asarray(pwm) + 1e-3) - np.log(0.25)
    width = len(lod)
    x = np.asarray(onehot, np.float64)
    best = (-np.inf, -1, "+")
    for strand, m in (("+", lod), ("-", lod[::-1, ::-1])):
        for start in range(0, len(x) - width + 1):
            d = abs(start + width // 2 - centre)
            if lo <= d <= hi:
                score = float((x[start:start + width] * m).sum())
                if score > best[0]:
                    best = (score, start, strand)
    return best


def cofactor_check(model, store, truth, seq_len, args):
    """Does MoDISco on IG of bound CTCF sites with a planted co-factor find ZNF143?

    Sites: truth kind "motif", bound in the cell, cofactor 1 (a ZNF143 motif planted 20-80 bp
    from the CTCF motif: simulate.py). truth.tsv.gz does not give the co-factor's position, so
    it is recovered as the best ZNF143 log-odds hit (simulator's PWM, both strands) with its
    centre 15-82 bp from the site centre. Contribution inside it vs its flanks (ISM and IG):
    mean |actual contribution| per base inside the hit / in the window outside both motifs.
    """
    from factornet_jax import contributions as C
    from factornet_jax.meme import read_meme
    from factornet_jax.motif_discovery import load_database, run_modisco, tomtom_matches
    out = {}
    sim_motifs = read_meme(os.path.join(args.sim, "motifs.meme"))
    znf = next(m for m in sim_motifs if m.alt_name == "ZNF143")
    groups = {"with_cofactor": [r for r in truth if r["kind"] == "motif" and r["bound"] == "1"
                                and r["cofactor"] == "1"],
              "without_cofactor": [r for r in truth if r["kind"] == "motif" and r["bound"] == "1"
                                   and r["cofactor"] == "0"]}
    rows = groups["with_cofactor"][:args.cofactor_regions]
    chroms, starts, ends, w = windows_for(rows, seq_len)
    onehot, signal = fetch(store, chroms, w, seq_len)
    t = time.perf_counter()
    base = C.sequence_baseline(onehot, "shuffle")
    hyp, actual = [], []
    for lo in range(0, len(onehot), 64):
        sl = slice(lo, lo + 64)
        ig = C.integrated_gradients(model, onehot[sl], signal[sl], baseline={"onehot": base[sl]},
                                    steps=20)
        h, a = C.hypothetical_from_gradients(ig["mean_gradient"]["onehot"], onehot[sl], base[sl])
        hyp.append(h), actual.append(a)
    hyp, actual = np.concatenate(hyp), np.concatenate(actual)
    out["regions"] = len(rows)
    out["ig_seconds"] = time.perf_counter() - t

    # where the planted co-factor is, and how much contribution it carries
    hits = [best_hit(onehot[k], znf.pwm, seq_len // 2, 15, 82) for k in range(len(rows))]
    out["znf143_hit_logodds_median"] = float(np.median([h[0] for h in hits]))

    def in_vs_flank(act, idx):
        per_base = np.abs(act.sum(axis=-1))
        ins, outs, ctcf = [], [], []
        for j, k in enumerate(idx):
            _, start, _ = hits[k]
            cof = np.zeros(seq_len, bool)
            cof[start:start + znf.width] = True
            tf = np.zeros(seq_len, bool)
            tf[int(starts[k]) - w[k]:int(ends[k]) - w[k]] = True
            flank = ~cof & ~tf
            ins.append(per_base[j, cof].mean()), outs.append(per_base[j, flank].mean())
            ctcf.append(per_base[j, tf].mean())
        ratios = np.array(ins) / np.maximum(outs, 1e-12)
        return {"n": len(idx), "median_ratio_cofactor_vs_flank": float(np.median(ratios)),
                "ratio_of_means_cofactor_vs_flank": float(np.mean(ins) / np.mean(outs)),
                "ratio_of_means_ctcf_vs_flank": float(np.mean(ctcf) / np.mean(outs)),
                "share_ratio_above_2": float(np.mean(ratios > 2))}
    out["ig_contribution"] = in_vs_flank(actual, range(len(rows)))
    k_ism = min(args.cofactor_ism_regions, len(rows))
    t = time.perf_counter()
    _, ism_actual = C.ism_hypothetical(C.ism(model, onehot[:k_ism], signal[:k_ism], batch_size=64),
                                       onehot[:k_ism])
    out["ism_contribution"] = in_vs_flank(ism_actual, range(k_ism))
    out["ism_contribution"]["seconds"] = time.perf_counter() - t
    # ISM of the co-factor alone: score with the planted ZNF143 hit replaced by the shuffle
    # baseline's bases (how many logits the model gives the co-factor)
    knocked = onehot.copy()
    for k, (_, start, _) in enumerate(hits):
        knocked[k, start:start + znf.width] = base[k, start:start + znf.width].astype(onehot.dtype)
    delta = C.score(model, onehot, signal) - C.score(model, knocked, signal)
    out["logit_drop_when_cofactor_shuffled"] = {"median": float(np.median(delta)),
                                                "mean": float(np.mean(delta)),
                                                "q10_q90": [float(np.quantile(delta, .1)),
                                                            float(np.quantile(delta, .9))]}

    # the same with the DNase tracks at their background level (does the sequence path use it
    # when the signal says nothing?)
    from factornet_jax.explain import track_background
    flat = np.broadcast_to(track_background(store, seq_len), signal.shape).astype(np.float32)
    delta = C.score(model, onehot, flat) - C.score(model, knocked, flat)
    out["logit_drop_when_cofactor_shuffled_background_signal"] = {
        "median": float(np.median(delta)), "mean": float(np.mean(delta))}
    # the locator's null: the best ZNF143 hit at the same distances in bound CTCF sites
    # without a planted co-factor
    rows0 = groups["without_cofactor"][:len(rows)]
    c0, _, _, w0 = windows_for(rows0, seq_len)
    onehot0, _ = fetch(store, c0, w0, seq_len)
    null = [best_hit(onehot0[k], znf.pwm, seq_len // 2, 15, 82)[0] for k in range(len(rows0))]
    out["znf143_hit_logodds_without_cofactor_median"] = float(np.median(null))
    out["znf143_hit_logodds_with_over_without_max"] = float(np.mean(
        np.array([h[0] for h in hits]) > np.max(null)))

    t = time.perf_counter()
    patterns = run_modisco(hyp, onehot)
    out["modisco_seconds"] = time.perf_counter() - t
    dbs = {"simulator": sim_motifs, "hocomoco": load_database()[1]}
    out["patterns"] = []
    matches = {k: tomtom_matches([pt.trimmed_ppm() for pt in patterns], db, top=5)
               for k, db in dbs.items()}
    for i, pt in enumerate(patterns):
        out["patterns"].append({"name": pt.name, "seqlets": pt.seqlets, "width": len(pt.trimmed_ppm()),
                                **{k: [(m.motif, m.alt_name, m.p_value, m.q_value) for m in matches[k][i]]
                                   for k in dbs}})
    return out


if __name__ == "__main__":
    main()

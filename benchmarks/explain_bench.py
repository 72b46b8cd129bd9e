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
    args = p.parse_args()

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


if __name__ == "__main__":
    main()

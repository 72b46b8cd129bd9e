"""Binding-site calls on the simulated held-out cell line: realised FDR and recall.

    python benchmarks/calls_bench.py [--genome-mb 20] [--work DIR] [--tf CTCF] [--epochs N]
                                     [--reuse] [--json OUT.json]

1. simulate + build (benchmarks/accuracy.py's data: CellA, CellB train, CellC held out;
   validation chr11, test chr1 chr8 chr21);
2. train a onePeak model (accuracy.py's settings; the end of `train run` writes the model's
   calibration.json from the validation chromosomes of CellA + CellB);
3. predict CellC's DREAM ladder (test chromosomes);
4. `factornet call --fdr F` for F = 5%, 10%, 20% (thresholds from calibration.json, no CellC
   labels), then score the calls against CellC's peaks:

   - bins:  called = ladder bins scoring >= the threshold; FDR = unbound called / (bound +
     unbound called), ambiguous (relaxed-only) bins left out as in `evaluate`; recall = bound
     bins called / bound bins. This is the quantity the threshold was chosen for.
   - sites: the merged calls (narrowPeak); a site is true when it overlaps a conservative peak,
     ambiguous (left out) when it overlaps only a relaxed one, else false; recall = share of
     CellC's conservative peaks on the test chromosomes overlapped by a site.
   - best: the recall that the best threshold *for CellC itself* reaches at the target FDR
     (bins; needs CellC's labels): what calibrating on other cells costs.

Prints a markdown table (docs/ACCURACY.md "Binding-site calls" holds one run).
"""
from __future__ import annotations

import argparse
import copy
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import accuracy  # noqa: E402  (benchmarks/accuracy.py: data, training, prediction)

TARGETS = (0.05, 0.1, 0.2)


def parse_args(argv):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--genome-mb", type=float, default=20.0)
    p.add_argument("--work", type=Path, default=Path("/tmp/factornet_calls"))
    p.add_argument("--tf", default="CTCF")
    accuracy.add_training_arguments(p, epochs=10)
    p.add_argument("--reuse", action="store_true", help="keep what --work holds when settings match")
    p.add_argument("--json", default=None, help="also write the results as JSON here")
    args = p.parse_args(argv)
    args.motif, args.dtype, args.name = True, "float32", "calls"
    return args


def site_truth(sites, conservative, relaxed):
    """(k,) int8 per site: 1 overlaps a conservative peak, -1 only a relaxed one, 0 neither."""
    out = np.zeros(len(sites), np.int8)
    for chrom in np.unique(sites["chrom"]):
        rows = np.flatnonzero(sites["chrom"] == chrom)
        s, e = sites["start"][rows], sites["end"][rows]
        hit = conservative.overlaps(str(chrom), s, e)
        amb = ~hit & (relaxed.overlaps(str(chrom), s, e) if relaxed is not None else False)
        out[rows] = np.where(hit, 1, np.where(amb, -1, 0))
    return out


def peak_recall(peaks, sites, chroms):
    """Share of `peaks` (PEAK_DTYPE) on `chroms` overlapped by a site."""
    from factornet_jax.intervals import IntervalSet
    called = IntervalSet.from_arrays(sites["chrom"], sites["start"], sites["end"])
    peaks = peaks[np.isin(peaks["chrom"], list(chroms))]
    hit = np.zeros(len(peaks), bool)
    for chrom in np.unique(peaks["chrom"]):
        rows = np.flatnonzero(peaks["chrom"] == chrom)
        hit[rows] = called.overlaps(str(chrom), peaks["start"][rows], peaks["end"][rows])
    return float(hit.mean()) if len(hit) else float("nan"), len(hit)


def score_calls(tf, prediction, model_dir, store, out_dir, log):
    """Call at each target FDR and score bins and sites -> list of result dicts."""
    from factornet_jax import calibration
    from factornet_jax.calls import call_sites, call_sites_file, format_summary
    from factornet_jax.evaluate import AMBIGUOUS, BOUND, read_predictions

    bins = read_predictions(prediction)
    chroms = list(bins)
    names = np.concatenate([np.full(len(bins[c]), c) for c in chroms])
    starts = np.concatenate([bins[c]["start"] for c in chroms])
    scores = np.concatenate([bins[c]["score"] for c in chroms])
    conservative, relaxed = accuracy.peak_sets(store, tf)
    labels = accuracy.labels_of(accuracy.Bins(names, starts), conservative, relaxed)
    keep = labels != AMBIGUOUS
    bound = labels == BOUND
    test_curve = calibration.qvalue_curve(bound[keep], scores[keep])
    entry = calibration.read_calibration(model_dir)["tfs"][tf]
    results = []
    for target in TARGETS:
        path = out_dir / f"{store.name}.{tf}.fdr{target:g}.narrowPeak"
        summary = call_sites_file(prediction, path, model_dir=model_dir, fdr=target, overwrite=True)
        log(format_summary(summary))
        called = scores >= summary.threshold
        tp = int((called & bound).sum())
        fp = int((called & keep & ~bound).sum())
        sites = call_sites(bins, summary.threshold)
        truth = site_truth(sites, conservative, relaxed)
        n_true, n_false = int((truth == 1).sum()), int((truth == 0).sum())
        recall_sites, n_peaks = peak_recall(store.peaks(tf), sites, chroms)
        best = calibration.threshold_for_fdr(test_curve[0], test_curve[1], target)
        best_recall = (float(test_curve[2][list(test_curve[0]).index(best)])
                       if best is not None else 0.0)
        results.append({
            "target_fdr": target, "threshold": summary.threshold,
            "valid_fdr": summary.valid_fdr, "valid_recall": summary.valid_recall,
            "bin_fdr": fp / max(tp + fp, 1), "bin_recall": tp / max(int(bound.sum()), 1),
            "bins_called": tp + fp, "site_fdr": n_false / max(n_true + n_false, 1),
            "site_recall": recall_sites, "sites": len(sites), "peaks": n_peaks,
            "best_threshold": best, "best_bin_recall": best_recall,
        })
    counts = {"bins": int(len(scores)), "bound": int(bound.sum()), "ambiguous": int((~keep).sum()),
              "valid_bins": entry["n_bins"], "valid_bound": entry["n_bound"]}
    return results, counts


def format_table(tf, results):
    head = ("| TF | target FDR | threshold | validation FDR / recall | held-out bins: FDR / recall "
            "| held-out sites: FDR / recall (sites) | best threshold on held-out: recall |")
    lines = [head, "|---|---:|---:|---:|---:|---:|---:|"]
    for r in results:
        lines.append(
            f"| {tf} | {r['target_fdr']:.0%} | {r['threshold']:.4g} | "
            f"{r['valid_fdr']:.3f} / {r['valid_recall']:.3f} | {r['bin_fdr']:.3f} / {r['bin_recall']:.3f} | "
            f"{r['site_fdr']:.3f} / {r['site_recall']:.3f} ({r['sites']:,}) | "
            f"{r['best_bin_recall']:.3f} |")
    return "\n".join(lines)


def main(argv=None):
    args = parse_args(sys.argv[1:] if argv is None else argv)
    work = args.work.resolve()
    work.mkdir(parents=True, exist_ok=True)
    t_start = time.perf_counter()

    def log(message):
        print(f"[{time.perf_counter() - t_start:6.0f} s] {message}", flush=True)

    root, stores = accuracy.prepare_data(work, args.genome_mb, args.seed, [args.tf], args.reuse, log)
    model_dir = work / "models" / args.name / args.tf
    train_args = copy.copy(args)
    train_args.reuse = args.reuse and (model_dir / "calibration.json").is_file()
    model_dirs = accuracy.train_models(stores, work, [args.tf], train_args, log)
    predictions = accuracy.predict_ladder(stores[accuracy.TEST_CELL], model_dirs,
                                          root / "ladder.bed.gz", work, args, log)
    from factornet_jax.reader import open_cell_store
    store = open_cell_store(stores[accuracy.TEST_CELL])
    out_dir = work / "calls"
    out_dir.mkdir(exist_ok=True)
    results, counts = score_calls(args.tf, predictions[args.tf], model_dirs[args.tf], store,
                                  out_dir, log)
    print()
    print(f"held-out {accuracy.TEST_CELL}, test chromosomes {', '.join(accuracy.TEST_CHROMS)}: "
          f"{counts['bins']:,} ladder bins, {counts['bound']:,} bound, {counts['ambiguous']:,} "
          f"ambiguous; calibration: {counts['valid_bins']:,} validation bins "
          f"({counts['valid_bound']:,} bound) of {', '.join(accuracy.TRAIN_CELLS)} on "
          f"{', '.join(accuracy.VALID_CHROMS)}")
    print(format_table(args.tf, results))
    print(f"total {time.perf_counter() - t_start:.0f} s")
    if args.json:
        Path(args.json).write_text(json.dumps({"results": results, "counts": counts}, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""A held-out cell sequenced at another depth: auPRC with and without quantile normalisation.

    python benchmarks/depth_drift.py --data /tmp/factornet_learning --model MODEL_DIR \
        --work /tmp/depthexp [--tf CTCF] [--factors 0.25 4]

Uses benchmarks/accuracy.py's simulated dataset (--data: its sim/ and stores/) and a model
trained on CellA + CellB. The held-out CellC's DNase track (DGF) is rewritten at each
--factors x its coverage (the mappability track is left alone), each copy is built into a
store, and every copy is scored on the test-chromosome ladder with `predict` (a) as the model
reads it (`--signal-normalization none`) and (b) quantile-matched to the training cells
(`quantile`: the model dir copy gets a signal_profile.json of CellA and CellB, as a current
`train run` writes it), then scored by `evaluate` against CellC's peaks. Prints one markdown
table; the model dir given is copied, never written.
"""
from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from pathlib import Path


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, required=True)
    parser.add_argument("--model", type=Path, required=True)
    parser.add_argument("--work", type=Path, required=True)
    parser.add_argument("--tf", default="CTCF")
    parser.add_argument("--factors", type=float, nargs="+", default=[0.25, 4.0])
    args = parser.parse_args(argv)
    from factornet_jax.build import BuildRequest, build_stores
    from factornet_jax.drift import signal_profile, write_profiles
    from factornet_jax.evaluate import evaluate
    from factornet_jax.predict import predict_bed
    from factornet_jax.reader import open_cell_store
    from factornet_jax.simulate import rescaled_cell

    work = args.work.resolve()
    work.mkdir(parents=True, exist_ok=True)
    sim, stores = args.data / "sim", args.data / "stores"
    model = work / "model"
    if not model.exists():
        shutil.copytree(args.model, model)
        profiles = {}
        for cell in ("CellA", "CellB"):
            with open_cell_store(stores / f"{cell}.zarr") as store:
                profiles[cell] = signal_profile(store)
        write_profiles(model, profiles, normalization="none")
    cells = {"1x": stores / "CellC.zarr"}
    for factor in args.factors:
        name = f"CellC_x{factor:g}"
        if not (work / "stores" / f"{name}.zarr").exists():
            rescaled_cell(sim / "cells" / "CellC", work / "cells" / name, factor, tracks=("DGF",))
            build_stores(BuildRequest(cell_dirs=(str(work / "cells" / name),),
                                      genome=str(sim / "genome.fa"), stores_dir=str(work / "stores"),
                                      blacklist=str(sim / "blacklist.bed.gz")))
        cells[f"{factor:g}x"] = work / "stores" / f"{name}.zarr"
    peaks = sim / "cells" / "CellC" / f"ChIPseq.CellC.{args.tf}.conservative.train.narrowPeak.gz"
    relaxed = sim / "cells" / "CellC" / f"ChIPseq.CellC.{args.tf}.relaxed.narrowPeak.gz"
    rows = []
    for depth, store in cells.items():
        for mode in ("none", "quantile"):
            out = work / f"pred_{depth}_{mode}.bedGraph.gz"
            t0 = time.perf_counter()
            predict_bed(store, model, sim / "ladder.bed.gz", out, tf=args.tf, overwrite=True,
                        signal_normalization=mode, progress=False)
            report = evaluate([str(out)], str(peaks), str(work / f"report_{depth}_{mode}"),
                              relaxed_path=str(relaxed), overwrite=True, plots=False, bootstrap_rounds=0)
            scores = report["predictions"][0]["all"]
            rows.append((depth, mode, scores["auPRC"], scores["auROC"], time.perf_counter() - t0))
            print(f"{depth} {mode}: auPRC {scores['auPRC']:.4f}", file=sys.stderr)
    print(f"benchmarks/depth_drift.py {' '.join(sys.argv[1:])}: {time.strftime('%Y-%m-%d %H:%M')}\n")
    print("| CellC DNase depth | --signal-normalization | auPRC | auROC |\n|---|---|---:|---:|")
    for depth, mode, auprc, auroc, _ in rows:
        print(f"| {depth} | {mode} | {auprc:.4f} | {auroc:.4f} |")
    (work / "results.json").write_text(json.dumps(rows, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())

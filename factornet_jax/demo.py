"""`factornet demo`: the whole pipeline on a simulated dataset, end to end.

simulate -> preprocess build (3 cell lines) -> train run (onePeak, two cell lines) ->
predict (the held-out cell line's test chromosomes, DREAM-ladder layout) -> evaluate, next to
the mean DNase signal of the same bins (what a model must beat) -> call (binding sites at a 10%
target FDR, the threshold from the model's validation chromosomes; the share of sites on a
held-out peak is printed next to it).
"""
import time
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class DemoConfig:
    """Sizes of the demo; the defaults finish in a few minutes on a 2-core CPU."""
    out: str = "factornet_demo"   # everything goes under this folder
    seed: int = 1                 # simulator and training seed
    genome_mb: float = 12.0       # simulated genome size
    tf: str = "CTCF"              # the TF trained and scored
    epochs: int = 8               # training epochs (-n 10 -mo learns in 2-3: docs/LEARNING.md)
    kernels: int = 32             # -k
    recurrent: int = 16           # -r
    dense: int = 64               # -d
    seq_len: int = 1000           # -L
    batch_size: int = 64          # global batch
    negatives: int = 10           # -n: random negatives per positive per epoch
    motif: bool = True            # -mo: start two kernels from the TF's canonical motif
    max_steps_per_epoch: int = 0  # 0: full epochs


def run_demo(config: DemoConfig, overwrite=False, log=print, progress=None):
    """Run every stage; returns a dict of output paths and the evaluation report.

    `log` gets the results (the metrics table, where the outputs are), `progress` the stage
    lines and warnings (default: stderr). The demo folder `config.out` is built whole in a
    hidden folder beside it and swapped into place at the end (outputs.write_dir_atomically):
    with `overwrite` (-oc) an earlier demo folder stays complete until the new one is. (Paths
    recorded inside, e.g. the model's store paths, name that hidden folder.)
    """
    from factornet_jax.baselines import write_track_mean_bedgraph
    from factornet_jax.calls import call_sites_file, format_summary as format_calls
    from factornet_jax.errors import FactorNetError
    from factornet_jax.build import BuildRequest, build_stores, format_summary
    from factornet_jax.train_config import TrainConfig
    from factornet_jax.evaluate import evaluate, format_table, read_predictions
    from factornet_jax.outputs import DEMO, write_dir_atomically
    from factornet_jax.predict import predict_bed
    from factornet_jax.progress import log_progress, warn
    from factornet_jax.reader import open_cell_store
    from factornet_jax.simulate import DNASE_TRACK, SimulationConfig, simulate
    from factornet_jax.training import train_and_evaluate

    progress = progress or log_progress
    t0 = time.perf_counter()
    out = Path(config.out)
    names = {"model_dir": Path("models") / config.tf, "report_dir": Path("report")}
    found = {}

    def run_stages(root):
        progress(f"[1/6] simulate: {config.genome_mb:g} Mb genome, 3 cell lines -> {out / 'sim'}")
        sim = simulate(root / "sim", SimulationConfig(seed=config.seed, genome_mb=config.genome_mb))
        cells = list(sim.cells)
        train_cells, held_out = cells[:2], cells[2]

        progress("[2/6] preprocess build")
        request = BuildRequest(cell_dirs=tuple(str(sim.cells[c].folder) for c in cells),
                               genome=str(sim.fasta), stores_dir=str(root / "stores"),
                               blacklist=str(sim.blacklist),
                               annotations=str(sim.annotations["cpg"].parent))
        summaries, seconds = build_stores(request)
        progress("      " + format_summary(summaries, seconds))
        store = {c: str(root / "stores" / f"{c}.zarr") for c in cells}

        progress(f"[3/6] train run: onePeak {config.tf} on {', '.join(train_cells)} (validation chr11)")
        train_config = TrainConfig(
            inputs=tuple(store[c] for c in train_cells), output=str(root / names["model_dir"]),
            factor=config.tf, epochs=config.epochs, patience=5, seq_len=config.seq_len,
            kernels=config.kernels, recurrent=config.recurrent, dense=config.dense,
            batch_size=config.batch_size, negatives=config.negatives, motif=config.motif,
            motif_db=str(sim.motifs), seed=config.seed,
            max_steps_per_epoch=config.max_steps_per_epoch)
        found["train"] = train_and_evaluate(train_config,
                                            log=lambda m, **k: progress("      " + m))

        progress(f"[4/6] predict: {held_out}, test chromosomes (ladder {sim.ladder.name})")
        names["prediction"] = Path("predictions") / f"{held_out}.{config.tf}.bedGraph.gz"
        summary = predict_bed(store[held_out], str(root / names["model_dir"]), str(sim.ladder),
                              str(root / names["prediction"]), tf=config.tf)
        progress(f"      {summary.n_windows} windows, {summary.windows_per_second:,.0f} windows/s")

        progress(f"[5/6] evaluate against {held_out}'s {config.tf} peaks, with the mean DNase "
                 "signal of the same bins as a baseline")
        names["baseline"] = Path("predictions") / f"{held_out}.DNase_mean.bedGraph.gz"
        with open_cell_store(store[held_out]) as held_out_store:
            write_track_mean_bedgraph(held_out_store, read_predictions(root / names["prediction"]),
                                      DNASE_TRACK, root / names["baseline"])
        cell_files = sim.cells[held_out]
        found["report"] = evaluate([str(root / names["prediction"]), str(root / names["baseline"])],
                                   str(cell_files.conservative[config.tf]),
                                   str(root / names["report_dir"]),
                                   relaxed_path=str(cell_files.relaxed[config.tf]))

        progress(f"[6/6] call: {config.tf} sites in {held_out} at a 10% target FDR")
        names["sites"] = Path("predictions") / f"{held_out}.{config.tf}.sites.narrowPeak"
        try:
            found["calls"] = call_sites_file(root / names["prediction"], root / names["sites"],
                                             model_dir=root / names["model_dir"], fdr=0.1)
        except FactorNetError as err:   # e.g. a model too short-trained to reach 10% FDR
            found["calls"] = None
            warn(f"call skipped: {err}")
        else:
            found["on_peak"] = _share_on_peaks(root / names["sites"],
                                               cell_files.conservative[config.tf])
            progress("      " + format_calls(found["calls"]))

    write_dir_atomically(out, overwrite, run_stages, DEMO)
    paths = {key: out / name for key, name in names.items()}
    log(format_table(found["report"]))
    calls = found["calls"]
    if calls is not None:
        log(f"sites at a 10% target FDR: {calls.n_sites:,} ({found['on_peak']:.0%} of them on a "
            f"{config.tf} peak of the held-out cell line, which the threshold never saw)")
    log(f"outputs: simulated data {out / 'sim'}; stores {out / 'stores'}; model "
        f"{paths['model_dir']}; predictions {paths['prediction']}; report {paths['report_dir']} "
        "(metrics.json, pr_curve.png, roc_curve.png)"
        + (f"; sites {paths['sites']}" if calls is not None else ""))
    log(f"demo finished in {time.perf_counter() - t0:.0f} s (best epoch {found['train'].best_epoch})")
    log("note: a short schedule on a small genome; FactorNet learns the DNase signal first and the "
        "motif later, so longer runs score higher (docs/LEARNING.md: 20 Mb, -n 10 -mo, held-out auPRC "
        "0.86 CTCF / 0.84 GABPA after 8-10 epochs, against 0.23 / 0.26 for the DNase mean)")
    return {**{key: str(path) for key, path in paths.items()}, "report": found["report"]}


def _share_on_peaks(sites_path, peaks_path):
    """The share of the called sites that overlap a conservative peak of the held-out cell."""
    from factornet_jax.bed import read_bed
    from factornet_jax.intervals import IntervalSet
    sites = read_bed(sites_path)
    if not len(sites):
        return 0.0
    peaks = IntervalSet.from_records(read_bed(peaks_path))
    return float(peaks.overlaps(sites["chrom"], sites["start"], sites["end"]).mean())

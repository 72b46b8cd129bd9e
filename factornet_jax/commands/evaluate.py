"""`factornet evaluate`: DREAM-style scoring of prediction bedGraphs against ChIP-seq peaks.

    factornet evaluate -p PRED.bed.gz [PRED2 ...] --peaks CONSERVATIVE [--relaxed RELAXED]
                       [--chroms chr1 chr8 ...] [--bootstrap 10] [--seed 0]
                       [--baselines CELL_STORE [--motif-db MEME --tf TF]]
                       (-o REPORT_DIR | -oc REPORT_DIR)

Besides the metrics: ENCODE-DREAM's bootstrap intervals (10 rounds of 90% of each chromosome's
bins) and, for several files, their DREAM ranking; reliability and Brier score; with
--baselines, the DNase mean and PWM max of the same bins as extra rows.

`-o` writes a new report folder; `-oc` may replace an earlier report folder of `evaluate`
(factornet_jax.outputs).
"""
import time

from factornet_jax.commands._common import add_output_arguments, output_from_args


def add_arguments(parser):
    parser.add_argument("-p", "--predictions", nargs="+", required=True, metavar="PRED",
                        help="prediction files: bedGraph 'chrom start end score' (gzipped or not), "
                             "e.g. from `factornet predict`; several give one table and one curve each")
    parser.add_argument("--peaks", required=True, metavar="CONSERVATIVE",
                        help="conservative peaks (narrowPeak/BED, gz or not): bins more than half "
                             "inside them are bound")
    parser.add_argument("--relaxed", metavar="RELAXED",
                        help="relaxed peaks: bins not bound but overlapping these are ambiguous "
                             "and left out (ENCODE-DREAM)")
    parser.add_argument("--chroms", nargs="+", metavar="CHROM",
                        help="evaluate only these chromosomes (default: all of each prediction file)")
    parser.add_argument("--bootstrap", type=int, default=10, metavar="B",
                        help="bootstrap rounds, each scoring 90%% of every chromosome's bins "
                             "(ENCODE-DREAM: 10); mean and 95%% interval per metric, and the "
                             "DREAM ranking of several files; 0: none")
    parser.add_argument("--seed", type=int, default=0, help="seed of the bootstrap rounds (0)")
    parser.add_argument("--baselines", metavar="CELL_STORE",
                        help="the evaluated cell line's store: add the mean DNase signal of each "
                             "bin (and, with --motif-db, the PWM max) as baseline rows")
    parser.add_argument("--baseline-track", metavar="TRACK",
                        help="signal track of the mean baseline (default: the DNase/DGF track)")
    parser.add_argument("--motif-db", metavar="MEME",
                        help="with --baselines and --tf: add the best log2-odds score of the TF's "
                             "motif in each bin (both strands)")
    parser.add_argument("--tf", metavar="TF", help="the TF whose motif the PWM baseline scores")
    add_output_arguments(parser, "REPORT_DIR", "report folder")
    parser.add_argument("--no-plots", action="store_true", help="skip the PNG curves")


def main(args):
    from factornet_jax.errors import ConfigError
    from factornet_jax.evaluate import BaselineRequest, evaluate, format_table

    report_dir, overwrite = output_from_args(args)
    if args.baselines is None and (args.motif_db or args.baseline_track):
        raise ConfigError("--motif-db / --baseline-track need --baselines CELL_STORE (the store "
                          "the baselines are computed from)")
    baselines = None if args.baselines is None else BaselineRequest(
        args.baselines, args.baseline_track, args.motif_db, args.tf)
    start = time.perf_counter()
    report = evaluate(args.predictions, args.peaks, report_dir, relaxed_path=args.relaxed,
                      chroms=args.chroms, overwrite=overwrite, plots=not args.no_plots,
                      bootstrap_rounds=args.bootstrap, seed=args.seed, baselines=baselines)
    print(format_table(report))
    n_bins = sum(p["all"]["n_bound"] + p["all"]["n_unbound"] + p["all"]["n_ambiguous"]
                 for p in report["predictions"])
    print(f"evaluated {len(report['predictions'])} prediction file(s), {n_bins:,} bins, "
          f"in {time.perf_counter() - start:.1f} s; report in {report_dir}")
    return 0

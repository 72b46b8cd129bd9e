"""`factornet evaluate`: DREAM-style scoring of prediction bedGraphs against ChIP-seq peaks.

    factornet evaluate -p PRED.bed.gz [PRED2 ...] --peaks CONSERVATIVE [--relaxed RELAXED]
                       [--chroms chr1 chr8 ...] (-o REPORT_DIR | -oc REPORT_DIR)

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
    add_output_arguments(parser, "REPORT_DIR", "report folder")
    parser.add_argument("--no-plots", action="store_true", help="skip the PNG curves")


def main(args):
    from factornet_jax.evaluate import evaluate, format_table

    report_dir, overwrite = output_from_args(args)
    start = time.perf_counter()
    report = evaluate(args.predictions, args.peaks, report_dir, relaxed_path=args.relaxed,
                      chroms=args.chroms, overwrite=overwrite, plots=not args.no_plots)
    print(format_table(report))
    n_bins = sum(p["all"]["n_bound"] + p["all"]["n_unbound"] + p["all"]["n_ambiguous"]
                 for p in report["predictions"])
    print(f"evaluated {len(report['predictions'])} prediction file(s), {n_bins:,} bins, "
          f"in {time.perf_counter() - start:.1f} s; report in {report_dir}")
    return 0

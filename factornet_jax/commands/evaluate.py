"""`factornet evaluate`: DREAM-style scoring of prediction bedGraphs against ChIP-seq peaks.

    factornet evaluate -p PRED.bed.gz [PRED2 ...] --peaks CONSERVATIVE [--relaxed RELAXED]
                       [--chroms chr1 chr8 ...] -o REPORT_DIR [-oc]

`-oc` alone lets `-o REPORT_DIR` be overwritten; FactorNet's form `-oc REPORT_DIR` (output
folder, overwritten if it exists) works too.
"""
import time

from factornet_jax.errors import ConfigError


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
    parser.add_argument("-o", "--outputdir", metavar="REPORT_DIR",
                        help="report folder to create (metrics.json, metrics.tsv, PR and ROC PNGs)")
    parser.add_argument("-oc", "--outputdirc", nargs="?", const=True, default=None,
                        metavar="REPORT_DIR",
                        help="overwrite the report folder if it exists (alone: the -o folder)")
    parser.add_argument("--no-plots", action="store_true", help="skip the PNG curves")


def report_dir_from_args(args):
    """(report folder, overwrite) from -o / -oc."""
    clobber = args.outputdirc
    if isinstance(clobber, str):
        if args.outputdir is not None:
            raise ConfigError("-o and -oc REPORT_DIR both name a report folder; give one "
                              "(-o DIR -oc, or -oc DIR)")
        return clobber, True
    if args.outputdir is None:
        raise ConfigError("no report folder: give -o REPORT_DIR (add -oc to overwrite it)")
    return args.outputdir, clobber is True


def main(args):
    from factornet_jax.evaluate import evaluate, format_table

    report_dir, overwrite = report_dir_from_args(args)
    start = time.perf_counter()
    report = evaluate(args.predictions, args.peaks, report_dir, relaxed_path=args.relaxed,
                      chroms=args.chroms, overwrite=overwrite, plots=not args.no_plots)
    print(format_table(report))
    n_bins = sum(p["all"]["n_bound"] + p["all"]["n_unbound"] + p["all"]["n_ambiguous"]
                 for p in report["predictions"])
    print(f"evaluated {len(report['predictions'])} prediction file(s), {n_bins:,} bins, "
          f"in {time.perf_counter() - start:.1f} s; report in {report_dir}")
    return 0

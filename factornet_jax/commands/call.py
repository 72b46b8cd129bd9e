"""`factornet call`: binding sites from a prediction bedGraph, at a target false-discovery rate.

    factornet call -p PRED.bedGraph.gz -m MODEL_DIR [-f TF] [--fdr 0.1 | --threshold X]
                   (-o SITES.narrowPeak | -oc SITES.narrowPeak)

The threshold of --fdr comes from the model's calibration.json (its validation chromosomes,
recorded at the end of `train run`), so the new cell line needs no labels; bins at or above it
are merged into sites (narrowPeak: summit, score). factornet_jax.calls has the details.
"""
from factornet_jax.commands._common import add_output_arguments, output_from_args


def add_arguments(parser):
    parser.add_argument("-p", "--predictions", required=True, metavar="PRED",
                        help="prediction bedGraph of one TF (gzipped or not), from `factornet predict`")
    parser.add_argument("-m", "--modeldir", default=None, metavar="MODEL_DIR",
                        help="the model that made the predictions: its calibration.json gives the "
                             "threshold of --fdr")
    parser.add_argument("-f", "--factor", default=None, metavar="TF",
                        help="the TF the predictions are of (required for a multi-task model)")
    parser.add_argument("--fdr", type=float, default=0.1,
                        help="target false-discovery rate of the called bins, as measured on the "
                             "model's validation chromosomes (default 0.1)")
    parser.add_argument("--threshold", type=float, default=None, metavar="X",
                        help="call bins scoring >= X instead (no calibration needed, e.g. for "
                             "imported Keras models)")
    add_output_arguments(parser, "SITES.narrowPeak", "narrowPeak of the sites (gzipped when it "
                         "ends in .gz)", file=True)


def main(args):
    from factornet_jax.calls import call_sites_file, format_summary

    out, overwrite = output_from_args(args)
    summary = call_sites_file(args.predictions, out, model_dir=args.modeldir, tf=args.factor,
                              fdr=args.fdr, threshold=args.threshold, overwrite=overwrite)
    print(format_summary(summary))
    return 0

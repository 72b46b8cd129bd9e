"""Flags shared by several commands: -i/-m/-b (store, model, BED), how to compute (train and
predict: --loader-processes, --dtype, --lstm), and -o / -oc as FactorNet's
commands take them: `-o DIR` (refuse an existing one), `-oc DIR` (overwrite), and also
`-o DIR -oc` (flag form)."""
from factornet_jax.errors import ConfigError


def add_output_arguments(parser, metavar):
    parser.add_argument("-o", "--outputdir", default=None, metavar=metavar,
                        help="output folder (refused if it exists)")
    parser.add_argument("-oc", "--outputdirc", nargs="?", const=True, default=None, metavar=metavar,
                        help="overwrite the output folder if it exists (alone: the -o folder)")


def output_from_args(args, metavar):
    """(output folder, overwrite) from -o / -oc."""
    clobber = args.outputdirc
    if isinstance(clobber, str):
        if args.outputdir is not None:
            raise ConfigError(f"-o and -oc {metavar} both name an output folder; give one "
                              "(-o DIR -oc, or -oc DIR)")
        return clobber, True
    if args.outputdir is None:
        raise ConfigError(f"no output folder: give -o {metavar} (add -oc to overwrite it)")
    return args.outputdir, clobber is True


def add_store_model_bed_arguments(parser, bed_help):
    """-i CELL_STORE, -m MODEL_DIR, -b BED (predict, visualize)."""
    parser.add_argument("-i", "--inputdir", required=True, metavar="CELL_STORE",
                        help="cell store (or a cell folder built into --stores)")
    parser.add_argument("-m", "--modeldir", required=True, metavar="MODEL_DIR",
                        help="model directory from `factornet train run` or `factornet import-keras`")
    parser.add_argument("-b", "--bed", required=True, metavar="BED", help=bed_help)


def add_compute_arguments(parser):
    """--loader-processes, --dtype, --lstm (train run, predict)."""
    parser.add_argument("--loader-processes", type=int, default=0, metavar="N",
                        help="assemble batches in N worker processes instead of threads (GPU "
                             "hosts whose step outruns one loader thread)")
    parser.add_argument("--dtype", default="float32", choices=["float32", "bfloat16"],
                        help="compute precision: float32, or bfloat16 (mixed precision)")
    parser.add_argument("--lstm", default="scan", choices=["scan", "cudnn"],
                        help="BiLSTM implementation: scan (any device) or cudnn (NVIDIA GPUs, "
                             "same weights)")

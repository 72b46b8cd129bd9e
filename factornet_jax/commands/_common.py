"""Flags shared by several commands: -i/-m/-b (store, model, BED), how to compute (train and
predict: --loader-processes, --dtype, --lstm), and the main output, -o PATH | -oc PATH, as
FactorNet's commands take it (factornet_jax.outputs says what may be replaced)."""


def add_output_arguments(parser, metavar, what, file=False, default=None):
    """The main output of every command: `-o PATH` (a new output; an existing one is refused) or
    `-oc PATH` (the same path, allowed to replace our own earlier output there), one of the two
    (`-o` may have a `default`). FactorNet's long names: --outputdir/--outputdirc, and for a
    file --outputfile/--outputfilec."""
    long = "--outputfile" if file else "--outputdir"
    group = parser.add_mutually_exclusive_group(required=default is None)
    group.add_argument("-o", long, dest="output", default=default, metavar=metavar,
                       help=f"{what} to write; refused if it exists"
                            + (f" (default {default})" if default else ""))
    group.add_argument("-oc", long + "c", dest="output_replace", default=None, metavar=metavar,
                       help=f"{what} to write, replacing an earlier one that factornet wrote there "
                            "(anything else is refused)")


def output_from_args(args):
    """(output path, overwrite) from -o / -oc."""
    if args.output_replace is not None:
        return args.output_replace, True
    return args.output, False


def add_store_model_bed_arguments(parser, bed_help, ensemble=False):
    """-i CELL_STORE, -m MODEL_DIR (with `ensemble`, one or more), -b BED (predict, visualize)."""
    parser.add_argument("-i", "--inputdir", required=True, metavar="CELL_STORE",
                        help="cell store (or a cell folder built into --stores)")
    model_help = "model directory from `factornet train run` or `factornet import-keras`"
    if ensemble:
        parser.add_argument("-m", "--modeldir", required=True, nargs="+", metavar="MODEL_DIR",
                            help=model_help + "; several: an ensemble, scored as the mean of "
                                 "their probabilities in one pass over the store")
    else:
        parser.add_argument("-m", "--modeldir", required=True, metavar="MODEL_DIR", help=model_help)
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


def add_distributed_arguments(parser):
    """--coordinator, --num-processes, --process-id (train run, predict): several processes,
    usually one per host, through jax.distributed (FACTORNET_DISTRIBUTED=auto: detected)."""
    parser.add_argument("--coordinator", default=None, metavar="HOST:PORT",
                        help="multi-host: address of process 0 (jax.distributed)")
    parser.add_argument("--num-processes", type=int, default=None, help="multi-host: process count")
    parser.add_argument("--process-id", type=int, default=None, help="multi-host: this process's id")

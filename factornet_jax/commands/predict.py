"""`factornet predict`: score every interval of a BED file -> gzipped bedGraph (and bigWig).

    factornet predict -i CELL_STORE -m MODEL_DIR [-f TF] -b BED -o OUT.bedGraph.gz
                      [--bigwig OUT.bw] [--batch N] [-oc]

FactorNet's flags -i -m -f -b -o keep their meaning. -f is needed when the model predicts
several TFs (one TF per output file, as FactorNet wrote them). An existing output is refused
unless -oc/--force is given. Scores: see factornet_jax.predict.
"""

from factornet_jax.commands._common import add_compute_arguments, add_store_model_bed_arguments


def add_arguments(parser):
    p = parser
    add_store_model_bed_arguments(p, "intervals to score (BED, gzipped or not), e.g. the DREAM "
                                     "ladder of 200-bp bins at 50-bp steps; each is scored on the "
                                     "window centred on it")
    p.add_argument("-f", "--factor", default=None, metavar="TF",
                   help="TF to score (required when the model predicts several)")
    p.add_argument("-o", "--outputfile", required=True, metavar="OUT.bedGraph.gz",
                   help="gzipped bedGraph to write: chrom start end score, in the BED's order")
    p.add_argument("--bigwig", default=None, metavar="OUT.bw",
                   help="also write a bigWig (needs a sorted BED; each interval's central 50 bp)")
    p.add_argument("-oc", "--force", action="store_true",
                   help="overwrite existing output files")
    p.add_argument("--batch", type=int, default=None,
                   help="windows per compiled call, over all devices (default: 64 per device "
                        "on CPU, 512 per device on GPU/TPU)")
    p.add_argument("--threads", type=int, default=1, help="batch-assembling threads (1)")
    p.add_argument("--checkpoint", default="best", choices=["best", "final"],
                   help="which parameters of the model dir to use (best)")
    add_compute_arguments(p)
    p.add_argument("--stores", default="stores", metavar="DIR",
                   help="where the store of a cell folder given to -i was built")


def main(args):
    from factornet_jax.predict import format_summary, predict_bed
    summary = predict_bed(args.inputdir, args.modeldir, args.bed, args.outputfile,
                          tf=args.factor, bigwig=args.bigwig, batch_size=args.batch,
                          threads=args.threads, loader_processes=args.loader_processes,
                          force=args.force, stores_dir=args.stores,
                          checkpoint=args.checkpoint, compute_dtype=args.dtype,
                          lstm_backend=args.lstm)
    print(format_summary(summary))
    return 0

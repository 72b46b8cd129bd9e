"""`factornet predict`: score every interval of a BED file -> gzipped bedGraph (and bigWig).

    factornet predict -i CELL_STORE -m MODEL_DIR [MODEL_DIR ...] [-f TF] -b BED
                      (-o OUT.bedGraph.gz | -oc OUT.bedGraph.gz) [--bigwig OUT.bw]
                      [--std-bigwig SD.bw] [--sharing auto|shared|per-window] [--batch N]
                      [--coordinator HOST:PORT --num-processes N --process-id I]

FactorNet's flags -i -m -f -b -o keep their meaning. -f is needed when the model predicts
several TFs (one TF per output file, as FactorNet wrote them). `-o` writes a new file; `-oc`
may replace an earlier prediction file of ours (and the bigWig written with it).
Scores: see factornet_jax.predict.
"""

from factornet_jax.commands._common import (add_compute_arguments, add_distributed_arguments,
                                            add_output_arguments,
                                            add_store_model_bed_arguments, output_from_args)


def add_arguments(parser):
    p = parser
    add_store_model_bed_arguments(p, "intervals to score (BED, gzipped or not), e.g. the DREAM "
                                     "ladder of 200-bp bins at 50-bp steps; each is scored on the "
                                     "window centred on it", ensemble=True)
    p.add_argument("-f", "--factor", default=None, metavar="TF",
                   help="TF to score (required when the model predicts several)")
    add_output_arguments(p, "OUT.bedGraph.gz", "gzipped bedGraph (chrom start end score, in the "
                         "BED's order)", file=True)
    p.add_argument("--bigwig", default=None, metavar="OUT.bw",
                   help="also write a bigWig (needs a sorted BED; each interval's central 50 bp)")
    p.add_argument("--std-bigwig", default=None, metavar="OUT.bw",
                   help="with several -m models: also write the per-bin standard deviation of "
                        "their probabilities as a bigWig (an uncertainty track; sorted BED)")
    p.add_argument("--batch", type=int, default=None,
                   help="windows per compiled call, over all devices (default: 64 per device "
                        "on CPU, 512 per device on GPU/TPU)")
    p.add_argument("--threads", type=int, default=1, help="batch-assembling threads (1)")
    p.add_argument("--checkpoint", default="best", choices=["best", "final"],
                   help="which parameters of the model dir to use (best; a model dir without "
                        "best.npz uses final.npz and says so on stderr)")
    add_compute_arguments(p)
    p.add_argument("--sharing", default="auto", choices=["auto", "shared", "per-window"],
                   help="auto (default): score a tiling ladder (intervals at a fixed step) with "
                        "the convolution computed once per stretch of overlapping windows, same "
                        "scores; shared / per-window force one path")
    p.add_argument("--signal-normalization", default="auto", choices=["auto", "none", "quantile"],
                   help="auto (default): as the model was trained; quantile: match this cell's "
                        "track quantiles to the training cells' (e.g. another sequencing depth)")
    p.add_argument("--stores", default="stores", metavar="DIR",
                   help="where the store of a cell folder given to -i was built")
    add_distributed_arguments(p)
    p.add_argument("--block-lines", type=int, default=100_000, metavar="N",
                   help="BED lines read per block (100000): the unit of streaming, and of the "
                        "work split between processes")


def main(args):
    from factornet_jax.distributed import maybe_initialize
    from factornet_jax.predict import format_summary, predict_bed
    maybe_initialize(args.coordinator, args.num_processes, args.process_id)
    out_path, overwrite = output_from_args(args)
    summary = predict_bed(args.inputdir, args.modeldir, args.bed, out_path,
                          tf=args.factor, bigwig=args.bigwig, batch_size=args.batch,
                          threads=args.threads, loader_processes=args.loader_processes,
                          overwrite=overwrite, stores_dir=args.stores,
                          checkpoint=args.checkpoint, compute_dtype=args.dtype,
                          lstm_backend=args.lstm, sharing=args.sharing,
                          std_bigwig=args.std_bigwig, block_lines=args.block_lines,
                          signal_normalization=args.signal_normalization)
    print(format_summary(summary))
    return 0

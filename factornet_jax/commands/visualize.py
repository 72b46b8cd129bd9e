"""`factornet visualize`: kernel motifs, logos, mean signal and known-motif matches.

    factornet visualize -i CELL_STORE -m MODEL_DIR -b BED [-c chr11] (-o OUT | -oc OUT)
                        [--motif-db MEME] [--batch N]

The windows are the model's seq_len centred on the BED intervals on one chromosome; see
`factornet_jax.visualize` for the method and the output files.
"""

from factornet_jax.commands._common import (add_output_arguments, add_store_model_bed_arguments,
                                            output_from_args)


def add_arguments(parser):
    p = parser
    add_store_model_bed_arguments(p, "BED/narrowPeak (gz or not): windows are centred on its interval midpoints")
    p.add_argument("-c", "--chrom", default="chr11", help="chromosome to use (chr11)")
    add_output_arguments(p, "OUT", "output folder")
    p.add_argument("--motif-db", default=None, metavar="MEME",
                   help="MEME motifs to match the learned motifs against (default: the packaged "
                        "HOCOMOCO v9, FactorNet's resources/HOCOMOCOv9.meme)")
    p.add_argument("--batch", type=int, default=128, metavar="N", help="windows per batch (128)")
    p.add_argument("--stores", default="stores", metavar="DIR",
                   help="where the store of a cell folder given to -i was built")


def main(args):
    from factornet_jax.visualize import visualize

    out_dir, overwrite = output_from_args(args)
    summary = visualize(args.inputdir, args.modeldir, args.bed, out_dir,
                        chrom=args.chrom, motif_db=args.motif_db,
                        overwrite=overwrite, batch_size=args.batch,
                        stores_dir=args.stores)
    print(summary.line())
    return 0

"""`factornet visualize`: kernel motifs, logos, mean signal and known-motif matches.

    factornet visualize -i CELL_STORE -m MODEL_DIR -b BED [-c chr11] (-o OUT | -oc OUT)
                        [--motif-db MEME] [--batch N]

The windows are the model's seq_len centred on the BED intervals on one chromosome; see
`factornet_jax.visualize` for the method and the output files.
"""

from factornet_jax.commands._common import add_store_model_bed_arguments


def add_arguments(parser):
    p = parser
    add_store_model_bed_arguments(p, "BED/narrowPeak (gz or not): windows are centred on its interval midpoints")
    p.add_argument("-c", "--chrom", default="chr11", help="chromosome to use (chr11)")
    out = p.add_mutually_exclusive_group(required=True)
    out.add_argument("-o", "--outputdir", metavar="OUT", help="output folder (refused if it exists)")
    out.add_argument("-oc", "--outputdirc", metavar="OUT", help="output folder, overwritten if it exists")
    p.add_argument("--motif-db", default=None, metavar="MEME",
                   help="MEME motifs to match the learned motifs against (default: HOCOMOCO "
                        "under ../shared/data/resources, else the bundled motifs)")
    p.add_argument("--batch", type=int, default=128, metavar="N", help="windows per batch (128)")
    p.add_argument("--stores", default="stores", metavar="DIR",
                   help="where the store of a cell folder given to -i was built")


def main(args):
    from factornet_jax.visualize import visualize

    summary = visualize(args.inputdir, args.modeldir, args.bed, args.outputdir or args.outputdirc,
                        chrom=args.chrom, motif_db=args.motif_db,
                        overwrite=args.outputdirc is not None, batch_size=args.batch,
                        stores_dir=args.stores)
    print(summary.line())
    return 0

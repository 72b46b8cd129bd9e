"""`factornet explain`: per-base contributions of sequence and signal tracks to a TF's score.

    factornet explain -i CELL_STORE -m MODEL_DIR [-f TF] -b BED (-o OUT | -oc OUT)
                      [--method ism|ig|saliency] [--steps N] [--bigwig] [--motifs]

Each BED interval is explained on the model's window centred on its midpoint (as `predict`
scores it); see `factornet_jax.explain` for the methods and the output folder.
"""

from factornet_jax.commands._common import (add_output_arguments, add_store_model_bed_arguments,
                                            output_from_args)


def add_arguments(parser):
    p = parser
    add_store_model_bed_arguments(p, "BED (gz or not): each interval is explained on the model's "
                                     "window centred on its midpoint")
    p.add_argument("-f", "--factor", default=None, metavar="TF",
                   help="the TF to explain (required for a multi-task model)")
    add_output_arguments(p, "OUT", "output folder")
    p.add_argument("--method", default="ism", choices=["ism", "ig", "saliency"],
                   help="sequence contributions: in-silico mutagenesis (exact, 3 L passes per "
                        "region), integrated gradients, or gradient x input (default ism)")
    p.add_argument("--steps", type=int, default=50, metavar="N",
                   help="integrated-gradients steps (default 50; more for a tighter completeness)")
    p.add_argument("--baseline", default="shuffle", choices=["shuffle", "uniform"],
                   help="sequence baseline of integrated gradients: a dinucleotide shuffle of the "
                        "window, or 0.25 per base (default shuffle)")
    p.add_argument("--track-baseline", default="mean", choices=["mean", "zero"],
                   help="track baseline of integrated gradients and occlusion: the track's mean "
                        "over random windows of the store, or 0 (default mean)")
    p.add_argument("--occlusion-width", type=int, default=50, metavar="BP",
                   help="bases set to the track background at a time by occlusion (default 50)")
    p.add_argument("--bigwig", action="store_true",
                   help="also write bigWigs of the sequence and each track's contribution")
    p.add_argument("--plots", type=int, default=10, metavar="N",
                   help="PNGs of the N regions with the highest prediction (default 10)")
    p.add_argument("--motifs", action="store_true",
                   help="TF-MoDISco patterns of the sequence contributions, matched with TOMTOM "
                        "(needs the optional extra: pip install factornet-jax[motifs])")
    p.add_argument("--motif-db", default=None, metavar="MEME",
                   help="MEME motifs for --motifs (default: the packaged HOCOMOCO v9)")
    p.add_argument("--batch", type=int, default=None, metavar="N",
                   help="windows per compiled call (default 64)")
    p.add_argument("--seed", type=int, default=0, help="seed of the shuffles and background windows")
    p.add_argument("--checkpoint", default="best", choices=["best", "final"],
                   help="parameters to load (default best)")
    p.add_argument("--stores", default="stores", metavar="DIR",
                   help="where the store of a cell folder given to -i was built")


def main(args):
    from factornet_jax.explain import ExplainConfig, explain

    out_dir, overwrite = output_from_args(args)
    config = ExplainConfig(
        cell_store=args.inputdir, model_dir=args.modeldir, bed=args.bed, out=out_dir,
        tf=args.factor, method=args.method, steps=args.steps, baseline=args.baseline,
        track_baseline=args.track_baseline, occlusion_width=args.occlusion_width,
        bigwig=args.bigwig, plots=args.plots, motifs=args.motifs, motif_db=args.motif_db,
        batch_size=args.batch, seed=args.seed, overwrite=overwrite, stores_dir=args.stores,
        checkpoint=args.checkpoint)
    print(explain(config).line())
    return 0

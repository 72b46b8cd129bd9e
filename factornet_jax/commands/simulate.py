"""`factornet simulate`: write a realistic simulated dataset (FASTA, bigWigs, peaks, truth)."""
import dataclasses

from factornet_jax.commands._common import add_output_arguments, output_from_args


def _defaults():
    from factornet_jax.simulate import SimulationConfig

    return SimulationConfig()


def add_arguments(parser):
    defaults = _defaults()
    add_output_arguments(parser, "DIR", "dataset folder")
    parser.add_argument("--seed", "-s", type=int, default=defaults.seed,
                        help=f"random seed; the same seed gives byte-identical files (default {defaults.seed})")
    parser.add_argument("--tf", nargs="+", default=list(defaults.tfs), metavar="NAME",
                        help=f"TFs whose motifs are planted and bound (default {' '.join(defaults.tfs)})")
    parser.add_argument("--cells", nargs="+", default=list(defaults.cells), metavar="NAME",
                        help=f"cell-line names, one input folder each (default {' '.join(defaults.cells)})")
    parser.add_argument("--genome-mb", type=float, default=defaults.genome_mb, metavar="N",
                        help=f"total genome size in Mb (default {defaults.genome_mb:g}; 1 is enough for a test)")
    parser.add_argument("--motifs", metavar="MEME", default=None,
                        help="MEME file to take TF motifs from (default: the packaged HOCOMOCO v9, "
                             "FactorNet's resources/HOCOMOCOv9.meme)")


def main(args) -> int:
    from factornet_jax.simulate import simulate

    config = dataclasses.replace(
        _defaults(), seed=args.seed, tfs=tuple(args.tf), cells=tuple(args.cells),
        genome_mb=args.genome_mb, motifs_path=args.motifs,
    )
    out_dir, overwrite = output_from_args(args)
    result = simulate(out_dir, config, overwrite=overwrite)
    counts = result.counts
    peaks = sum(v for k, v in counts.items() if k.endswith(".conservative"))
    print(f"simulated {counts['genome_bp'] / 1e6:.1f} Mb, {len(config.cells)} cell lines x "
          f"{len(config.tfs)} TFs, {peaks} conservative peaks -> {result.out_dir}")
    return 0

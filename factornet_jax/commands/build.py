"""`factornet preprocess build`: FASTA + FactorNet cell folders -> Zarr stores."""


def add_arguments(parser):
    parser.add_argument("-i", "--input", nargs="+", default=[], metavar="CELL_DIR",
                        help="FactorNet cell folders (bigwig.txt, chip.txt, meta.txt)")
    parser.add_argument("--genome", required=True, metavar="FASTA", help="genome FASTA (+ .fai)")
    parser.add_argument("--stores", default="stores", metavar="DIR",
                        help="where to write stores (default: stores/)")
    parser.add_argument("--genome-store", default=None, metavar="PATH",
                        help="genome store path (default: DIR/<fasta stem>.zarr)")
    parser.add_argument("--chroms", nargs="+", default=[], help="only these chromosomes")
    parser.add_argument("--blacklist", default=None, metavar="BED",
                        help="blacklist regions BED; hg19: FactorNet's packaged blacklist")
    parser.add_argument("--annotations", default=None, metavar="DIR",
                        help="folder of the GENCODE-model BEDs (cpg, cds, intron, promoter, utr5, "
                             "utr3); hg19: FactorNet's packaged GENCODE V19 files")
    parser.add_argument("--chunk-bases", type=int, default=None, help="bases per stored chunk")
    parser.add_argument("--jobs", type=int, default=1, help="cell stores built in parallel")
    parser.add_argument("--force", action="store_true",
                        help="rebuild stores that exist (only stores factornet built are replaced)")


def main(args):
    from factornet_jax.build import BuildRequest, build_stores, format_summary
    from factornet_jax.errors import ConfigError
    from factornet_jax.store_schema import DEFAULT_CHUNK_BASES
    if args.jobs < 1:
        raise ConfigError("--jobs must be at least 1")
    chunk = args.chunk_bases or DEFAULT_CHUNK_BASES
    if chunk < 1024:
        raise ConfigError("--chunk-bases must be at least 1024")
    request = BuildRequest(cell_dirs=tuple(args.input), genome=args.genome, stores_dir=args.stores,
                           chroms=tuple(args.chroms), blacklist=args.blacklist,
                           annotations=args.annotations, chunk_bases=chunk, jobs=args.jobs,
                           force=args.force, genome_store=args.genome_store)
    summaries, seconds = build_stores(request)
    print(format_summary(summaries, seconds))
    return 0

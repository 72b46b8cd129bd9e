"""`factornet variants`: the effect of VCF variants on predicted binding, per cell line and TF.

    factornet variants -i STORE [STORE ...] -m MODEL_DIR [-f TF] -v VARIANTS.vcf[.gz]
                       (-o OUT_DIR | -oc OUT_DIR) [--vcf-out] [--scan N] [--top N]
                       [--skip-ref-mismatch] [--batch N] [--loader-processes N]

OUT_DIR gets variants.tsv.gz (one row per ALT allele x cell x TF, in VCF order), with
--vcf-out variants.vcf.gz (the input VCF with FN_* INFO fields), manhattan.png and
top_variants.png. Windows, indels, exclusion and outputs: see factornet_jax.variants.
"""

from factornet_jax.commands._common import add_compute_arguments, add_output_arguments, output_from_args


def add_arguments(parser):
    p = parser
    p.add_argument("-i", "--inputdir", required=True, nargs="+", metavar="CELL_STORE",
                   help="cell stores (or cell folders built into --stores) with the same tracks; "
                        "each variant is scored in each")
    p.add_argument("-m", "--modeldir", required=True, metavar="MODEL_DIR",
                   help="model directory from `factornet train run` or `factornet import-keras`")
    p.add_argument("-f", "--factor", default=None, metavar="TF",
                   help="TF to score (default: every TF of the model)")
    p.add_argument("-v", "--vcf", required=True, metavar="VARIANTS.vcf",
                   help="VCF (plain, gzip or bgzip); SNVs and indels up to 50 bp are scored, "
                        "symbolic alleles skipped and counted")
    add_output_arguments(p, "OUT_DIR", "folder of results (variants.tsv.gz, plots)")
    p.add_argument("--vcf-out", action="store_true",
                   help="also write variants.vcf.gz: the input VCF with the effects as INFO fields")
    p.add_argument("--scan", type=int, default=0, metavar="BP",
                   help="also report the largest effect over windows moved by multiples of "
                        "50 bp within +-BP of the variant (0: the centred window only)")
    p.add_argument("--top", type=int, default=5, metavar="N",
                   help="variants of largest effect shown with ISM contributions in "
                        "top_variants.png (0: no such plot)")
    p.add_argument("--no-plots", action="store_true", help="write no PNG")
    p.add_argument("--skip-ref-mismatch", action="store_true",
                   help="skip (and count) variants whose REF differs from the genome store "
                        "instead of stopping with an error")
    p.add_argument("--batch", type=int, default=None,
                   help="windows per compiled call (2 per variant: REF and ALT; default as "
                        "predict)")
    p.add_argument("--threads", type=int, default=1, help="batch-assembling threads (1)")
    p.add_argument("--checkpoint", default="best", choices=["best", "final"],
                   help="which parameters of the model dir to use")
    add_compute_arguments(p)
    p.add_argument("--stores", default="stores", metavar="DIR",
                   help="where the store of a cell folder given to -i was built")


def main(args):
    from factornet_jax.variants import format_summary, score_variants
    out_dir, overwrite = output_from_args(args)
    summary = score_variants(args.inputdir, args.modeldir, args.vcf, out_dir, tf=args.factor,
                             vcf_out=args.vcf_out, scan=args.scan, top=args.top,
                             batch_size=args.batch, threads=args.threads,
                             loader_processes=args.loader_processes, overwrite=overwrite,
                             stores_dir=args.stores, checkpoint=args.checkpoint,
                             compute_dtype=args.dtype, lstm_backend=args.lstm,
                             skip_ref_mismatch=args.skip_ref_mismatch, plots=not args.no_plots)
    print(format_summary(summary))
    return 0

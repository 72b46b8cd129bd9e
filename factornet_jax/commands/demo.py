"""`factornet demo`: simulate -> build -> train -> predict -> evaluate on an embedded default.

Stage lines and training progress go to stderr; the metrics table and where the outputs are,
to stdout."""
from factornet_jax.commands._common import add_output_arguments, output_from_args


def add_arguments(parser):
    add_output_arguments(parser, "DIR", "demo folder", default="factornet_demo")
    parser.add_argument("--seed", type=int, default=1, help="seed of the simulation and training")
    parser.add_argument("--genome-mb", type=float, default=12.0, help="simulated genome size (12 Mb)")
    parser.add_argument("--epochs", type=int, default=8, help="training epochs (8)")
    parser.add_argument("--max-steps", type=int, default=0, help="cap steps per epoch (0: none)")


def main(args):
    from factornet_jax.demo import DemoConfig, run_demo
    out_dir, overwrite = output_from_args(args)
    config = DemoConfig(out=out_dir, seed=args.seed, genome_mb=args.genome_mb, epochs=args.epochs,
                        max_steps_per_epoch=args.max_steps)
    run_demo(config, overwrite=overwrite)
    return 0

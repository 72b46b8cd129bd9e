"""`factornet demo`: simulate -> build -> train -> predict -> evaluate on an embedded default."""


def add_arguments(parser):
    parser.add_argument("--out", default="factornet_demo", help="output folder (factornet_demo)")
    parser.add_argument("--seed", type=int, default=1, help="seed of the simulation and training")
    parser.add_argument("--genome-mb", type=float, default=12.0, help="simulated genome size (12 Mb)")
    parser.add_argument("--epochs", type=int, default=12, help="training epochs (12)")
    parser.add_argument("--max-steps", type=int, default=0, help="cap steps per epoch (0: none)")
    parser.add_argument("--overwrite", action="store_true", help="reuse an existing --out folder")


def main(args):
    from factornet_jax.demo import DemoConfig, run_demo
    config = DemoConfig(out=args.out, seed=args.seed, genome_mb=args.genome_mb, epochs=args.epochs,
                        max_steps_per_epoch=args.max_steps)
    run_demo(config, overwrite=args.overwrite)
    return 0

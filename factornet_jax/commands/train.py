"""`factornet train run` (= `python -m train run`): FactorNet's training flags."""
from factornet_jax.commands._common import (add_compute_arguments, add_distributed_arguments,
                                            add_output_arguments, output_from_args)


def add_arguments(parser):
    p = parser
    p.add_argument("-i", "--inputdirs", nargs="+", required=True, metavar="STORE",
                   help="cell stores (or cell folders built into --stores) to train on")
    p.add_argument("-vi", "--validinputdirs", nargs="+", default=[], metavar="STORE",
                   help="cell stores for validation (default: the -i stores)")
    p.add_argument("-v", "--validchroms", nargs="+", default=["chr11"], help="validation chromosomes")
    p.add_argument("-t", "--testchroms", nargs="+", default=["chr1", "chr8", "chr21"],
                   help="test chromosomes (never used in training)")
    p.add_argument("-e", "--epochs", type=int, default=100, help="maximum epochs (100)")
    p.add_argument("-ep", "--patience", type=int, default=20,
                   help="stop after patience + 1 epochs without a lower validation loss (20; Keras 1)")
    p.add_argument("-lr", "--learningrate", type=float, default=0.001, help="Adam learning rate")
    p.add_argument("-n", "--negatives", type=int, default=1, help="negatives per positive (onePeak)")
    p.add_argument("-L", "--seqlen", type=int, default=1000, help="window length in bp (1000)")
    p.add_argument("-w", "--motifwidth", type=int, default=26, help="kernel width (26)")
    p.add_argument("-k", "--kernels", type=int, default=32, help="convolution kernels (32)")
    p.add_argument("-r", "--recurrent", type=int, default=32,
                   help="BiLSTM units each way (32); 0 none; < 0 global max-pool")
    p.add_argument("-d", "--dense", type=int, default=128, help="dense units (128)")
    p.add_argument("-p", "--dropout", type=float, default=0.5, help="dropout rate (0.5)")
    p.add_argument("--lstm-dropout", type=float, default=0.1,
                   help="BiLSTM input and recurrent dropout (0.1, FactorNet's dropout_W/dropout_U)")
    p.add_argument("--lstm-cell", default="standard", choices=["standard", "keras1"],
                   help="LSTM gates: standard sigmoid (default; cuDNN-able) or keras1 hard_sigmoid "
                        "(FactorNet's)")
    p.add_argument("--signal-transform", default="none", choices=["none", "log1p"],
                   help="signal tracks as stored (none, FactorNet) or log(1 + x); recorded in the model")
    p.add_argument("--signal-normalization", default="none", choices=["none", "quantile"],
                   help="tracks as stored (none, FactorNet) or quantile-matched at read time to "
                        "the training cells' mean levels, every cell the model sees later too "
                        "(recorded in the model; for cells sequenced at another depth)")
    p.add_argument("--shift", type=int, default=20, metavar="BP",
                   help="multi-task windows move by a random [-BP, +BP] each read (20, FactorNet)")
    p.add_argument("-s", "--seed", type=int, default=420, help="random seed (420)")
    p.add_argument("-f", "--factor", default=None, help="TF to train a single-task model on")
    p.add_argument("-m", "--meta", action="store_true", help="use cell-type meta features")
    p.add_argument("-g", "--gencode", action="store_true", help="use GENCODE bin flags")
    p.add_argument("-mo", "--motif", action="store_true",
                   help="start kernels 0/1 from the TF's canonical motif (see --motif-db)")
    p.add_argument("--motif-db", default=None, metavar="MEME", help="MEME file for -mo")
    p.add_argument("--motif-extra", nargs="+", default=[], metavar="NAME",
                   help="with -mo: also start the next kernel pairs from these motifs of the MEME "
                        "file (e.g. a known co-factor); not in FactorNet")
    add_output_arguments(p, "MODEL_DIR", "model directory (-o: an unfinished run of the same "
                                         "settings there resumes)")
    p.add_argument("--batch-size", type=int, default=100, help="global batch size (100)")
    p.add_argument("--loader-threads", type=int, default=1,
                   help="background threads assembling batches (1; 0: none)")
    p.add_argument("--max-steps", type=int, default=0, help="cap steps per epoch (0: full epochs)")
    add_compute_arguments(p)
    p.add_argument("--stores", default="stores", metavar="DIR",
                   help="where stores of cell folders given to -i were built")
    add_distributed_arguments(p)


def config_from_args(args):
    from factornet_jax.train_config import TrainConfig
    return TrainConfig(
        inputs=tuple(args.inputdirs), output=output_from_args(args)[0],
        valid_inputs=tuple(args.validinputdirs), valid_chroms=tuple(args.validchroms),
        test_chroms=tuple(args.testchroms), epochs=args.epochs, patience=args.patience,
        learning_rate=args.learningrate, negatives=args.negatives, seq_len=args.seqlen,
        kernel_width=args.motifwidth, kernels=args.kernels, recurrent=args.recurrent,
        dense=args.dense, dropout=args.dropout, lstm_dropout=args.lstm_dropout, shift=args.shift,
        lstm_cell=args.lstm_cell, signal_transform=args.signal_transform,
        signal_normalization=args.signal_normalization,
        seed=args.seed, factor=args.factor,
        meta=args.meta, gencode=args.gencode, motif=args.motif, motif_db=args.motif_db,
        motif_extra=tuple(args.motif_extra),
        batch_size=args.batch_size, loader_threads=args.loader_threads,
        loader_processes=args.loader_processes,
        max_steps_per_epoch=args.max_steps, compute_dtype=args.dtype, lstm_backend=args.lstm,
        stores_dir=args.stores)


def main(args):
    config = config_from_args(args)
    from factornet_jax.distributed import maybe_initialize
    maybe_initialize(args.coordinator, args.num_processes, args.process_id)
    from factornet_jax.progress import log_progress
    from factornet_jax.training import train_and_evaluate
    result = train_and_evaluate(config, overwrite=output_from_args(args)[1], log=log_progress)
    last = result.history[-1] if result.history else {}
    print(f"train run: {config.model_type} model in {result.model_dir}; best epoch "
          f"{result.best_epoch} (valid loss {result.best_valid_loss:.4f}), "
          f"{len(result.history)} epochs{' (stopped early)' if result.stopped_early else ''}, "
          f"{last.get('samples_per_second', 0):.0f} samples/s, {result.seconds:.0f} s")
    return 0

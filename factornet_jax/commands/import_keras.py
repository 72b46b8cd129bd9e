"""`factornet import-keras`: a released FactorNet Keras 1 model -> factornet-jax model dir.

    factornet import-keras KERAS_MODEL_DIR (-o OUT_MODEL_DIR | -oc OUT_MODEL_DIR)

`-o` writes a new model directory; `-oc` may replace an earlier model directory of ours
(factornet_jax.outputs). Needs h5py (pip install 'factornet-jax[keras]').
"""
import sys

from factornet_jax.commands._common import add_output_arguments, output_from_args


def add_arguments(parser):
    parser.add_argument("keras_dir", metavar="KERAS_MODEL_DIR",
                        help="released model folder: model.json, best_model.hdf5/final_model.hdf5, "
                             "chip.txt, feature.txt, bigwig.txt, meta.txt, history.pkl")
    add_output_arguments(parser, "OUT_MODEL_DIR", "model directory")


def main(args):
    from factornet_jax.keras_import import import_keras_model
    out_dir, overwrite = output_from_args(args)
    result = import_keras_model(args.keras_dir, out_dir, overwrite=overwrite)
    for warning in result.warnings:
        print(f"factornet: warning: {warning}", file=sys.stderr)
    cfg = result.model_config
    history = f", history {result.history_epochs} epochs" if result.history_epochs else ""
    print(f"imported {args.keras_dir} -> {result.out_dir}: L={cfg.seq_len}, tracks "
          f"{','.join(cfg.track_names) or '-'}, {cfg.kernels} kernels x {cfg.kernel_width} bp, "
          f"BiLSTM {cfg.recurrent}, dense {cfg.dense}, meta {cfg.num_meta}, "
          f"gencode {'yes' if cfg.use_gencode else 'no'}; checkpoints {', '.join(result.checkpoints)}{history}")
    return 0

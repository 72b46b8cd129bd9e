"""Import of the released Keras 1 FactorNet models, checked against an independent numpy forward pass.

Needs ../shared/data/models (skipped when absent) and h5py.
"""
import json
import pickle
import re
import shutil
from pathlib import Path

import numpy as np
import pytest

from factornet_jax import keras_import, modeldir
from factornet_jax.errors import FactorNetError, InputFileError

h5py = pytest.importorskip("h5py")

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"
MODELS = SHARED / "models"
MEME = SHARED / "resources" / "HOCOMOCOv9.meme"
RELEASED = sorted(p.parent for p in MODELS.glob("*/*/model.json")) if MODELS.is_dir() else []
needs_models = pytest.mark.skipif(not RELEASED, reason="released models not found under ../shared/data/models")
BATCH = 8   # one batch size everywhere: one compile per model


def model_id(path):
    return f"{path.parent.name}/{path.name}"


@pytest.fixture(scope="module")
def imported(tmp_path_factory):
    """{model id: (keras dir, LoadedModel)} for every released model, imported once."""
    root = tmp_path_factory.mktemp("imported")
    out = {}
    for keras_dir in RELEASED:
        target = root / model_id(keras_dir).replace("/", "_")
        keras_import.import_keras_model(keras_dir, target)
        out[model_id(keras_dir)] = (keras_dir, modeldir.load_model(target))
    return out


# ---------------------------------------------------------------- independent numpy oracle

def keras_layer_weights(path):
    with h5py.File(path, "r") as f:
        root = f["model_weights"] if "model_weights" in f else f
        return {name.decode(): {w.decode(): np.array(root[name.decode()][w.decode()], np.float64)
                                for w in root[name.decode()].attrs["weight_names"]}
                for name in root.attrs["layer_names"]}


def keras1_lstm(x, w, prefix, go_backwards):
    """Keras 1.1 LSTM (hard_sigmoid gates, tanh), step by step; outputs at their time index."""
    n, steps, _ = x.shape
    units = w[f"{prefix}_U_i"].shape[0]
    h, c = np.zeros((n, units)), np.zeros((n, units))
    out = np.zeros((n, steps, units))
    hard_sigmoid = lambda z: np.clip(0.2 * z + 0.5, 0.0, 1.0)  # noqa: E731
    for t in (reversed(range(steps)) if go_backwards else range(steps)):
        pre = {g: x[:, t] @ w[f"{prefix}_W_{g}"] + h @ w[f"{prefix}_U_{g}"] + w[f"{prefix}_b_{g}"] for g in "ifco"}
        c = hard_sigmoid(pre["f"]) * c + hard_sigmoid(pre["i"]) * np.tanh(pre["c"])
        h = hard_sigmoid(pre["o"]) * np.tanh(c)
        out[:, t] = h
    return out


def keras_tower(x, extra, weights, layers, pool):
    """One strand through the released architecture, written from the Keras layer semantics."""
    conv = weights[layers["conv"]]
    kernel = next(v for k, v in conv.items() if k.endswith("_W"))     # (width, 1, channels, kernels)
    bias = next(v for k, v in conv.items() if k.endswith("_b"))
    width = kernel.shape[0]
    out_len = x.shape[1] - width + 1
    y = np.zeros((x.shape[0], out_len, kernel.shape[3]))
    for j in range(width):   # Theano: true convolution, the kernel runs backwards over the window
        y += x[:, j:j + out_len] @ kernel[width - 1 - j, 0]
    y = np.maximum(y + bias, 0.0)
    td = weights[layers["position_dense"]]
    y = np.maximum(y @ td["dense_1_W"] + td["dense_1_b"], 0.0)
    steps = out_len // pool
    y = y[:, :steps * pool].reshape(y.shape[0], steps, pool, -1).max(axis=2)
    lstm = weights[layers["bilstm"]]
    y = np.concatenate([keras1_lstm(y, lstm, "forward_lstm_1", False),
                        keras1_lstm(y, lstm, "backward_lstm_1", True)], axis=-1)
    y = y.reshape(y.shape[0], -1)
    dense = lambda name, v: v @ weights[name][f"{name}_W"] + weights[name][f"{name}_b"]  # noqa: E731
    y = np.maximum(dense(layers["dense"], y), 0.0)
    if extra is not None:
        y = np.maximum(dense(layers["meta_dense"], np.concatenate([y, extra], axis=-1)), 0.0)
    return 1.0 / (1.0 + np.exp(-dense(layers["output"], y)))


def plausible_inputs(cfg, n, rng, dnase_height=1.0):
    """Random sequence, Unique35 mostly 1, DNase a noisy bump in the middle."""
    onehot = np.eye(4, dtype=np.uint8)[rng.choice(4, size=(n, cfg.seq_len), p=[0.3, 0.2, 0.2, 0.3])]
    pos = np.arange(cfg.seq_len)
    bump = dnase_height * np.exp(-0.5 * ((pos - cfg.seq_len / 2) / 60.0) ** 2)
    tracks = []
    for name in cfg.track_names:
        if name == "Unique35":
            tracks.append((rng.random((n, cfg.seq_len)) < 0.95).astype(np.float32))
        else:
            tracks.append(bump * rng.gamma(2.0, 0.5, (n, cfg.seq_len)))
    signal = np.stack(tracks, axis=-1).astype(np.float32)
    meta = rng.normal(0, 1, (n, cfg.num_meta)).astype(np.float32) if cfg.num_meta else None
    gencode = rng.integers(0, 2, (n, 6)).astype(np.float32) if cfg.use_gencode else None
    return onehot, signal, meta, gencode


@needs_models
def test_every_released_model_imports(imported, tmp_path):
    assert len(imported) == len(RELEASED) >= 7
    for name, (keras_dir, model) in imported.items():
        cfg = model.model_config
        features = (keras_dir / "feature.txt").read_text().split()
        assert cfg.seq_len == 1002 and cfg.kernel_width == 34 and cfg.pool_size == 17 and cfg.lstm_cell == "keras1"
        assert list(cfg.track_names) == (keras_dir / "bigwig.txt").read_text().split()
        assert model.tfs == (keras_dir / "chip.txt").read_text().split() == [keras_dir.parent.name]
        assert cfg.use_gencode == ("gencode" in features) and cfg.num_meta == (8 if "meta" in features else 0)
        assert cfg.kernels == (64 if name.startswith("MAX/") else 32) and cfg.recurrent == 32 and cfg.dense == 64
        out = model.model_dir
        assert sorted(p.name for p in out.iterdir()) == sorted(
            ["config.json", "best.npz", "final.npz", "history.json", "chip.txt", "feature.txt", "bigwig.txt"]
            + (["meta.txt"] if cfg.num_meta else []))
        assert model.config["source"] == "keras"
        best, final = modeldir.load_params(out / "best.npz"), modeldir.load_params(out / "final.npz")
        assert not np.array_equal(best["output"]["kernel"], final["output"]["kernel"])
    history = json.loads((imported["MAX/onePeak_Unique35_DGF"][1].model_dir / "history.json").read_text())
    assert len(history) == 26 and history[0]["epoch"] == 1
    assert {"loss", "val_loss", "acc", "val_acc"} <= set(history[0]) and 0 < history[0]["loss"] < 1


@needs_models
def test_predictions_match_independent_numpy_forward_pass(imported):
    rng = np.random.default_rng(0)
    spread = []
    for name, (keras_dir, model) in imported.items():
        cfg = model.model_config
        onehot, signal, meta, gencode = plausible_inputs(cfg, 3, rng)
        got = model.predict(onehot, signal, meta, gencode, batch_size=BATCH)
        weights = keras_layer_weights(keras_dir / "best_model.hdf5")
        layers = model.config["keras"]["layers"]
        extra = meta if meta is not None else gencode
        forward = np.concatenate([onehot, signal], axis=-1).astype(np.float64)
        reverse = np.concatenate([onehot[:, ::-1, ::-1], signal[:, ::-1]], axis=-1).astype(np.float64)
        want = 0.5 * (keras_tower(forward, extra, weights, layers, 17)
                      + keras_tower(reverse, extra, weights, layers, 17))
        np.testing.assert_allclose(got, want, atol=1e-5, err_msg=name)
        spread.append(want.ravel())
    spread = np.concatenate(spread)
    assert spread.min() < 0.2 and spread.max() > 0.5      # not a comparison of saturated outputs


def read_meme_motif(path, name):
    """Letter-probability rows of one MOTIF block (minimal MEME parsing, independent of the package)."""
    block = path.read_text().split(f"MOTIF {name}", 1)[1].split("MOTIF", 1)[0]
    number = r"\s*([0-9.eE+-]+)"
    rows = [list(map(float, m.groups())) for m in re.finditer(rf"^{number * 4}\s*$", block, re.M)]
    return np.array(rows)


@needs_models
@pytest.mark.skipif(not MEME.is_file(), reason="HOCOMOCO MEME file not found")
@pytest.mark.parametrize("name, motif", [("MAX/onePeak_Unique35_DGF", "MAX_f1"),
                                         ("GABPA/meta_RNAseq_Unique35_DGF", "GABPA_f1")])
def test_planted_motif_beats_the_same_motif_written_backwards(imported, name, motif):
    """Catches a kernel-flip error: an unflipped Theano kernel prefers the reversed motif."""
    model = imported[name][1]
    consensus = read_meme_motif(MEME, motif).argmax(axis=1)
    rng = np.random.default_rng(5)
    onehot, signal, meta, gencode = plausible_inputs(model.model_config, BATCH, rng, dnase_height=0.5)
    meta = None if meta is None else np.zeros_like(meta)
    start = model.model_config.seq_len // 2 - len(consensus) // 2
    scores = {}
    for label, letters in (("motif", consensus), ("backwards", consensus[::-1])):
        planted = onehot.copy()
        planted[:, start:start + len(letters)] = np.eye(4, dtype=np.uint8)[letters]
        scores[label] = model.predict(planted, signal, meta, gencode, batch_size=BATCH)[:, 0]
    background = model.predict(onehot, signal, meta, gencode, batch_size=BATCH)[:, 0]
    assert np.mean(scores["motif"] > scores["backwards"]) >= 0.75, scores
    assert scores["motif"].mean() > scores["backwards"].mean() + 0.1
    assert scores["motif"].mean() > background.mean() + 0.1


# ---------------------------------------------------------------- CLI and errors

def run_cli(argv):
    from factornet_jax.cli import COMMANDS, build_parser, run_command
    parser = build_parser([c for c in COMMANDS if c[1] == "import_keras"])
    return run_command(parser, argv)


@needs_models
def test_cli_writes_a_model_dir_and_respects_oc(tmp_path, capsys):
    source = MODELS / "EGR1" / "onePeak_DGF"
    out = tmp_path / "egr1"
    assert run_cli(["import-keras", str(source), "-o", str(out)]) == 0
    assert "checkpoints best, final" in capsys.readouterr().out
    model = modeldir.load_model(out)
    assert model.track_names == ["DGF"] and model.tfs == ["EGR1"]
    assert run_cli(["import-keras", str(source), "-o", str(out)]) == 2
    assert f"model directory exists; use -oc {out}" in capsys.readouterr().err
    (out / "stale.txt").write_text("the user's")      # a file we did not write: -oc keeps it
    assert run_cli(["import-keras", str(source), "-oc", str(out)]) == 2
    assert f"holds {out / 'stale.txt'}" in capsys.readouterr().err
    (out / "stale.txt").unlink()
    assert run_cli(["import-keras", str(source), "-oc", str(out)]) == 0
    assert (out / "best.npz").is_file()
    assert [p.name for p in tmp_path.iterdir()] == ["egr1"]          # no staging dirs left


def copy_released(tmp_path, name="E2F1/onePeak_Unique35_DGF", weights=("final_model.hdf5",)):
    """A writable copy of a released dir (small files + chosen weight files)."""
    source = MODELS / name
    target = tmp_path / "keras"
    target.mkdir()
    for path in source.iterdir():
        if path.suffix != ".hdf5" or path.name in weights:
            shutil.copy(path, target / path.name)
    return target


@needs_models
def test_final_only_history_and_layer_errors(tmp_path):
    keras_dir = copy_released(tmp_path)
    result = keras_import.import_keras_model(keras_dir, tmp_path / "out")
    assert result.checkpoints == ("final",) and result.history_epochs == 71 and not result.warnings
    assert modeldir.load_model(tmp_path / "out").params_path.name == "final.npz"

    spec = json.loads((keras_dir / "model.json").read_text())
    for layer in spec["config"]["layers"]:
        if layer["class_name"] == "Bidirectional":
            layer["config"]["layer"]["class_name"] = "GRU"
    (keras_dir / "model.json").write_text(json.dumps(spec))
    with pytest.raises(InputFileError, match=r"model.json: layer 'bidirectional_1' \(Bidirectional\)"):
        keras_import.import_keras_model(keras_dir, tmp_path / "out2")
    for layer in spec["config"]["layers"]:
        if layer["class_name"] == "Bidirectional":
            layer["class_name"] = "Attention"
    (keras_dir / "model.json").write_text(json.dumps(spec))
    with pytest.raises(InputFileError, match="'bidirectional_1' .*not part of the FactorNet tower"):
        keras_import.import_keras_model(keras_dir, tmp_path / "out2")
    assert not (tmp_path / "out2").exists()


@needs_models
def test_input_file_mismatches(tmp_path):
    keras_dir = copy_released(tmp_path)
    (keras_dir / "bigwig.txt").write_text("DGF\n")
    with pytest.raises(InputFileError, match=r"bigwig.txt: lists 1 tracks but .* 2 signal channels"):
        keras_import.import_keras_model(keras_dir, tmp_path / "out")
    (keras_dir / "bigwig.txt").write_text("Unique35\nDGF\n")
    (keras_dir / "feature.txt").write_text("bigwig\ngencode\n")
    with pytest.raises(InputFileError, match="feature.txt: .* extra input has 0"):
        keras_import.import_keras_model(keras_dir, tmp_path / "out")
    (keras_dir / "feature.txt").write_text("bigwig\n")
    (keras_dir / "final_model.hdf5").unlink()
    with pytest.raises(FactorNetError, match="no weights"):
        keras_import.import_keras_model(keras_dir, tmp_path / "out")
    with pytest.raises(FactorNetError, match="not found"):
        keras_import.import_keras_model(tmp_path / "missing", tmp_path / "out")


def test_missing_h5py_is_a_clear_error(monkeypatch, tmp_path):
    import sys
    monkeypatch.setitem(sys.modules, "h5py", None)
    with pytest.raises(FactorNetError, match=r"needs h5py: pip install 'factornet-jax\[keras\]'"):
        keras_import.read_keras_layer_weights(tmp_path / "x.hdf5")


# ---------------------------------------------------------------- history.pkl

class _Touch:
    """Pickles as a call that would create a file if the unpickler obeyed it."""

    def __init__(self, path):
        self.path = path

    def __reduce__(self):
        return (Path.touch, (self.path,))


def test_history_unpickler_refuses_code(tmp_path):
    victim = tmp_path / "pwned"
    path = tmp_path / "history.pkl"
    path.write_bytes(pickle.dumps({"loss": [0.5, _Touch(victim)]}, protocol=2))
    records, reason = keras_import.read_history_pkl(path)
    assert records is None and "history not imported" in reason and "refusing" in reason
    assert not victim.exists()


def test_history_plain_and_numpy_scalars(tmp_path):
    path = tmp_path / "history.pkl"
    path.write_bytes(pickle.dumps({"loss": [0.5, 0.25], "val_loss": [np.float64(0.75), np.float32(0.5)],
                                   "acc": [1, float("nan")]}, protocol=2))
    records, reason = keras_import.read_history_pkl(path)
    assert reason is None
    assert records == [{"epoch": 1, "loss": 0.5, "val_loss": 0.75, "acc": 1},
                       {"epoch": 2, "loss": 0.25, "val_loss": 0.5, "acc": None}]
    path.write_bytes(pickle.dumps({"loss": [np.array([1.0, 2.0])]}, protocol=2))
    records, reason = keras_import.read_history_pkl(path)
    assert records is None and reason
    path.write_bytes(b"garbage")
    assert keras_import.read_history_pkl(path)[0] is None

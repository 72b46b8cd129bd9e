"""Model directory: params .npz (atomic, safe loading), config.json, txt files, load_model.predict."""
import json
import zipfile

import jax
import numpy as np
import pytest

from factornet_jax import modeldir
from factornet_jax.errors import FactorNetError, InputFileError
from factornet_jax.model import FactorNet, ModelConfig, abstract_params, probabilities

CFG = ModelConfig(seq_len=24, track_names=("Unique35", "DGF"), num_tasks=2, num_meta=2, use_gencode=True,
                  kernels=3, kernel_width=5, pool_size=4, recurrent=2, dense=4)


@pytest.fixture(scope="module")
def params():
    """Random float32 params of CFG's shapes (no init compile needed)."""
    rng = np.random.default_rng(7)
    return jax.tree_util.tree_map(lambda s: (0.5 * rng.normal(size=s.shape)).astype(np.float32),
                                  abstract_params(CFG))


def write_model_dir(path, params, which=("best",)):
    modeldir.write_config(path, modeldir.make_config(CFG, ["CTCF", "REST"], CFG.track_names, ["GEPC1", "GEPC2"],
                                                     ["bigwig", "meta", "gencode"]))
    for name in which:
        modeldir.save_params(path / modeldir.PARAM_FILES[name], params)
    return path


def inputs(n, seed=0):
    rng = np.random.default_rng(seed)
    onehot = np.eye(4, dtype=np.uint8)[rng.integers(0, 4, (n, CFG.seq_len))]
    signal = rng.gamma(1.0, 1.0, (n, CFG.seq_len, 2)).astype(np.float32)
    meta = rng.normal(size=(n, 2)).astype(np.float32)
    gencode = rng.integers(0, 2, (n, 6)).astype(np.uint8)
    return onehot, signal, meta, gencode


# ---------------------------------------------------------------- params files

def test_save_load_roundtrip_uses_slash_keys(tmp_path):
    tree = {"conv": {"kernel": np.arange(6, dtype=np.float32).reshape(2, 3), "bias": np.zeros(3, np.float32)},
            "bilstm": {"forward_W": np.ones((2, 4), np.float32)}, "step": np.int64(5)}
    path = tmp_path / "best.npz"
    modeldir.save_params(path, tree)
    with np.load(path, allow_pickle=False) as npz:
        assert sorted(npz.files) == ["bilstm/forward_W", "conv/bias", "conv/kernel", "step"]
    back = modeldir.load_params(path)
    assert jax.tree_util.tree_structure(back) == jax.tree_util.tree_structure(tree)
    for a, b in zip(jax.tree_util.tree_leaves(back), jax.tree_util.tree_leaves(tree)):
        np.testing.assert_array_equal(a, b)
        assert np.asarray(a).dtype == np.asarray(b).dtype
    assert [p.name for p in tmp_path.iterdir()] == ["best.npz"]      # no temporary file left


def test_failed_save_keeps_old_file_and_leaves_no_temp(tmp_path, monkeypatch):
    path = tmp_path / "final.npz"
    modeldir.save_params(path, {"a": np.ones(3)})

    def broken_savez(f, **arrays):
        f.write(b"PK\x03\x04 half a zip")
        raise OSError("disk full")

    monkeypatch.setattr(modeldir.np, "savez", broken_savez)
    with pytest.raises(OSError, match="disk full"):
        modeldir.save_params(path, {"a": np.zeros(3)})
    monkeypatch.undo()
    np.testing.assert_array_equal(modeldir.load_params(path)["a"], np.ones(3))
    assert [p.name for p in tmp_path.iterdir()] == ["final.npz"]


def test_load_params_errors_name_the_file(tmp_path):
    missing = tmp_path / "best.npz"
    with pytest.raises(InputFileError, match="best.npz: parameter file not found"):
        modeldir.load_params(missing)
    corrupt = tmp_path / "corrupt.npz"
    corrupt.write_bytes(b"this is not a zip file")
    with pytest.raises(InputFileError, match="corrupt.npz: corrupt or unreadable"):
        modeldir.load_params(corrupt)
    pickled = tmp_path / "pickled.npz"
    np.savez(pickled, obj=np.array([{"x": 1}], dtype=object))   # needs pickle to read: refused
    with pytest.raises(InputFileError, match="pickled.npz"):
        modeldir.load_params(pickled)
    truncated = tmp_path / "truncated.npz"
    modeldir.save_params(truncated, {"a": np.ones(1000)})
    truncated.write_bytes(truncated.read_bytes()[:300])
    with pytest.raises(InputFileError, match="truncated.npz"):
        modeldir.load_params(truncated)


# ---------------------------------------------------------------- config and txt files

def test_config_and_factornet_files(tmp_path, params):
    write_model_dir(tmp_path, params)
    modeldir.write_factornet_files(tmp_path, ["CTCF", "REST"], ["Unique35", "DGF"], ["GEPC1", "GEPC2"],
                                   ["bigwig", "meta", "gencode"])
    assert (tmp_path / "chip.txt").read_text() == "CTCF\nREST\n"
    assert (tmp_path / "bigwig.txt").read_text() == "Unique35\nDGF\n"
    assert (tmp_path / "feature.txt").read_text() == "bigwig\nmeta\ngencode\n"
    assert (tmp_path / "meta.txt").read_text() == "GEPC1\nGEPC2\n"
    config = json.loads((tmp_path / "config.json").read_text())
    assert config["format"] == "factornet-jax/model" and config["version"] == 1
    assert config["source"] == "trained" and config["train"] is None
    assert ModelConfig.from_dict(config["model"]) == CFG
    other = tmp_path / "no_meta"
    modeldir.write_factornet_files(other, ["CTCF"], ["DGF"])
    assert sorted(p.name for p in other.iterdir()) == ["bigwig.txt", "chip.txt", "feature.txt"]


def test_missing_config_is_not_a_model_dir(tmp_path):
    with pytest.raises(FactorNetError, match="not a model directory"):
        modeldir.load_model(tmp_path)
    with pytest.raises(FactorNetError, match="model directory not found"):
        modeldir.load_model(tmp_path / "nope")
    (tmp_path / "config.json").write_text('{"format": "something else"}')
    with pytest.raises(InputFileError, match="config.json: not a factornet-jax model config"):
        modeldir.load_model(tmp_path)


# ---------------------------------------------------------------- load_model / predict

def test_predict_matches_direct_apply_with_padding_and_one_compile(tmp_path, params):
    model = modeldir.load_model(write_model_dir(tmp_path, params))
    assert model.tfs == ["CTCF", "REST"] and model.track_names == ["Unique35", "DGF"]
    assert model.meta_names == ["GEPC1", "GEPC2"] and model.features == ["bigwig", "meta", "gencode"]
    assert model.model_config == CFG and model.config["source"] == "trained"
    assert model.params_path.name == "best.npz"
    onehot, signal, meta, gencode = inputs(7)
    want = np.asarray(probabilities(FactorNet(CFG).apply({"params": params}, onehot, signal, meta, gencode)))
    got = model.predict(onehot, signal, meta, gencode, batch_size=3)     # batches 3, 3, 1 (padded to 3)
    assert got.shape == (7, 2) and got.dtype == np.float32
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
    got_float = model.predict(onehot.astype(np.float32), signal, meta, gencode.astype(np.float32), batch_size=3)
    np.testing.assert_allclose(got_float, want, rtol=1e-5, atol=1e-6)
    assert model._compiled()._cache_size() == 2            # one per input dtype, not one per batch
    assert model.predict(onehot[:0], signal[:0], meta[:0], gencode[:0]).shape == (0, 2)


def test_predict_input_errors(tmp_path, params):
    model = modeldir.load_model(write_model_dir(tmp_path, params))
    onehot, signal, meta, gencode = inputs(2)
    with pytest.raises(FactorNetError, match=r"signal has shape \(2, 24, 1\).*expects \(2, 24, 2\)"):
        model.predict(onehot, signal[..., :1], meta, gencode)
    with pytest.raises(FactorNetError, match="needs 2 meta features"):
        model.predict(onehot, signal, None, gencode)
    with pytest.raises(FactorNetError, match="GENCODE"):
        model.predict(onehot, signal, meta, None)
    with pytest.raises(FactorNetError, match=r"onehot has shape \(2, 20, 4\)"):
        model.predict(onehot[:, :20], signal, meta, gencode)


def test_best_falls_back_to_final_and_shape_mismatch(tmp_path, params):
    write_model_dir(tmp_path, params, which=("final",))
    assert modeldir.load_model(tmp_path).params_path.name == "final.npz"
    assert modeldir.load_model(tmp_path, which="final").params_path.name == "final.npz"
    with pytest.raises(FactorNetError, match="unknown checkpoint"):
        modeldir.load_model(tmp_path, which="last")
    bad = dict(params, output={"kernel": np.zeros((4, 3), np.float32), "bias": np.zeros(3, np.float32)})
    modeldir.save_params(tmp_path / "best.npz", bad)
    with pytest.raises(InputFileError, match=r"best.npz: parameter output/(kernel|bias) has shape \((4, )?3,?\)"):
        modeldir.load_model(tmp_path)
    empty = tmp_path / "empty"
    modeldir.write_config(empty, json.loads((tmp_path / "config.json").read_text()))
    with pytest.raises(FactorNetError, match="no parameters"):
        modeldir.load_model(empty)


def test_npz_is_a_plain_zip_of_npy(tmp_path, params):
    modeldir.save_params(tmp_path / "best.npz", params)
    with zipfile.ZipFile(tmp_path / "best.npz") as zf:
        assert "conv/kernel.npy" in zf.namelist()

"""The model directory: config.json, parameters as .npz, FactorNet's txt files, load_model.

Layout (docs/ARCHITECTURE.md "Model directory")::

    config.json    {"format": "factornet-jax/model", "version": 1, "model": {...}, "tfs": [...],
                    "track_names": [...], "meta_names": [...], "features": [...], "train": ...,
                    "stores": [...], "source": "trained" | "keras"}
    best.npz       parameters, flattened '/'-joined keys (read with allow_pickle=False)
    final.npz
    history.json
    chip.txt feature.txt bigwig.txt meta.txt    one name per line, as FactorNet wrote them

Nothing in a model directory is ever executed or unpickled.
"""
from __future__ import annotations

import json
import zipfile
from pathlib import Path

import numpy as np

from factornet_jax.errors import ConfigError, FactorNetError, InputFileError
from factornet_jax.labels import GENCODE_SIZE
from factornet_jax.outputs import write_file_atomically, write_text_atomically

FORMAT = "factornet-jax/model"
VERSION = 1
CONFIG_NAME = "config.json"
PARAM_FILES = {"best": "best.npz", "final": "final.npz"}


# ---------------------------------------------------------------------------------------------
# Parameters
# ---------------------------------------------------------------------------------------------

def flatten_params(params, prefix="") -> dict:
    """Nested dict of arrays -> {"conv/kernel": ndarray, ...}."""
    flat = {}
    for key in params:
        name = f"{prefix}{key}"
        if "/" in str(key):
            raise ValueError(f"parameter name {name!r} contains '/'")
        value = params[key]
        if hasattr(value, "keys"):
            flat.update(flatten_params(value, f"{name}/"))
        else:
            flat[name] = np.asarray(value)
    return flat


def unflatten_params(flat: dict) -> dict:
    """{"conv/kernel": ndarray, ...} -> nested dict."""
    params: dict = {}
    for name, value in flat.items():
        node = params
        *parents, leaf = name.split("/")
        for part in parents:
            node = node.setdefault(part, {})
        node[leaf] = value
    return params


def save_params(path, params):
    """Save a params pytree as .npz (flattened '/'-joined keys), atomically."""
    flat = flatten_params(params)
    write_file_atomically(path, lambda f: np.savez(f, **flat))


def load_params(path) -> dict:
    """Load a params pytree saved by `save_params` (numpy arrays; never unpickles)."""
    path = Path(path)
    if not path.is_file():
        raise InputFileError(path, "parameter file not found")
    try:
        with np.load(path, allow_pickle=False) as npz:
            flat = {name: npz[name] for name in npz.files}
    except (zipfile.BadZipFile, ValueError, OSError, EOFError, KeyError) as err:
        raise InputFileError(path, f"corrupt or unreadable parameter file ({err}); "
                                   f"re-save or re-import the model") from None
    if not flat:
        raise InputFileError(path, "parameter file holds no arrays")
    return unflatten_params(flat)


# ---------------------------------------------------------------------------------------------
# config.json and FactorNet's txt files
# ---------------------------------------------------------------------------------------------

def make_config(model_config, tfs, track_names, meta_names=(), features=("bigwig",), train=None,
                stores=(), source="trained") -> dict:
    """The config.json dict for a model dir (`model_config` is a ModelConfig)."""
    return {
        "format": FORMAT,
        "version": VERSION,
        "model": model_config.to_dict(),
        "tfs": list(tfs),
        "track_names": list(track_names),
        "meta_names": list(meta_names),
        "features": list(features),
        "train": train,
        "stores": [dict(s) for s in stores],
        "source": source,
    }


def write_config(model_dir, cfg_dict: dict):
    """Write config.json (atomically); "format" and "version" are filled in when absent."""
    data = {"format": FORMAT, "version": VERSION}
    data.update(cfg_dict)
    write_text_atomically(Path(model_dir) / CONFIG_NAME, json.dumps(data, indent=2) + "\n")


def write_factornet_files(model_dir, tfs, track_names, meta_names=(), features=("bigwig",)):
    """Write chip.txt (TFs), feature.txt, bigwig.txt (track names), meta.txt (if any meta names)."""
    model_dir = Path(model_dir)
    files = {"chip.txt": tfs, "feature.txt": features, "bigwig.txt": track_names}
    if meta_names:
        files["meta.txt"] = meta_names
    for name, lines in files.items():
        write_text_atomically(model_dir / name, "".join(f"{line}\n" for line in lines))


def write_history(model_dir, history):
    """Write history.json (list of per-epoch records, or a dict of per-epoch lists)."""
    write_text_atomically(Path(model_dir) / "history.json", json.dumps(history, indent=1) + "\n")


def is_model_dir(path) -> bool:
    """True when `path` holds a config.json with our format tag (any version): a model dir that
    `-oc` may replace."""
    try:
        data = json.loads((Path(path) / CONFIG_NAME).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError):
        return False
    return isinstance(data, dict) and data.get("format") == FORMAT


def read_document(path, fmt: str, version: int, what: str) -> dict:
    """A JSON document this project writes into model dirs (config.json, calibration.json,
    signal_profile.json), checked for our format tag and version; InputFileError otherwise."""
    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, ValueError) as err:
        raise InputFileError(path, f"not valid JSON ({err})") from None
    if not isinstance(data, dict) or data.get("format") != fmt:
        raise InputFileError(path, f"not a factornet-jax {what} (format should be {fmt!r})")
    if data.get("version") != version:
        raise InputFileError(path, f"{what} version {data.get('version')!r} is not supported "
                                   f"(this program reads version {version})")
    return data


def read_config(model_dir) -> dict:
    """Parse and check config.json of a model dir."""
    model_dir = Path(model_dir)
    path = model_dir / CONFIG_NAME
    if not model_dir.is_dir():
        raise FactorNetError(f"{model_dir}: model directory not found")
    if not path.is_file():
        raise FactorNetError(f"{model_dir}: not a model directory (no {CONFIG_NAME}); give a directory "
                             f"written by `factornet train run` or `factornet import-keras`")
    data = read_document(path, FORMAT, VERSION, "model config")
    for key in ("model", "tfs", "track_names"):
        if key not in data:
            raise InputFileError(path, f"missing key {key!r}")
    return data


# ---------------------------------------------------------------------------------------------
# Loading for prediction
# ---------------------------------------------------------------------------------------------

class LoadedModel:
    """A model dir loaded for prediction.

    Attributes: config (config.json dict), model_config (ModelConfig), params, tfs,
    track_names, meta_names, features, model_dir, params_path.
    """

    def __init__(self, model_dir, config, model_config, params, params_path):
        self.model_dir = Path(model_dir)
        self.config = config
        self.model_config = model_config
        self.params = params
        self.params_path = Path(params_path)
        self.tfs = list(config["tfs"])
        self.track_names = list(config["track_names"])
        self.meta_names = list(config.get("meta_names") or [])
        self.features = list(config.get("features") or ["bigwig"])
        self._predict_fn = None

    def check_store(self, store, tf=None) -> int:
        """The TF column to score; raises FactorNetError when store and model do not fit."""
        if store.track_names != self.track_names:
            raise FactorNetError(f"-i {store.path}: its signal tracks {store.track_names} differ from "
                                 f"the tracks model {self.model_dir} was trained on "
                                 f"{self.track_names}; build the store from the same bigwig.txt names")
        if "meta" in self.features or self.model_config.num_meta:
            if store.meta_names != self.meta_names:
                raise FactorNetError(f"-i {store.path}: its meta features {store.meta_names} differ "
                                     f"from model {self.model_dir}'s {self.meta_names}; build the "
                                     "store with the same meta.txt names")
        if self.model_config.use_gencode and not store.genome.has_annotations:
            raise FactorNetError(f"-m {self.model_dir}: a GENCODE model needs the annotations in the "
                                 f"genome store {store.genome.path}; add them with `factornet "
                                 "preprocess build ... --annotations DIR`")
        if tf is None:
            if len(self.tfs) > 1:
                raise ConfigError(f"-f: model {self.model_dir} predicts {len(self.tfs)} TFs "
                                  f"({', '.join(self.tfs)}); choose one with -f (one TF per file)")
            return 0
        if tf not in self.tfs:
            raise ConfigError(f"-f {tf}: not a TF of model {self.model_dir} "
                              f"({', '.join(self.tfs)})")
        return self.tfs.index(tf)

    def _compiled(self):
        if self._predict_fn is None:
            import jax
            from factornet_jax.model import make_model, probabilities
            module = make_model(self.model_config)

            def predict_batch(params, onehot, signal, meta, gencode):
                logits = module.apply({"params": params}, onehot, signal, meta, gencode, train=False)
                return probabilities(logits)

            self._predict_fn = jax.jit(predict_batch)
        return self._predict_fn

    def _check(self, name, array, shape):
        if array.ndim != len(shape) or any(want is not None and got != want
                                           for got, want in zip(array.shape, shape)):
            want = "(" + ", ".join("N" if s is None else str(s) for s in shape) + ")"
            raise FactorNetError(f"{name} has shape {array.shape}, model {self.model_dir} expects {want}")

    def predict(self, onehot, signal, meta=None, gencode=None, batch_size=256) -> np.ndarray:
        """Binding probabilities, mean of both strands.

        Parameters
        ----------
        onehot : (N, L, 4) uint8 or float
        signal : (N, L, S) float32, tracks in `track_names` order
        meta : (N, M) float32 or None (required when the model has meta features)
        gencode : (N, 6) float32/uint8 or None (required for GENCODE models)
        batch_size : windows per compiled call; the last batch is zero-padded so each
            distinct batch_size compiles once

        Returns
        -------
        (N, T) float32, columns in `tfs` order
        """
        cfg = self.model_config
        onehot = np.asarray(onehot)
        n = onehot.shape[0] if onehot.ndim else 0
        self._check("onehot", onehot, (None, cfg.seq_len, 4))
        signal = np.asarray(signal, np.float32)
        self._check("signal", signal, (n, cfg.seq_len, cfg.num_tracks))
        if cfg.num_meta:
            if meta is None:
                raise FactorNetError(f"model {self.model_dir} needs {cfg.num_meta} meta features "
                                     f"({', '.join(self.meta_names)})")
            meta = np.asarray(meta, np.float32)
            self._check("meta", meta, (n, cfg.num_meta))
        else:
            meta = None
        if cfg.use_gencode:
            if gencode is None:
                raise FactorNetError(f"model {self.model_dir} needs the {GENCODE_SIZE} GENCODE features")
            gencode = np.asarray(gencode, np.float32)
            self._check("gencode", gencode, (n, GENCODE_SIZE))
        else:
            gencode = None
        if onehot.dtype != np.uint8:
            onehot = onehot.astype(np.float32)
        batch_size = max(1, int(batch_size))
        fn = self._compiled()
        out = np.empty((n, cfg.num_tasks), np.float32)
        for start in range(0, n, batch_size):
            stop = min(start + batch_size, n)
            parts = [onehot, signal, meta, gencode]
            batch = [None if a is None else _pad_rows(a[start:stop], batch_size) for a in parts]
            probs = fn(self.params, *batch)
            out[start:stop] = np.asarray(probs)[: stop - start]
        return out


def _pad_rows(array, rows):
    """Zero-pad axis 0 of `array` to `rows`."""
    if array.shape[0] == rows:
        return array
    pad = np.zeros((rows - array.shape[0],) + array.shape[1:], array.dtype)
    return np.concatenate([array, pad], axis=0)


def load_model(model_dir, which="best") -> LoadedModel:
    """Load a model dir for prediction; `which` "best" falls back to final.npz when absent,
    with a warning on stderr."""
    import jax
    from factornet_jax.model import ModelConfig, abstract_params

    model_dir = Path(model_dir)
    config = read_config(model_dir)
    if which not in PARAM_FILES:
        raise FactorNetError(f"unknown checkpoint {which!r}; choose one of {', '.join(PARAM_FILES)}")
    path = model_dir / PARAM_FILES[which]
    if not path.is_file() and which == "best" and (model_dir / PARAM_FILES["final"]).is_file():
        from factornet_jax.progress import warn
        warn(f"{model_dir}: no best.npz (no validation-best parameters were saved); using "
             "final.npz (--checkpoint final says so explicitly)")
        path = model_dir / PARAM_FILES["final"]
    if not path.is_file():
        raise FactorNetError(f"{model_dir}: no parameters ({PARAM_FILES[which]} or final.npz); "
                             f"was training interrupted before the first checkpoint?")
    try:
        model_config = ModelConfig.from_dict(config["model"])
    except (FactorNetError, TypeError) as err:
        raise InputFileError(model_dir / CONFIG_NAME, f"bad \"model\" section: {err}") from None
    params = load_params(path)
    _check_param_shapes(path, flatten_params_shapes(abstract_params(model_config)), params)
    params = jax.tree_util.tree_map(lambda a: jax.numpy.asarray(a, jax.numpy.float32), params)
    return LoadedModel(model_dir, config, model_config, params, path)


def flatten_params_shapes(tree, prefix="") -> dict:
    """{"conv/kernel": shape, ...} of a (possibly abstract) params tree."""
    out = {}
    for key in tree:
        value = tree[key]
        if hasattr(value, "keys"):
            out.update(flatten_params_shapes(value, f"{prefix}{key}/"))
        else:
            out[f"{prefix}{key}"] = tuple(value.shape)
    return out


def _check_param_shapes(path, expected: dict, params: dict):
    got = {name: tuple(a.shape) for name, a in flatten_params(params).items()}
    missing = sorted(set(expected) - set(got))
    extra = sorted(set(got) - set(expected))
    if missing or extra:
        raise InputFileError(path, f"parameters do not match config.json (missing: {missing or '-'}, "
                                   f"unexpected: {extra or '-'})")
    for name, shape in expected.items():
        if got[name] != shape:
            raise InputFileError(path, f"parameter {name} has shape {got[name]}, config.json implies {shape}")

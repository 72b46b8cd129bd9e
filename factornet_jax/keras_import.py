"""Import a released FactorNet Keras 1.1 model (model.json + .hdf5 weights) as a model dir.

A released model dir holds model.json (Keras 1 functional model), best_model.hdf5 and/or
final_model.hdf5, chip.txt (TFs), feature.txt (bigwig / meta / gencode), bigwig.txt (track
names), meta.txt (meta names) and history.pkl. What is read, and how:

- model.json: walked layer by layer into a `ModelConfig` (lstm_cell="keras1"); any layer or
  setting this tower cannot reproduce is an error naming the layer.
- hdf5 weights (h5py, optional extra ``pip install 'factornet-jax[keras]'``): per-layer groups
  with ``weight_names`` attributes. Convolution1D W is (width, 1, channels, kernels) and the
  Theano backend flips kernels (true convolution), so it is reversed along width to become a
  cross-correlation kernel. LSTM gates W_/U_/b_{i,f,c,o} are concatenated [i, f, c, o].
- history.pkl: only through a restricted unpickler that builds dicts, lists, strings and
  numbers (numpy float/int scalars are rebuilt from their raw bytes by our own code, never by
  numpy's reconstructors); anything else is skipped with a warning.
"""
from __future__ import annotations

import dataclasses
import io
import json
import math
import pickle
from pathlib import Path

import numpy as np

from factornet_jax.errors import FactorNetError, InputFileError
from factornet_jax.labels import GENCODE_SIZE

WEIGHT_FILES = {"best": "best_model.hdf5", "final": "final_model.hdf5"}


@dataclasses.dataclass(frozen=True)
class KerasArchitecture:
    """What model.json says: ModelConfig fields and which Keras layer feeds which parameter."""

    config_fields: dict          # ModelConfig keyword arguments (without track_names/num_meta/use_gencode)
    in_channels: int             # 4 + number of signal tracks
    extra_size: int              # size of the extra (meta + gencode) input, 0 if none
    layer_map: dict              # our parameter group -> Keras layer name
    keras_version: str


@dataclasses.dataclass(frozen=True)
class ImportResult:
    """Summary of one import."""

    out_dir: Path
    model_config: object          # ModelConfig
    checkpoints: tuple            # ("best", "final") present in the output
    history_epochs: int           # epochs written to history.json (0: none)
    warnings: tuple               # one-line warnings (e.g. history skipped)


# ---------------------------------------------------------------------------------------------
# model.json
# ---------------------------------------------------------------------------------------------

def _layer_error(path, layer, message):
    return InputFileError(path, f"layer {layer.get('name', '?')!r} ({layer.get('class_name', '?')}): {message}")


def parse_model_json(path) -> KerasArchitecture:
    """Read a Keras 1 FactorNet model.json into a KerasArchitecture."""
    path = Path(path)
    if not path.is_file():
        raise InputFileError(path, "model.json not found; is this a released FactorNet Keras model dir?")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        layers = data["config"]["layers"]
    except (UnicodeDecodeError, json.JSONDecodeError, KeyError, TypeError) as err:
        raise InputFileError(path, f"not a Keras functional model description ({err})") from None
    if data.get("class_name") != "Model":
        raise InputFileError(path, f"expected a Keras functional 'Model', got {data.get('class_name')!r}")

    fields: dict = {"recurrent": 0}
    layer_map: dict = {}
    in_channels = None
    extra_size = 0
    seen_pool = seen_flatten = False
    dense_layers = []  # (layer, follows_merge_concat)
    after_merge = False
    for layer in layers:
        kind = layer.get("class_name")
        cfg = layer.get("config", {})
        if kind == "InputLayer":
            shape = cfg.get("batch_input_shape") or []
            if len(shape) == 3:
                if shape[1] is None:
                    raise _layer_error(path, layer, "sequence input has no fixed length")
                if in_channels is not None and (shape[1], shape[2]) != (fields["seq_len"], in_channels):
                    raise _layer_error(path, layer, "forward and reverse inputs differ in shape")
                fields["seq_len"], in_channels = int(shape[1]), int(shape[2])
            elif len(shape) == 2:
                if extra_size:
                    raise _layer_error(path, layer, "more than one extra (meta/GENCODE) input")
                extra_size = int(shape[1])
            else:
                raise _layer_error(path, layer, f"unsupported input shape {shape}")
        elif kind == "Convolution1D":
            if "conv" in layer_map:
                raise _layer_error(path, layer, "more than one convolution layer")
            if cfg.get("border_mode") != "valid" or cfg.get("subsample_length", 1) != 1:
                raise _layer_error(path, layer, "only border_mode='valid' with stride 1 is supported")
            if cfg.get("activation") != "relu" or not cfg.get("bias", True):
                raise _layer_error(path, layer, "only relu convolutions with bias are supported")
            fields["kernels"] = int(cfg["nb_filter"])
            fields["kernel_width"] = int(cfg["filter_length"])
            layer_map["conv"] = layer["name"]
        elif kind == "TimeDistributed":
            inner = cfg.get("layer", {})
            inner_cfg = inner.get("config", {})
            if inner.get("class_name") != "Dense" or inner_cfg.get("activation") != "relu":
                raise _layer_error(path, layer, "only TimeDistributed(Dense(relu)) is supported")
            if "conv" not in layer_map or int(inner_cfg.get("output_dim", -1)) != fields["kernels"]:
                raise _layer_error(path, layer, "per-position dense must follow the convolution and "
                                                "have as many units as kernels")
            layer_map["position_dense"] = layer["name"]
        elif kind == "MaxPooling1D":
            pool = int(cfg["pool_length"])
            stride = cfg.get("stride") or pool
            if int(stride) != pool or cfg.get("border_mode", "valid") != "valid":
                raise _layer_error(path, layer, "only valid pooling with stride == pool_length is supported")
            fields["pool_size"] = pool
            seen_pool = True
        elif kind in ("GlobalMaxPooling1D",):
            fields["recurrent"] = -1
            seen_flatten = True
        elif kind == "Bidirectional":
            inner = cfg.get("layer", {})
            inner_cfg = inner.get("config", {})
            ok = (inner.get("class_name") == "LSTM" and cfg.get("merge_mode") == "concat"
                  and inner_cfg.get("return_sequences") and not inner_cfg.get("go_backwards")
                  and inner_cfg.get("activation") == "tanh"
                  and inner_cfg.get("inner_activation") == "hard_sigmoid")
            if not ok:
                raise _layer_error(path, layer, "only Bidirectional(LSTM(tanh, hard_sigmoid, "
                                                "return_sequences), merge_mode='concat') is supported")
            if not seen_pool:
                raise _layer_error(path, layer, "BiLSTM must follow max-pooling")
            fields["recurrent"] = int(inner_cfg["output_dim"])
            dropout_w, dropout_u = float(inner_cfg.get("dropout_W", 0)), float(inner_cfg.get("dropout_U", 0))
            if dropout_w != dropout_u:
                raise _layer_error(path, layer, f"LSTM dropout_W {dropout_w} and dropout_U {dropout_u} "
                                                "differ; one rate for both is supported")
            fields["lstm_dropout"] = dropout_w
            layer_map["bilstm"] = layer["name"]
        elif kind == "Dropout":
            if "conv" in layer_map and (seen_pool or seen_flatten) and not dense_layers:
                fields["dropout"] = float(cfg.get("p", 0.0))   # the dropout before the first dense
        elif kind == "Flatten":
            seen_flatten = True
        elif kind == "Merge":
            mode = cfg.get("mode")
            if mode == "concat":
                after_merge = True
            elif mode != "ave":
                raise _layer_error(path, layer, f"unsupported merge mode {mode!r}")
        elif kind == "Dense":
            if not seen_flatten:
                raise _layer_error(path, layer, "dense layer before Flatten/global pooling")
            dense_layers.append((layer, after_merge))
            after_merge = False
        else:
            raise _layer_error(path, layer, "layer type not part of the FactorNet tower")

    if in_channels is None or "conv" not in layer_map or not dense_layers:
        raise InputFileError(path, "not a FactorNet model: needs sequence inputs, a Convolution1D and dense layers")
    if in_channels < 4:
        raise InputFileError(path, f"sequence input has {in_channels} channels; expected 4 (ACGT) + tracks")
    if "position_dense" not in layer_map:
        raise InputFileError(path, "no TimeDistributed(Dense) after the convolution")
    if fields["recurrent"] >= 0 and not seen_pool:
        raise InputFileError(path, "no MaxPooling1D after the convolution")
    fields.setdefault("pool_size", max(1, fields["kernel_width"] // 2))

    *hidden, (out_layer, _) = dense_layers
    out_cfg = out_layer["config"]
    if out_cfg.get("activation") != "sigmoid":
        raise _layer_error(path, out_layer, "the output layer must use a sigmoid")
    fields["num_tasks"] = int(out_cfg["output_dim"])
    layer_map["output"] = out_layer["name"]
    expected = [("dense", False)] + ([("meta_dense", True)] if extra_size else [])
    if len(hidden) != len(expected):
        with_extra = "with" if extra_size else "without"
        raise _layer_error(path, out_layer, f"expected {len(expected)} hidden dense layer(s) {with_extra} "
                                            f"an extra input, found {len(hidden)}")
    for (layer, follows_merge), (name, wants_merge) in zip(hidden, expected):
        lcfg = layer["config"]
        if lcfg.get("activation") != "relu" or follows_merge != wants_merge:
            raise _layer_error(path, layer, "unexpected dense layer (FactorNet: Dense(relu) "
                                            "[-> concat(extra) -> Dense(relu)] -> Dense(sigmoid))")
        fields.setdefault("dense", int(lcfg["output_dim"]))
        if int(lcfg["output_dim"]) != fields["dense"]:
            raise _layer_error(path, layer, "dense layers of different sizes are not supported")
        layer_map[name] = layer["name"]
    fields["lstm_cell"] = "keras1"
    return KerasArchitecture(fields, in_channels, extra_size, layer_map, str(data.get("keras_version", "?")))


# ---------------------------------------------------------------------------------------------
# FactorNet txt files
# ---------------------------------------------------------------------------------------------

def read_name_list(path, required=True) -> list:
    """Names from a FactorNet txt file: one per line, last tab-separated column, blanks skipped."""
    path = Path(path)
    if not path.is_file():
        if required:
            raise InputFileError(path, "file not found")
        return []
    names = []
    for line in path.read_text(encoding="utf-8").splitlines():
        line = line.strip()
        if line:
            names.append(line.split("\t")[-1].strip())
    return names


# ---------------------------------------------------------------------------------------------
# hdf5 weights
# ---------------------------------------------------------------------------------------------

def _h5py():
    try:
        import h5py
    except ImportError:
        raise FactorNetError("reading Keras .hdf5 weights needs h5py: pip install 'factornet-jax[keras]' "
                             "(or pip install h5py)") from None
    return h5py


def read_keras_layer_weights(path) -> dict:
    """{layer name: {weight name: ndarray}} from a Keras 1 .hdf5 (model or weights-only file)."""
    h5py = _h5py()
    path = Path(path)
    try:
        with h5py.File(path, "r") as f:
            root = f["model_weights"] if "model_weights" in f else f
            names = [n.decode() if isinstance(n, bytes) else str(n) for n in root.attrs["layer_names"]]
            out = {}
            for name in names:
                group = root[name]
                weight_names = [w.decode() if isinstance(w, bytes) else str(w)
                                for w in group.attrs.get("weight_names", [])]
                out[name] = {w: np.asarray(group[w], dtype=np.float32) for w in weight_names}
            return out
    except (OSError, KeyError) as err:
        raise InputFileError(path, f"not a readable Keras weight file ({err})") from None


def _weight(path, layer_name, weights, suffix):
    found = [w for w in weights if w.endswith(suffix)]
    if len(found) != 1:
        raise InputFileError(path, f"layer {layer_name!r}: expected one weight ending {suffix!r}, "
                                   f"found {found or 'none'}")
    return weights[found[0]]


def map_keras_weights(path, arch: KerasArchitecture, layer_weights: dict, expected_shapes: dict) -> dict:
    """Our params pytree from Keras layer weights; shapes checked against `expected_shapes`.

    Parameters
    ----------
    expected_shapes : {"conv/kernel": shape, ...} of the target ModelConfig
    """
    params: dict = {}
    for group, layer_name in arch.layer_map.items():
        if layer_name not in layer_weights:
            raise InputFileError(path, f"layer {layer_name!r} has no weights in this file")
        weights = layer_weights[layer_name]
        if group == "conv":
            kernel = _weight(path, layer_name, weights, "_W")
            if kernel.ndim != 4 or kernel.shape[1] != 1:
                raise InputFileError(path, f"layer {layer_name!r}: Convolution1D W has shape {kernel.shape}, "
                                           f"expected (width, 1, channels, kernels)")
            # Theano convolves (flips the kernel): reverse along width for cross-correlation
            params[group] = {"kernel": kernel[::-1, 0].copy(), "bias": _weight(path, layer_name, weights, "_b")}
        elif group == "bilstm":
            lstm = {}
            for direction in ("forward", "backward"):
                for kind in ("W", "U", "b"):
                    blocks = []
                    for gate in ("i", "f", "c", "o"):
                        name = [w for w in weights if w.startswith(direction) and w.endswith(f"_{kind}_{gate}")]
                        if len(name) != 1:
                            raise InputFileError(path, f"layer {layer_name!r}: no unique {direction} "
                                                       f"{kind}_{gate} weight")
                        blocks.append(weights[name[0]])
                    lstm[f"{direction}_{kind}"] = np.concatenate(blocks, axis=-1)
            params[group] = lstm
        else:
            params[group] = {"kernel": _weight(path, layer_name, weights, "_W"),
                             "bias": _weight(path, layer_name, weights, "_b")}
        for key, value in params[group].items():
            want = expected_shapes.get(f"{group}/{key}")
            if want is None or tuple(value.shape) != tuple(want):
                raise InputFileError(path, f"layer {layer_name!r}: weight {key} has shape {value.shape}, "
                                           f"model.json implies {want}")
    missing = sorted({name.split("/")[0] for name in expected_shapes} - set(params))
    if missing:
        raise InputFileError(path, f"no Keras layer supplies {', '.join(missing)}")
    return params


# ---------------------------------------------------------------------------------------------
# history.pkl (restricted unpickling)
# ---------------------------------------------------------------------------------------------

class _DTypeStub:
    """Stand-in for numpy.dtype inside a pickle: records the type code and byte order only."""

    def __init__(self, code, align=0, copy=1):
        if not isinstance(code, str) or code not in _SCALAR_CODES:
            raise pickle.UnpicklingError(f"dtype {code!r} is not a plain number type")
        self.code = code
        self.byteorder = "<"

    def __setstate__(self, state):
        if isinstance(state, tuple) and len(state) > 1 and state[1] in ("<", ">", "|", "="):
            self.byteorder = state[1] if state[1] in "<>" else "<"


_SCALAR_CODES = {"f2", "f4", "f8", "i1", "i2", "i4", "i8", "u1", "u2", "u4", "u8", "b1"}


def _scalar_from_bytes(dtype, data=None):
    """Stand-in for numpy's scalar reconstructor: a Python float/int from raw bytes."""
    if not isinstance(dtype, _DTypeStub) or not isinstance(data, (str, bytes)):
        raise pickle.UnpicklingError("unexpected numpy scalar payload")
    raw = data.encode("latin1") if isinstance(data, str) else data
    np_dtype = np.dtype(dtype.byteorder + dtype.code)
    if len(raw) != np_dtype.itemsize:
        raise pickle.UnpicklingError("numpy scalar has the wrong number of bytes")
    return np.frombuffer(raw, np_dtype)[0].item()


def _latin1_bytes(text, encoding="latin1"):
    """Stand-in for _codecs.encode, which Python 3 pickles use for bytes: latin-1 only."""
    if not isinstance(text, str) or encoding not in ("latin1", "latin-1"):
        raise pickle.UnpicklingError("unexpected bytes payload")
    return text.encode("latin1")


class _HistoryUnpickler(pickle.Unpickler):
    """Builds only dict/list/tuple/str/int/float; numpy scalars through our own stand-ins."""

    _ALLOWED = {
        ("numpy.core.multiarray", "scalar"): _scalar_from_bytes,
        ("numpy._core.multiarray", "scalar"): _scalar_from_bytes,
        ("numpy", "dtype"): _DTypeStub,
        ("_codecs", "encode"): _latin1_bytes,
    }

    def find_class(self, module, name):
        try:
            return self._ALLOWED[(module, name)]
        except KeyError:
            raise pickle.UnpicklingError(f"refusing to load {module}.{name}") from None

    def persistent_load(self, pid):
        raise pickle.UnpicklingError("refusing persistent ids")


def read_history_pkl(path):
    """Per-epoch history records from a Keras history.pkl, or (None, reason) when refused.

    Returns
    -------
    (records, None) with records = [{"epoch": 1, "loss": ..., ...}, ...], or (None, reason)
    """
    try:
        raw = Path(path).read_bytes()
        data = _HistoryUnpickler(io.BytesIO(raw), encoding="latin1").load()
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError, IndexError,
            KeyError, UnicodeDecodeError, OSError) as err:
        return None, f"{path}: history not imported ({err})"
    if not isinstance(data, dict) or not all(isinstance(k, str) and isinstance(v, (list, tuple))
                                             for k, v in data.items()):
        return None, f"{path}: history not imported (not a dict of per-epoch lists)"
    epochs = max((len(v) for v in data.values()), default=0)
    records = []
    for epoch in range(epochs):
        record = {"epoch": epoch + 1}
        for key, values in data.items():
            if epoch < len(values):
                value = values[epoch]
                if isinstance(value, bool) or not isinstance(value, (int, float)):
                    return None, f"{path}: history not imported (non-numeric value under {key!r})"
                record[key] = None if isinstance(value, float) and not math.isfinite(value) else value
        records.append(record)
    return records, None


# ---------------------------------------------------------------------------------------------
# The import
# ---------------------------------------------------------------------------------------------

def build_model_config(keras_dir):
    """(ModelConfig, KerasArchitecture, tfs, track_names, meta_names, features) of a Keras model dir."""
    from factornet_jax.model import ModelConfig

    keras_dir = Path(keras_dir)
    arch = parse_model_json(keras_dir / "model.json")
    tfs = read_name_list(keras_dir / "chip.txt")
    track_names = read_name_list(keras_dir / "bigwig.txt", required=False)
    features = read_name_list(keras_dir / "feature.txt", required=False) or ["bigwig"]
    meta_names = read_name_list(keras_dir / "meta.txt", required=False) if "meta" in features else []
    if len(track_names) != arch.in_channels - 4:
        raise InputFileError(keras_dir / "bigwig.txt", f"lists {len(track_names)} tracks but model.json's "
                                                       f"input has {arch.in_channels - 4} signal channels")
    if len(tfs) != arch.config_fields["num_tasks"]:
        raise InputFileError(keras_dir / "chip.txt", f"lists {len(tfs)} TFs but the model has "
                                                     f"{arch.config_fields['num_tasks']} outputs")
    use_gencode = "gencode" in features
    num_meta = len(meta_names)
    if "meta" in features and not meta_names:
        raise InputFileError(keras_dir / "meta.txt", "feature.txt lists meta but meta.txt is missing or empty")
    if num_meta + (GENCODE_SIZE if use_gencode else 0) != arch.extra_size:
        raise InputFileError(keras_dir / "feature.txt",
                             f"features {features} imply {num_meta} meta + {GENCODE_SIZE if use_gencode else 0} "
                             f"GENCODE inputs, but model.json's extra input has {arch.extra_size}")
    model_config = ModelConfig(track_names=tuple(track_names), num_meta=num_meta, use_gencode=use_gencode,
                               **arch.config_fields)
    return model_config, arch, tfs, track_names, meta_names, features


def import_keras_model(keras_dir, out_dir, overwrite=False) -> ImportResult:
    """Convert a released Keras 1 FactorNet model dir into a factornet-jax model dir.

    The output is written to a hidden sibling directory and swapped into place
    (outputs.write_dir_atomically), so an interrupted import never leaves a complete-looking
    directory, and with `overwrite` (-oc) an earlier model dir stays whole until the new one is.
    """
    from factornet_jax import modeldir
    from factornet_jax.model import abstract_params
    from factornet_jax.outputs import KERAS_IMPORT, check_output, write_dir_atomically

    keras_dir, out_dir = Path(keras_dir), Path(out_dir)
    if not keras_dir.is_dir():
        raise FactorNetError(f"{keras_dir}: Keras model directory not found")
    check_output(out_dir, overwrite, KERAS_IMPORT, [keras_dir])    # fail before the work
    model_config, arch, tfs, track_names, meta_names, features = build_model_config(keras_dir)
    expected_shapes = modeldir.flatten_params_shapes(abstract_params(model_config))

    checkpoints = {}
    for which, name in WEIGHT_FILES.items():
        path = keras_dir / name
        if path.is_file():
            checkpoints[which] = map_keras_weights(path, arch, read_keras_layer_weights(path), expected_shapes)
    if not checkpoints:
        raise FactorNetError(f"{keras_dir}: no weights ({' or '.join(WEIGHT_FILES.values())})")

    warnings = []
    records = None
    if (keras_dir / "history.pkl").is_file():
        records, reason = read_history_pkl(keras_dir / "history.pkl")
        if reason:
            warnings.append(reason)

    def write_contents(staging):
        config = modeldir.make_config(model_config, tfs, track_names, meta_names, features, source="keras")
        config["keras"] = {"source_dir": str(keras_dir.resolve()), "keras_version": arch.keras_version,
                           "layers": arch.layer_map,
                           "weights": {w: WEIGHT_FILES[w] for w in checkpoints}}
        modeldir.write_config(staging, config)
        for which, params in checkpoints.items():
            modeldir.save_params(staging / modeldir.PARAM_FILES[which], params)
        if records is not None:
            modeldir.write_history(staging, records)
        modeldir.write_factornet_files(staging, tfs, track_names, meta_names, features)

    write_dir_atomically(out_dir, overwrite, write_contents, KERAS_IMPORT, [keras_dir])
    return ImportResult(out_dir, model_config, tuple(checkpoints), len(records or []), tuple(warnings))

"""The FactorNet model: config, Flax (linen) tower shared by both strands, loss, motif injection.

Tower (one copy, applied to the forward window and to its reverse complement)::

    concat(onehot (N, L, 4), signal (N, L, S))
    -> Conv1D(kernels, kernel_width, VALID, relu) -> Dropout(0.1)
    -> Dense(kernels, relu) per position
    -> MaxPool(pool_size, stride pool_size)
    -> BiLSTM(recurrent each way; input and recurrent dropout lstm_dropout) -> Dropout(dropout)
    -> Flatten -> Dense(dense, relu)
    [-> concat(meta, gencode) -> Dropout(0.1) -> Dense(dense, relu)]
    -> Dropout(dropout) -> Dense(num_tasks)  (logits)

``recurrent == 0`` drops the BiLSTM (pool -> dropout -> flatten); ``recurrent < 0`` replaces
pool + BiLSTM + flatten with a global max over positions.

Why flax.linen: the model is a pure function of a params pytree (``model.apply``), which
jits and shards over a ("data",) mesh with no extra state, and the params tree is a plain
nested dict that :mod:`factornet_jax.modeldir` saves as ``.npz``. Both strands run as one
batch of 2N windows, so the tower is traced and executed once per step.

Dropout in ``train=True`` mode draws from the ``"dropout"`` RNG collection:
``model.apply({"params": p}, ..., train=True, rngs={"dropout": key})``.

Initialisation is Keras 1.1's (FactorNet's): ``glorot_uniform`` weights with Keras 1's fan
arithmetic (``keras1_conv_init``), zero biases, LSTM orthogonal recurrent weights scaled by 1.1
and forget-gate bias 1. docs/FIDELITY.md gives the formulas.
"""
from __future__ import annotations

import dataclasses
import functools
import math

import jax
import jax.numpy as jnp
import numpy as np
from flax import linen as nn

from factornet_jax.errors import ConfigError
from factornet_jax.labels import GENCODE_SIZE

LSTM_CELLS = ("standard", "keras1")
SIGNAL_TRANSFORMS = ("none", "log1p")


@dataclasses.dataclass(frozen=True)
class ModelConfig:
    """Architecture of one FactorNet model (saved as config.json["model"])."""

    seq_len: int                    # window length L in bp (FactorNet -L; released models: 1002)
    track_names: tuple = ()         # signal track names, in input channel order (bigwig.txt)
    num_tasks: int = 1              # output units T: one per TF
    num_meta: int = 0               # cell-type meta features concatenated after the first dense (0: none)
    use_gencode: bool = False       # 6 GENCODE bin flags concatenated after the meta features
    kernels: int = 32               # number of convolution kernels (FactorNet -k)
    kernel_width: int = 26          # convolution kernel width in bp (FactorNet -w)
    pool_size: int | None = None    # max-pool width and stride; None -> kernel_width // 2
    recurrent: int = 32             # BiLSTM units each way (-r); 0: no BiLSTM; <0: global max-pool
    dense: int = 128                # units of the dense layer(s) (FactorNet -d)
    dropout: float = 0.5            # dropout after the BiLSTM and before the output (-p)
    lstm_dropout: float = 0.1       # BiLSTM input and recurrent dropout (Keras 1 dropout_W/dropout_U)
    lstm_cell: str = "standard"     # "standard" (sigmoid gates) or "keras1" (hard_sigmoid, Keras 1.1)
    signal_transform: str = "none"  # "none" (FactorNet: tracks as stored) or "log1p" (log(1 + max(x, 0)))

    def __post_init__(self):
        if isinstance(self.track_names, str):
            raise ConfigError(f"model track_names must be a list of names, got the string {self.track_names!r}")
        object.__setattr__(self, "track_names", tuple(str(t) for t in self.track_names))
        if self.pool_size is None:
            object.__setattr__(self, "pool_size", max(1, int(self.kernel_width) // 2))
        for name in ("seq_len", "num_tasks", "kernels", "kernel_width", "pool_size", "dense", "recurrent",
                     "num_meta"):
            value = getattr(self, name)
            if not isinstance(value, (int, np.integer)) or isinstance(value, bool):
                raise ConfigError(f"model {name} must be an integer, got {value!r}")
            object.__setattr__(self, name, int(value))   # plain int: JSON-serialisable
            minimum = {"recurrent": None, "num_meta": 0}.get(name, 1)
            if minimum is not None and value < minimum:
                raise ConfigError(f"model {name} must be >= {minimum}, got {value!r}")
        object.__setattr__(self, "use_gencode", bool(self.use_gencode))
        for name in ("dropout", "lstm_dropout"):
            value = float(getattr(self, name))
            object.__setattr__(self, name, value)
            if not 0.0 <= value < 1.0:
                raise ConfigError(f"model {name} must be in [0, 1), got {value!r}")
        if self.signal_transform not in SIGNAL_TRANSFORMS:
            raise ConfigError(f"model signal_transform must be one of {SIGNAL_TRANSFORMS}, "
                              f"got {self.signal_transform!r}")
        if self.lstm_cell not in LSTM_CELLS:
            raise ConfigError(f"model lstm_cell must be one of {LSTM_CELLS}, got {self.lstm_cell!r}")
        if self.conv_len < 1:
            raise ConfigError(f"model kernel_width {self.kernel_width} is longer than seq_len {self.seq_len}")
        if self.recurrent >= 0 and self.pooled_len < 1:
            raise ConfigError(f"model pool_size {self.pool_size} is longer than the convolution output "
                              f"({self.conv_len} positions); lower -w or raise -L")
        strand_swap_permutation(self.track_names)  # raises on an unpaired _fwd/_rev track

    @property
    def num_tracks(self) -> int:
        """Number of signal tracks S."""
        return len(self.track_names)

    @property
    def in_channels(self) -> int:
        """Input channels per position: 4 (ACGT) + S."""
        return 4 + self.num_tracks

    @property
    def num_extra(self) -> int:
        """Features concatenated after the first dense layer: meta + 6 GENCODE flags."""
        return int(self.num_meta) + (GENCODE_SIZE if self.use_gencode else 0)

    @property
    def conv_len(self) -> int:
        """Positions after the VALID convolution."""
        return self.seq_len - self.kernel_width + 1

    @property
    def pooled_len(self) -> int:
        """Positions after max-pooling (VALID, stride = pool_size)."""
        return self.conv_len // self.pool_size

    def to_dict(self) -> dict:
        out = dataclasses.asdict(self)
        out["track_names"] = list(self.track_names)
        return out

    @classmethod
    def from_dict(cls, data: dict) -> "ModelConfig":
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ConfigError(f"unknown model config field(s): {', '.join(unknown)}")
        if "seq_len" not in data:
            raise ConfigError("model config lacks seq_len")
        return cls(**data)


def strand_swap_permutation(track_names) -> np.ndarray:
    """Channel order of the reverse-strand signal: `X_fwd` and `X_rev` tracks trade places.

    Returns
    -------
    perm : (S,) int64, reverse-strand signal = signal[..., ::-1 in time, perm]
    """
    names = list(track_names)
    index = {name: i for i, name in enumerate(names)}
    perm = np.arange(len(names), dtype=np.int64)
    for i, name in enumerate(names):
        for suffix, other in (("_fwd", "_rev"), ("_rev", "_fwd")):
            if name.endswith(suffix):
                mate = name[: -len(suffix)] + other
                if mate not in index:
                    raise ConfigError(f"track {name!r} has no {mate!r} partner; stranded tracks come "
                                      f"in _fwd/_rev pairs (rename it if it is not stranded)")
                perm[i] = index[mate]
    return perm


# ---------------------------------------------------------------------------------------------
# Flax modules
# ---------------------------------------------------------------------------------------------

def hard_sigmoid(x):
    """Keras 1 / Theano hard sigmoid: clip(0.2 x + 0.5, 0, 1)."""
    return jnp.clip(0.2 * x + 0.5, 0.0, 1.0)


KERAS1_ORTHOGONAL_SCALE = 1.1  # Keras 1 initializations.orthogonal(shape, scale=1.1)


def keras1_conv_limit(kernel_width, in_channels, kernels):
    """Bound of Keras 1.1's ``glorot_uniform`` for a Convolution1D kernel.

    Keras 1.1 stores the kernel as (width, 1, in_channels, kernels) and computes its fans with
    the default ``dim_ordering='th'``, reading that shape as (depth, input_depth, rows, cols):
    fan_in = 1 * in_channels * kernels, fan_out = width * in_channels * kernels, so the bound
    sqrt(6 / (fan_in + fan_out)) is sqrt(6 / ((width + 1) * in_channels * kernels)).
    """
    return math.sqrt(6.0 / ((kernel_width + 1) * in_channels * kernels))


def keras1_conv_init(key, shape, dtype=jnp.float32):
    """Uniform(-limit, limit) for a Flax Conv kernel (width, in_channels, kernels), limit from
    `keras1_conv_limit` (FactorNet's Convolution1D init)."""
    limit = keras1_conv_limit(*shape)
    return jax.random.uniform(key, shape, dtype, -limit, limit)


def _lstm_weight_init(kind):
    """Per-gate initialisers, gates concatenated [i, f, c, o] along the last axis (Keras 1 style):
    input weights glorot_uniform, recurrent weights orthogonal * 1.1, biases 0 but forget 1."""
    def init(key, shape, dtype=jnp.float32):
        units = shape[-1] // 4
        if kind == "bias":  # forget gate bias 1 ("forget_bias_init": "one")
            return jnp.concatenate([jnp.zeros(units), jnp.ones(units), jnp.zeros(2 * units)]).astype(dtype)
        gate_init = (nn.initializers.glorot_uniform() if kind == "input"
                     else nn.initializers.orthogonal(KERAS1_ORTHOGONAL_SCALE))
        keys = jax.random.split(key, 4)
        return jnp.concatenate([gate_init(k, shape[:-1] + (units,), dtype) for k in keys], axis=-1)
    return init


def bilstm_scan(x, w_in, w_rec, bias, cell="standard", masks=None):
    """Bidirectional LSTM over time, both directions in one lax.scan.

    Parameters
    ----------
    x : (B, T, F) float32
    w_in : (2, F, 4H) input weights, [forward, backward], gates [i, f, c, o]
    w_rec : (2, H, 4H) recurrent weights
    bias : (2, 4H)
    cell : "standard" (sigmoid gates) or "keras1" (hard_sigmoid gates)
    masks : None, or (input_mask (2, 4, B, F), recurrent_mask (2, 4, B, H)): Keras 1's
        dropout_W / dropout_U. Per direction and gate, one mask per sequence, the same at every
        step, multiplying the input (gate g sees x * input_mask[d, g]) and the previous hidden
        state (h * recurrent_mask[d, g]); masks hold 0 or 1 / (1 - rate).

    Returns
    -------
    (B, T, 2H) float32: [forward_t, backward_t]; the backward direction reads the reversed
    sequence and its outputs are reversed back (Keras Bidirectional, merge_mode="concat").
    """
    hidden = w_rec.shape[1]
    batch = x.shape[0]
    # standard cell: the sigmoid gates as 0.5 + 0.5 tanh(x / 2) (the same function), all four
    # gates in one tanh per step: the gates are most of the model's time on CPU (BENCHMARKS.md)
    tanh_scale = jnp.concatenate([jnp.full(2 * hidden, 0.5), jnp.ones(hidden),
                                  jnp.full(hidden, 0.5)]).astype(x.dtype)
    xs = jnp.stack([x, x[:, ::-1]], axis=0)                       # (2, B, T, F)
    # input projection of every step in one matmul, outside the scan
    if masks is None:
        proj = jnp.einsum("dbtf,dfg->tdbg", xs, w_in)             # (T, 2, B, 4H)
        recurrent = lambda h: jnp.einsum("dbh,dhg->dbg", h, w_rec)            # noqa: E731
    else:
        in_mask, rec_mask = masks
        w_in_gates = w_in.reshape(2, w_in.shape[1], 4, hidden)              # (2, F, 4, H)
        proj = jnp.einsum("dbtf,dgbf,dfgh->tdbgh", xs, in_mask, w_in_gates)
        proj = proj.reshape(proj.shape[:3] + (4 * hidden,))
        w_rec_gates = w_rec.reshape(2, hidden, 4, hidden)
        recurrent = lambda h: jnp.einsum(                                      # noqa: E731
            "dbh,dgbh,dhgk->dbgk", h, rec_mask, w_rec_gates).reshape(h.shape[:2] + (4 * hidden,))
    proj = proj + bias[None, :, None, :]

    def step(carry, z_in):
        h, c = carry                                                # (2, B, H) each
        z = z_in + recurrent(h)
        if cell == "keras1":
            i = hard_sigmoid(z[..., :hidden])
            f = hard_sigmoid(z[..., hidden:2 * hidden])
            g = jnp.tanh(z[..., 2 * hidden:3 * hidden])
            o = hard_sigmoid(z[..., 3 * hidden:])
        else:
            t = jnp.tanh(z * tanh_scale)
            i, f, o = (0.5 * t[..., k * hidden:(k + 1) * hidden] + 0.5 for k in (0, 1, 3))
            g = t[..., 2 * hidden:3 * hidden]
        c = f * c + i * g
        h = o * jnp.tanh(c)
        return (h, c), h

    zeros = jnp.zeros((2, batch, hidden), x.dtype)
    # two steps per loop iteration: less loop overhead, same arithmetic (docs/BENCHMARKS.md)
    _, hs = jax.lax.scan(step, (zeros, zeros), proj, unroll=2)     # (T, 2, B, H)
    forward = jnp.transpose(hs[:, 0], (1, 0, 2))
    backward = jnp.transpose(hs[::-1, 1], (1, 0, 2))
    return jnp.concatenate([forward, backward], axis=-1)


def cudnn_lstm_weights(w_in, w_rec, bias):
    """Our bidirectional weights -> cuDNN's flat weight vector (`jax.experimental.rnn` layout).

    cuDNN packs, per pseudo-layer (forward, then backward), W_ih (4H, F) and W_hh (4H, H), then
    per pseudo-layer b_ih and b_hh (4H each); its gate order [i, f, g, o] is ours. Our single
    bias goes to b_ih, b_hh is zero.
    """
    parts = []
    for d in (0, 1):
        parts += [w_in[d].T.ravel(), w_rec[d].T.ravel()]
    for d in (0, 1):
        parts += [bias[d], jnp.zeros_like(bias[d])]
    return jnp.concatenate(parts)


def bilstm_cudnn(x, w_in, w_rec, bias):
    """`bilstm_scan` (standard cell) through cuDNN's fused LSTM kernel (NVIDIA GPUs only)."""
    from jax.experimental import rnn
    batch, steps, features = x.shape
    hidden = w_rec.shape[1]
    zeros = jnp.zeros((2, batch, hidden), jnp.float32)
    weights = cudnn_lstm_weights(w_in, w_rec, bias).astype(jnp.float32)
    y, _, _ = rnn.lstm(x.astype(jnp.float32), zeros, zeros, weights,
                       jnp.full((batch,), steps, jnp.int32), input_size=features,
                       hidden_size=hidden, num_layers=1, dropout=0.0, bidirectional=True)
    return y.astype(x.dtype)


LSTM_BACKENDS = ("scan", "cudnn")


def check_lstm_backend(backend, cell):
    """Refuse a BiLSTM backend this model or machine cannot run (ConfigError, one line)."""
    if backend not in LSTM_BACKENDS:
        raise ConfigError(f"--lstm {backend}: choose one of {', '.join(LSTM_BACKENDS)}")
    if backend == "cudnn":
        if cell != "standard":
            raise ConfigError("--lstm cudnn: this model's LSTM has Keras 1 hard-sigmoid gates, "
                              "which cuDNN does not compute; use --lstm scan")
        if jax.default_backend() != "gpu":
            raise ConfigError(f"--lstm cudnn needs an NVIDIA GPU; JAX runs on "
                              f"{jax.default_backend()} here; use --lstm scan")


def lstm_dropout_masks(key, rate, batch, features, hidden, dtype=jnp.float32):
    """Keras 1 LSTM dropout masks: (input (2, 4, B, F), recurrent (2, 4, B, H)), entries 0 or
    1 / (1 - rate), drawn independently per direction, gate and sequence (see `bilstm_scan`)."""
    keep = 1.0 - rate
    k_in, k_rec = jax.random.split(key)
    in_mask = jax.random.bernoulli(k_in, keep, (2, 4, batch, features)).astype(dtype) / keep
    rec_mask = jax.random.bernoulli(k_rec, keep, (2, 4, batch, hidden)).astype(dtype) / keep
    return in_mask, rec_mask


class BiLSTM(nn.Module):
    """Bidirectional LSTM returning sequences; params {forward,backward}_{W,U,b}, gates [i, f, c, o].

    backend "scan": `bilstm_scan` (any device); "cudnn": `bilstm_cudnn` (same weights; no
    dropout: training with lstm dropout needs the scan). With `train` and a dropout rate, the
    input and recurrent dropout masks come from the "dropout" RNG collection."""
    units: int
    cell: str = "standard"
    backend: str = "scan"
    dropout: float = 0.0

    @nn.compact
    def __call__(self, x, train=False):
        features = x.shape[-1]
        ws, us, bs = [], [], []
        for direction in ("forward", "backward"):
            ws.append(self.param(f"{direction}_W", _lstm_weight_init("input"), (features, 4 * self.units)))
            us.append(self.param(f"{direction}_U", _lstm_weight_init("recurrent"), (self.units, 4 * self.units)))
            bs.append(self.param(f"{direction}_b", _lstm_weight_init("bias"), (4 * self.units,)))
        masks = None
        if train and self.dropout > 0:
            if self.backend == "cudnn":
                raise ValueError("the cuDNN BiLSTM cannot apply LSTM dropout; train with the scan")
            masks = lstm_dropout_masks(self.make_rng("dropout"), self.dropout, x.shape[0], features,
                                       self.units, x.dtype)
        if self.backend == "cudnn":
            return bilstm_cudnn(x, jnp.stack(ws), jnp.stack(us), jnp.stack(bs))
        return bilstm_scan(x, jnp.stack(ws), jnp.stack(us), jnp.stack(bs), self.cell, masks)


class FactorNet(nn.Module):
    """FactorNet: strand logits (N, 2, T) from onehot (N, L, 4) and signal (N, L, S).

    ``__call__(onehot, signal, meta=None, gencode=None, train=False)``: onehot (N, L, 4)
    uint8/float, signal (N, L, S) float32, meta (N, num_meta), gencode (N, 6). Column 0 of
    the strand axis is the forward window, column 1 its reverse complement.

    The tower is split where its arithmetic stops being local to a position, so that other
    entry points (``model.apply(..., method=...)``) reuse the very same layers:
    ``strands`` (inputs of both strands) -> ``positions`` (Conv1D + per-position Dense: each
    output depends only on ``kernel_width`` bases) -> ``pool`` -> ``head`` (BiLSTM, dense
    layers, output). ``ladder`` scores many overlapping windows of one stretch of sequence
    with ``positions`` computed once for the whole stretch.
    """
    cfg: ModelConfig
    lstm_backend: str = "scan"

    def setup(self):
        cfg = self.cfg
        dense = functools.partial(nn.Dense, kernel_init=nn.initializers.glorot_uniform())
        self.conv = nn.Conv(cfg.kernels, (cfg.kernel_width,), padding="VALID",
                            kernel_init=keras1_conv_init)
        self.conv_dropout = nn.Dropout(0.1)
        self.position_dense = dense(cfg.kernels)
        if cfg.recurrent > 0:
            self.bilstm = BiLSTM(cfg.recurrent, cfg.lstm_cell, self.lstm_backend, cfg.lstm_dropout)
        self.recurrent_dropout = nn.Dropout(cfg.dropout)
        self.dense = dense(cfg.dense)
        if cfg.num_extra:
            self.meta_dropout = nn.Dropout(0.1)
            self.meta_dense = dense(cfg.dense)
        self.output_dropout = nn.Dropout(cfg.dropout)
        self.output = dense(cfg.num_tasks)

    def strands(self, onehot, signal):
        """Inputs of both strands: (N, P, 4), (N, P, S) -> (2N, P, 4 + S), rows [x0+, x0-, x1+, ...].

        The reverse row is the reverse complement of the whole stretch (bases reversed and
        complemented, tracks reversed with their _fwd/_rev pairs swapped); the signal
        transform of the model is applied here."""
        cfg = self.cfg
        n, length = onehot.shape[:2]
        onehot = jnp.asarray(onehot).astype(jnp.float32)
        signal = jnp.asarray(signal, jnp.float32).reshape(n, length, cfg.num_tracks)
        if cfg.signal_transform == "log1p":
            signal = jnp.log1p(jnp.maximum(signal, 0.0))
        perm = strand_swap_permutation(cfg.track_names)
        forward = jnp.concatenate([onehot, signal], axis=-1)
        reverse = jnp.concatenate([onehot[:, ::-1, ::-1], signal[:, ::-1][..., perm]], axis=-1)
        # interleave strands: a batch sharded over "data" keeps both strands of a row local
        return jnp.stack([forward, reverse], axis=1).reshape((2 * n,) + forward.shape[1:])

    def activations(self, x, train=False):
        """The per-position layers' outputs: (B, P, 4 + S) -> (relu(conv), relu(position
        dense)), each (B, P - kernel_width + 1, kernels) (visualize reads both)."""
        conv = nn.relu(self.conv(x))
        dense = nn.relu(self.position_dense(self.conv_dropout(conv, deterministic=not train)))
        return conv, dense

    def positions(self, x, train=False):
        """Per-position layers: (B, P, 4 + S) -> (B, P - kernel_width + 1, kernels)."""
        return self.activations(x, train)[1]

    def pool(self, h):
        """One window's position outputs (B, conv_len, K) -> (B, pooled_len, K), or (B, K) for
        a global max (recurrent < 0)."""
        if self.cfg.recurrent < 0:
            return jnp.max(h, axis=1)
        return nn.max_pool(h, (self.cfg.pool_size,), strides=(self.cfg.pool_size,), padding="VALID")

    def head(self, x, extra, train=False):
        """Pooled windows (B, pooled_len, K) or (B, K) [+ (B, E) extra features] -> (B, T) logits."""
        cfg = self.cfg
        if cfg.recurrent > 0:
            x = self.bilstm(x, train)
        if cfg.recurrent >= 0:
            x = x.reshape(x.shape[0], -1)          # row-major (position, channel), as Keras Flatten
        x = self.recurrent_dropout(x, deterministic=not train)
        x = nn.relu(self.dense(x))
        if extra is not None:
            x = jnp.concatenate([x, extra], axis=-1)
            x = self.meta_dropout(x, deterministic=not train)
            x = nn.relu(self.meta_dense(x))
        x = self.output_dropout(x, deterministic=not train)
        return self.output(x)

    def __call__(self, onehot, signal, meta=None, gencode=None, train=False):
        n = onehot.shape[0]
        x = self.strands(onehot, signal)                                    # (2N, L, 4 + S)
        extra = _extra_features(self.cfg, n, meta, gencode)
        if extra is not None:
            extra = jnp.repeat(extra, 2, axis=0)                            # same for both strands
        logits = self.head(self.pool(self.positions(x, train)), extra, train)   # (2N, T)
        return logits.reshape(n, 2, self.cfg.num_tasks)

    def ladder(self, onehot, signal, meta=None, gencode=None, *, step):
        """Strand logits (G, n, 2, T) of n overlapping windows per stretch, in inference mode.

        Parameters
        ----------
        onehot : (G, P, 4) and signal : (G, P, S), stretches of P = seq_len + (n - 1) * step bp;
            window k of a stretch covers its bases [k * step, k * step + seq_len)
        meta : (G, n, num_meta) or None; gencode : (G, n, 6) or None, per window
        step : bp between consecutive windows (static)

        The per-position layers run once over each stretch (and once over its reverse
        complement); pooling, BiLSTM and the dense head run per window on the shared output.
        Equal to ``__call__`` on the n windows up to float32 rounding.
        """
        cfg = self.cfg
        g, length = onehot.shape[:2]
        n = (length - cfg.seq_len) // step + 1
        if n < 1 or cfg.seq_len + (n - 1) * step != length:
            raise ValueError(f"stretch of {length} bp is not seq_len {cfg.seq_len} + a multiple "
                             f"of step {step}")
        h = self.positions(self.strands(onehot, signal))                    # (2G, P - w + 1, K)
        k = jnp.arange(n)
        # window k starts at k * step in the forward stretch and, as its reverse complement,
        # at P - seq_len - k * step in the reverse-complemented stretch
        offsets = jnp.stack([k * step, length - cfg.seq_len - k * step])   # (2, n)
        offsets = jnp.tile(offsets, (g, 1))                                 # (2G, n)
        rows = jnp.arange(2 * g)[:, None, None]
        if cfg.recurrent < 0:
            idx = offsets[:, :, None] + jnp.arange(cfg.conv_len)            # (2G, n, conv_len)
            pooled = h[rows, idx].max(axis=2)                               # (2G, n, K)
        else:
            # max over every pool_size-wide run of positions, then each window's own grid
            sliding = jax.lax.reduce_window(h, -jnp.inf, jax.lax.max, (1, cfg.pool_size, 1),
                                            (1, 1, 1), "VALID")
            idx = offsets[:, :, None] + cfg.pool_size * jnp.arange(cfg.pooled_len)
            pooled = sliding[rows, idx]                                     # (2G, n, pooled, K)
        # rows (g, strand) x n windows -> (g, window, strand): the order __call__ uses
        pooled = pooled.reshape((g, 2, n) + pooled.shape[2:]).swapaxes(1, 2)
        pooled = pooled.reshape((g * n * 2,) + pooled.shape[3:])
        flat = lambda a: None if a is None else jnp.asarray(a).reshape((g * n,) + a.shape[2:])
        extra = _extra_features(cfg, g * n, flat(meta), flat(gencode))
        if extra is not None:
            extra = jnp.repeat(extra, 2, axis=0)
        logits = self.head(pooled, extra)
        return logits.reshape(g, n, 2, cfg.num_tasks)


def _extra_features(cfg, n, meta, gencode):
    """(N, num_meta + 6?) float32 features after the first dense layer, or None."""
    parts = []
    if cfg.num_meta:
        if meta is None:
            raise ValueError(f"model needs meta features (N, {cfg.num_meta}); got None")
        parts.append(jnp.asarray(meta, jnp.float32).reshape(n, cfg.num_meta))
    if cfg.use_gencode:
        if gencode is None:
            raise ValueError(f"model needs GENCODE features (N, {GENCODE_SIZE}); got None")
        parts.append(jnp.asarray(gencode, jnp.float32).reshape(n, GENCODE_SIZE))
    return jnp.concatenate(parts, axis=-1) if parts else None


def make_model(cfg: ModelConfig, lstm_backend: str = "scan"):
    """The linen module for `cfg` (same as ``FactorNet(cfg)``); `lstm_backend` "cudnn" runs
    the BiLSTM through cuDNN (checked: NVIDIA GPU, standard cell)."""
    if cfg.recurrent > 0:
        check_lstm_backend(lstm_backend, cfg.lstm_cell)
    return FactorNet(cfg, lstm_backend)


def dummy_inputs(cfg: ModelConfig, batch_size: int = 1) -> dict:
    """Zero inputs of the right shapes, keyword arguments for ``model.apply``/``init``."""
    return dict(
        onehot=np.zeros((batch_size, cfg.seq_len, 4), np.float32),
        signal=np.zeros((batch_size, cfg.seq_len, cfg.num_tracks), np.float32),
        meta=np.zeros((batch_size, cfg.num_meta), np.float32) if cfg.num_meta else None,
        gencode=np.zeros((batch_size, GENCODE_SIZE), np.float32) if cfg.use_gencode else None,
    )


def abstract_params(cfg: ModelConfig) -> dict:
    """Shapes and dtypes of the params of `cfg` (jax.ShapeDtypeStruct leaves; nothing computed)."""
    variables = jax.eval_shape(lambda: make_model(cfg).init(jax.random.PRNGKey(0), **dummy_inputs(cfg)))
    return dict(variables["params"])


def init_params(cfg: ModelConfig, rng) -> dict:
    """Fresh parameters (nested dict of arrays) for `cfg`; `rng` is a jax PRNG key or an int seed."""
    if isinstance(rng, (int, np.integer)):
        rng = jax.random.PRNGKey(int(rng))
    variables = jax.jit(lambda key: make_model(cfg).init(key, **dummy_inputs(cfg)))(rng)
    return dict(variables["params"])


def param_count(params) -> int:
    """Total number of scalars in a params pytree."""
    return int(sum(math.prod(leaf.shape) for leaf in jax.tree_util.tree_leaves(params)))


# ---------------------------------------------------------------------------------------------
# Outputs and loss
# ---------------------------------------------------------------------------------------------

def probabilities(strand_logits):
    """Binding probability: mean over strands of sigmoid. (N, 2, T) logits -> (N, T)."""
    return jax.nn.sigmoid(strand_logits).mean(axis=1)


PROBABILITY_CLIP = 1e-7   # Keras 1 _EPSILON (10e-8): binary_crossentropy clips to [eps, 1 - eps]


def loss_from_strand_logits(strand_logits, labels, weights=None):
    """FactorNet's loss: Keras 1 binary cross-entropy of the strand-averaged probability.

    p = mean over strands of sigmoid(logit), clipped to [1e-7, 1 - 1e-7] (so a saturated
    output gives a finite loss and no gradient, as in Keras 1), then -(y log p + (1-y) log(1-p)).

    Parameters
    ----------
    strand_logits : (N, 2, T) float32
    labels : (N, T) 0/1
    weights : None or array broadcastable to (N, T); the loss is sum(w * bce) / sum(w)
        (0/1 weights mask padded rows or unknown labels)

    Returns
    -------
    scalar float32: mean over batch and tasks (Keras: mean over tasks, then over the batch)
    """
    labels = jnp.asarray(labels, jnp.float32)
    p = jnp.clip(probabilities(strand_logits), PROBABILITY_CLIP, 1.0 - PROBABILITY_CLIP)
    bce = -(labels * jnp.log(p) + (1.0 - labels) * jnp.log(1.0 - p))
    if weights is None:
        return bce.mean()
    weights = jnp.broadcast_to(jnp.asarray(weights, jnp.float32), bce.shape)
    return (weights * bce).sum() / jnp.maximum(weights.sum(), 1e-12)


# ---------------------------------------------------------------------------------------------
# Motif injection (FactorNet -mo)
# ---------------------------------------------------------------------------------------------

MOTIF_PSEUDOCOUNT = 0.001   # FactorNet train.py: pwm += 0.001, rows renormalised, log2(p / 0.25)


def motif_log_odds(pwm) -> np.ndarray:
    """(w, 4) FactorNet's -mo weights: log2(p / 0.25), p = (pwm + 0.001) with rows renormalised."""
    p = np.asarray(pwm, np.float64) + MOTIF_PSEUDOCOUNT
    p = p / p.sum(axis=1, keepdims=True)
    return np.log2(p / 0.25)


def motif_offset(kernel_width: int, motif_width: int) -> int:
    """First kernel row (cross-correlation order) of a motif placed as FactorNet's inject_pwm.

    FactorNet writes the flipped motif into rows [w//2 - m//2, w//2 - m//2 + m) of a Theano
    (true-convolution) kernel; read as a cross-correlation filter that is rows
    [w - (w//2 - m//2) - m, ...) = ceil(w / 2) - ceil(m / 2).
    """
    return (kernel_width + 1) // 2 - (motif_width + 1) // 2


def motif_kernel(pwm, kernel_width: int) -> np.ndarray:
    """A (kernel_width, 4) cross-correlation kernel from a letter-probability matrix.

    The kernel holds FactorNet's log-odds (`motif_log_odds`) at rows `motif_offset` on, zeros
    elsewhere. A motif longer than the kernel (FactorNet fails on one) is cropped to its most
    informative `kernel_width` positions.

    Parameters
    ----------
    pwm : (w, 4) A,C,G,T probabilities (rows sum to 1)
    """
    pwm = np.asarray(pwm, np.float64)
    if pwm.ndim != 2 or pwm.shape[1] != 4 or pwm.shape[0] < 1:
        raise ConfigError(f"motif must be a (width, 4) probability matrix, got shape {pwm.shape}")
    if pwm.shape[0] > kernel_width:
        p = np.clip(pwm, 1e-6, 1.0)
        information = 2.0 + (p * np.log2(p)).sum(axis=1)                # bits per position
        window_bits = np.convolve(information, np.ones(kernel_width), mode="valid")
        start = int(np.argmax(window_bits))
        pwm = pwm[start:start + kernel_width]
    kernel = np.zeros((kernel_width, 4), np.float32)
    offset = motif_offset(kernel_width, pwm.shape[0])
    kernel[offset:offset + pwm.shape[0]] = motif_log_odds(pwm)
    return kernel


def inject_motif(params: dict, pwm, first: int = 0) -> dict:
    """Copy of `params` with the motif in conv kernel `first` and its reverse complement in
    kernel `first + 1` (FactorNet -mo: kernels 0 and 1), both at the same rows.

    Signal channels and biases of both kernels are set to zero (FactorNet's inject_pwm).

    Parameters
    ----------
    params : model params; params["conv"]["kernel"] has shape (kernel_width, 4 + S, kernels)
    pwm : (w, 4) letter-probability matrix
    """
    kernel = np.array(params["conv"]["kernel"], dtype=np.float32)
    bias = np.array(params["conv"]["bias"], dtype=np.float32)
    width, _, n_kernels = kernel.shape
    if n_kernels < first + 2:
        raise ConfigError(f"motif injection into kernels {first} and {first + 1} needs at least "
                          f"{first + 2} kernels (-k)")
    pwm = np.asarray(pwm, np.float64)
    kernel[:, :, first:first + 2] = 0.0
    kernel[:, :4, first] = motif_kernel(pwm, width)
    kernel[:, :4, first + 1] = motif_kernel(pwm[::-1, ::-1], width)
    bias[first:first + 2] = 0.0
    out = dict(params)                       # new top-level container; other leaves shared
    out["conv"] = dict(params["conv"], kernel=kernel, bias=bias)
    return out

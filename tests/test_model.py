"""FactorNet tower: shapes, strand symmetry, loss, learning, parameter counts, LSTM cells, motifs."""
import json

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from factornet_jax.errors import ConfigError
from factornet_jax.model import (FactorNet, ModelConfig, abstract_params, bilstm_scan, init_params, inject_motif,
                                 loss_from_strand_logits, motif_kernel, param_count, probabilities,
                                 strand_swap_permutation)

TRACKS = ("DNase_fwd", "Unique35", "DNase_rev")


def tiny_config(**overrides):
    base = dict(seq_len=20, track_names=("DGF",), num_tasks=2, kernels=3, kernel_width=4, pool_size=2,
                recurrent=2, dense=4, dropout=0.5)
    base.update(overrides)
    return ModelConfig(**base)


def random_inputs(cfg, n, rng):
    onehot = np.eye(4, dtype=np.uint8)[rng.integers(0, 4, (n, cfg.seq_len))]
    signal = rng.gamma(1.0, 1.0, (n, cfg.seq_len, cfg.num_tracks)).astype(np.float32)
    meta = rng.normal(size=(n, cfg.num_meta)).astype(np.float32) if cfg.num_meta else None
    gencode = rng.integers(0, 2, (n, 6)).astype(np.float32) if cfg.use_gencode else None
    return onehot, signal, meta, gencode


def apply(cfg, params, onehot, signal, meta=None, gencode=None):
    return FactorNet(cfg).apply({"params": params}, onehot, signal, meta, gencode)


# ---------------------------------------------------------------- shapes and parameter counts

@pytest.mark.parametrize("recurrent,num_meta,use_gencode", [
    (2, 0, False), (2, 3, True), (0, 0, False), (0, 3, False), (-1, 0, True), (-1, 2, True)])
def test_output_shapes(recurrent, num_meta, use_gencode):
    cfg = tiny_config(recurrent=recurrent, num_meta=num_meta, use_gencode=use_gencode)
    params = abstract_params(cfg)
    inputs = random_inputs(cfg, 5, np.random.default_rng(0))
    logits = jax.eval_shape(lambda p: apply(cfg, p, *inputs), params)
    assert logits.shape == (5, 2, 2) and logits.dtype == jnp.float32
    assert jax.eval_shape(probabilities, logits).shape == (5, 2)
    assert ("bilstm" in params) == (recurrent > 0)
    assert ("meta_dense" in params) == (num_meta > 0 or use_gencode)


def test_param_count_golden_values():
    # seq_len 20, 1 track (5 channels), 3 kernels x 4 bp, pool 2 -> 17 conv positions, 8 pooled
    cfg = tiny_config(num_meta=1, use_gencode=True)
    conv = 4 * 5 * 3 + 3                  # 63
    position_dense = 3 * 3 + 3            # 12
    bilstm = 2 * (3 * 8 + 2 * 8 + 8)      # 96: per direction W (3, 4*2), U (2, 8), b (8)
    dense = (8 * 2 * 2) * 4 + 4           # 132: flatten 8 positions x (2 + 2)
    meta_dense = (4 + 1 + 6) * 4 + 4      # 48
    output = 4 * 2 + 2                    # 10
    assert param_count(abstract_params(cfg)) == conv + position_dense + bilstm + dense + meta_dense + output == 361
    # no BiLSTM: flatten 8 x 3 kernels
    assert param_count(abstract_params(tiny_config(recurrent=0))) == 63 + 12 + (24 * 4 + 4) + 10 == 185
    # global max-pool: 3 features
    assert param_count(abstract_params(tiny_config(recurrent=-1))) == 63 + 12 + (3 * 4 + 4) + 10 == 101


def test_default_pool_size_and_config_roundtrip():
    cfg = ModelConfig(seq_len=1000, track_names=["DGF"])
    assert cfg.pool_size == 13 and cfg.kernel_width == 26 and cfg.kernels == 32 and cfg.dense == 128
    assert cfg.pooled_len == (1000 - 26 + 1) // 13
    again = ModelConfig.from_dict(json.loads(json.dumps(cfg.to_dict())))
    assert again == cfg and isinstance(again.track_names, tuple)


@pytest.mark.parametrize("bad, message", [
    (dict(lstm_cell="gru"), "lstm_cell"),
    (dict(kernel_width=30), "longer than seq_len"),
    (dict(pool_size=40, kernel_width=4, seq_len=20), "pool_size"),
    (dict(dropout=1.0), "dropout"),
    (dict(track_names=("x_fwd", "y_rev")), "partner"),
])
def test_config_errors(bad, message):
    with pytest.raises(ConfigError, match=message):
        tiny_config(**bad)
    with pytest.raises(ConfigError, match="unknown model config field"):
        ModelConfig.from_dict({"seq_len": 10, "kernal": 3})


# ---------------------------------------------------------------- strand symmetry

def test_strand_swap_permutation():
    assert strand_swap_permutation(TRACKS).tolist() == [2, 1, 0]
    assert strand_swap_permutation(("a", "b")).tolist() == [0, 1]


@pytest.mark.parametrize("recurrent", [2, -1])
def test_reverse_complement_equivariance(recurrent):
    """A window and its reverse complement (stranded tracks swapped) get the same probability."""
    cfg = tiny_config(track_names=TRACKS, recurrent=recurrent, num_meta=2, use_gencode=True, seq_len=23)
    params = init_params(cfg, 1)
    rng = np.random.default_rng(1)
    onehot, signal, meta, gencode = random_inputs(cfg, 4, rng)
    perm = strand_swap_permutation(TRACKS)
    rc_onehot = onehot[:, ::-1, ::-1]
    rc_signal = signal[:, ::-1][..., perm]
    run = jax.jit(lambda *a: apply(cfg, params, *a))     # one compile for all three calls
    logits = np.asarray(run(onehot, signal, meta, gencode))
    rc_logits = np.asarray(run(rc_onehot, rc_signal, meta, gencode))
    np.testing.assert_allclose(logits[:, 0], rc_logits[:, 1], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(logits[:, 1], rc_logits[:, 0], rtol=1e-5, atol=1e-6)
    probs = np.asarray(probabilities(logits))
    assert probs.shape == (4, 2) and np.all((probs > 0) & (probs < 1))
    np.testing.assert_allclose(probs, probabilities(rc_logits), rtol=1e-5, atol=1e-6)
    # and the two strands really differ (the test would be vacuous otherwise)
    assert np.abs(logits[:, 0] - logits[:, 1]).max() > 1e-4
    # swapping the stranded tracks without reversing is not a symmetry
    wrong = np.asarray(run(rc_onehot, np.ascontiguousarray(signal[:, ::-1]), meta, gencode))
    assert np.abs(wrong[:, 1] - logits[:, 0]).max() > 1e-4


# ---------------------------------------------------------------- loss

def naive_loss(logits, labels, weights=None):
    """Keras 1 binary_crossentropy of the strand-averaged probability, clipped to [1e-7, 1 - 1e-7].

    The strand average itself is taken in float32 as the model computes it (float32 keeps only
    ~6e-8 absolute precision near p = 1, where float64 would give a visibly different log(1 - p)),
    and checked against float64 separately below; clip, logs and means are float64 here."""
    p = np.asarray(probabilities(jnp.asarray(logits, jnp.float32)), np.float64)
    np.testing.assert_allclose(p, (1 / (1 + np.exp(-np.asarray(logits, np.float64)))).mean(axis=1),
                               atol=1e-6)
    p = np.clip(p, 1e-7, np.float32(1 - 1e-7))                       # float32 bounds, as Keras
    bce = -(labels * np.log(p) + (1 - labels) * np.log(1 - p))
    if weights is None:
        return bce.mean()
    w = np.broadcast_to(weights, bce.shape)
    return (w * bce).sum() / w.sum()


_jit_loss = jax.jit(loss_from_strand_logits)


@settings(max_examples=30, deadline=None)
@given(st.integers(0, 2**31 - 1), st.floats(0.1, 8.0))
def test_loss_matches_numpy_bce(seed, scale):
    rng = np.random.default_rng(seed)
    logits = (rng.normal(size=(6, 2, 3)) * scale).astype(np.float32)
    labels = rng.integers(0, 2, (6, 3)).astype(np.float32)
    weights = rng.integers(0, 2, (6, 1)).astype(np.float32)
    weights[0] = 1
    np.testing.assert_allclose(_jit_loss(logits, labels), naive_loss(logits, labels), rtol=2e-5)
    np.testing.assert_allclose(_jit_loss(logits, labels, weights), naive_loss(logits, labels, weights), rtol=2e-5)


def test_loss_is_clipped_like_keras1_when_saturated():
    logits = np.full((1, 2, 1), 100.0, np.float32)
    # p = 1 in float32, clipped to float32(1 - 1e-7): loss -log(1 - float32(1 - 1e-7)), no gradient
    want = -np.log(1 - np.float64(np.float32(1 - 1e-7)))
    np.testing.assert_allclose(_jit_loss(logits, np.zeros((1, 1))), want, rtol=1e-5)
    np.testing.assert_allclose(_jit_loss(-logits, np.ones((1, 1))), -np.log(1e-7), rtol=1e-5)
    grad = jax.grad(lambda x: loss_from_strand_logits(x, np.zeros((1, 1))))(jnp.asarray(logits))
    assert np.all(np.asarray(grad) == 0)
    mixed = np.array([[[100.0], [-100.0]]], np.float32)   # p = 1/2 exactly
    np.testing.assert_allclose(_jit_loss(mixed, np.ones((1, 1))), np.log(2.0), rtol=1e-6)


# ---------------------------------------------------------------- learning

def test_adam_steps_reduce_loss_on_toy_task_over_data_mesh():
    """Label = a CACGTG box is present; a few Adam steps (jitted, batch sharded over a ("data",) mesh)."""
    cfg = tiny_config(seq_len=40, num_tasks=1, kernels=8, kernel_width=6, pool_size=5, recurrent=4,
                      dense=8, dropout=0.1)
    rng = np.random.default_rng(0)
    n = 32
    codes = rng.integers(0, 4, (n, cfg.seq_len))
    labels = (np.arange(n) % 2).astype(np.float32)[:, None]
    box = np.array([1, 0, 1, 2, 3, 2])
    for i in np.flatnonzero(labels[:, 0]):
        start = rng.integers(0, cfg.seq_len - 6)
        codes[i, start:start + 6] = box
    onehot = np.eye(4, dtype=np.uint8)[codes]
    signal = np.zeros((n, cfg.seq_len, 1), np.float32)

    model = FactorNet(cfg)
    params = init_params(cfg, jax.random.PRNGKey(0))
    optimizer = optax.adam(1e-2)
    mesh = Mesh(np.array(jax.devices()), ("data",))
    replicated = NamedSharding(mesh, PartitionSpec())
    params = jax.device_put(params, replicated)
    opt_state = jax.device_put(optimizer.init(params), replicated)

    @jax.jit
    def step(params, opt_state, onehot, signal, labels, key):
        def loss_fn(p):
            logits = model.apply({"params": p}, onehot, signal, train=True, rngs={"dropout": key})
            return loss_from_strand_logits(logits, labels)
        loss, grads = jax.value_and_grad(loss_fn)(params)
        updates, opt_state = optimizer.update(grads, opt_state, params)
        return optax.apply_updates(params, updates), opt_state, loss

    batch = NamedSharding(mesh, PartitionSpec("data"))
    onehot, signal, labels = (jax.device_put(a, batch) for a in (onehot, signal, labels))
    key = jax.random.PRNGKey(1)
    losses = []
    for i in range(60):
        params, opt_state, loss = step(params, opt_state, onehot, signal, labels, jax.random.fold_in(key, i))
        losses.append(float(loss))
    assert np.mean(losses[-5:]) < 0.6 * np.mean(losses[:3]), losses
    assert step._cache_size() == 1


# ---------------------------------------------------------------- LSTM cells

def numpy_lstm(x, W, U, b, gate, backwards):
    """Plain loop, one direction; W (F, 4H), U (H, 4H), b (4H,), gates [i, f, c, o]."""
    n, t, _ = x.shape
    h_units = U.shape[0]
    h = np.zeros((n, h_units))
    c = np.zeros((n, h_units))
    out = np.zeros((n, t, h_units))
    for s in (range(t - 1, -1, -1) if backwards else range(t)):
        z = x[:, s] @ W + h @ U + b
        i, f, g, o = (z[:, k * h_units:(k + 1) * h_units] for k in range(4))
        c = gate(f) * c + gate(i) * np.tanh(g)
        h = gate(o) * np.tanh(c)
        out[:, s] = h
    return out


@pytest.mark.parametrize("cell", ["keras1", "standard"])
def test_lstm_cell_matches_numpy_loop(cell):
    rng = np.random.default_rng(3)
    x = rng.normal(size=(3, 7, 5))
    W, U, b = rng.normal(size=(2, 5, 12)), rng.normal(size=(2, 3, 12)), rng.normal(size=(2, 12))
    if cell == "keras1":
        gate = lambda z: np.clip(0.2 * z + 0.5, 0, 1)   # noqa: E731  (Theano hard_sigmoid)
    else:
        gate = lambda z: 1 / (1 + np.exp(-z))           # noqa: E731
    want = np.concatenate([numpy_lstm(x, W[0], U[0], b[0], gate, False),
                           numpy_lstm(x, W[1], U[1], b[1], gate, True)], axis=-1)
    got = bilstm_scan(jnp.asarray(x, jnp.float32), jnp.asarray(W, jnp.float32), jnp.asarray(U, jnp.float32),
                      jnp.asarray(b, jnp.float32), cell)
    np.testing.assert_allclose(np.asarray(got), want, rtol=1e-4, atol=1e-5)


def test_cudnn_weight_layout_matches_scan():
    """The cuDNN path's flat weights, unpacked by jax.experimental.rnn and run through its
    reference LSTM (what JAX tests its cuDNN kernel against), equal our scan: the packing order,
    the (4H, F) orientation, the gate order and the single bias are right."""
    from jax.experimental import rnn

    from factornet_jax.model import cudnn_lstm_weights
    rng = np.random.default_rng(4)
    batch, steps, features, hidden = 3, 9, 5, 4
    x = jnp.asarray(rng.normal(size=(batch, steps, features)), jnp.float32)
    W = jnp.asarray(rng.normal(size=(2, features, 4 * hidden)), jnp.float32)
    U = jnp.asarray(rng.normal(size=(2, hidden, 4 * hidden)), jnp.float32)
    b = jnp.asarray(rng.normal(size=(2, 4 * hidden)), jnp.float32)
    flat = cudnn_lstm_weights(W, U, b)
    assert flat.shape == (rnn.get_num_params_in_lstm(features, hidden, 1, True),)
    w_ih, w_hh, b_ih, b_hh = rnn.unpack_lstm_weights(flat, features, hidden, 1, True)
    zeros = jnp.zeros((2, batch, hidden), jnp.float32)
    want, _, _ = rnn.lstm_ref(x, zeros, zeros, w_ih, w_hh, b_ih, b_hh,
                              jnp.full((batch,), steps, jnp.int32), features, hidden, 1, 0.0, True)
    got = bilstm_scan(x, W, U, b, "standard")
    np.testing.assert_allclose(np.asarray(got), np.asarray(want), rtol=1e-5, atol=1e-6)


def test_lstm_backend_checks():
    from factornet_jax.model import make_model
    cfg = ModelConfig(seq_len=100, track_names=TRACKS, kernel_width=10, recurrent=4)
    assert make_model(cfg).lstm_backend == "scan"
    with pytest.raises(ConfigError, match="choose one of scan, cudnn"):
        make_model(cfg, "cuda")
    keras1 = ModelConfig(seq_len=100, track_names=TRACKS, kernel_width=10, recurrent=4,
                         lstm_cell="keras1")
    with pytest.raises(ConfigError, match="hard-sigmoid gates"):
        make_model(keras1, "cudnn")
    if jax.default_backend() != "gpu":
        with pytest.raises(ConfigError, match="needs an NVIDIA GPU; JAX runs on cpu"):
            make_model(cfg, "cudnn")
    no_lstm = ModelConfig(seq_len=100, track_names=TRACKS, kernel_width=10, recurrent=0)
    make_model(no_lstm, "cudnn")                     # no BiLSTM: nothing to run through cuDNN


# ---------------------------------------------------------------- motif injection

def test_inject_motif_kernels_and_response():
    rng = np.random.default_rng(0)
    params = {"conv": {"kernel": rng.normal(size=(8, 5, 4)).astype(np.float32), "bias": np.zeros(4)},
              "output": {"kernel": np.ones((3, 1))}}
    pwm = np.array([[0.9, 0.05, 0.03, 0.02], [0.1, 0.8, 0.05, 0.05], [0.0, 0.0, 1.0, 0.0],
                    [0.25, 0.25, 0.25, 0.25], [0.05, 0.05, 0.1, 0.8]])
    params["conv"]["bias"] = np.ones(4)
    new = inject_motif(params, pwm)
    kernel = np.asarray(new["conv"]["kernel"])
    p = (pwm + 0.001) / (pwm + 0.001).sum(axis=1, keepdims=True)
    want = np.zeros((8, 4))
    want[1:6] = np.log2(p / 0.25)              # ceil(8 / 2) - ceil(5 / 2) = 1 leading zero row
    np.testing.assert_allclose(kernel[:, :4, 0], want, atol=1e-5)
    want_rc = np.zeros((8, 4))
    want_rc[1:6] = np.log2(p[::-1, ::-1] / 0.25)  # FactorNet: the reverse complement at the same rows
    np.testing.assert_allclose(kernel[:, :4, 1], want_rc, atol=1e-5)
    assert np.all(kernel[:, 4:, :2] == 0)
    np.testing.assert_array_equal(kernel[:, :, 2:], np.asarray(params["conv"]["kernel"])[:, :, 2:])
    assert np.all(params["conv"]["kernel"][:, :, :2] != 0)      # the input params are not modified
    assert new["output"] is params["output"]
    # cross-correlation of the consensus hits kernel 0; of its reverse complement, kernel 1
    consensus = np.eye(4)[pwm.argmax(1)]
    window = np.zeros((8, 4))
    window[1:6] = consensus
    rc_window = np.zeros((8, 4))
    rc_window[1:6] = consensus[::-1, ::-1]
    score = np.einsum("wc,wck->k", window, kernel[:, :4])
    rc_score = np.einsum("wc,wck->k", rc_window, kernel[:, :4])
    assert score[0] > score[1] and rc_score[1] > rc_score[0]
    np.testing.assert_allclose(score[0], rc_score[1], rtol=1e-6)


def test_motif_kernel_crops_most_informative_window():
    flat = np.full((10, 4), 0.25)
    flat[6:9] = np.eye(4)[[0, 1, 2]]           # information only at positions 6-8
    kernel = motif_kernel(flat, 4)
    assert np.abs(kernel).max(axis=1).tolist()[0] < 1e-6          # a uniform row: log2(1) = 0
    assert (kernel.max(axis=1) > 1.9).sum() == 3                  # log2(~1 / 0.25) = 2
    with pytest.raises(ConfigError, match="probability matrix"):
        motif_kernel(np.ones((3, 5)), 4)

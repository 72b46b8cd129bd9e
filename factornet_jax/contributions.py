"""Contribution scores of a FactorNet model's inputs: the maths, as pure functions of the Flax module.

Every score explains one scalar per window, the *strand-averaged logit* of one task::

    f(x) = logit(mean over strands of sigmoid(z_strand))        (z: the model's strand logits)
         = logsumexp_s(log_sigmoid(z_s)) - logsumexp_s(log_sigmoid(-z_s))   (computed this way)

so a score is in logit units, and `probabilities` (what `predict` writes) is sigmoid(f).
The model is always called through ``make_model(cfg).apply`` (both strands, the siamese
average), never a re-implementation of its layers.

Methods
    ism             in-silico mutagenesis: f(x with base b at i) - f(x), every position and
                    every base, exact; the mutated windows are built on the device from index
                    arrays (no Python per mutated window), 3 L (+1 per N base) forward passes.
    integrated_gradients
                    IG (Sundararajan et al. 2017) along the straight path from a baseline to
                    the input, trapezoid rule over `steps` intervals; any subset of inputs
                    (sequence, signal, meta, GENCODE) may move, the rest stay at the input.
                    Completeness: the attributions sum to f(x) - f(baseline) up to the
                    quadrature error (checked by the callers, `explain` reports it).
    gradients       d f / d inputs at the input (saliency; gradient x input is this times x).
    occlusion       f(x) - f(x with one track replaced by its background level in a window),
                    windows of `width` at `stride`.
    dinucleotide_shuffle
                    a shuffle of a one-hot sequence keeping its dinucleotide counts exactly
                    (the last-exit-edge Eulerian trick, as in Altschul & Erickson 1985).

Hypothetical contributions (the value each of the four bases would get at a position) follow
the usual convention: for IG / gradients, hyp[i, b] = sum_c (e_b - x0_i)_c * g_ic, the
attribution the position would get had its base been b (the actual contribution is hyp at the
observed base, and equals the position's IG attribution); for ISM, the ISM row centred on its
mean over the four bases (`ism_hypothetical`).
"""
from __future__ import annotations

import functools

import numpy as np

from factornet_jax.errors import ConfigError, FactorNetError

DEFAULT_BATCH = 64          # windows per compiled call on CPU (predict.CPU_BATCH_PER_DEVICE)


# ---------------------------------------------------------------------------------------------
# The explained scalar
# ---------------------------------------------------------------------------------------------

def strand_average_logit(strand_logits):
    """(N, 2, T) strand logits -> (N, T) logit of the strand-averaged probability (stable)."""
    import jax
    log_p = jax.nn.logsumexp(jax.nn.log_sigmoid(strand_logits), axis=1)
    log_q = jax.nn.logsumexp(jax.nn.log_sigmoid(-strand_logits), axis=1)
    return log_p - log_q        # the log 2 of both means cancels


@functools.lru_cache(maxsize=16)
def _functions(model_config):
    """Jitted functions of one architecture (compiled once per shape), keyed by the config."""
    import jax
    import jax.numpy as jnp

    from factornet_jax.model import make_model
    module = make_model(model_config)

    def score(params, onehot, signal, meta, gencode, task):
        """(B,) f of task `task` (a traced int)."""
        logits = module.apply({"params": params}, onehot, signal, meta, gencode, train=False)
        return jnp.take(strand_average_logit(logits), task, axis=1)

    def mutated_scores(params, ref_onehot, ref_signal, ref_meta, ref_gencode, window, position,
                       base, task):
        """f of the windows ref[window] with base `base` at `position` (-1: unchanged).

        ref_onehot (R, L, 4); window, position, base (B,) int32 -> (B,) float32."""
        seq_len = ref_onehot.shape[1]
        onehot = ref_onehot[window].astype(jnp.float32)                      # (B, L, 4)
        at = (jnp.arange(seq_len)[None, :] == position[:, None])[..., None]   # (B, L, 1)
        onehot = jnp.where(at, jax.nn.one_hot(base, 4)[:, None, :], onehot)
        take = (lambda a: None if a is None else a[window])
        return score(params, onehot, ref_signal[window], take(ref_meta), take(ref_gencode), task)

    def grad_fn(params, onehot, signal, meta, gencode, task):
        """(B,) f and its gradients w.r.t. (onehot, signal, meta, gencode) at the given inputs."""
        def total(inputs):
            values = score(params, *inputs, task)
            return values.sum(), values
        inputs = (onehot.astype(jnp.float32), signal, meta, gencode)
        (_, values), grads = jax.value_and_grad(total, has_aux=True)(inputs)
        return values, grads

    return {"score": jax.jit(score), "mutated": jax.jit(mutated_scores), "grad": jax.jit(grad_fn)}


def _prepare(model, onehot, signal, meta, gencode):
    """Checked float arrays: (onehot (N, L, 4) f32, signal (N, L, S) f32, meta, gencode)."""
    from factornet_jax.labels import GENCODE_SIZE
    cfg = model.model_config
    onehot = np.asarray(onehot)
    if onehot.ndim != 3 or onehot.shape[1:] != (cfg.seq_len, 4):
        raise FactorNetError(f"onehot has shape {onehot.shape}, model {model.model_dir} expects "
                             f"(N, {cfg.seq_len}, 4)")
    n = onehot.shape[0]
    signal = np.asarray(signal, np.float32)
    if signal.shape != (n, cfg.seq_len, cfg.num_tracks):
        raise FactorNetError(f"signal has shape {signal.shape}, model {model.model_dir} expects "
                             f"({n}, {cfg.seq_len}, {cfg.num_tracks})")
    if cfg.num_meta:
        if meta is None:
            raise FactorNetError(f"model {model.model_dir} needs {cfg.num_meta} meta features")
        meta = np.asarray(meta, np.float32).reshape(n, cfg.num_meta)
    else:
        meta = None
    if cfg.use_gencode:
        if gencode is None:
            raise FactorNetError(f"model {model.model_dir} needs the {GENCODE_SIZE} GENCODE features")
        gencode = np.asarray(gencode, np.float32).reshape(n, GENCODE_SIZE)
    else:
        gencode = None
    return onehot.astype(np.float32), signal, meta, gencode


def _batch_size(batch_size):
    if batch_size is None:
        return DEFAULT_BATCH
    if int(batch_size) < 1:
        raise ConfigError(f"--batch {batch_size}: must be at least 1")
    return int(batch_size)


def _pad(array, rows):
    """Zero-pad axis 0 to `rows` (None stays None)."""
    if array is None or array.shape[0] == rows:
        return array
    pad = np.zeros((rows - array.shape[0],) + array.shape[1:], array.dtype)
    return np.concatenate([array, pad], axis=0)


def _device_rows(arrays):
    """The per-window arrays on the device, rows zero-padded to a power of two so that chunks
    of different sizes share a few compilations (the kernels index rows; pads are never read)."""
    import jax
    n = next(a.shape[0] for a in arrays if a is not None)
    rows = 1 << max(0, (n - 1).bit_length())
    return [None if a is None else jax.device_put(_pad(a, rows)) for a in arrays]


def score(model, onehot, signal, meta=None, gencode=None, task=0, batch_size=None) -> np.ndarray:
    """f (strand-averaged logit of task `task`) of each window: (N,) float32.

    sigmoid(score(...)) equals ``model.predict(...)[:, task]``.
    """
    onehot, signal, meta, gencode = _prepare(model, onehot, signal, meta, gencode)
    batch = _batch_size(batch_size)
    fn = _functions(model.model_config)["score"]
    n = onehot.shape[0]
    out = np.empty(n, np.float32)
    for lo in range(0, n, batch):
        hi = min(lo + batch, n)
        parts = [_pad(None if a is None else a[lo:hi], batch) for a in (onehot, signal, meta, gencode)]
        out[lo:hi] = np.asarray(fn(model.params, *parts, np.int32(task)))[: hi - lo]
    return out


# ---------------------------------------------------------------------------------------------
# In-silico mutagenesis
# ---------------------------------------------------------------------------------------------

def mutation_plan(onehot) -> tuple:
    """Every single-base substitution of each window, as index arrays (vectorised numpy).

    A position with a base gets its three other bases; an N position (all-zero row) all four.

    Parameters
    ----------
    onehot : (N, L, 4) one-hot (uint8 or float)

    Returns
    -------
    window, position, base : (M,) int32 each, M = sum over windows of 3 L + (N positions)
    """
    onehot = np.asarray(onehot)
    present = onehot > 0                                              # (N, L, 4)
    window, position, base = np.nonzero(~present)
    return window.astype(np.int32), position.astype(np.int32), base.astype(np.int32)


def ism(model, onehot, signal, meta=None, gencode=None, task=0, batch_size=None) -> np.ndarray:
    """In-silico mutagenesis of every position and base of each window, exact.

    Parameters
    ----------
    model : modeldir.LoadedModel
    onehot : (N, L, 4) uint8; signal : (N, L, S) float32 (kept as is)
    meta : (N, M) or None; gencode : (N, 6) or None (as the model needs them)
    task : index of the TF column explained
    batch_size : mutated windows per compiled call (default 64); each batch is one device
        call building its windows from index arrays, so there is no Python per window

    Returns
    -------
    (N, L, 4) float32: f(x with base b at position i) - f(x), f the logit of the
    strand-averaged probability of `task`; 0 at the observed base.
    """
    onehot, signal, meta, gencode = _prepare(model, onehot, signal, meta, gencode)
    n, seq_len, _ = onehot.shape
    batch = _batch_size(batch_size)
    window, position, base = mutation_plan(onehot)
    # the references ride along as "mutations" at position -1 (window unchanged)
    ref_rows = np.arange(n, dtype=np.int32)
    window = np.concatenate([ref_rows, window])
    position = np.concatenate([np.full(n, -1, np.int32), position])
    base = np.concatenate([np.zeros(n, np.int32), base])
    values = _run_mutations(model, onehot, signal, meta, gencode, window, position, base, task, batch)
    reference = values[:n]
    out = np.zeros((n, seq_len, 4), np.float32)
    out[window[n:], position[n:], base[n:]] = values[n:] - reference[window[n:]]
    return out


def _run_mutations(model, onehot, signal, meta, gencode, window, position, base, task, batch):
    """f of each (window, position, base) substitution, `batch` per device call: (M,) float32."""
    fn = _functions(model.model_config)["mutated"]
    refs = _device_rows((onehot, signal, meta, gencode))
    m = len(window)
    padded = -(-m // batch) * batch
    idx = [_pad(a, padded) for a in (window, position, base)]
    out = []
    for lo in range(0, padded, batch):
        out.append(fn(model.params, *refs, *(a[lo:lo + batch] for a in idx), np.int32(task)))
    return np.concatenate([np.asarray(v) for v in out])[:m] if out else np.zeros(0, np.float32)


def ism_hypothetical(ism_values, onehot) -> tuple:
    """ISM -> (hypothetical, actual) contributions.

    hypothetical (N, L, 4): each ISM row centred on its mean over the four bases (the
    reference's 0 included), so a base scores how much better than the average base it
    does; actual (N, L, 4): hypothetical at the observed base, 0 elsewhere (an N position
    has no actual contribution).
    """
    ism_values = np.asarray(ism_values, np.float32)
    hyp = ism_values - ism_values.mean(axis=-1, keepdims=True)
    return hyp, hyp * (np.asarray(onehot) > 0)


# ---------------------------------------------------------------------------------------------
# Gradients and integrated gradients
# ---------------------------------------------------------------------------------------------

INPUT_NAMES = ("onehot", "signal", "meta", "gencode")


def gradients(model, onehot, signal, meta=None, gencode=None, task=0, batch_size=None) -> dict:
    """d f / d input at the input (saliency).

    Returns
    -------
    dict: "value" (N,) f; "onehot" (N, L, 4), "signal" (N, L, S), "meta" (N, M) or None,
    "gencode" (N, 6) or None: the gradients (gradient x input is these times the input)
    """
    inputs = _prepare(model, onehot, signal, meta, gencode)
    batch = _batch_size(batch_size)
    fn = _functions(model.model_config)["grad"]
    n = inputs[0].shape[0]
    out = {"value": np.empty(n, np.float32)}
    out.update({name: None if a is None else np.empty(a.shape, np.float32)
                for name, a in zip(INPUT_NAMES, inputs)})
    for lo in range(0, n, batch):
        hi = min(lo + batch, n)
        parts = [_pad(None if a is None else a[lo:hi], batch) for a in inputs]
        values, grads = fn(model.params, *parts, np.int32(task))
        out["value"][lo:hi] = np.asarray(values)[: hi - lo]
        for name, g in zip(INPUT_NAMES, grads):
            if g is not None:
                out[name][lo:hi] = np.asarray(g)[: hi - lo]
    return out


def integrated_gradients(model, onehot, signal, meta=None, gencode=None, baseline=None, task=0,
                         steps=50, batch_size=None) -> dict:
    """Integrated gradients of f from `baseline` to the input, trapezoid rule.

    The path is x(a) = x0 + a (x - x0), a = 0, 1/steps, ..., 1; each input in `baseline`
    moves from its baseline value, an input not given there stays at the input (so it gets
    no attribution). All (region, a) points are one flat list run `batch_size` per compiled
    call, interpolated on the device.

    Parameters
    ----------
    onehot (N, L, 4), signal (N, L, S), meta (N, M) | None, gencode (N, 6) | None: the input
    baseline : dict with any of "onehot" (N, L, 4) float, "signal" (N, L, S), "meta" (N, M),
        "gencode" (N, 6): the baseline values
    steps : number of intervals of the path (steps + 1 gradient evaluations per region)

    Returns
    -------
    dict: "value" (N,) f(x); "baseline_value" (N,) f(x0); for each input name, the
    attribution (x - x0) * mean gradient (same shape as the input, None for an absent
    input); "mean_gradient" a dict of the path-averaged gradients; "baseline" the x0 used.
    Completeness: the attributions of a region sum to value - baseline_value (up to the
    quadrature error, which falls with `steps`: about as 1 / steps for a ReLU network, whose
    path is only piecewise smooth).
    """

    if int(steps) < 1:
        raise ConfigError(f"--steps {steps}: must be at least 1")
    steps = int(steps)
    inputs = dict(zip(INPUT_NAMES, _prepare(model, onehot, signal, meta, gencode)))
    baseline = dict(baseline or {})
    unknown = sorted(set(baseline) - set(INPUT_NAMES))
    if unknown:
        raise ValueError(f"unknown baseline input(s) {unknown}")
    x0 = {}
    for name, x in inputs.items():
        if x is None:
            x0[name] = None
        elif name in baseline and baseline[name] is not None:
            b = np.broadcast_to(np.asarray(baseline[name], np.float32), x.shape)
            x0[name] = np.ascontiguousarray(b)
        else:
            x0[name] = x
    n = inputs["onehot"].shape[0]
    batch = _batch_size(batch_size)
    fn = _interpolated_grad(model.model_config)
    alphas = np.linspace(0.0, 1.0, steps + 1, dtype=np.float32)
    weights = np.full(steps + 1, 1.0 / steps, np.float32)
    weights[[0, -1]] *= 0.5
    region = np.repeat(np.arange(n, dtype=np.int32), steps + 1)
    alpha = np.tile(alphas, n)
    weight = np.tile(weights, n)
    m = len(region)
    padded = -(-m // batch) * batch
    region, alpha, weight = (_pad(a, padded) for a in (region, alpha, weight))
    device_x = _device_rows([inputs[k] for k in INPUT_NAMES])
    device_x0 = _device_rows([x0[k] for k in INPUT_NAMES])
    sums = {k: None if inputs[k] is None else np.zeros(inputs[k].shape, np.float32)
            for k in INPUT_NAMES}
    value = np.zeros(n, np.float32)
    baseline_value = np.zeros(n, np.float32)
    for lo in range(0, padded, batch):
        r, a, w = region[lo:lo + batch], alpha[lo:lo + batch], weight[lo:lo + batch]
        values, grads = fn(model.params, device_x, device_x0, r, a, np.int32(task))
        values = np.asarray(values)
        real = np.arange(lo, lo + batch) < m
        at_one, at_zero = real & (a == 1.0), real & (a == 0.0)
        value[r[at_one]] = values[at_one]
        baseline_value[r[at_zero]] = values[at_zero]
        for k, g in zip(INPUT_NAMES, grads):
            if sums[k] is not None:
                g = np.asarray(g) * (w * real)[(slice(None),) + (None,) * (g.ndim - 1)]
                np.add.at(sums[k], r, g)
    out = {"value": value, "baseline_value": baseline_value, "mean_gradient": sums, "baseline": x0}
    for k in INPUT_NAMES:
        out[k] = None if sums[k] is None else (inputs[k] - x0[k]) * sums[k]
    return out


@functools.lru_cache(maxsize=16)
def _interpolated_grad(model_config):
    """Jitted: f and gradients at x0[r] + a (x[r] - x0[r]) for region indices r (B,), a (B,)."""
    import jax
    score_fn = _functions(model_config)["score"]

    def fn(params, xs, x0s, region, alpha, task):
        def point(x, x0):
            if x is None:
                return None
            a = alpha.reshape((-1,) + (1,) * (x.ndim - 1))
            return x0[region] + a * (x[region] - x0[region])
        inputs = tuple(point(x, x0) for x, x0 in zip(xs, x0s))

        def total(inp):
            values = score_fn(params, *inp, task)
            return values.sum(), values
        (_, values), grads = jax.value_and_grad(total, has_aux=True)(inputs)
        return values, grads

    return jax.jit(fn)


def hypothetical_from_gradients(mean_gradient, onehot, baseline_onehot=None) -> tuple:
    """Hypothetical and actual sequence contributions from (path-averaged) gradients.

    hyp[i, b] = sum_c (e_b - x0_i)_c g_ic = g_ib - x0_i . g_i: the attribution position i would
    get with base b (x0 = 0 for gradient x input). actual = hyp at the observed base (which is
    the IG attribution of the position), 0 at N positions.

    Parameters
    ----------
    mean_gradient : (N, L, 4); onehot : (N, L, 4); baseline_onehot : (N, L, 4) or None (zeros)

    Returns
    -------
    hypothetical (N, L, 4) float32, actual (N, L, 4) float32
    """
    g = np.asarray(mean_gradient, np.float32)
    hyp = g.copy()
    if baseline_onehot is not None:
        hyp -= (np.asarray(baseline_onehot, np.float32) * g).sum(axis=-1, keepdims=True)
    return hyp, hyp * (np.asarray(onehot) > 0)


# ---------------------------------------------------------------------------------------------
# Occlusion of signal tracks
# ---------------------------------------------------------------------------------------------

def occlusion(model, onehot, signal, background, meta=None, gencode=None, task=0, width=50,
              stride=None, batch_size=None) -> dict:
    """Track occlusion: f(x) - f(x with track s set to its background in [p, p + width)).

    Parameters
    ----------
    background : (S,) float32, the level each track is set to
    width, stride : the sliding window (stride defaults to width: windows tile the sequence;
        the last window is clipped at the window end)

    Returns
    -------
    dict: "starts" (W,) int window starts; "delta" (N, W, S) float32 drop of f per occluded
    window; "per_base" (N, L, S) float32: the mean over the windows covering a base of
    delta / (bases in the window, clipped at L) (with stride == width, per_base sums over a
    track to the sum of its deltas)
    """
    onehot, signal, meta, gencode = _prepare(model, onehot, signal, meta, gencode)
    n, seq_len, n_tracks = signal.shape
    width = int(width)
    stride = width if stride is None else int(stride)
    if width < 1 or stride < 1:
        raise ConfigError(f"--occlusion-width {width} / stride {stride}: must be at least 1")
    background = np.asarray(background, np.float32).reshape(n_tracks)
    starts = np.arange(0, seq_len, stride, dtype=np.int32)        # the last ones clip at L
    n_win = len(starts)
    batch = _batch_size(batch_size)
    # plan: reference (start L: nothing occluded) + every (window, track, start)
    window = np.concatenate([np.arange(n), np.repeat(np.arange(n), n_win * n_tracks)]).astype(np.int32)
    track = np.concatenate([np.zeros(n), np.tile(np.repeat(np.arange(n_tracks), n_win), n)]).astype(np.int32)
    start = np.concatenate([np.full(n, seq_len), np.tile(starts, n * n_tracks)]).astype(np.int32)
    m = len(window)
    padded = -(-m // batch) * batch
    idx = [_pad(a, padded) for a in (window, track, start)]
    fn = _occluded(model.model_config, width)
    refs = _device_rows((onehot, signal, meta, gencode))
    values = np.concatenate([np.asarray(fn(model.params, *refs, background, *(a[lo:lo + batch] for a in idx),
                                           np.int32(task))) for lo in range(0, padded, batch)])[:m]
    reference = values[:n]
    delta = (reference[:, None, None] - values[n:].reshape(n, n_tracks, n_win)).transpose(0, 2, 1)
    cover = np.zeros(seq_len, np.float32)
    per_base = np.zeros((n, seq_len, n_tracks), np.float32)
    for k, s in enumerate(starts):
        per_base[:, s:s + width] += delta[:, k][:, None, :] / min(width, seq_len - s)
        cover[s:s + width] += 1
    per_base /= np.maximum(cover, 1)[None, :, None]
    return {"starts": starts, "delta": delta.astype(np.float32), "per_base": per_base}


@functools.lru_cache(maxsize=16)
def _occluded(model_config, width):
    import jax
    import jax.numpy as jnp
    score_fn = _functions(model_config)["score"]

    def fn(params, onehot, signal, meta, gencode, background, window, track, start, task):
        seq_len, n_tracks = signal.shape[1:]
        pos = jnp.arange(seq_len)[None, :, None]
        inside = (pos >= start[:, None, None]) & (pos < start[:, None, None] + width)
        inside = inside & (jnp.arange(n_tracks)[None, None, :] == track[:, None, None])
        sig = jnp.where(inside, background[None, None, :], signal[window])
        take = (lambda a: None if a is None else a[window])
        return score_fn(params, onehot[window], sig, take(meta), take(gencode), task)

    return jax.jit(fn)


# ---------------------------------------------------------------------------------------------
# Baselines
# ---------------------------------------------------------------------------------------------

def dinucleotide_shuffle(onehot, rng) -> np.ndarray:
    """A random shuffle of one sequence with exactly its dinucleotide counts.

    The sequence is a walk through its dinucleotide graph; each base's list of successors is
    shuffled except its last one (the last exits form a tree into the final base, so any such
    shuffle is a valid Eulerian walk from the same first base: Altschul & Erickson 1985's
    construction with the tree fixed). N positions (all-zero rows) are a fifth letter.

    Parameters
    ----------
    onehot : (L, 4) one-hot (uint8 or float)
    rng : numpy Generator

    Returns
    -------
    (L, 4) same dtype, the shuffled sequence
    """
    onehot = np.asarray(onehot)
    present = onehot > 0
    codes = np.where(present.any(axis=-1), present.argmax(axis=-1), 4)
    if len(codes) < 3:
        return onehot.copy()
    successors = {}
    for token in np.unique(codes[:-1]):
        nxt = codes[1:][codes[:-1] == token]
        head = nxt[:-1].copy()
        rng.shuffle(head)
        successors[int(token)] = list(np.concatenate([head, nxt[-1:]]))
    out = np.empty_like(codes)
    out[0] = codes[0]
    used = dict.fromkeys(successors, 0)
    for i in range(1, len(codes)):
        t = int(out[i - 1])
        out[i] = successors[t][used[t]]
        used[t] += 1
    table = np.vstack([np.eye(4), np.zeros((1, 4))]).astype(onehot.dtype)
    return table[out]


def sequence_baseline(onehot, kind="shuffle", seed=0) -> np.ndarray:
    """(N, L, 4) float32 sequence baselines: "shuffle" (a dinucleotide shuffle of each window,
    seeded by `seed` and the window's index) or "uniform" (0.25 everywhere)."""
    onehot = np.asarray(onehot)
    if kind == "uniform":
        return np.full(onehot.shape, 0.25, np.float32)
    if kind != "shuffle":
        raise ConfigError(f"--baseline {kind}: choose shuffle or uniform")
    return np.stack([dinucleotide_shuffle(w, np.random.default_rng([seed, i])).astype(np.float32)
                     for i, w in enumerate(onehot)]) if len(onehot) else onehot.astype(np.float32)

"""FactorNet's training semantics, each checked against an oracle written from FactorNet's own
code (utils.py, train.py, data_iter.py of the original release) or from Keras 1.1, not from
this project's rules. docs/FIDELITY.md lists the same points."""
import shutil
import subprocess

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from factornet_jax.intervals import IntervalSet
from factornet_jax.labels import (exclusion_zone, jitter_positive_bins, multitask_negative_exclusion,
                                  sample_negative_bins, singletask_negative_exclusion)
from factornet_jax.model import (ModelConfig, bilstm_scan, init_params, inject_motif, lstm_dropout_masks,
                                 make_model, dummy_inputs)

BEDTOOLS = shutil.which("bedtools")


def iset(rows):
    c, s, e = zip(*rows)
    return IntervalSet.from_arrays(np.array(c), s, e)


def rows_of(intervals):
    return [(c, int(s), int(e)) for c in intervals.chroms for s, e in zip(*intervals.get(c))]


def write_bed(path, rows):
    path.write_text("".join(f"{c}\t{s}\t{e}\n" for c, s, e in rows))
    return path


def bedtools(*args):
    return subprocess.run([BEDTOOLS, *map(str, args)], check=True, capture_output=True, text=True).stdout


def bed_rows(text):
    return [(f[0], int(f[1]), int(f[2])) for f in (line.split("\t") for line in text.splitlines())]


# ------------------------------------------------------------------ 1. multi-task negatives

@pytest.mark.skipif(BEDTOOLS is None, reason="bedtools not installed")
def test_multitask_negative_region_is_factornets_bedtools_pipeline(tmp_path):
    """FactorNet: merged_chip_bed = cat(all TFs' peaks) (merged); nonnegative =
    merged_chip_bed.slop(b=200).cat(blacklist); negatives = shuffle(excl=nonnegative)."""
    rng = np.random.default_rng(5)
    sizes = {"chr1": 60_000, "chr2": 25_000}
    genome = tmp_path / "g.sizes"
    genome.write_text("".join(f"{c}\t{n}\n" for c, n in sizes.items()))
    tf_sets, tf_files = [], []
    for t in range(3):
        chroms = rng.choice(list(sizes), 40)
        starts = [int(rng.integers(0, sizes[c] - 700)) for c in chroms]
        peak_rows = sorted((c, s, s + int(rng.integers(30, 700))) for c, s in zip(chroms, starts))
        tf_sets.append(iset(peak_rows))
        tf_files.append(write_bed(tmp_path / f"tf{t}.bed", peak_rows))
    zone = exclusion_zone(iset([("chr1", 30_000, 30_400)]), sizes, 1_000)
    zone_file = write_bed(tmp_path / "zone.bed", rows_of(zone))

    cat = write_bed(tmp_path / "cat.bed", sorted(r for f in tf_files for r in bed_rows(f.read_text())))
    merged = write_bed(tmp_path / "merged.bed", bed_rows(bedtools("merge", "-i", cat)))
    slopped = write_bed(tmp_path / "slop.bed", bed_rows(bedtools("slop", "-i", merged, "-g", genome, "-b", 200)))
    both = write_bed(tmp_path / "both.bed", bed_rows(slopped.read_text()) + bed_rows(zone_file.read_text()))
    sorted_both = write_bed(tmp_path / "both.sorted.bed", bed_rows(bedtools("sort", "-i", both)))
    want = bed_rows(bedtools("merge", "-i", sorted_both))

    got = multitask_negative_exclusion(tf_sets, zone, sizes)
    assert rows_of(got) == want
    # no negative drawn outside it overlaps it (bedtools intersect -u finds nothing)
    neg = sample_negative_bins(np.random.default_rng(1), 3_000, got, list(sizes), sizes, num_tasks=3)
    neg_file = write_bed(tmp_path / "neg.bed", sorted(zip(neg.chroms.tolist(), neg.starts.tolist(),
                                                          (neg.starts + 200).tolist())))
    assert bedtools("intersect", "-u", "-a", neg_file, "-b", sorted_both) == ""
    # a window overlapping a peak by up to 100 bp (allowed before) is now excluded
    peak = tf_sets[0].get("chr1")
    near = IntervalSet.from_arrays(np.array(["chr1"]), [peak[0][0] - 150], [peak[0][0] + 50])
    assert got.overlaps("chr1", near.get("chr1")[0], near.get("chr1")[1]).all()


@pytest.mark.skipif(BEDTOOLS is None, reason="bedtools not installed")
def test_singletask_negative_region_is_relaxed_slop_200_and_blacklist(tmp_path):
    """FactorNet nonnegative_wrapper: blacklist.cat(relaxed.slop(b=200))."""
    sizes = {"chr1": 50_000}
    genome = tmp_path / "g.sizes"
    genome.write_text("chr1\t50000\n")
    relaxed_rows = [("chr1", 100, 300), ("chr1", 5_000, 5_600), ("chr1", 5_700, 6_000), ("chr1", 49_900, 50_000)]
    zone = exclusion_zone(iset([("chr1", 20_000, 20_050)]), sizes, 1_000)
    relaxed_file = write_bed(tmp_path / "relaxed.bed", relaxed_rows)
    slopped = bed_rows(bedtools("slop", "-i", relaxed_file, "-g", genome, "-b", 200))
    both = write_bed(tmp_path / "both.bed", sorted(slopped + rows_of(zone)))
    want = bed_rows(bedtools("merge", "-i", both))
    assert rows_of(singletask_negative_exclusion(iset(relaxed_rows), zone, sizes)) == want


# ------------------------------------------------------------------ 3. single-task jitter

def factornet_shift_size(peak_start, peak_stop):
    """utils.extract_data_from_bed (Python 2 integer arithmetic): the bin's start and shift_size."""
    peak_mid = (peak_start + peak_stop) // 2
    start = peak_mid - 200 // 2
    return start, peak_stop - start - 75 - 1


@pytest.mark.parametrize("width", [1, 2, 49, 50, 151, 199, 200, 201, 500])
def test_jitter_reaches_every_offset_factornet_allows_and_no_other(width):
    """DataIterator: s = np.random.randint(-shift, shift + 1); start += s, for every peak, narrow
    ones included."""
    peak_start = 10_000
    start, shift = factornet_shift_size(peak_start, peak_start + width)
    mid = (2 * peak_start + width) // 2
    draws = 40_000
    starts = jitter_positive_bins(np.random.default_rng(width), np.full(draws, "c1"),
                                  np.full(draws, mid), np.full(draws, width))
    assert set((starts - start).tolist()) == set(range(-shift, shift + 1))
    # uniform: no offset drawn much more often than its share
    counts = np.bincount(starts - start + shift)
    assert counts.max() < 2.0 * draws / (2 * shift + 1)


# ------------------------------------------------------------------ 4. BiLSTM dropout

def numpy_lstm_with_masks(x, W, U, b, in_mask, rec_mask, backwards):
    """Keras 1.1 LSTM (consume_less='cpu'), one direction: gate g reads x * in_mask[g] (one
    mask per sequence, repeated over time: time_distributed_dense) and h * rec_mask[g] (B_U)."""
    n, t, _ = x.shape
    hidden = U.shape[0]
    gate = lambda z: np.clip(0.2 * z + 0.5, 0, 1)   # noqa: E731  hard_sigmoid
    h, c = np.zeros((n, hidden)), np.zeros((n, hidden))
    out = np.zeros((n, t, hidden))
    cols = [slice(k * hidden, (k + 1) * hidden) for k in range(4)]
    for s in (range(t - 1, -1, -1) if backwards else range(t)):
        zi, zf, zc, zo = ((x[:, s] * in_mask[k]) @ W[:, cols[k]] + (h * rec_mask[k]) @ U[:, cols[k]] + b[cols[k]]
                          for k in range(4))
        c = gate(zf) * c + gate(zi) * np.tanh(zc)
        h = gate(zo) * np.tanh(c)
        out[:, s] = h
    return out


def test_lstm_dropout_is_keras1_per_gate_per_sequence():
    rng = np.random.default_rng(0)
    batch, steps, features, hidden = 3, 6, 5, 4
    x = rng.normal(size=(batch, steps, features))
    W, U, b = rng.normal(size=(2, features, 4 * hidden)), rng.normal(size=(2, hidden, 4 * hidden)), rng.normal(size=(2, 4 * hidden))
    in_mask, rec_mask = (np.asarray(m, np.float64) for m in
                         lstm_dropout_masks(jax.random.PRNGKey(3), 0.4, batch, features, hidden))
    assert set(np.unique(in_mask).round(6)) == {0.0, round(1 / 0.6, 6)}
    want = np.concatenate([numpy_lstm_with_masks(x, W[0], U[0], b[0], in_mask[0], rec_mask[0], False),
                           numpy_lstm_with_masks(x, W[1], U[1], b[1], in_mask[1], rec_mask[1], True)], -1)
    f32 = lambda a: jnp.asarray(a, jnp.float32)   # noqa: E731
    got = bilstm_scan(f32(x), f32(W), f32(U), f32(b), "keras1", (f32(in_mask), f32(rec_mask)))
    np.testing.assert_allclose(np.asarray(got), want, rtol=1e-4, atol=1e-5)
    # the masks keep 1 - rate of the entries, scaled by 1 / (1 - rate)
    big_in, big_rec = lstm_dropout_masks(jax.random.PRNGKey(4), 0.1, 2_000, 16, 16)
    for mask in (np.asarray(big_in), np.asarray(big_rec)):
        assert abs((mask > 0).mean() - 0.9) < 0.01 and abs(mask.mean() - 1.0) < 0.015


def test_models_train_with_lstm_dropout_0_1_by_default():
    cfg = ModelConfig(seq_len=60, track_names=("DNase",), kernels=4, kernel_width=6, recurrent=3, dense=4)
    assert cfg.lstm_dropout == 0.1
    params = init_params(cfg, 0)
    inputs = dummy_inputs(cfg, 4)
    inputs["onehot"] = np.eye(4, dtype=np.float32)[np.random.default_rng(0).integers(0, 4, (4, 60))]
    inputs["signal"] = np.ones((4, 60, 1), np.float32)
    key = {"dropout": jax.random.PRNGKey(7)}
    with_lstm = make_model(cfg).apply({"params": params}, **inputs, train=True, rngs=key)
    without = make_model(ModelConfig(**{**cfg.to_dict(), "lstm_dropout": 0.0})).apply(
        {"params": params}, **inputs, train=True, rngs=key)
    assert np.abs(np.asarray(with_lstm) - np.asarray(without)).max() > 1e-4
    # at prediction time no dropout acts: the rate does not change the output
    np.testing.assert_array_equal(
        np.asarray(make_model(cfg).apply({"params": params}, **inputs)),
        np.asarray(make_model(ModelConfig(**{**cfg.to_dict(), "lstm_dropout": 0.0})).apply({"params": params}, **inputs)))


# ------------------------------------------------------------------ 5. -mo weights

def factornet_injected_kernels(pwm, width, channels):
    """train.py + utils.inject_pwm on a Theano Convolution1D weight (width, 1, channels, k):
    pwm += 0.001, rows renormalised, log2(pwm / 0.25); flipped motif in kernel 0, flipped
    reverse complement in kernel 1, rows from w/2 - len/2 (Python 2 division). Returned as
    cross-correlation kernels (width, 4, 2): the Theano kernel reversed along its width."""
    pwm = np.array(pwm, np.float64) + 0.001
    pwm = pwm / pwm.sum(axis=1)[:, np.newaxis]
    pwm = np.log2(pwm / 0.25)
    weights = np.random.default_rng(0).normal(size=(width, 1, channels, 2))
    pwm_start = width // 2 - len(pwm) // 2
    pwm_stop = pwm_start + len(pwm)
    pwm_r = pwm[::-1, ::-1]
    weights[:, :, :, 0] = 0
    weights[pwm_start:pwm_stop, 0, 0:4, 0] = pwm[::-1]
    weights[:, :, :, 1] = 0
    weights[pwm_start:pwm_stop, 0, 0:4, 1] = pwm_r[::-1]
    return weights[::-1, 0, :4, :]


@pytest.mark.parametrize("width,motif_len", [(26, 19), (26, 20), (25, 19), (25, 20), (8, 8), (7, 2)])
def test_motif_injection_equals_factornets(width, motif_len):
    rng = np.random.default_rng(width * 100 + motif_len)
    pwm = rng.dirichlet(np.full(4, 0.3), motif_len)
    pwm[0] = [1.0, 0.0, 0.0, 0.0]                   # a zero probability: the pseudocount matters
    params = {"conv": {"kernel": rng.normal(size=(width, 6, 5)).astype(np.float32),
                       "bias": rng.normal(size=5).astype(np.float32)}}
    new = inject_motif(params, pwm)
    kernel = np.asarray(new["conv"]["kernel"])
    np.testing.assert_allclose(kernel[:, :4, :2], factornet_injected_kernels(pwm, width, 6), atol=1e-5)
    assert np.all(kernel[:, 4:, :2] == 0)                                  # signal channels zeroed
    np.testing.assert_array_equal(np.asarray(new["conv"]["bias"])[:2], [0, 0])
    np.testing.assert_array_equal(kernel[:, :, 2:], params["conv"]["kernel"][:, :, 2:])


# ------------------------------------------------------------------ 6. initialisation

def keras1_get_fans(shape, dim_ordering="th"):
    """Keras 1.1 initializations.get_fans."""
    if len(shape) == 2:
        return shape[0], shape[1]
    if dim_ordering == "th":
        receptive = np.prod(shape[2:])
        return shape[1] * receptive, shape[0] * receptive
    receptive = np.prod(shape[:2])
    return shape[-2] * receptive, shape[-1] * receptive


def keras1_glorot_limit(shape):
    fan_in, fan_out = keras1_get_fans(shape)
    return np.sqrt(6.0 / (fan_in + fan_out))


def assert_uniform(values, limit):
    values = np.asarray(values, np.float64).ravel()
    assert np.abs(values).max() <= limit * (1 + 1e-6)
    assert np.abs(values).max() > 0.9 * limit
    assert abs(values.var() / (limit ** 2 / 3) - 1) < 0.12, (values.var(), limit ** 2 / 3)


def test_initialisation_is_keras1s():
    cfg = ModelConfig(seq_len=1000, track_names=("DNase", "Unique35"), kernels=32, kernel_width=26,
                      recurrent=32, dense=128, num_meta=8)
    params = init_params(cfg, 11)
    w, c, k, h = 26, cfg.in_channels, 32, 32
    # Convolution1D(init='glorot_uniform'): Keras 1.1 W_shape (filter_length, 1, input_dim, nb_filter), 'th' fans
    assert_uniform(params["conv"]["kernel"], keras1_glorot_limit((w, 1, c, k)))
    for name in ("position_dense", "dense", "meta_dense", "output"):
        kernel = np.asarray(params[name]["kernel"])
        assert_uniform(kernel, keras1_glorot_limit(kernel.shape))
    for name in ("conv", "position_dense", "dense", "meta_dense", "output"):
        assert np.all(np.asarray(params[name]["bias"]) == 0)
    lstm = params["bilstm"]
    for direction in ("forward", "backward"):
        W, U, b = (np.asarray(lstm[f"{direction}_{x}"], np.float64) for x in "WUb")
        for g in range(4):
            cols = slice(g * h, (g + 1) * h)
            # per gate: W glorot_uniform (input_dim, output_dim); U orthogonal, scale 1.1
            assert np.abs(W[:, cols]).max() <= keras1_glorot_limit((k, h)) * (1 + 1e-6)
            np.testing.assert_allclose(U[:, cols].T @ U[:, cols], 1.21 * np.eye(h), atol=1e-4)
        assert_uniform(W, keras1_glorot_limit((k, h)))
        np.testing.assert_array_equal(b, np.concatenate([np.zeros(h), np.ones(h), np.zeros(2 * h)]))


# ------------------------------------------------------------------ 7. early stopping

class Keras1EarlyStopping:
    """keras.callbacks.EarlyStopping (Keras 1.1), monitor='val_loss', mode 'min'."""

    def __init__(self, patience):
        self.patience, self.wait, self.best = patience, 0, np.inf
        self.stop_training = False

    def on_epoch_end(self, current):
        if current < self.best:
            self.best, self.wait = current, 0
        else:
            if self.wait >= self.patience:
                self.stop_training = True
            self.wait += 1


def epochs_trained(update, losses, patience):
    for epoch, loss in enumerate(losses, start=1):
        if update(loss, epoch, patience):
            return epoch
    return len(losses)


@pytest.mark.parametrize("patience", [0, 1, 2, 3, 5])
@pytest.mark.parametrize("seed", range(4))
def test_early_stopping_matches_keras1(patience, seed):
    from factornet_jax.training import early_stopping_update
    rng = np.random.default_rng(seed)
    losses = list(np.round(rng.uniform(0.1, 1.0, 30), 2))   # rounded: ties are "no improvement"
    if seed == 0:
        losses = [1.0, 0.9, 0.95, 0.96, 0.97, 0.98, 0.99, 1.0, 1.1, 1.2] + losses

    keras = Keras1EarlyStopping(patience)

    def keras_update(loss, epoch, patience):
        keras.on_epoch_end(loss)
        return keras.stop_training

    record = {"best_valid_loss": None, "best_epoch": None, "wait": 0}
    ours = lambda loss, epoch, patience: early_stopping_update(record, loss, epoch, patience)[1]  # noqa: E731
    assert epochs_trained(ours, losses, patience) == epochs_trained(keras_update, losses, patience)
    if seed == 0:  # best at epoch 2: Keras stops patience + 1 epochs later
        assert epochs_trained(lambda *a: early_stopping_update(
            {"best_valid_loss": None, "best_epoch": None, "wait": 0}, *a)[1], [1.0], patience) == 1
        assert epochs_trained(ours, [], patience) == 0


def test_early_stopping_scripted_sequence():
    from factornet_jax.training import early_stopping_update
    record = {"best_valid_loss": None, "best_epoch": None, "wait": 0}
    stops = [early_stopping_update(record, loss, e, 2)[1]
             for e, loss in enumerate([1.0, 0.9, 0.95, 0.96, 0.97], start=1)]
    assert stops == [False, False, False, False, True]     # 3 = patience + 1 epochs without improvement
    assert record["best_epoch"] == 2 and record["best_valid_loss"] == 0.9


# ------------------------------------------------------------------ optimizer and loss

def test_adam_is_keras1s():
    """keras.optimizers.Adam (1.1): lr_t = lr sqrt(1 - b2^t) / (1 - b1^t); p -= lr_t m / (sqrt(v) + eps)."""
    from factornet_jax.optimizer import KERAS1_ADAM, keras1_adam
    assert KERAS1_ADAM == {"beta_1": 0.9, "beta_2": 0.999, "epsilon": 1e-8}
    rng = np.random.default_rng(2)
    p = {"w": rng.normal(size=(3, 2)), "b": rng.normal(size=2) * 1e-6}
    tx = keras1_adam(0.001, **KERAS1_ADAM)
    state = tx.init(jax.tree_util.tree_map(jnp.asarray, p))
    params = jax.tree_util.tree_map(lambda a: jnp.asarray(a, jnp.float32), p)
    want = {k: v.copy() for k, v in p.items()}
    m = {k: np.zeros_like(v) for k, v in p.items()}
    v_ = {k: np.zeros_like(v) for k, v in p.items()}
    for t in range(1, 8):
        grads = {"w": rng.normal(size=(3, 2)), "b": rng.normal(size=2) * 1e-9}   # tiny: eps matters
        updates, state = tx.update(jax.tree_util.tree_map(lambda a: jnp.asarray(a, jnp.float32), grads), state)
        params = jax.tree_util.tree_map(lambda a, u: a + u, params, updates)
        lr_t = 0.001 * np.sqrt(1 - 0.999 ** t) / (1 - 0.9 ** t)
        for k in p:
            m[k] = 0.9 * m[k] + 0.1 * grads[k]
            v_[k] = 0.999 * v_[k] + 0.001 * grads[k] ** 2
            want[k] = want[k] - lr_t * m[k] / (np.sqrt(v_[k]) + 1e-8)
    for k in p:
        np.testing.assert_allclose(np.asarray(params[k]), want[k], rtol=1e-5, atol=1e-9)

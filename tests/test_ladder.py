"""Shared-computation ladder scoring (factornet_jax.ladder, FactorNet.ladder): equal to the
per-window path, on the model and through `predict` (gaps, chromosome ends, blacklist holes,
meta and GENCODE models, r = 0 and r < 0, an imported Keras 1 model), and the path choice."""
import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from test_predict import read_rows, write_bed, write_model

from factornet_jax.ladder import StepCounts, Sharing, choose_sharing, segments, stretch_batches
from factornet_jax.model import ModelConfig

SHARED_MODELS = __import__("conftest").SHARED_DATA / "models"


# ---------------------------------------------------------------- the model

@pytest.mark.parametrize("kwargs", [
    dict(recurrent=5, num_meta=2, use_gencode=True, signal_transform="log1p"),
    dict(recurrent=5, lstm_cell="keras1", pool_size=4),
    dict(recurrent=0),
    dict(recurrent=-1, num_meta=2),
], ids=["lstm-meta-gencode-log1p", "keras1-cell", "r0", "global-max"])
def test_ladder_method_equals_the_per_window_call(kwargs):
    from factornet_jax.model import FactorNet, init_params
    cfg = ModelConfig(seq_len=90, track_names=("DNase", "cov_fwd", "cov_rev"), num_tasks=2,
                      kernels=6, kernel_width=9, dense=8, **kwargs)
    params = init_params(cfg, 3)
    rng = np.random.default_rng(0)
    g, n, step = 2, 6, 7                       # 7 is not a multiple of the pool width
    length = cfg.seq_len + (n - 1) * step
    onehot = np.eye(5, 4, dtype=np.uint8)[rng.integers(0, 5, (g, length))]   # with N bases
    signal = rng.gamma(0.5, 2.0, (g, length, 3)).astype(np.float32)
    meta = rng.random((g, n, 2)).astype(np.float32) if cfg.num_meta else None
    gencode = (rng.random((g, n, 6)) > 0.5).astype(np.float32) if cfg.use_gencode else None
    model = FactorNet(cfg)
    shared = model.apply({"params": params}, onehot, signal, meta, gencode, step=step,
                         method="ladder")
    windows = lambda a: np.stack([a[:, k * step: k * step + cfg.seq_len] for k in range(n)],
                                 1).reshape((g * n, cfg.seq_len) + a.shape[2:])
    flat = lambda a: None if a is None else a.reshape(g * n, -1)
    each = model.apply({"params": params}, windows(onehot), windows(signal), flat(meta), flat(gencode))
    assert shared.shape == (g, n, 2, 2)
    assert np.abs(np.asarray(each)).max() > 0.1
    np.testing.assert_allclose(np.asarray(shared).reshape(g * n, 2, 2), np.asarray(each),
                               rtol=0, atol=1e-5)


# ---------------------------------------------------------------- runs and segments

def segments_by_hand(chroms, mids, usable, step, windows):
    out, run = [], []
    for i in range(len(mids)):
        joined = (run and usable[i] and run[-1] == i - 1 and chroms[i] == chroms[i - 1]
                  and mids[i] - mids[i - 1] == step and len(run) < windows)
        if joined:
            run.append(i)
            continue
        if run:
            out.append((run[0], len(run)))
        run = [i] if usable[i] else []
    if run:
        out.append((run[0], len(run)))
    return out


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.sampled_from("ab"), st.sampled_from([50, 50, 50, 30, 0, -50]),
                          st.booleans()), min_size=1, max_size=60),
       st.integers(1, 7))
def test_segments_match_a_plain_loop(rows, windows):
    chroms = np.array([c for c, _, _ in rows])
    mids = np.cumsum([d for _, d, _ in rows]).astype(np.int64) + 10_000
    usable = np.array([u for _, _, u in rows])
    first, count = segments(chroms, mids, usable, 50, windows)
    assert list(zip(first.tolist(), count.tolist())) == segments_by_hand(chroms, mids, usable, 50, windows)


def test_stretch_batches_pad_and_place_windows():
    chroms = np.array(["c"] * 10)
    mids = 1000 + 50 * np.arange(10)
    first, count = np.array([0, 4, 8]), np.array([4, 4, 2])
    plan = Sharing("shared", 50, 4)
    batches = list(stretch_batches(chroms, mids, first, count, plan, 2, 200, 200))
    assert len(batches) == 2
    b = batches[1]                                   # one real stretch, one padding repeat
    assert b.starts.tolist() == [mids[8] - 100, mids[8] - 100]
    assert b.rows.tolist() == [8, 9] and b.slots.tolist() == [0, 1]
    assert b.bin_starts[0].tolist() == [mids[8] - 100 + 50 * k for k in range(4)]
    assert batches[0].rows.tolist() == list(range(8)) and batches[0].slots.tolist() == list(range(8))


def test_step_counts_span_blocks_and_chromosomes():
    counts = StepCounts()
    counts.add(np.array(["a", "a", "a"]), np.array([100, 150, 200]))
    counts.add(np.array(["a", "b", "b"]), np.array([250, 100, 130]))
    assert counts.common_step() == (50, 3)
    assert counts.counts[30] == 1 and sum(counts.counts.values()) == 4


def test_auto_takes_the_shared_path_only_where_it_saves_arithmetic():
    cfg = ModelConfig(seq_len=1000, track_names=("DNase",))
    ladder = StepCounts()
    ladder.add(np.array(["c"] * 1000), 50 * np.arange(1000))
    plan = choose_sharing(cfg, 1000, ladder, 64)
    assert plan.path == "shared" and plan.step == 50 and plan.windows == 64
    assert 0.2 < plan.cost < 0.45                  # the count: about a quarter + overlap
    scattered = StepCounts()
    scattered.add(np.array(["c"] * 1000), 3000 * np.arange(1000))
    assert choose_sharing(cfg, 1000, scattered, 64).path == "per-window"
    assert choose_sharing(cfg, 1000, ladder, 64, "per-window").path == "per-window"
    from factornet_jax.errors import ConfigError
    with pytest.raises(ConfigError, match="--sharing shared: the BED's intervals are not a ladder"):
        choose_sharing(cfg, 1000, scattered, 64, "shared")


# ---------------------------------------------------------------- through predict

def predict_both(store, model_dir, bed, tmp_path, **kwargs):
    from factornet_jax.predict import predict_bed
    out = {}
    for path in ("shared", "per-window"):
        summary = predict_bed(store, model_dir, bed, tmp_path / f"{path}.bedGraph.gz",
                              sharing=path, **kwargs)
        assert summary.sharing.path == path
        out[path] = (np.array([r[3] for r in read_rows(tmp_path / f"{path}.bedGraph.gz")]), summary)
    return out


def ladder_with_gaps():
    """chr2 ladder through the blacklist hole, a gap, an odd-stepped stretch, and both
    chromosome ends (windows off the chromosome score 0)."""
    rows = [("chr2", s, s + 200) for s in range(0, 14_000, 50)]
    rows += [("chr2", s, s + 200) for s in range(15_000, 15_600, 50)]       # after a gap
    rows += [("chr2", s, s + 200) for s in range(16_000, 16_400, 30)]       # another step
    rows += [("chr2", s, s + 200) for s in range(32_000, 33_133, 50)]       # chromosome end
    rows += [("chr1", s, s + 200) for s in range(1_000, 2_000, 50)]
    return rows


@pytest.mark.parametrize("kind", ["meta-r4", "gencode-r0", "global-max"])
def test_predict_shared_equals_per_window(blacklisted_stores, tmp_path, kind):
    import jax

    from factornet_jax import modeldir
    from factornet_jax.model import abstract_params
    store = blacklisted_stores["store"]
    if kind == "meta-r4":
        model_dir, _ = write_model(tmp_path / "m", 2, ["TFA", "TFB"])
    else:
        cfg = ModelConfig(seq_len=200, track_names=("Unique35", "DGF"), use_gencode=kind == "gencode-r0",
                          kernels=4, recurrent=0 if kind == "gencode-r0" else -1, dense=8)
        rng = np.random.default_rng(5)
        params = jax.tree_util.tree_map(lambda leaf: rng.normal(0, 0.3, leaf.shape).astype(np.float32),
                                        abstract_params(cfg))
        model_dir = tmp_path / "m"
        model_dir.mkdir()
        features = ["bigwig"] + (["gencode"] if cfg.use_gencode else [])
        modeldir.write_config(model_dir, modeldir.make_config(cfg, ["TFA"], cfg.track_names, (), features))
        modeldir.save_params(model_dir / "best.npz", params)
    bed = write_bed(tmp_path / "ladder.bed", ladder_with_gaps())
    runs = predict_both(store, model_dir, bed, tmp_path, tf="TFA", batch_size=64)
    shared, each = runs["shared"][0], runs["per-window"][0]
    assert (shared == 0).sum() == (each == 0).sum() > 20           # blacklist and ends score 0
    assert np.ptp(each[each > 0]) > 0.01
    np.testing.assert_allclose(shared, each, rtol=0, atol=1e-5)
    assert runs["shared"][1].n_windows == runs["per-window"][1].n_windows


@pytest.mark.skipif(not (SHARED_MODELS / "E2F1" / "GENCODE_Unique35_DGF" / "model.json").is_file(),
                    reason="released models not found under ../shared/data/models")
def test_imported_keras_gencode_model_shared_equals_per_window(blacklisted_stores, tmp_path):
    pytest.importorskip("h5py")
    from factornet_jax.keras_import import import_keras_model
    model_dir = tmp_path / "E2F1"
    import_keras_model(SHARED_MODELS / "E2F1" / "GENCODE_Unique35_DGF", model_dir)
    rows = [("chr2", s, s + 200) for s in range(9_000, 12_000, 50)]
    rows += [("chr2", s, s + 200) for s in range(31_500, 33_133, 50)]
    bed = write_bed(tmp_path / "ladder.bed.gz", rows)
    runs = predict_both(blacklisted_stores["store"], model_dir, bed, tmp_path, batch_size=32)
    shared, each = runs["shared"][0], runs["per-window"][0]
    assert (each > 0).sum() > 20
    np.testing.assert_allclose(shared, each, rtol=0, atol=1e-5)


def test_auto_path_is_named_in_the_summary(tiny_stores, tmp_path):
    from factornet_jax.predict import format_summary, predict_bed
    model_dir, _ = write_model(tmp_path / "m", 1, ["TFA"])
    store = tiny_stores["cell_stores"][0]
    ladder = write_bed(tmp_path / "ladder.bed", [("chr1", s, s + 200) for s in range(400, 20_000, 50)])
    scattered = write_bed(tmp_path / "sites.bed", [("chr1", s, s + 200) for s in range(400, 40_000, 2_000)])
    auto = predict_bed(store, model_dir, ladder, tmp_path / "a.bedGraph.gz", batch_size=64)
    assert auto.sharing.path == "shared" and "shared-computation path" in format_summary(auto)
    other = predict_bed(store, model_dir, scattered, tmp_path / "b.bedGraph.gz", batch_size=64)
    assert other.sharing.path == "per-window" and "per-window path" in format_summary(other)

"""calibration.py: q-value thresholds against brute force, the training hook's calibration.json,
reliability and Brier against direct computations, and the errors."""
import json

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from factornet_jax import calibration, metrics
from factornet_jax.errors import ConfigError, FactorNetError, InputFileError


def brute_threshold(labels, scores, fdr):
    """Lowest threshold (a distinct score) whose FDR of bins >= it is <= fdr, by trying all."""
    best = None
    for t in np.unique(scores):
        called = scores >= t
        if (~labels[called]).sum() / called.sum() <= fdr and (best is None or t < best):
            best = t
    return best


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.booleans(), st.integers(0, 12)), min_size=1, max_size=60),
       st.sampled_from([0.0, 0.05, 0.1, 0.25, 0.5, 0.9]))
def test_threshold_for_fdr_is_the_lowest_threshold_within_the_target(rows, fdr):
    labels = np.array([r[0] for r in rows])
    scores = np.array([r[1] for r in rows], float) / 4       # many ties
    thresholds, q, recall = calibration.qvalue_curve(labels, scores)
    assert np.all(np.diff(thresholds) < 0) and np.all(np.diff(q) > 0)
    expected = brute_threshold(labels, scores, fdr)
    assert calibration.threshold_for_fdr(thresholds, q, fdr) == expected
    if expected is not None and labels.any():
        # the recall there is the DREAM metric's recall at that FDR
        i = list(thresholds).index(expected)
        assert recall[i] == pytest.approx(metrics.recall_at_fdr(labels, scores, fdr))
        # at a stored point q is that threshold's own FDR
        called = scores >= expected
        assert q[i] == pytest.approx((~labels[called]).mean())


def test_qvalue_of_takes_the_point_at_or_below_the_score():
    thresholds, q = [0.9, 0.5, 0.2], [0.0, 0.1, 0.3]
    got = calibration.qvalue_of(thresholds, q, [0.95, 0.9, 0.7, 0.5, 0.3, 0.1])
    np.testing.assert_allclose(got, [0.0, 0.0, 0.1, 0.1, 0.3, 1.0])


def test_thinned_curve_is_conservative_and_keeps_the_grid():
    rng = np.random.default_rng(0)
    labels = rng.random(20000) < 0.1
    scores = rng.random(20000) + labels * rng.random(20000)
    entry = calibration.tf_table(labels.astype(np.int8), scores, max_points=50)
    full_t, full_q, _ = calibration.qvalue_curve(labels, scores)
    assert len(entry["qvalue_curve"]["thresholds"]) <= 50 + len(calibration.FDR_GRID)
    for row in entry["fdr_table"]:
        exact = calibration.threshold_for_fdr(full_t, full_q, row["fdr"])
        assert row["threshold"] == exact                             # grid points kept exactly
        assert calibration.fdr_threshold(entry, row["fdr"])[0] == exact
        assert row["recall"] == pytest.approx(metrics.recall_at_fdr(labels, scores, row["fdr"]))
    for fdr in (0.033, 0.077, 0.123, 0.41):                           # between points: never lower
        assert calibration.fdr_threshold(entry, fdr)[0] >= calibration.threshold_for_fdr(full_t, full_q, fdr)
    assert entry["score_quantiles"]["values"][50] == pytest.approx(np.median(scores))


def test_ambiguous_bins_are_left_out_and_no_bound_bins_give_no_threshold():
    entry = calibration.tf_table(np.array([1, -1, 0, 0], np.int8), np.array([0.9, 0.8, 0.7, 0.1]))
    assert entry["n_ambiguous"] == 1 and entry["n_bound"] == 1
    assert entry["fdr_table"][0]["threshold"] == 0.9
    empty = calibration.tf_table(np.zeros(5, np.int8), np.linspace(0, 1, 5))
    assert all(r["threshold"] is None for r in empty["fdr_table"]) and "no bound" in empty["note"]
    assert calibration.fdr_threshold(empty, 0.1) == (None, None, None)


# ---------------------------------------------------------------- reliability and Brier

def test_brier_and_reliability_match_direct_computation():
    rng = np.random.default_rng(1)
    scores = rng.random(5000)
    scores[:3] = [0.0, 1.0, 0.1]                  # edges: 1.0 goes into the last bin
    labels = rng.random(5000) < scores
    assert calibration.brier_score(labels, scores) == pytest.approx(np.mean((scores - labels) ** 2))
    table = calibration.reliability(labels, scores, n_bins=10)
    for i in range(10):
        lo, hi = i / 10, (i + 1) / 10
        inside = (scores >= lo) & ((scores < hi) if i < 9 else (scores <= hi))
        assert table["n"][i] == inside.sum()
        assert table["mean_score"][i] == pytest.approx(scores[inside].mean())
        assert table["fraction_bound"][i] == pytest.approx(labels[inside].mean())
    assert sum(table["n"]) == scores.size


def test_scores_outside_zero_one_are_not_probabilities():
    assert np.isnan(calibration.brier_score([True, False], [2.5, 0.1]))
    assert calibration.reliability([True, False], [2.5, 0.1])["n"] == []


def test_draw_reliability_writes_a_png(tmp_path):
    rng = np.random.default_rng(2)
    scores = rng.random(300)
    table = calibration.reliability(rng.random(300) < scores, scores)
    not_probabilities = calibration.reliability([1], [3.0])
    calibration.draw_reliability([("model", table, 0.2), ("dnase", not_probabilities, None)],
                                 tmp_path / "r.png")
    assert (tmp_path / "r.png").read_bytes()[:4] == b"\x89PNG"


# ---------------------------------------------------------------- the training hook

@pytest.fixture(scope="module")
def trained(tiny_stores, tmp_path_factory):
    """One tiny single-task run: its model dir holds calibration.json."""
    from factornet_jax.train_config import TrainConfig
    from factornet_jax.training import train_and_evaluate
    out = tmp_path_factory.mktemp("calibrated") / "model"
    config = TrainConfig(inputs=tuple(str(p) for p in tiny_stores["cell_stores"]), output=str(out),
                         factor="TFA", valid_chroms=("chr11",), test_chroms=("chr1",), epochs=1,
                         seq_len=200, kernel_width=20, kernels=4, recurrent=4, dense=8, seed=3,
                         batch_size=8, max_steps_per_epoch=2, learning_rate=0.01)
    train_and_evaluate(config, log=lambda *a, **k: None)
    return {**tiny_stores, "dir": out, "config": config}


def test_training_writes_calibration_of_the_validation_ladder(trained):
    from factornet_jax.evaluate import label_bins
    from factornet_jax.intervals import IntervalSet
    from factornet_jax.modeldir import load_model
    from factornet_jax.reader import open_cell_store
    data = calibration.read_calibration(trained["dir"])
    assert data["chroms"] == ["chr11"] and data["seq_len"] == 200
    entry = data["tfs"]["TFA"]
    # recompute independently: ladder bins of chr11 clear of the ends, best.npz, labels
    model = load_model(trained["dir"])
    labels, scores = [], []
    for path in trained["cell_stores"]:
        store = open_cell_store(path)
        size = store.chrom_sizes["chr11"]
        starts = np.arange(200, size - 400 + 1, 50)        # window [s - 0, s + 200) clear of 200 bp ends
        starts = starts[(starts >= 200) & (starts + 200 <= size - 200)]
        onehot, signal = store.fetch_batch(["chr11"] * len(starts), starts, 200)
        scores.append(model.predict(onehot, signal)[:, 0])
        relaxed = store.peaks("TFA", "relaxed")
        labels.append(label_bins(IntervalSet.from_records(store.peaks("TFA")),
                                 IntervalSet.from_records(relaxed), "chr11", starts, starts + 200))
    labels, scores = np.concatenate(labels), np.concatenate(scores)
    assert entry["n_bins"] == labels.size
    assert entry["n_bound"] == (labels == 1).sum() and entry["n_ambiguous"] == (labels == -1).sum()
    keep = labels != -1
    t, q, _ = calibration.qvalue_curve(labels[keep] == 1, scores[keep])
    for row in entry["fdr_table"]:
        expected = calibration.threshold_for_fdr(t, q, row["fdr"])
        if expected is None:
            assert row["threshold"] is None
        else:
            assert row["threshold"] == pytest.approx(expected, rel=1e-5)
    assert entry["score_quantiles"]["values"][-4] == pytest.approx(scores.max(), rel=1e-5)


def test_calibration_is_a_model_dir_entry(trained):
    from factornet_jax.outputs import MODEL_DIR_ENTRIES
    assert calibration.CALIBRATION_NAME in MODEL_DIR_ENTRIES
    assert (trained["dir"] / calibration.CALIBRATION_NAME).is_file()


def test_missing_calibration_says_to_pass_threshold(tmp_path, trained):
    import shutil
    model = tmp_path / "keras_model"
    shutil.copytree(trained["dir"], model)
    (model / calibration.CALIBRATION_NAME).unlink()
    config = json.loads((model / "config.json").read_text())
    config["source"] = "keras"
    (model / "config.json").write_text(json.dumps(config))
    with pytest.raises(FactorNetError, match="imported Keras model has no validation scores.*--threshold"):
        calibration.read_calibration(model)
    (model / calibration.CALIBRATION_NAME).write_text("{nope")
    with pytest.raises(InputFileError, match="not valid JSON"):
        calibration.read_calibration(model)
    with pytest.raises(ConfigError, match="-f TFB: .* has no entry"):
        calibration.tf_entry(calibration.read_calibration(trained["dir"]), "TFB", trained["dir"])

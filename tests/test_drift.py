"""Cross-cell drift check (factornet_jax.drift): the profile against a direct computation, a
4x deeper cell flagged with its figures, the same cell not flagged, and predict's warning."""
import json

import numpy as np
import pytest

from factornet_jax.drift import (PROFILE_NAME, QUANTILES, drift_messages, sample_bins,
                                 signal_profile, write_profiles)


class Scaled:
    """A cell store whose signal reads `factor` times higher (a deeper-sequenced cell)."""

    def __init__(self, store, factor):
        self.store, self.factor = store, factor
        self.chrom_sizes, self.track_names = store.chrom_sizes, store.track_names
        self.num_tracks, self.path = store.num_tracks, store.path

    def fetch_batch(self, chroms, starts, length, **kw):
        onehot, signal = self.store.fetch_batch(chroms, starts, length, **kw)
        return onehot, signal * self.factor


@pytest.fixture(scope="module")
def store(tiny_stores):
    from factornet_jax.reader import open_cell_store
    return open_cell_store(tiny_stores["cell_stores"][0])


def test_profile_matches_a_direct_computation(store):
    profile = signal_profile(store, n_bins=3000)
    chroms, starts = sample_bins(store.chrom_sizes, 3000)
    assert (starts >= 0).all() and all(s + 200 <= store.chrom_sizes[c] for c, s in zip(chroms, starts))
    means = np.array([store.fetch(c, s, s + 200)[1].mean(axis=0) for c, s in zip(chroms, starts)])
    for k, name in enumerate(store.track_names):
        np.testing.assert_allclose(profile[name]["quantiles"],
                                   [np.quantile(means[:, k], q) for q in QUANTILES], rtol=1e-5)
        top = np.sort(means[:, k])[-60:]
        np.testing.assert_allclose(profile[name]["open_mean"], top.mean(), rtol=1e-5)


def test_a_deeper_cell_is_flagged_and_the_same_cell_is_not(store):
    base = signal_profile(store, n_bins=3000)
    assert drift_messages({"CellA": base}, base) == []
    deeper = signal_profile(Scaled(store, 4.0), n_bins=3000)
    messages = drift_messages({"CellA": base}, deeper)
    assert len(messages) == store.num_tracks
    assert all("99th percentile 4x" in m and "contrast" not in m for m in messages), messages
    shallow = drift_messages({"CellA": base, "CellB": base}, signal_profile(Scaled(store, 0.25), n_bins=3000))
    assert all("99th percentile 0.25x" in m for m in shallow), shallow
    assert drift_messages({"CellA": base}, signal_profile(Scaled(store, 1.5), n_bins=3000)) == []


def test_predict_warns_with_the_figures(tiny_stores, tmp_path, store, capsys):
    from test_predict import write_bed, write_model

    from factornet_jax.predict import predict_bed
    model_dir, _ = write_model(tmp_path / "m", 1, ["TFA"])
    profile = signal_profile(store)
    for track in profile.values():       # the training cell: a quarter of this cell's depth
        track["quantiles"] = [q / 4 for q in track["quantiles"]]
    write_profiles(model_dir, {"CellA": profile})
    assert json.loads((model_dir / PROFILE_NAME).read_text())["cells"]["CellA"]
    bed = write_bed(tmp_path / "b.bed", [("chr1", s, s + 200) for s in range(1000, 3000, 50)])
    predict_bed(store.path, model_dir, bed, tmp_path / "p.bedGraph.gz")
    err = capsys.readouterr().err
    assert "signal far from the training cells' (Unique35 99th percentile 4x" in err
    assert len([line for line in err.splitlines() if "far from" in line]) == 1
    (model_dir / PROFILE_NAME).unlink()                  # no profile (imported model): no check
    predict_bed(store.path, model_dir, bed, tmp_path / "q.bedGraph.gz")
    assert "far from" not in capsys.readouterr().err


# ---------------------------------------------------------------- quantile normalisation

def test_signal_map_sends_levels_to_the_reference_and_undoes_a_scale():
    from factornet_jax.drift import SignalMap
    rng = np.random.default_rng(0)
    ref = np.sort(rng.gamma(0.3, 2.0, 104))
    ref[:40] = 0.0                                     # sparse tracks: tied zero levels
    src = 4.0 * ref
    m = SignalMap(["DNase"], {"DNase": src}, {"DNase": ref})
    values = rng.gamma(0.3, 8.0, (3, 50, 1)).astype(np.float32)
    np.testing.assert_allclose(m(values), values / 4.0, rtol=1e-5, atol=1e-6)   # 4x deeper -> 1x
    grid = np.linspace(0, 1.2 * src[-1], 500, dtype=np.float32)[None, :, None]
    assert (np.diff(m(grid)[0, :, 0]) >= 0).all()                                # monotone


@pytest.fixture(scope="module")
def deeper_store(tiny_inputs, tmp_path_factory):
    """CellA's folder with every bigWig 4x (a deeper-sequenced copy), built into a store."""
    from factornet_jax.build import BuildRequest, build_stores
    from factornet_jax.simulate import rescaled_cell
    root = tmp_path_factory.mktemp("deeper")
    folder = root / "CellAx4"
    rescaled_cell(tiny_inputs["cells"][0], folder, 4.0)
    build_stores(BuildRequest(cell_dirs=(str(folder),), genome=str(tiny_inputs["fasta"]),
                              stores_dir=str(root / "stores"), chunk_bases=4096))
    return root / "stores" / "CellAx4.zarr"


def test_predict_quantile_normalisation_feeds_a_deeper_cell_on_the_training_scale(
        tiny_stores, deeper_store, tmp_path, store, capsys):
    from test_predict import read_rows, write_bed, write_model

    from factornet_jax.drift import model_normalization
    from factornet_jax.predict import format_summary, predict_bed
    model_dir, _ = write_model(tmp_path / "m", 1, ["TFA"])
    write_profiles(model_dir, {"CellA": signal_profile(store)}, normalization="quantile")
    assert model_normalization(model_dir) == "quantile"
    bed = write_bed(tmp_path / "b.bed", [("chr1", s, s + 200) for s in range(1000, 9000, 50)])
    scores = {}
    for name, path, mode in (("same", store.path, "auto"), ("deep", deeper_store, "auto"),
                             ("raw", deeper_store, "none")):
        summary = predict_bed(path, model_dir, bed, tmp_path / f"{name}.bedGraph.gz",
                              signal_normalization=mode, batch_size=64)
        scores[name] = np.array([r[3] for r in read_rows(tmp_path / f"{name}.bedGraph.gz")])
        assert ("quantile-normalised" in format_summary(summary)) == (mode == "auto")
    # the map travels to batch-assembling worker processes too
    predict_bed(deeper_store, model_dir, bed, tmp_path / "workers.bedGraph.gz", batch_size=64,
                sharing="per-window", loader_processes=1)
    workers = np.array([r[3] for r in read_rows(tmp_path / "workers.bedGraph.gz")])
    np.testing.assert_allclose(workers, scores["same"], atol=1e-4)
    # 4x deeper, normalised: the training cell's own scores; raw: something else
    np.testing.assert_allclose(scores["deep"], scores["same"], atol=1e-4)
    assert np.abs(scores["raw"] - scores["same"]).max() > 1e-2
    assert "99th percentile 4x" in capsys.readouterr().err     # the drift check still warns


def test_train_run_records_and_applies_quantile_normalisation(tiny_stores, tmp_path):
    from factornet_jax.drift import model_normalization, read_profiles
    from factornet_jax.train_config import TrainConfig
    from factornet_jax.training import train_and_evaluate
    config = TrainConfig(inputs=tuple(str(p) for p in tiny_stores["cell_stores"]),
                         output=str(tmp_path / "m"), factor="TFA", valid_chroms=("chr11",),
                         test_chroms=("chr1",), epochs=1, seq_len=200, kernel_width=20, kernels=4,
                         recurrent=4, dense=8, batch_size=8, max_steps_per_epoch=2,
                         signal_normalization="quantile")
    train_and_evaluate(config, log=lambda *a, **k: None)
    assert model_normalization(tmp_path / "m") == "quantile"
    profiles = read_profiles(tmp_path / "m")
    assert sorted(profiles) == ["CellA", "CellB"] and all("levels" in p["DGF"] for p in profiles.values())


def test_rescaled_cell_multiplies_only_the_named_tracks(tiny_inputs, tmp_path):
    import pyBigWig

    from factornet_jax.simulate import rescaled_cell
    source = tiny_inputs["cells"][0]
    tracks = [line.split("\t")[:2] for line in (source / "bigwig.txt").read_text().splitlines()]
    (scaled_file, scaled_name), (kept_file, _) = tracks[0], tracks[1]
    rescaled_cell(source, tmp_path / "copy", 2.5, tracks=(scaled_name,))
    for name, factor in ((scaled_file, 2.5), (kept_file, 1.0)):
        a, b = pyBigWig.open(str(source / name)), pyBigWig.open(str(tmp_path / "copy" / name))
        assert a.chroms() == b.chroms()
        for chrom in a.chroms():
            x, y = a.intervals(chrom) or [], b.intervals(chrom) or []
            assert [e[:2] for e in x] == [e[:2] for e in y]
            np.testing.assert_allclose([e[2] for e in y], [factor * e[2] for e in x], rtol=1e-6)
        a.close(), b.close()

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

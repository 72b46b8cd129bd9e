"""calls.py and `factornet call`: merging against a base-painting oracle, the narrowPeak written,
the -o/-oc rules, the errors, and calls against labels on simulated data."""
import gzip
import json

import numpy as np
from conftest import write_text_file
import pytest
from hypothesis import given, settings, strategies as st

from factornet_jax import calibration, calls
from factornet_jax.bed import read_bed
from factornet_jax.cli import COMMANDS, build_parser, run_command
from factornet_jax.errors import ConfigError, FactorNetError


def cli(argv):
    parser = build_parser([c for c in COMMANDS if c[1] == "call"])
    return run_command(parser, ["call", *argv])


def write_bedgraph(path, chroms, starts, ends, scores):
    return write_text_file(path, "".join(f"{c}\t{s}\t{e}\t{v:.6g}\n"
                                         for c, s, e, v in zip(chroms, starts, ends, scores)))


# ---------------------------------------------------------------- merging

def oracle_sites(starts, ends, scores, threshold):
    """Paint the bases of the bins above the threshold; each run of painted bases is a site."""
    above = [i for i in range(len(starts)) if scores[i] >= threshold]
    if not above:
        return []
    painted = np.zeros(max(ends) + 2, bool)
    for i in above:
        painted[starts[i]:ends[i]] = True
    edges = np.flatnonzero(np.diff(np.concatenate([[0], painted.astype(int), [0]])))
    sites = []
    for lo, hi in zip(edges[::2], edges[1::2]):
        inside = [i for i in above if starts[i] >= lo and ends[i] <= hi]
        best = min(inside, key=lambda i: (-scores[i], starts[i], ends[i]))
        sites.append((lo, hi, (starts[best] + ends[best]) // 2, scores[best], len(inside)))
    return sites


@settings(max_examples=80, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 60), st.integers(1, 8), st.integers(0, 5)), min_size=1,
                max_size=40), st.integers(0, 5))
def test_merge_bins_matches_base_painting(rows, threshold):
    starts = np.array([r[0] * 10 for r in rows])
    ends = starts + np.array([r[1] * 10 for r in rows])
    scores = np.array([r[2] for r in rows], float)
    got = calls.merge_bins("chr1", starts, ends, scores, threshold)
    expected = oracle_sites(starts, ends, scores, threshold)
    assert [(s["start"], s["end"], s["summit"], s["score"], s["n_bins"]) for s in got] == expected


def test_ladder_bins_bridge_short_dips_and_touching_bins_merge():
    starts = np.arange(0, 1000, 50)
    scores = np.zeros(len(starts))
    scores[[2, 4]] = [0.9, 0.8]          # 100 bp apart: still overlapping (200-bp bins)
    scores[[12, 16]] = [0.6, 0.7]        # 200 bp apart: book-ended, merged too
    sites = calls.merge_bins("chr2", starts, starts + 200, scores, 0.5)
    assert [(s["start"], s["end"], s["summit"], s["n_bins"]) for s in sites] == [
        (100, 400, 200, 2), (600, 1000, 900, 2)]


# ---------------------------------------------------------------- the command

def fake_model(tmp_path, tfs=("CTCF",), source="trained", with_calibration=True, seed=0):
    """A model dir with config.json and a calibration.json from synthetic validation scores."""
    folder = tmp_path / "model"
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps({
        "format": "factornet-jax/model", "version": 1, "model": {}, "tfs": list(tfs),
        "track_names": ["DGF"], "source": source}))
    rng = np.random.default_rng(seed)
    labels = (rng.random(20000) < 0.05).astype(np.int8)
    scores = np.clip(rng.normal(0.2 + 0.5 * labels, 0.15), 0, 1)
    if with_calibration:
        calibration.write_calibration(folder, {
            "format": calibration.FORMAT, "version": calibration.VERSION,
            "tfs": {tf: calibration.tf_table(labels, scores) for tf in tfs}})
    return folder, labels, scores


@pytest.fixture
def prediction(tmp_path):
    rng = np.random.default_rng(5)
    starts = np.arange(0, 20000, 50)
    scores = rng.random(len(starts)) * 0.3
    scores[100:104] = [0.7, 0.95, 0.95, 0.8]             # a site: summit at the first 0.95 bin
    scores[300:302] = [0.55, 0.99]
    chroms = ["chr1"] * 200 + ["chr2"] * 200
    starts = np.concatenate([starts[:200], starts[:200]])
    return write_bedgraph(tmp_path / "pred.bedGraph.gz", chroms, starts, starts + 200, scores)


def test_call_writes_narrowpeak_with_calibrated_threshold(tmp_path, prediction, capsys):
    model, labels, scores = fake_model(tmp_path)
    out = tmp_path / "sites.narrowPeak"
    assert cli(["-p", str(prediction), "-m", str(model), "--fdr", "0.1", "-o", str(out)]) == 0
    expected = calibration.threshold_for_fdr(*calibration.qvalue_curve(labels == 1, scores)[:2], 0.1)
    printed = capsys.readouterr().out
    assert f"scoring >= {expected:.6g}" in printed and "target FDR 0.1" in printed
    lines = out.read_text().splitlines()
    assert lines[0].startswith("track type=narrowPeak") and calls.CALL_TAG in lines[0]
    rows = [line.split("\t") for line in lines[1:]]
    assert all(len(r) == 10 for r in rows)
    records = read_bed(out)                                     # our own reader skips the track line
    assert len(records) == len(rows) == 2
    first = rows[0]
    assert first[:3] == ["chr1", str(100 * 50), str(103 * 50 + 200)] and first[3] == "site_1"
    assert first[4] == "950" and float(first[6]) == pytest.approx(0.95)
    assert int(first[9]) == 101 * 50 + 100 - 100 * 50                   # summit offset
    assert records["summit"][0] == 101 * 50 + 100
    q = calibration.qvalue_of(*calibration.qvalue_curve(labels == 1, scores)[:2], [0.95])[0]
    assert float(first[8]) == pytest.approx(-np.log10(max(q, calls.QVALUE_FLOOR)), rel=1e-3)


def test_call_output_rules_and_gzip(tmp_path, prediction, capsys):
    model, _, _ = fake_model(tmp_path)
    out = tmp_path / "sites.narrowPeak.gz"
    base = ["-p", str(prediction), "-m", str(model)]
    assert cli(base + ["-o", str(out)]) == 0
    assert gzip.decompress(out.read_bytes()).startswith(b"track type=narrowPeak")
    assert cli(base + ["-o", str(out)]) == 2
    assert f"sites file exists; use -oc {out}" in capsys.readouterr().err
    assert cli(base + ["--threshold", "0.5", "-oc", str(out)]) == 0        # ours: replaced
    foreign = tmp_path / "mine.narrowPeak"
    foreign.write_text("chr1\t0\t10\n")
    assert cli(base + ["-oc", str(foreign)]) == 2
    assert "not a sites file written by factornet call" in capsys.readouterr().err
    assert foreign.read_text() == "chr1\t0\t10\n"


def test_explicit_threshold_needs_no_model(tmp_path, prediction):
    summary = calls.call_sites_file(prediction, tmp_path / "s.narrowPeak", threshold=0.9)
    assert summary.n_sites == 2 and summary.fdr is None and summary.n_called_bins == 3
    rows = [line.split("\t") for line in (tmp_path / "s.narrowPeak").read_text().splitlines()[1:]]
    assert [r[8] for r in rows] == ["-1", "-1"]


@pytest.mark.parametrize("kwargs, kind, message", [
    ({}, ConfigError, "give -m MODEL_DIR"),
    ({"fdr": 1.5, "threshold": 0.5}, ConfigError, "--fdr 1.5: a target false-discovery rate"),
])
def test_flag_errors(tmp_path, prediction, kwargs, kind, message):
    with pytest.raises(kind, match=message):
        calls.call_sites_file(prediction, tmp_path / "s.narrowPeak", **kwargs)
    assert not (tmp_path / "s.narrowPeak").exists()


def test_model_errors(tmp_path, prediction, capsys):
    model, _, _ = fake_model(tmp_path, tfs=("CTCF", "GABPA"))
    with pytest.raises(ConfigError, match="predicts several TFs .*name the one .* with -f"):
        calls.call_sites_file(prediction, tmp_path / "s.narrowPeak", model_dir=model)
    with pytest.raises(ConfigError, match="-f MAX: not a TF of model"):
        calls.call_sites_file(prediction, tmp_path / "s.narrowPeak", model_dir=model, tf="MAX")
    assert calls.call_sites_file(prediction, tmp_path / "s.narrowPeak", model_dir=model,
                                 tf="GABPA").tf == "GABPA"
    (tmp_path / "k").mkdir()
    keras, _, _ = fake_model(tmp_path / "k", source="keras", with_calibration=False)
    rc = cli(["-p", str(prediction), "-m", str(keras), "-o", str(tmp_path / "k.narrowPeak")])
    err = capsys.readouterr().err
    assert rc == 2 and "imported Keras model has no validation scores" in err and "--threshold" in err
    assert len(err.strip().splitlines()) == 1


def test_fdr_below_every_threshold_is_an_error(tmp_path, prediction):
    model = tmp_path / "m"
    model.mkdir()
    (model / "config.json").write_text(json.dumps({
        "format": "factornet-jax/model", "version": 1, "model": {}, "tfs": ["CTCF"],
        "track_names": ["DGF"]}))
    # the top-scoring validation bin is unbound: no threshold has FDR <= 0.01
    calibration.write_calibration(model, {"format": calibration.FORMAT, "version": 1, "tfs": {
        "CTCF": calibration.tf_table(np.array([0, 1, 1, 0], np.int8), np.array([0.9, 0.8, 0.7, 0.1]))}})
    with pytest.raises(FactorNetError, match="--fdr 0.01: .* no threshold for it for CTCF"):
        calls.call_sites_file(prediction, tmp_path / "s.narrowPeak", model_dir=model, fdr=0.01)


# ---------------------------------------------------------------- calls vs labels, simulated data

@pytest.fixture(scope="module")
def simulated(tmp_path_factory):
    from factornet_jax.simulate import SimulationConfig, simulate
    return simulate(tmp_path_factory.mktemp("sim") / "sim", SimulationConfig(seed=4, genome_mb=12))


def test_calls_on_simulated_held_out_cell_realise_the_target_fdr(simulated, tmp_path):
    """Calibrate on one cell line's non-test chromosomes, call on another's test chromosomes:
    the bins called realise about the target FDR, and the sites sit on its peaks."""
    from factornet_jax.evaluate import label_bins
    from factornet_jax.intervals import IntervalSet
    rng = np.random.default_rng(0)
    sizes = simulated.chrom_sizes
    test = ("chr1", "chr8", "chr21")

    def ladder(cell, chroms):
        files = simulated.cells[cell]
        cons = IntervalSet.from_records(read_bed(files.conservative["CTCF"]))
        relaxed = IntervalSet.from_records(read_bed(files.relaxed["CTCF"]))
        names, starts, labels, cover = [], [], [], []
        for chrom in chroms:
            s = np.arange(0, sizes[chrom] - 200 + 1, 50)
            names.append(np.full(len(s), chrom))
            starts.append(s)
            labels.append(label_bins(cons, relaxed, chrom, s, s + 200))
            cover.append(cons.covered_bp(chrom, s, s + 200) / 200)
        cover = np.concatenate(cover)
        # a "model": peak coverage of the bin plus noise (bound bins mostly score high)
        scores = np.clip(0.15 + 0.6 * cover + rng.normal(0, 0.12, cover.size), 0, 1)
        return np.concatenate(names), np.concatenate(starts), np.concatenate(labels), scores

    valid = [c for c in sizes if c not in test]
    _, _, valid_labels, valid_scores = ladder("CellA", valid)
    model = tmp_path / "model"
    model.mkdir()
    (model / "config.json").write_text(json.dumps({
        "format": "factornet-jax/model", "version": 1, "model": {}, "tfs": ["CTCF"],
        "track_names": ["DGF"]}))
    calibration.write_calibration(model, {"format": calibration.FORMAT, "version": 1,
                                          "tfs": {"CTCF": calibration.tf_table(valid_labels, valid_scores)}})
    names, starts, labels, scores = ladder("CellC", test)
    pred = write_bedgraph(tmp_path / "pred.bedGraph.gz", names, starts, starts + 200, scores)
    peaks = read_bed(simulated.cells["CellC"].conservative["CTCF"])
    peak_set = IntervalSet.from_records(peaks)
    for target in (0.05, 0.1, 0.2):
        out = tmp_path / f"sites{target}.narrowPeak"
        summary = calls.call_sites_file(pred, out, model_dir=model, fdr=target)
        called = (scores >= summary.threshold) & (labels != -1)
        realised = (labels[called] == 0).mean()
        assert called.sum() > 100
        assert abs(realised - target) < 0.5 * target + 0.02, (target, realised)
        sites = read_bed(out)
        assert len(sites) == summary.n_sites > 20
        on_peak = np.concatenate([peak_set.overlaps(c, sites["start"][sites["chrom"] == c],
                                                    sites["end"][sites["chrom"] == c])
                                  for c in np.unique(sites["chrom"])])
        # every called bin lies in a site
        site_set = IntervalSet.from_records(sites)
        for c in test:
            rows = np.flatnonzero((names == c) & (scores >= summary.threshold))
            assert (site_set.covered_bp(c, starts[rows], starts[rows] + 200) == 200).all()
        # most sites sit on a peak, and they find many of the peaks; isolated noisy bins make
        # one-bin false sites, so the share of false sites exceeds the bins' FDR here
        assert on_peak.mean() > 0.4, (target, on_peak.mean())
        peaks_test = peaks[np.isin(peaks["chrom"], test)]
        found = np.concatenate([site_set.overlaps(c, peaks_test["start"][peaks_test["chrom"] == c],
                                                  peaks_test["end"][peaks_test["chrom"] == c])
                                for c in test])
        assert found.mean() > 0.3, (target, found.mean())

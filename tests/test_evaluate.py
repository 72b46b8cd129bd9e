"""evaluate.py and `factornet evaluate`: DREAM labels, metrics.json, table, plots, errors."""
import json
import math
import shutil
import subprocess
from pathlib import Path

import numpy as np
from conftest import write_text_file
import pytest

from factornet_jax import evaluate as ev
from factornet_jax.cli import COMMANDS, build_parser, run_command
from factornet_jax.errors import ConfigError, InputFileError
from factornet_jax.intervals import IntervalSet

sk = pytest.importorskip("sklearn.metrics")

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def write_lines(path, lines):
    return write_text_file(path, "".join(line + "\n" for line in lines))


def write_bedgraph(path, chroms, starts, ends, scores, header=True):
    lines = ["track type=bedGraph name=test"] if header else []
    lines += [f"{c}\t{s}\t{e}\t{v:.6g}" for c, s, e, v in zip(chroms, starts, ends, scores)]
    return write_lines(path, lines)


def cli(argv):
    parser = build_parser([c for c in COMMANDS if c[1] == "evaluate"])
    return run_command(parser, ["evaluate", *argv])


# ---------------------------------------------------------------- labelling golden cases

def test_bin_exactly_half_covered_is_unbound():
    conservative = IntervalSet.from_arrays("chr1", [100], [201])
    starts = np.array([0, 1, 2, 150, 201])
    ends = starts + 200
    # covered: 100 (exactly half), 101, 101, 51, 0
    labels = ev.label_bins(conservative, None, "chr1", starts, ends)
    assert labels.tolist() == [ev.UNBOUND, ev.BOUND, ev.BOUND, ev.UNBOUND, ev.UNBOUND]


def test_odd_width_bins_need_more_than_half():
    conservative = IntervalSet.from_arrays("chr1", [0], [101])
    # width 201: 100 bp inside is not more than 100.5, 101 is
    labels = ev.label_bins(conservative, None, "chr1", [1, 0], [202, 201])
    assert labels.tolist() == [ev.UNBOUND, ev.BOUND]


def test_relaxed_overlap_makes_not_bound_bins_ambiguous():
    conservative = IntervalSet.from_arrays("chr1", [100], [201])
    relaxed = IntervalSet.from_arrays(["chr1", "chr1"], [0, 1199], [1000, 1300])
    starts = np.array([0, 1, 1000, 1300, 5000])
    labels = ev.label_bins(conservative, relaxed, "chr1", starts, starts + 200)
    # half covered but inside relaxed -> ambiguous; bound stays bound; 1 bp of relaxed
    # -> ambiguous; book-ended to relaxed -> unbound; far away -> unbound
    assert labels.tolist() == [ev.AMBIGUOUS, ev.BOUND, ev.AMBIGUOUS, ev.UNBOUND, ev.UNBOUND]


def test_chromosome_without_peaks_is_all_unbound():
    conservative = IntervalSet.from_arrays("chr1", [0], [1000])
    labels = ev.label_bins(conservative, conservative, "chr9", [0, 50], [200, 250])
    assert labels.tolist() == [ev.UNBOUND, ev.UNBOUND]


# ---------------------------------------------------------------- reading predictions

def test_read_predictions_plain_gz_headers_and_extra_columns(tmp_path):
    lines = ["track type=bedGraph", "# comment", "chr2\t0\t200\t0.5\textra", "", "chr2 50 250 0.25",
             "chr1\t0\t200\t-1e-3"]
    for name in ("p.bedgraph", "p.bed.gz"):
        bins = ev.read_predictions(write_lines(tmp_path / name, lines))
        assert list(bins) == ["chr2", "chr1"]
        assert bins["chr2"]["start"].tolist() == [0, 50]
        assert bins["chr2"]["end"].tolist() == [200, 250]
        assert bins["chr2"]["score"].tolist() == [0.5, 0.25]
        assert bins["chr1"]["score"].tolist() == [-1e-3]
    only = ev.read_predictions(tmp_path / "p.bed.gz", chroms=["chr1"])
    assert list(only) == ["chr1"]


def test_read_predictions_across_blocks(tmp_path, monkeypatch):
    monkeypatch.setattr(ev, "_BLOCK_LINES", 3)
    starts = np.arange(10) * 50
    chroms = ["chr1"] * 4 + ["chr2"] * 6
    path = write_bedgraph(tmp_path / "p.bed", chroms, starts, starts + 200, np.arange(10) / 10)
    bins = ev.read_predictions(path)
    assert bins["chr1"]["start"].tolist() == starts[:4].tolist()
    assert bins["chr2"]["score"].tolist() == pytest.approx(np.arange(4, 10) / 10)


@pytest.mark.parametrize("bad_line, message", [
    ("chr1\t100\t300", "expected 4 columns"),
    ("chr1\t1x0\t300\t0.5", "column 2 is not an integer"),
    ("chr1\t100\t300\tabc", "column 4 (score) is not a number"),
    ("chr1\t100\t300\tnan", "column 4 (score) is NaN"),
    ("chr1\t300\t300\t0.5", "end 300 is not after start 300"),
    ("chr1\t-5\t300\t0.5", "negative start"),
])
def test_malformed_line_is_named_with_file_and_line(tmp_path, monkeypatch, bad_line, message):
    monkeypatch.setattr(ev, "_BLOCK_LINES", 4)  # the bad line sits in the second block
    lines = ["track type=bedGraph"] + [f"chr1\t{i * 50}\t{i * 50 + 200}\t0.1" for i in range(5)]
    lines.append(bad_line)  # file line 7
    path = write_lines(tmp_path / "pred.bed.gz", lines)
    with pytest.raises(InputFileError) as err:
        ev.read_predictions(path)
    assert f"pred.bed.gz:7: {message}" in str(err.value)


def test_missing_and_truncated_prediction_files(tmp_path):
    with pytest.raises(InputFileError, match="nope.bed.gz: file not found"):
        ev.read_predictions(tmp_path / "nope.bed.gz")
    starts = np.arange(20000) * 50
    good = write_bedgraph(tmp_path / "good.bed.gz", ["chr1"] * 20000, starts, starts + 200,
                          np.random.default_rng(0).random(20000))
    data = good.read_bytes()
    (tmp_path / "cut.bed.gz").write_bytes(data[: len(data) // 2])
    with pytest.raises(InputFileError, match="truncated or corrupt gzip"):
        ev.read_predictions(tmp_path / "cut.bed.gz")
    write_lines(tmp_path / "empty.bed", ["track type=bedGraph"])
    with pytest.raises(InputFileError, match="no predicted bins"):
        ev.read_predictions(tmp_path / "empty.bed")


# ---------------------------------------------------------------- metrics.json vs sklearn

def oracle_labels(chroms, starts, ends, conservative, relaxed):
    """Slow obvious labelling: loop over bins and peaks."""
    labels = []
    for chrom, s, e in zip(chroms, starts, ends):
        covered = sum(max(0, min(e, pe) - max(s, ps)) for pc, ps, pe in conservative if pc == chrom)
        touches = any(min(e, pe) > max(s, ps) for pc, ps, pe in relaxed if pc == chrom)
        labels.append(1 if 2 * covered > e - s else (-1 if touches else 0))
    return np.array(labels)


@pytest.fixture
def dataset(tmp_path):
    """Two prediction files over chr1 (with peaks) and chr5 (no peaks), bins 200 bp at 50 bp."""
    rng = np.random.default_rng(3)
    conservative = [("chr1", 1000, 1300), ("chr1", 4000, 4150), ("chr1", 7000, 7800),
                    ("chr1", 9000, 9100)]
    relaxed = conservative + [("chr1", 2500, 2700), ("chr1", 8500, 9200), ("chr5", 100, 300)]
    write_lines(tmp_path / "cons.narrowPeak.gz",
                [f"{c}\t{s}\t{e}\t.\t0\t.\t1\t-1\t1\t{(e - s) // 2}" for c, s, e in conservative])
    write_lines(tmp_path / "relaxed.narrowPeak", [f"{c}\t{s}\t{e}" for c, s, e in relaxed])
    starts = np.concatenate([np.arange(0, 10000, 50), np.arange(0, 2000, 50)])
    ends = starts + 200
    chroms = np.array(["chr1"] * 200 + ["chr5"] * 40)
    truth = oracle_labels(chroms, starts, ends, conservative, relaxed)
    files = []
    for i, n_levels in enumerate((5, 50)):
        scores = np.round(rng.random(len(starts)) * n_levels + (truth == 1) * rng.random() * 3) / n_levels
        files.append(write_bedgraph(tmp_path / f"model{i}.bed.gz", chroms, starts, ends, scores))
    return dict(tmp=tmp_path, files=files, chroms=chroms, truth=truth,
                peaks=tmp_path / "cons.narrowPeak.gz", relaxed=tmp_path / "relaxed.narrowPeak")


def expected_metrics(truth, scores):
    keep = truth != -1
    labels, scores = truth[keep] == 1, scores[keep]
    precision, recall, _ = sk.precision_recall_curve(labels, scores)

    def recall_at(fdr):
        within = 1 - precision <= fdr + 1e-12
        return recall[within].max() if within.any() else 0.0
    return {"auROC": sk.roc_auc_score(labels, scores), "auPRC": sk.average_precision_score(labels, scores),
            "recall_at_50fdr": recall_at(0.5), "recall_at_10fdr": recall_at(0.1),
            "n_bound": int(labels.sum()), "n_unbound": int((~labels).sum()),
            "n_ambiguous": int((~keep).sum())}


def test_metrics_json_matches_sklearn_on_oracle_labels(dataset, capsys):
    out = dataset["tmp"] / "report"
    rc = cli(["-p", *map(str, dataset["files"]), "--peaks", str(dataset["peaks"]),
              "--relaxed", str(dataset["relaxed"]), "-o", str(out)])
    assert rc == 0
    report = json.loads((out / "metrics.json").read_text())
    assert report["format"] == ev.REPORT_FORMAT and report["chroms"] is None
    assert [p["name"] for p in report["predictions"]] == ["model0.bed.gz", "model1.bed.gz"]
    truth, chroms = dataset["truth"], dataset["chroms"]
    assert (truth == 1).sum() > 5 and (truth == -1).sum() > 5  # the fixture exercises all labels
    for pred, path in zip(report["predictions"], dataset["files"]):
        scores = ev.read_predictions(path)
        scores = np.concatenate([scores["chr1"]["score"], scores["chr5"]["score"]])
        expected = expected_metrics(truth, scores)
        for key, value in expected.items():
            assert pred["all"][key] == pytest.approx(value, abs=1e-12), key
        on_chr1 = chroms == "chr1"
        for key, value in expected_metrics(truth[on_chr1], scores[on_chr1]).items():
            assert pred["per_chrom"]["chr1"][key] == pytest.approx(value, abs=1e-12), key
        # chr5 has no conservative peak: all unbound (one ambiguous stretch), metrics null + note
        chr5 = pred["per_chrom"]["chr5"]
        assert chr5["n_bound"] == 0 and chr5["n_ambiguous"] == (truth[~on_chr1] == -1).sum() > 0
        assert chr5["auROC"] is None and chr5["auPRC"] is None and "no bound bins" in chr5["note"]
        assert pred["all"]["note"] == ""

    # one table for both files, printed and saved
    printed = capsys.readouterr().out
    table = (out / "metrics.tsv").read_text().splitlines()
    assert table[0].split("\t") == list(ev.TABLE_COLUMNS)
    assert [row.split("\t")[:2] for row in table[1:]] == [
        ["model0.bed.gz", "all"], ["model0.bed.gz", "chr1"], ["model0.bed.gz", "chr5"],
        ["model1.bed.gz", "all"], ["model1.bed.gz", "chr1"], ["model1.bed.gz", "chr5"]]
    assert "model0.bed.gz" in printed and "model1.bed.gz" in printed
    assert "note: model0.bed.gz chr5: no bound bins" in printed

    for name in ("pr_curve.png", "roc_curve.png"):
        data = (out / name).read_bytes()
        assert data[:8] == PNG_MAGIC and len(data) > 1024
    assert not [p for p in dataset["tmp"].iterdir() if p.name.startswith(".report")]


def test_chroms_restricts_and_orders_the_set(dataset):
    out = dataset["tmp"] / "only_chr1"
    report = ev.evaluate(dataset["files"][:1], dataset["peaks"], out, chroms=["chr1"], plots=False)
    pred = report["predictions"][0]
    assert report["chroms"] == ["chr1"] and pred["chroms"] == ["chr1"] and pred["per_chrom"] == {}
    truth = dataset["truth"][dataset["chroms"] == "chr1"]
    # without --relaxed nothing is ambiguous: relaxed-only bins count as unbound
    assert pred["all"]["n_ambiguous"] == 0
    assert pred["all"]["n_bound"] + pred["all"]["n_unbound"] == truth.size
    assert sorted(p.name for p in out.iterdir()) == [".factornet-output.json", "bootstrap.tsv",
                                                     "metrics.json", "metrics.tsv", "reliability.tsv"]


# ---------------------------------------------------------------- errors and the report folder

def test_existing_report_dir_needs_oc(dataset, capsys):
    out = dataset["tmp"] / "report"
    base = ["-p", str(dataset["files"][0]), "--peaks", str(dataset["peaks"]), "--no-plots"]
    assert cli(base + ["-o", str(out)]) == 0
    assert cli(base + ["-o", str(out)]) == 2
    assert f"report folder exists; use -oc {out}" in capsys.readouterr().err
    (out / "stale.txt").write_text("the user's")      # a file we did not write: -oc keeps it
    assert cli(base + ["-oc", str(out)]) == 2
    assert f"holds {out / 'stale.txt'}" in capsys.readouterr().err
    assert (out / "stale.txt").read_text() == "the user's"
    (out / "stale.txt").unlink()
    assert cli(base + ["-oc", str(out)]) == 0
    assert sorted(p.name for p in out.iterdir()) == [".factornet-output.json", "bootstrap.tsv",
                                                     "metrics.json", "metrics.tsv", "reliability.tsv"]
    with pytest.raises(SystemExit):                 # no output: argparse says -o or -oc is required
        cli(base)
    assert "-o/--outputdir -oc/--outputdirc" in capsys.readouterr().err


def test_failure_leaves_no_report_behind(dataset, monkeypatch):
    def broken(*args):
        raise RuntimeError("disk full")
    monkeypatch.setattr(ev, "draw_curves", broken)
    with pytest.raises(RuntimeError):
        ev.evaluate(dataset["files"], dataset["peaks"], dataset["tmp"] / "report")
    assert not [p for p in dataset["tmp"].iterdir() if "report" in p.name]


def test_chroms_absent_from_predictions_is_an_error(dataset):
    with pytest.raises(ConfigError, match=r"--chroms chr7: no predicted bins on it in .*model0"):
        ev.score_predictions(dataset["files"][:1], dataset["peaks"], chroms=["chr1", "chr7"])
    with pytest.raises(ConfigError, match="it has 'chr1'"):
        ev.score_predictions(dataset["files"][:1], dataset["peaks"], chroms=["1"])


def test_missing_inputs_and_naming_mismatch(dataset, capsys):
    tmp = dataset["tmp"]
    with pytest.raises(InputFileError, match="absent.narrowPeak: file not found"):
        ev.score_predictions(dataset["files"], tmp / "absent.narrowPeak")
    with pytest.raises(InputFileError, match="gone.bed.gz: file not found"):
        ev.score_predictions([tmp / "gone.bed.gz"], dataset["peaks"])
    ucsc = write_lines(tmp / "ensembl.bed", ["1\t0\t200\t0.5", "1\t50\t250\t0.1"])
    with pytest.raises(InputFileError, match="chromosome '1' is named 'chr1' in the peaks"):
        ev.score_predictions([ucsc], dataset["peaks"])
    rc = cli(["-p", str(tmp / "gone.bed.gz"), "--peaks", str(dataset["peaks"]), "-o", str(tmp / "r")])
    err = capsys.readouterr().err
    assert rc == 2 and "gone.bed.gz: file not found" in err and len(err.strip().splitlines()) == 1
    assert not (tmp / "r").exists()


def test_all_negative_predictions_report_nan_not_crash(tmp_path):
    peaks = write_lines(tmp_path / "peaks.bed", ["chr1\t0\t500"])
    starts = np.arange(0, 2000, 50)
    pred = write_bedgraph(tmp_path / "p.bed", ["chr3"] * len(starts), starts, starts + 200,
                          np.linspace(0, 1, len(starts)))
    report = ev.evaluate([pred], peaks, tmp_path / "out")
    result = report["predictions"][0]["all"]
    assert result["n_bound"] == 0 and result["n_unbound"] == len(starts)
    assert math.isnan(result["auROC"]) and "no bound bins" in result["note"]
    saved = json.loads((tmp_path / "out" / "metrics.json").read_text())
    assert saved["predictions"][0]["all"]["auPRC"] is None
    assert (tmp_path / "out" / "pr_curve.png").read_bytes()[:8] == PNG_MAGIC


def test_thin_curve_keeps_ends_and_bounds_points():
    x = np.linspace(0, 1, 100_000)
    keep = ev.thin_curve(x, x ** 2, max_points=500)
    assert keep[0] == 0 and keep[-1] == x.size - 1 and len(keep) <= 502
    assert np.all(np.diff(keep) > 0)


# ---------------------------------------------------------------- real reference data

@pytest.mark.skipif(not SHARED.is_dir(), reason="../shared reference data absent")
@pytest.mark.skipif(shutil.which("bedtools") is None, reason="bedtools absent")
def test_real_peaks_on_ladder_layout_match_bedtools(tmp_path):
    """The DREAM ladder bins moved to chr2 (chr1 has no training peaks), real CTCF peaks."""
    ladder = SHARED / "resources" / "sample_ladder_regions.blacklistfiltered.bed.gz"
    cell = SHARED / "cells" / "HepG2"
    peaks = cell / "ChIPseq.HepG2.CTCF.conservative.train.narrowPeak.gz"
    relaxed = cell / "ChIPseq.HepG2.CTCF.relaxed.narrowPeak.gz"
    if not (peaks.is_file() and relaxed.is_file()):
        pytest.skip("HepG2 CTCF peaks absent")
    from factornet_jax.bed import read_bed
    bins = read_bed(ladder)
    starts, ends = bins["start"], bins["end"]
    scores = np.random.default_rng(0).integers(0, 20, len(bins)) / 20
    pred = write_bedgraph(tmp_path / "ladder.bed", ["chr2"] * len(bins), starts, ends, scores, header=False)
    scored = ev.score_predictions([pred], peaks, relaxed)[0]

    def bedtools_bp(peak_file):
        """Bases of each bin inside `peak_file` (merged), by bedtools intersect -wao."""
        run = subprocess.run(["bedtools", "intersect", "-a", str(pred), "-b", str(peak_file), "-wao"],
                             capture_output=True, text=True, check=True)
        rows = [line.split("\t") for line in run.stdout.splitlines()]
        key = np.array([int(r[1]) for r in rows])
        bp = np.array([int(r[-1]) for r in rows])
        index = np.searchsorted(starts, key)  # ladder starts are unique and sorted
        return np.bincount(index, weights=bp, minlength=len(starts))

    # merged peaks: bedtools counts overlapping peaks twice, so merge them first
    merged = {}
    for name, peak_file in (("cons", peaks), ("relaxed", relaxed)):
        out = tmp_path / f"{name}.merged.bed"
        text = subprocess.run(f"zcat {peak_file} | sort -k1,1 -k2,2n | bedtools merge", shell=True,
                              capture_output=True, text=True, check=True).stdout
        out.write_text(text)
        merged[name] = bedtools_bp(out)
    truth = np.where(2 * merged["cons"] > ends - starts, 1, np.where(merged["relaxed"] > 0, -1, 0))
    assert (truth == 1).sum() > 50
    np.testing.assert_array_equal(scored.labels["chr2"], truth)
    result = scored.summary()
    assert result["auROC"] == pytest.approx(expected_metrics(truth, scores)["auROC"], abs=1e-12)


# ---------------------------------------------------------------- bootstrap, ranking, calibration

def direct_round(labels_by_chrom, scores_by_chrom, round_index, seed):
    """One bootstrap round computed directly: the documented draw per chromosome, then sklearn."""
    import zlib
    labels, scores = [], []
    for chrom, lab in labels_by_chrom.items():
        n = len(lab)
        rng = np.random.default_rng([seed, round_index, zlib.crc32(chrom.encode())])
        idx = rng.choice(n, int(np.floor(0.9 * n + 0.5)), replace=False)
        labels.append(lab[idx])
        scores.append(scores_by_chrom[chrom][idx])
    return expected_metrics(np.concatenate(labels), np.concatenate(scores))


def test_bootstrap_matches_a_direct_computation_of_the_same_resamples(dataset, capsys):
    out = dataset["tmp"] / "boot"
    rc = cli(["-p", *map(str, dataset["files"]), "--peaks", str(dataset["peaks"]), "--relaxed",
              str(dataset["relaxed"]), "--bootstrap", "4", "--seed", "7", "--no-plots", "-o", str(out)])
    assert rc == 0
    report = json.loads((out / "metrics.json").read_text())
    assert report["bootstrap"]["rounds"] == 4 and report["bootstrap"]["seed"] == 7
    truth, chroms = dataset["truth"], dataset["chroms"]
    truth_by_chrom = {c: truth[chroms == c] for c in ("chr1", "chr5")}
    for pred, path in zip(report["predictions"], dataset["files"]):
        bins = ev.read_predictions(path)
        scores = {c: bins[c]["score"] for c in ("chr1", "chr5")}
        per_round = [direct_round(truth_by_chrom, scores, r, 7) for r in range(4)]
        for metric in ("auROC", "auPRC", "recall_at_50fdr", "recall_at_10fdr"):
            values = np.array([r[metric] for r in per_round])
            got = pred["bootstrap"][metric]
            np.testing.assert_allclose(got["values"], values, atol=1e-12, err_msg=metric)
            assert got["mean"] == pytest.approx(values.mean())
            assert [got["low"], got["high"]] == pytest.approx(np.percentile(values, [2.5, 97.5]))
        # the rounds differ (a real resample); Brier only for scores in [0, 1]
        assert len(set(pred["bootstrap"]["auPRC"]["values"])) > 1
        all_scores = np.concatenate([scores["chr1"], scores["chr5"]])
        keep = truth != -1
        if all_scores.max() > 1:
            assert pred["calibration"]["brier"] is None and pred["bootstrap"]["brier"]["mean"] is None
        else:
            assert pred["calibration"]["brier"] == pytest.approx(
                np.mean((all_scores[keep] - (truth[keep] == 1)) ** 2))
    assert [p["calibration"]["brier"] is None for p in report["predictions"]] == [True, False]
    tsv = [line.split("\t") for line in (out / "bootstrap.tsv").read_text().splitlines()]
    assert tuple(tsv[0]) == ev.BOOTSTRAP_COLUMNS and len(tsv) == 1 + 2 * 5
    ranking = report["ranking"]
    assert sorted(ranking["names"]) == ["model0.bed.gz", "model1.bed.gz"]
    share = ranking["win_share"]["model0.bed.gz"]["model1.bed.gz"]
    assert share + ranking["win_share"]["model1.bed.gz"]["model0.bed.gz"] == pytest.approx(1.0)
    assert (out / "ranking.tsv").read_text().splitlines()[0].startswith("prediction\tmean_rank")
    printed = capsys.readouterr().out
    assert "bootstrap: 4 rounds of 90% of each chromosome's bins (seed 7)" in printed
    assert "DREAM ranking" in printed


def test_bootstrap_draw_is_stratified_and_paired():
    from factornet_jax import bootstrap
    sizes = {"chr1": 101, "chr2": 7, "chrX": 1}
    masks = [bootstrap.round_mask(sizes, r, seed=3) for r in range(3)]
    for mask in masks:
        parts = np.split(mask, [101, 108])
        assert [p.sum() for p in parts] == [91, 6, 1]          # floor(0.9 n + 0.5) per chromosome
    assert not np.array_equal(masks[0], masks[1])
    # another chromosome order: each chromosome's draw is the same (paired across files)
    other = bootstrap.round_mask({"chrX": 1, "chr2": 7, "chr1": 101}, 1, seed=3)
    np.testing.assert_array_equal(other[8:], masks[1][:101])


def test_ranks_and_ranking_by_hand():
    from factornet_jax import bootstrap
    np.testing.assert_array_equal(bootstrap.ranks(np.array([0.9, 0.9, 0.5, np.nan])), [1.5, 1.5, 3, 4])
    # a beats b on every metric in round 0; in round 1 b wins auROC and auPRC, they tie the rest
    a = {"auROC": [0.9, 0.8], "auPRC": [0.5, 0.4], "recall_at_50fdr": [0.6, 0.5],
         "recall_at_10fdr": [0.2, 0.1], "brier": [0.1, 0.1]}
    b = {"auROC": [0.8, 0.9], "auPRC": [0.4, 0.5], "recall_at_50fdr": [0.5, 0.5],
         "recall_at_10fdr": [0.1, 0.1], "brier": [0.1, 0.1]}
    result = bootstrap.ranking({"a": {k: np.array(v) for k, v in a.items()},
                                "b": {k: np.array(v) for k, v in b.items()}})
    # round 0: a 1,1,1,1 -> 1; b -> 2.  round 1: a 2,2,1.5,1.5 -> 1.75; b 1,1,1.5,1.5 -> 1.25
    assert result["mean_rank"] == pytest.approx({"a": 1.375, "b": 1.625})
    assert result["names"] == ["a", "b"]
    assert result["win_share"] == {"a": {"b": 0.5}, "b": {"a": 0.5}}
    assert result["combined"]["a"] == pytest.approx([1.0, 1.75])


def test_reliability_and_brier_in_the_report(tmp_path):
    rng = np.random.default_rng(4)
    peaks = write_lines(tmp_path / "peaks.bed", [f"chr1\t{s}\t{s + 400}" for s in range(0, 50000, 2500)])
    starts = np.arange(0, 50000, 50)
    peak_starts = np.arange(0, 50000, 2500)
    bound = ev.label_bins(IntervalSet.from_arrays("chr1", peak_starts, peak_starts + 400), None,
                          "chr1", starts, starts + 200) == ev.BOUND
    probs = np.clip(0.1 + 0.7 * bound + rng.normal(0, 0.1, len(starts)), 0, 1)
    probs = np.round(probs, 6)
    pred = write_bedgraph(tmp_path / "p.bed", ["chr1"] * len(starts), starts, starts + 200, probs)
    report = ev.evaluate([pred], peaks, tmp_path / "out", bootstrap_rounds=0)
    cal = report["predictions"][0]["calibration"]
    assert cal["brier"] == pytest.approx(np.mean((probs - bound) ** 2), rel=1e-6)
    assert sum(cal["reliability"]["n"]) == len(starts)
    assert report["bootstrap"] is None and report["ranking"] is None
    names = sorted(p.name for p in (tmp_path / "out").iterdir())
    assert names == [".factornet-output.json", "metrics.json", "metrics.tsv", "pr_curve.png",
                     "reliability.png", "reliability.tsv", "roc_curve.png"]
    assert (tmp_path / "out" / "reliability.png").read_bytes()[:8] == PNG_MAGIC
    assert "Brier score: p.bed 0." in ev.format_table(report)


def test_files_over_different_bins_get_no_paired_ranking(dataset, tmp_path):
    starts = np.arange(0, 5000, 100)
    other = write_bedgraph(tmp_path / "other.bed", ["chr1"] * len(starts), starts, starts + 200,
                           np.linspace(0, 1, len(starts)))
    report = ev.evaluate([dataset["files"][0], other], dataset["peaks"], tmp_path / "r",
                         chroms=["chr1"], plots=False, bootstrap_rounds=2)
    assert report["ranking"] == {"note": "the files cover different bins: no paired ranking"}
    assert "ranking: the files cover different bins" in ev.format_table(report)


# ---------------------------------------------------------------- baselines from the stores

def test_baselines_are_computed_from_the_store(tiny_stores, tmp_path, capsys):
    from factornet_jax.meme import Motif, scan_max, write_meme
    from factornet_jax.reader import open_cell_store
    store_path = tiny_stores["cell_stores"][0]
    store = open_cell_store(store_path)
    size = store.chrom_sizes["chr2"]
    starts = np.concatenate([np.arange(0, 6000, 50), [size - 150]])   # the last bin runs off the end
    ends = np.minimum(starts + 200, size + 50)
    pred = write_bedgraph(tmp_path / "p.bed", ["chr2"] * len(starts), starts, ends,
                          np.linspace(0, 1, len(starts)))
    peaks = write_lines(tmp_path / "peaks.bed", ["chr2\t1000\t1600", "chr2\t4000\t4300"])
    pwm = np.array([[0.7, 0.1, 0.1, 0.1], [0.1, 0.1, 0.7, 0.1], [0.1, 0.7, 0.1, 0.1],
                    [0.1, 0.1, 0.1, 0.7]])
    write_meme(tmp_path / "m.meme", [Motif("M1", "TFA", pwm)])
    out = tmp_path / "report"
    rc = cli(["-p", str(pred), "--peaks", str(peaks), "--baselines", str(store_path), "--motif-db",
              str(tmp_path / "m.meme"), "--tf", "TFA", "--bootstrap", "2", "--no-plots", "-o", str(out)])
    assert rc == 0, capsys.readouterr().err
    report = json.loads((out / "metrics.json").read_text())
    names = [p["name"] for p in report["predictions"]]
    assert names == ["p.bed", "DGF mean (baseline)", "PWM max M1 (baseline)"]
    assert [p["kind"] for p in report["predictions"]] == ["prediction", "baseline", "baseline"]
    assert report["ranking"]["names"] and len(report["ranking"]["win_share"]) == 3
    # direct: read the windows, average the DGF column, scan the motif
    scored = ev.score_predictions([pred], peaks)[0]
    mean = ev.baseline_scores(ev.BaselineRequest(str(store_path), motif_db=str(tmp_path / "m.meme"),
                                                 tf="TFA"), pred, scored.labels)
    codes, signal = store.fetch_batch(["chr2"] * len(starts[:-1]), starts[:-1], 200, pad=True,
                                      as_codes=True)
    column = store.track_names.index("DGF")
    np.testing.assert_allclose(mean[0].scores["chr2"][:-1], signal[:, :, column].mean(axis=1), rtol=1e-6)
    np.testing.assert_allclose(mean[1].scores["chr2"][:-1], scan_max(codes, pwm, onehot=False))
    last_codes, last_signal = store.fetch_batch(["chr2"], [size - 150], 200, pad=True, as_codes=True)
    assert mean[1].scores["chr2"][-1] == pytest.approx(scan_max(last_codes, pwm, onehot=False)[0])
    assert mean[0].scores["chr2"][-1] == pytest.approx(last_signal[0, :, column].mean(), rel=1e-6)
    # flags that need each other
    assert cli(["-p", str(pred), "--peaks", str(peaks), "--motif-db", str(tmp_path / "m.meme"),
                "-o", str(tmp_path / "r2")]) == 2
    assert "--motif-db / --baseline-track need --baselines" in capsys.readouterr().err
    assert cli(["-p", str(pred), "--peaks", str(peaks), "--baselines", str(store_path), "--motif-db",
                str(tmp_path / "m.meme"), "-o", str(tmp_path / "r3")]) == 2
    assert "--motif-db needs --tf TF" in capsys.readouterr().err
    assert cli(["-p", str(pred), "--peaks", str(peaks), "--baselines", str(store_path),
                "--baseline-track", "nope", "-o", str(tmp_path / "r4")]) == 2
    assert "track 'nope' is not in" in capsys.readouterr().err

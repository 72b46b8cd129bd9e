"""`factornet demo` end to end on a tiny setting (one real run, ~30-60 s on 2 cores).

The run's outputs are checked against an independent re-scoring: labels recomputed here with
plain per-base masks from the held-out cell line's peak files, auROC from scikit-learn.
"""
import gzip
import json
import math
import os
import subprocess
import sys
import time

import numpy as np
import pytest

TF, HELD_OUT, TRAIN_CELLS = "CTCF", "CellC", ("CellA", "CellB")
TIME_LIMIT_S = 120


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory):
    """One `factornet demo` run in a subprocess (one CPU device, as a user gets it)."""
    out = tmp_path_factory.mktemp("demo") / "out"
    env = dict(os.environ, JAX_PLATFORMS="cpu", XLA_FLAGS="--xla_force_host_platform_device_count=1")
    t0 = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "-m", "factornet_jax", "demo", "-o", str(out), "--genome-mb", "2",
         "--epochs", "1", "--max-steps", "5"],
        capture_output=True, text=True, env=env, timeout=2 * TIME_LIMIT_S)
    return {"out": out, "proc": proc, "seconds": time.perf_counter() - t0}


def _read_table(path):
    """Whitespace-separated text file (gzipped or not) -> list of field lists."""
    opener = gzip.open if str(path).endswith(".gz") else open
    with opener(path, "rt") as handle:
        return [line.split() for line in handle if line.strip()]


def _masks(peak_path, sizes):
    """chrom -> (size,) bool, True inside the peaks of a narrowPeak file."""
    masks = {c: np.zeros(n, bool) for c, n in sizes.items()}
    for fields in _read_table(peak_path):
        masks[fields[0]][int(fields[1]):int(fields[2])] = True
    return masks


def test_demo_runs_end_to_end_quickly(demo_run):
    proc = demo_run["proc"]
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert demo_run["seconds"] < TIME_LIMIT_S
    for stage in ("[1/6]", "[2/6]", "[3/6]", "[4/6]", "[5/6]", "[6/6]"):   # progress: stderr
        assert stage in proc.stderr and stage not in proc.stdout
    assert "epoch 1:" in proc.stderr and "epoch 1:" not in proc.stdout
    assert "demo finished" in proc.stdout                              # results: stdout
    # the metrics table is printed: header and one row per test chromosome
    header = next(line for line in proc.stdout.splitlines() if line.startswith("prediction"))
    assert header.split()[:4] == ["prediction", "chroms", "auROC", "auPRC"]
    rows = [line.split() for line in proc.stdout.splitlines()
            if line.startswith(f"{HELD_OUT}.{TF}.bedGraph.gz")]
    assert [r[1] for r in rows] == ["all", "chr1", "chr8", "chr21"]


def test_demo_outputs(demo_run):
    assert demo_run["proc"].returncode == 0, demo_run["proc"].stderr[-3000:]
    out = demo_run["out"]
    config = json.loads((out / "models" / TF / "config.json").read_text())
    assert config["format"] == "factornet-jax/model"
    assert config["tfs"] == [TF]
    # trained on the two training cell lines only, never the held-out one
    assert sorted(os.path.basename(s["path"]) for s in config["stores"]) == [
        f"{c}.zarr" for c in TRAIN_CELLS]
    assert (out / "models" / TF / "best.npz").is_file()
    for name in ("metrics.json", "metrics.tsv", "pr_curve.png", "roc_curve.png"):
        assert (out / "report" / name).is_file()

    # one score per ladder bin, same bins in the same order, probabilities
    ladder = _read_table(out / "sim" / "ladder.bed.gz")
    prediction = _read_table(out / "predictions" / f"{HELD_OUT}.{TF}.bedGraph.gz")
    assert [p[:3] for p in prediction] == [b[:3] for b in ladder]
    scores = np.array([float(p[3]) for p in prediction])
    assert np.all((scores >= 0) & (scores <= 1)) and scores.std() > 0
    # sites at a 10% target FDR, or (a 5-step model may reach no such threshold) a warning
    sites = out / "predictions" / f"{HELD_OUT}.{TF}.sites.narrowPeak"
    assert sites.is_file() or "call skipped" in demo_run["proc"].stderr
    if sites.is_file():
        assert "sites at a 10% target FDR" in demo_run["proc"].stdout


def test_demo_report_matches_independent_scoring(demo_run):
    from sklearn.metrics import roc_auc_score

    assert demo_run["proc"].returncode == 0, demo_run["proc"].stderr[-3000:]
    out = demo_run["out"]
    report = json.loads((out / "report" / "metrics.json").read_text())
    result = report["predictions"][0]["all"]
    assert math.isfinite(result["auROC"]) and result["auROC"] > 0.5

    sizes = {f[0]: int(f[1]) for f in _read_table(out / "sim" / "genome.chrom.sizes")}
    cell = out / "sim" / "cells" / HELD_OUT
    conservative = _masks(cell / f"ChIPseq.{HELD_OUT}.{TF}.conservative.train.narrowPeak.gz", sizes)
    relaxed = _masks(cell / f"ChIPseq.{HELD_OUT}.{TF}.relaxed.narrowPeak.gz", sizes)
    labels, scores = [], []
    for chrom, start, end, score in _read_table(out / "predictions" / f"{HELD_OUT}.{TF}.bedGraph.gz"):
        start, end = int(start), int(end)
        bound = 2 * conservative[chrom][start:end].sum() > end - start
        if bound or not relaxed[chrom][start:end].any():
            labels.append(bound)
            scores.append(float(score))
    labels = np.array(labels)
    assert result["n_bound"] == labels.sum() and result["n_unbound"] == (~labels).sum()
    assert result["auROC"] == pytest.approx(roc_auc_score(labels, scores), abs=1e-9)
    # the printed table carries the same figure
    assert f"{result['auROC']:.4f}" in demo_run["proc"].stdout


def test_demo_scores_the_dnase_mean_baseline_on_the_same_bins(demo_run):
    """The demo's table has a DNase-mean row: the mean of the held-out cell line's DNase bigWig
    over each ladder bin (pyBigWig here), scored on the same bins as the model."""
    import pyBigWig
    from sklearn.metrics import roc_auc_score

    assert demo_run["proc"].returncode == 0, demo_run["proc"].stderr[-3000:]
    out = demo_run["out"]
    baseline = out / "predictions" / f"{HELD_OUT}.DNase_mean.bedGraph.gz"
    rows = _read_table(baseline)
    prediction = _read_table(out / "predictions" / f"{HELD_OUT}.{TF}.bedGraph.gz")
    assert [r[:3] for r in rows] == [p[:3] for p in prediction]
    bigwig = out / "sim" / "cells" / HELD_OUT / f"{HELD_OUT}.1x.bw"
    with pyBigWig.open(str(bigwig)) as bw:
        for chrom, start, end, score in rows[:: max(1, len(rows) // 300)]:
            values = np.nan_to_num(np.array(bw.values(chrom, int(start), int(end)), np.float64))
            assert float(score) == pytest.approx(values.mean(), rel=1e-4, abs=1e-6)
    report = json.loads((out / "report" / "metrics.json").read_text())
    names = [p["name"] for p in report["predictions"]]
    assert names == [f"{HELD_OUT}.{TF}.bedGraph.gz", baseline.name]
    assert any(line.startswith(baseline.name) for line in demo_run["proc"].stdout.splitlines())
    assert report["predictions"][1]["all"]["auROC"] > 0.5      # open chromatin ranks bound bins high


def test_demo_refuses_existing_output(tmp_path, capsys):
    from factornet_jax.cli import build_parser, run_command

    (tmp_path / "keep.txt").write_text("user data\n")
    for flag in ("-o", "-oc"):
        code = run_command(build_parser(only=("demo",)), ["demo", flag, str(tmp_path)])
        assert code == 2
        err = capsys.readouterr().err
        assert "not a demo folder" in err and len(err.strip().splitlines()) == 1
    assert (tmp_path / "keep.txt").read_text() == "user data\n"

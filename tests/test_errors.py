"""Catalogue of bad inputs: each runs the real CLI and expects one clear line, exit code 2.

Every case checks: exit code 2, exactly one line on stderr, no traceback, the message names the
file (and line where one applies) or the flag, and no output that looks complete is left
behind. The message text (with temporary paths replaced by DIR / INPUTS / STORES) must equal
the row of docs/ERRORS.md with the same case id, so that table stays true.

Regenerate the table after a deliberate message change:

    FACTORNET_WRITE_ERRORS_DOC=1 python -m pytest -q tests/test_errors.py

A case whose code has a known defect is marked `xfail(strict=True)` and its table row holds the
message the fix produces (docs/ERRORS.md, status column "defect Dn").
"""
import gzip
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from conftest import TINY_SIZES, make_cell_dir, random_sequence, write_bigwig, write_fasta
from factornet_jax.cli import build_parser, chosen_command, run_command
from factornet_jax.errors import FactorNetError
from factornet_jax.stores import read_store_attrs

REPO = Path(__file__).resolve().parents[1]
DOC = REPO / "docs" / "ERRORS.md"
UPDATE_DOC = bool(os.environ.get("FACTORNET_WRITE_ERRORS_DOC"))

# case id -> the bad input, in words (the table's second column)
CASES = {
    "bigwig_listed_file_missing": "bigwig.txt lists a bigWig that does not exist",
    "chip_listed_file_missing": "chip.txt lists a peak file that does not exist",
    "bigwig_txt_missing": "cell folder without bigwig.txt",
    "bigwig_not_a_bigwig": "bigwig.txt lists a text file",
    "chip_tf_twice": "chip.txt lists one TF twice",
    "meta_value_not_number": "meta.txt value is not a number",
    "naming_fasta_vs_bigwig": "FASTA names chr1, bigWig names 1",
    "naming_fasta_vs_peaks": "FASTA names chr1, peak file names 1",
    "bigwig_lacks_chrom": "bigWig lacks a chromosome the FASTA has",
    "bigwig_chrom_shorter": "bigWig chromosome shorter than in the FASTA (other genome build)",
    "track_all_nan": "a track whose bigWig holds only NaN",
    "peak_past_chrom_end": "peak ends past its chromosome's end",
    "bed_non_numeric": "BED line with a non-numeric coordinate",
    "bed_too_few_columns": "BED line with fewer than 3 columns",
    "bed_start_after_end": "BED interval with start > end",
    "bed_zero_length": "BED interval with start == end",
    "bed_negative_start": "BED interval with a negative start",
    "peaks_truncated_gzip": "truncated gzip peak file",
    "peaks_empty": "empty peak file",
    "track_names_differ": "cell folders built together list different track names",
    "meta_names_differ": "cell folders built together have different meta.txt names",
    "fasta_missing": "--genome names a file that does not exist",
    "fasta_gzipped": "gzipped FASTA",
    "fasta_duplicate_chrom": "FASTA with a chromosome twice",
    "fasta_ragged_lines": "FASTA with ragged line lengths",
    "fasta_non_letter": "FASTA with digits in the sequence",
    "chroms_unknown": "--chroms names a chromosome the FASTA lacks",
    "blacklist_naming": "--blacklist BED names chromosomes 1, 2 (FASTA: chr1, chr2)",
    "jobs_zero": "--jobs 0",
    "store_inputs_changed": "a bigWig changed after the build, same build run again",
    "train_factor_absent": "train -f names a TF absent from chip.txt",
    "train_negative_n": "train -n -1",
    "train_seqlen_below_width": "train -L smaller than -w",
    "train_valid_chrom_unknown": "train -v names a chromosome the store lacks",
    "train_test_chrom_unknown": "train -t names a chromosome the store lacks",
    "train_valid_test_overlap": "train -v and -t share a chromosome",
    "train_unbuilt_cell_folder": "train -i names a cell folder that was never built",
    "train_store_interrupted": "train -i names a store whose build was killed",
    "train_output_exists": "train -o names an existing directory of other files",
    "train_lstm_cudnn_without_gpu": "train --lstm cudnn on a machine without an NVIDIA GPU",
    "model_dir_no_config": "predict -m names a directory without config.json",
    "model_params_pickled": "predict -m: best.npz holds a pickled object array",
    "predict_bed_unknown_chrom": "predict -b BED line on a chromosome the store lacks",
    # outputs (tests/test_outputs_safety.py): -o / -oc never destroy what factornet did not write
    "output_oc_foreign_folder": "-oc names a non-empty folder that factornet did not write",
    "output_oc_foreign_entry": "-oc names our earlier output, but a file we did not write was put inside it",
    "output_o_ours_exists": "-o names an earlier output of the same command",
    "output_file_for_folder": "-o names a file where a folder is expected",
    "output_oc_current_folder": "-oc names the current folder",
    "output_oc_home": "-oc names the home folder",
    "output_oc_holds_input": "-oc names a folder that holds one of the inputs",
    "output_oc_input_store": "train -oc names the cell store given to -i",
    "output_predict_foreign_file": "predict -oc names a file that factornet did not write",
    "output_predict_foreign_bigwig": "predict -oc --bigwig names a bigWig that factornet did not write",
    "output_store_path_foreign": "preprocess build --genome-store names a folder that is not a store",
    "train_finished_run": "train -o names a finished run",
    "train_newer_settings": "train -o resumes a run whose config.json has a setting we do not know",
    "model_newer_settings": "predict -m: config.json's model has a setting we do not know",
}

_recorded = {}


# ------------------------------------------------------------------ helpers

def cli(argv, capsys):
    """Run the real CLI in-process -> (exit code, stdout, stderr)."""
    argv = [str(a) for a in argv]
    code = run_command(build_parser(only=chosen_command(argv)), argv)
    out, err = capsys.readouterr()
    return code, out, err


def normalize(message, places):
    """Replace temporary folders by labels so the message is the same on every machine."""
    pairs = []
    for path, label in places.items():
        for variant in {str(path), os.path.realpath(path)}:
            pairs.append((variant, label))
    for variant, label in sorted(pairs, key=lambda p: -len(p[0])):
        message = message.replace(variant, label)
    return message


def documented():
    """case id -> message column of docs/ERRORS.md."""
    rows = {}
    if not DOC.is_file():
        return rows
    for line in DOC.read_text().splitlines():
        match = re.match(r"^\| `([a-z0-9_]+)` \|", line)
        if match:
            cells = [c.strip().replace("\\|", "|") for c in re.split(r"(?<!\\)\|", line)[1:-1]]
            rows[match.group(1)] = {"input": cells[1], "message": cells[2], "exit": cells[3],
                                    "status": cells[4]}
    return rows


def check_documented(case, message):
    assert case in CASES
    if UPDATE_DOC:
        _recorded[case] = message
        return
    rows = documented()
    assert case in rows, f"docs/ERRORS.md has no row for {case}"
    assert rows[case]["message"] == message, (
        f"docs/ERRORS.md row {case} says {rows[case]['message']!r}, the program says {message!r}")


def expect_error(case, argv, capsys, places, names=()):
    """Run argv; assert the one-line error contract; returns the normalized message."""
    code, out, err = cli(argv, capsys)
    assert "Traceback" not in err
    lines = err.strip().splitlines()
    assert code == 2, (code, err)
    assert len(lines) == 1, err
    prefix = "factornet: error: "
    assert lines[0].startswith(prefix), lines[0]
    for name in names:
        assert str(name) in lines[0], (name, lines[0])
    message = normalize(lines[0][len(prefix):], places)
    check_documented(case, message)
    return message


def assert_not_complete(store_path):
    """No store that looks complete at `store_path`."""
    attrs = read_store_attrs(store_path)
    assert attrs is None or not attrs.get("complete"), store_path


@pytest.fixture
def places(tmp_path, tiny_stores):
    return {tmp_path: "DIR", tiny_stores["root"]: "INPUTS", tiny_stores["dir"]: "STORES"}


@pytest.fixture
def cell(tmp_path, tiny_inputs):
    """A private copy of CellA's folder, to spoil."""
    return Path(shutil.copytree(tiny_inputs["cells"][0], tmp_path / "CellA"))


def build_argv(tmp_path, tiny_inputs, cells, *extra, genome=None):
    return (["preprocess", "build", "--genome", genome or tiny_inputs["fasta"],
             "--stores", tmp_path / "stores", "--chunk-bases", 4096]
            + (["-i", *cells] if cells else []) + list(extra))


def write_gz(path, text):
    with gzip.open(path, "wt") as handle:
        handle.write(text)


# ------------------------------------------------------------------ cell folder lists

def test_bigwig_listed_file_missing(tmp_path, tiny_inputs, cell, capsys, places):
    (cell / "bigwig.txt").write_text("Unique35.bw\tUnique35\nmissing.bw\tDGF\n")
    expect_error("bigwig_listed_file_missing", build_argv(tmp_path, tiny_inputs, [cell]), capsys,
                 places, names=[f"{cell / 'bigwig.txt'}:2", "missing.bw"])
    assert_not_complete(tmp_path / "stores" / "CellA.zarr")


def test_chip_listed_file_missing(tmp_path, tiny_inputs, cell, capsys, places):
    (cell / "chip.txt").write_text("TFA.conservative.narrowPeak.gz\tTFA\tgone.narrowPeak.gz\n")
    expect_error("chip_listed_file_missing", build_argv(tmp_path, tiny_inputs, [cell]), capsys,
                 places, names=[f"{cell / 'chip.txt'}:1", "gone.narrowPeak.gz"])
    assert_not_complete(tmp_path / "stores" / "CellA.zarr")


def test_bigwig_txt_missing(tmp_path, tiny_inputs, cell, capsys, places):
    (cell / "bigwig.txt").unlink()
    expect_error("bigwig_txt_missing", build_argv(tmp_path, tiny_inputs, [cell]), capsys, places,
                 names=[cell / "bigwig.txt"])


def test_bigwig_not_a_bigwig(tmp_path, tiny_inputs, cell, capsys, places):
    (cell / "DGF.bw").write_text("not a bigwig\n")
    expect_error("bigwig_not_a_bigwig", build_argv(tmp_path, tiny_inputs, [cell]), capsys, places,
                 names=[cell / "DGF.bw"])
    assert_not_complete(tmp_path / "stores" / "CellA.zarr")


def test_chip_tf_twice(tmp_path, tiny_inputs, cell, capsys, places):
    (cell / "chip.txt").write_text("TFA.conservative.narrowPeak.gz\tTFA\n"
                                   "TFB.conservative.narrowPeak.gz\tTFA\n")
    expect_error("chip_tf_twice", build_argv(tmp_path, tiny_inputs, [cell]), capsys, places,
                 names=[f"{cell / 'chip.txt'}:2", "TFA"])


def test_meta_value_not_number(tmp_path, tiny_inputs, cell, capsys, places):
    (cell / "meta.txt").write_text("0.5\tGEPC1\nhigh\tGEPC2\n")
    expect_error("meta_value_not_number", build_argv(tmp_path, tiny_inputs, [cell]), capsys, places,
                 names=[f"{cell / 'meta.txt'}:2", "high"])


# ------------------------------------------------------------------ naming and genome builds

def test_naming_fasta_vs_bigwig(tmp_path, tiny_inputs, cell, capsys, places):
    write_bigwig(cell / "DGF.bw", {c[3:]: n for c, n in TINY_SIZES.items()}, np.random.default_rng(0))
    message = expect_error("naming_fasta_vs_bigwig", build_argv(tmp_path, tiny_inputs, [cell]),
                           capsys, places, names=[cell / "DGF.bw", "'chr1'", "'1'"])
    assert "names" in message or "use" in message
    assert_not_complete(tmp_path / "stores" / "CellA.zarr")


def test_naming_fasta_vs_peaks(tmp_path, tiny_inputs, cell, capsys, places):
    path = cell / "TFA.conservative.narrowPeak.gz"
    write_gz(path, "1\t100\t400\t.\t0\t.\t5\t-1\t-1\t150\n")
    expect_error("naming_fasta_vs_peaks", build_argv(tmp_path, tiny_inputs, [cell]), capsys, places,
                 names=[f"{path}:1", "'1'", "'chr1'"])
    assert_not_complete(tmp_path / "stores" / "CellA.zarr")


def test_bigwig_lacks_chrom(tmp_path, tiny_inputs, cell, capsys, places):
    sizes = {c: n for c, n in TINY_SIZES.items() if c != "chr11"}
    write_bigwig(cell / "DGF.bw", sizes, np.random.default_rng(0))
    expect_error("bigwig_lacks_chrom", build_argv(tmp_path, tiny_inputs, [cell]), capsys, places,
                 names=[cell / "DGF.bw", "chr11", "--chroms"])
    assert_not_complete(tmp_path / "stores" / "CellA.zarr")


def test_bigwig_chrom_shorter(tmp_path, tiny_inputs, cell, capsys, places):
    sizes = dict(TINY_SIZES, chr1=TINY_SIZES["chr1"] - 10_000)
    write_bigwig(cell / "DGF.bw", sizes, np.random.default_rng(0))
    expect_error("bigwig_chrom_shorter", build_argv(tmp_path, tiny_inputs, [cell]), capsys, places,
                 names=[cell / "DGF.bw", "chr1", "40000", "50000"])
    assert_not_complete(tmp_path / "stores" / "CellA.zarr")


def test_track_all_nan(tmp_path, tiny_inputs, cell, capsys, places):
    import pyBigWig
    bw = pyBigWig.open(str(cell / "DGF.bw"), "w")
    bw.addHeader(list(TINY_SIZES.items()))
    for chrom, size in TINY_SIZES.items():
        bw.addEntries([chrom], [0], ends=[size], values=[float("nan")])
    bw.close()
    expect_error("track_all_nan", build_argv(tmp_path, tiny_inputs, [cell]), capsys, places,
                 names=[cell / "bigwig.txt", "'DGF'"])
    assert_not_complete(tmp_path / "stores" / "CellA.zarr")
    assert not (tmp_path / "stores" / "CellA.zarr").exists()


# ------------------------------------------------------------------ BED / narrowPeak lines

BAD_LINES = {
    "peak_past_chrom_end": ("chr2\t33000\t33400\n", ["33400", "chr2", "33333"]),
    "bed_non_numeric": ("chr1\t1x0\t400\n", ["column 2", "1x0"]),
    "bed_too_few_columns": ("chr1\t100\n", ["3 columns"]),
    "bed_start_after_end": ("chr1\t500\t400\n", ["500", "400"]),
    "bed_zero_length": ("chr1\t500\t500\n", ["zero-length"]),
    "bed_negative_start": ("chr1\t-5\t400\n", ["negative"]),
}


@pytest.mark.parametrize("case", sorted(BAD_LINES))
def test_bad_peak_line(case, tmp_path, tiny_inputs, cell, capsys, places):
    bad, words = BAD_LINES[case]
    path = cell / "TFB.conservative.narrowPeak.gz"
    write_gz(path, "# a comment\nchr1\t100\t400\n" + bad + "chr1\t900\t1200\n")
    # the bad line is line 3 of the file: the message counts file lines, comments included
    expect_error(case, build_argv(tmp_path, tiny_inputs, [cell]), capsys, places,
                 names=[f"{path}:3", *words])
    assert_not_complete(tmp_path / "stores" / "CellA.zarr")


def test_peaks_truncated_gzip(tmp_path, tiny_inputs, cell, capsys, places):
    path = cell / "TFA.relaxed.narrowPeak.gz"
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    expect_error("peaks_truncated_gzip", build_argv(tmp_path, tiny_inputs, [cell]), capsys, places,
                 names=[path, "gzip"])
    assert_not_complete(tmp_path / "stores" / "CellA.zarr")


def test_peaks_empty(tmp_path, tiny_inputs, cell, capsys, places):
    path = cell / "TFB.conservative.narrowPeak.gz"
    write_gz(path, "")
    expect_error("peaks_empty", build_argv(tmp_path, tiny_inputs, [cell]), capsys, places,
                 names=[path, "TFB", "chip.txt"])
    assert_not_complete(tmp_path / "stores" / "CellA.zarr")


def test_bed_header_lines_accepted(tmp_path, tiny_inputs, cell, capsys):
    """track / browser / # lines are skipped, not errors."""
    from factornet_jax.reader import open_cell_store
    path = cell / "TFB.conservative.narrowPeak.gz"
    write_gz(path, "track name=peaks type=narrowPeak\nbrowser position chr1:1-1000\n# comment\n"
                   "chr1\t100\t400\t.\t0\t.\t5\t-1\t-1\t50\nchr2\t900\t1200\n")
    code, out, err = cli(build_argv(tmp_path, tiny_inputs, [cell]), capsys)
    assert code == 0, err
    peaks = open_cell_store(tmp_path / "stores" / "CellA.zarr").peaks("TFB")
    assert peaks["chrom"].tolist() == ["chr1", "chr2"]
    assert peaks["summit"].tolist() == [150, 1050]


def test_bed_unsorted_accepted(tmp_path, tiny_inputs, cell, capsys):
    from factornet_jax.reader import open_cell_store
    path = cell / "TFB.conservative.narrowPeak.gz"
    write_gz(path, "chr2\t900\t1200\nchr1\t5000\t5400\nchr1\t100\t400\n")
    code, out, err = cli(build_argv(tmp_path, tiny_inputs, [cell]), capsys)
    assert code == 0, err
    peaks = open_cell_store(tmp_path / "stores" / "CellA.zarr").peaks("TFB")
    assert sorted(zip(peaks["chrom"].tolist(), peaks["start"].tolist())) == [
        ("chr1", 100), ("chr1", 5000), ("chr2", 900)]


# ------------------------------------------------------------------ folders built together

def test_track_names_differ(tmp_path, tiny_inputs, capsys, places):
    a = make_cell_dir(tmp_path, "CellA", TINY_SIZES, 0, tracks=("Unique35", "DGF"))
    b = make_cell_dir(tmp_path, "CellB", TINY_SIZES, 1, tracks=("Unique35", "DNase"))
    expect_error("track_names_differ", build_argv(tmp_path, tiny_inputs, [a, b]), capsys, places,
                 names=[b / "bigwig.txt", "DNase", "CellA"])
    assert not (tmp_path / "stores" / "CellA.zarr").exists()


def test_meta_names_differ(tmp_path, tiny_inputs, capsys, places):
    a = make_cell_dir(tmp_path, "CellA", TINY_SIZES, 0)
    b = make_cell_dir(tmp_path, "CellB", TINY_SIZES, 1)
    (b / "meta.txt").write_text("0.1\tGEPC1\n0.2\tGEPC2\n0.3\tOTHER\n")
    expect_error("meta_names_differ", build_argv(tmp_path, tiny_inputs, [a, b]), capsys, places,
                 names=[b / "meta.txt", "OTHER"])
    assert not (tmp_path / "stores" / "CellA.zarr").exists()


# ------------------------------------------------------------------ FASTA

def small_fasta(tmp_path, name="g.fa"):
    rng = np.random.default_rng(3)
    seqs = {"chr1": random_sequence(rng, 3000), "chr2": random_sequence(rng, 2000)}
    path = tmp_path / name
    write_fasta(path, seqs)
    return path, seqs


def test_fasta_missing(tmp_path, tiny_inputs, capsys, places):
    path = tmp_path / "nowhere.fa"
    expect_error("fasta_missing", build_argv(tmp_path, tiny_inputs, [], genome=path), capsys, places,
                 names=[path])


def test_fasta_gzipped(tmp_path, tiny_inputs, capsys, places):
    plain, _ = small_fasta(tmp_path)
    path = tmp_path / "g.fa.gz"
    path.write_bytes(gzip.compress(plain.read_bytes()))
    expect_error("fasta_gzipped", build_argv(tmp_path, tiny_inputs, [], genome=path), capsys, places,
                 names=[path, "gzip"])
    assert not (tmp_path / "stores" / "g.zarr").exists()


def test_fasta_duplicate_chrom(tmp_path, tiny_inputs, capsys, places):
    path = tmp_path / "g.fa"
    path.write_text(">chr1\nACGTACGT\nACG\n>chr2\nACGT\n>chr1\nTTTT\n")
    expect_error("fasta_duplicate_chrom", build_argv(tmp_path, tiny_inputs, [], genome=path), capsys,
                 places, names=[path, "chr1"])
    assert_not_complete(tmp_path / "stores" / "g.zarr")


def test_fasta_ragged_lines(tmp_path, tiny_inputs, capsys, places):
    path = tmp_path / "g.fa"
    path.write_text(">chr1\nACGTACGT\nACG\nACGTACGT\n>chr2\nACGT\n")
    expect_error("fasta_ragged_lines", build_argv(tmp_path, tiny_inputs, [], genome=path), capsys,
                 places, names=[path])
    assert_not_complete(tmp_path / "stores" / "g.zarr")


def test_fasta_non_letter(tmp_path, tiny_inputs, capsys, places):
    path = tmp_path / "g.fa"
    path.write_text(">chr1\nACGTACGT\nACGTAC1T\nACG\n>chr2\nACGT\n")
    expect_error("fasta_non_letter", build_argv(tmp_path, tiny_inputs, [], genome=path), capsys,
                 places, names=[path, "chr1", "position 15", "'1'"])
    assert_not_complete(tmp_path / "stores" / "g.zarr")


def test_chroms_unknown(tmp_path, tiny_inputs, capsys, places):
    expect_error("chroms_unknown", build_argv(tmp_path, tiny_inputs, [], "--chroms", "chr1", "chrZ"),
                 capsys, places, names=["--chroms", "chrZ"])
    assert not (tmp_path / "stores" / "genome.zarr").exists()


def test_blacklist_naming(tmp_path, tiny_inputs, capsys, places):
    path = tmp_path / "blacklist.bed"
    path.write_text("1\t100\t200\n2\t300\t400\n")
    expect_error("blacklist_naming", build_argv(tmp_path, tiny_inputs, [], "--blacklist", path),
                 capsys, places, names=[f"{path}:1", "'1'", "'chr1'"])


def test_jobs_zero(tmp_path, tiny_inputs, capsys, places):
    expect_error("jobs_zero", build_argv(tmp_path, tiny_inputs, [], "--jobs", 0), capsys, places,
                 names=["--jobs"])
    assert not (tmp_path / "stores" / "genome.zarr").exists()


def test_store_inputs_changed(tmp_path, tiny_inputs, cell, capsys, places):
    argv = build_argv(tmp_path, tiny_inputs, [cell])
    assert cli(argv, capsys)[0] == 0
    write_bigwig(cell / "DGF.bw", TINY_SIZES, np.random.default_rng(99))
    expect_error("store_inputs_changed", argv, capsys, places,
                 names=[tmp_path / "stores" / "CellA.zarr", "bigwig DGF", cell / "DGF.bw", "--force"])


# ------------------------------------------------------------------ train run

def train_argv(store, out, *extra):
    return (["train", "run", "-i", store, "-v", "chr11", "-t", "chr2", "-e", "1", "-L", "200",
             "-w", "10", "-k", "4", "-r", "2", "-d", "8", "--batch-size", "20", "--max-steps", "2",
             "-o", out] + list(extra))


def assert_no_model(out):
    assert not (Path(out) / "final.npz").exists()
    state = Path(out) / "train_state.json"
    assert not state.exists() or not json.loads(state.read_text()).get("finished")


def test_train_factor_absent(tmp_path, tiny_stores, capsys, places):
    out = tmp_path / "model"
    expect_error("train_factor_absent", train_argv(tiny_stores["cell_stores"][0], out, "-f", "CTCF"),
                 capsys, places, names=["-f CTCF", "chip.txt"])
    assert not out.exists()


def test_train_negative_n(tmp_path, tiny_stores, capsys, places):
    out = tmp_path / "model"
    expect_error("train_negative_n", train_argv(tiny_stores["cell_stores"][0], out, "-n", "-1"),
                 capsys, places, names=["-n"])
    assert not out.exists()


def test_train_seqlen_below_width(tmp_path, tiny_stores, capsys, places):
    out = tmp_path / "model"
    argv = train_argv(tiny_stores["cell_stores"][0], out) + ["-L", "20", "-w", "26"]
    expect_error("train_seqlen_below_width", argv, capsys, places, names=["-L", "-w"])
    assert not out.exists()


def test_train_valid_chrom_unknown(tmp_path, tiny_stores, capsys, places):
    out = tmp_path / "model"
    argv = train_argv(tiny_stores["cell_stores"][0], out) + ["-v", "chr9"]
    expect_error("train_valid_chrom_unknown", argv, capsys, places, names=["-v", "chr9"])
    assert not out.exists()


def test_train_test_chrom_unknown(tmp_path, tiny_stores, capsys, places):
    out = tmp_path / "model"
    argv = train_argv(tiny_stores["cell_stores"][0], out) + ["-t", "chr8"]
    expect_error("train_test_chrom_unknown", argv, capsys, places, names=["-t", "chr8"])
    assert not out.exists()


def test_train_valid_test_overlap(tmp_path, tiny_stores, capsys, places):
    out = tmp_path / "model"
    argv = train_argv(tiny_stores["cell_stores"][0], out) + ["-t", "chr11"]
    expect_error("train_valid_test_overlap", argv, capsys, places, names=["-v", "-t", "chr11"])
    assert not out.exists()


def test_train_unbuilt_cell_folder(tmp_path, tiny_stores, capsys, places):
    out = tmp_path / "model"
    argv = train_argv(tiny_stores["cells"][0], out) + ["--stores", tmp_path / "empty"]
    expect_error("train_unbuilt_cell_folder", argv, capsys, places,
                 names=["-i", tiny_stores["cells"][0], "preprocess build"])
    assert not out.exists()


def test_train_store_interrupted(tmp_path, tiny_stores, capsys, places):
    """Only `<store>.partial` exists (the build was killed): never opened as a store."""
    store = tmp_path / "CellA.zarr"
    shutil.copytree(tiny_stores["cell_stores"][0], str(store) + ".partial")
    out = tmp_path / "model"
    expect_error("train_store_interrupted", train_argv(store, out), capsys, places,
                 names=[store, "preprocess build"])
    assert not out.exists()


def test_train_output_exists(tmp_path, tiny_stores, capsys, places):
    out = tmp_path / "model"
    out.mkdir()
    (out / "notes.txt").write_text("mine\n")
    expect_error("train_output_exists", train_argv(tiny_stores["cell_stores"][0], out), capsys, places,
                 names=["-o", out, "not a model directory"])
    assert sorted(p.name for p in out.iterdir()) == ["notes.txt"]


@pytest.mark.skipif(__import__("jax").default_backend() == "gpu", reason="this machine has a GPU")
def test_train_lstm_cudnn_without_gpu(tmp_path, tiny_stores, capsys, places):
    out = tmp_path / "model"
    expect_error("train_lstm_cudnn_without_gpu", train_argv(tiny_stores["cell_stores"][0], out, "--lstm", "cudnn"),
                 capsys, places, names=["--lstm cudnn", "--lstm scan"])
    assert not out.exists()


# ------------------------------------------------------------------ model dirs and predict

def tiny_model_dir(path, seq_len=200):
    """A loadable model dir (random parameters) fitting the tiny stores' tracks and TFs."""
    import jax

    from factornet_jax.model import ModelConfig, init_params
    from factornet_jax.modeldir import make_config, save_params, write_config
    cfg = ModelConfig(seq_len=seq_len, track_names=("Unique35", "DGF"), num_tasks=2, kernels=4,
                      kernel_width=10, recurrent=2, dense=8)
    write_config(path, make_config(cfg, ["TFA", "TFB"], ["Unique35", "DGF"]))
    save_params(Path(path) / "best.npz", init_params(cfg, jax.random.PRNGKey(0)))
    return Path(path)


def predict_argv(store, model, bed, out):
    return ["predict", "-i", store, "-m", model, "-f", "TFA", "-b", bed, "-o", out]


def test_model_dir_no_config(tmp_path, tiny_stores, capsys, places):
    model = tmp_path / "model"
    model.mkdir()
    (model / "best.npz").write_bytes(b"")
    bed = tmp_path / "regions.bed"
    bed.write_text("chr1\t1000\t1200\n")
    out = tmp_path / "out.bedGraph.gz"
    expect_error("model_dir_no_config", predict_argv(tiny_stores["cell_stores"][0], model, bed, out),
                 capsys, places, names=[model, "config.json"])
    assert not out.exists() and list(tmp_path.glob("*out*")) == []


def _pickle_bomb(marker):
    class Bomb:
        def __reduce__(self):
            return (os.system, (f"touch {marker}",))
    return np.array([Bomb()], dtype=object)


def test_model_params_pickled(tmp_path, tiny_stores, capsys, places):
    """best.npz holding an object array: a clean error, and the pickle is never run."""
    model = tiny_model_dir(tmp_path / "model")
    marker = tmp_path / "pwned"
    np.savez(model / "best.npz", **{"conv/kernel": _pickle_bomb(marker)})
    bed = tmp_path / "regions.bed"
    bed.write_text("chr1\t1000\t1200\n")
    out = tmp_path / "out.bedGraph.gz"
    expect_error("model_params_pickled", predict_argv(tiny_stores["cell_stores"][0], model, bed, out),
                 capsys, places, names=[model / "best.npz"])
    assert not marker.exists()
    assert not out.exists()


def test_checkpoint_params_pickled_never_run(tmp_path):
    """The training checkpoint reader refuses pickles too (resume reads it)."""
    from factornet_jax.modeldir import load_params
    marker = tmp_path / "pwned"
    np.savez(tmp_path / "params.npz", **{"a": _pickle_bomb(marker)})
    with pytest.raises(FactorNetError):
        load_params(tmp_path / "params.npz")
    assert not marker.exists()


def test_store_pickle_codec_refused(tmp_path, tiny_stores):
    """A store whose array metadata asks for a pickling codec or object dtype is refused cleanly."""
    from factornet_jax.errors import StoreError
    from factornet_jax.reader import open_cell_store
    store = Path(shutil.copytree(tiny_stores["cell_stores"][0], tmp_path / "CellA.zarr"))
    shutil.copytree(tiny_stores["genome"], tmp_path / "genome.zarr")
    meta_path = store / "signal" / "chr1" / "zarr.json"
    meta = json.loads(meta_path.read_text())
    meta["codecs"].insert(1, {"name": "numcodecs.pickle", "configuration": {"protocol": 5}})
    meta_path.write_text(json.dumps(meta))
    with pytest.raises(StoreError, match="codecs"):
        open_cell_store(store).fetch("chr1", 0, 100)


def test_predict_bed_unknown_chrom(tmp_path, tiny_stores, capsys, places):
    model = tiny_model_dir(tmp_path / "model")
    bed = tmp_path / "regions.bed"
    bed.write_text("chr1\t1000\t1200\nchrUn_gl000220\t0\t200\n")
    out = tmp_path / "out.bedGraph.gz"
    expect_error("predict_bed_unknown_chrom",
                 predict_argv(tiny_stores["cell_stores"][0], model, bed, out), capsys, places,
                 names=[f"{bed}:2", "chrUn_gl000220"])
    assert not out.exists() and list(tmp_path.glob("*out*")) == []


# ------------------------------------------------------------------ a few as real processes

@pytest.mark.parametrize("words", [("bigwig",), ("gzip",), ("-n",)])
def test_subprocess_one_line(words, tmp_path, tiny_inputs, tiny_stores, cell):
    """The installed entry point prints the same single line (no traceback) and exits 2."""
    if words == ("bigwig",):
        (cell / "bigwig.txt").write_text("missing.bw\tDGF\n")
        argv = build_argv(tmp_path, tiny_inputs, [cell])
    elif words == ("gzip",):
        plain, _ = small_fasta(tmp_path)
        gz = tmp_path / "g.fa.gz"
        gz.write_bytes(gzip.compress(plain.read_bytes()))
        argv = build_argv(tmp_path, tiny_inputs, [], genome=gz)
    else:
        argv = train_argv(tiny_stores["cell_stores"][0], tmp_path / "model", "-n", "-1")
    module = "preprocess" if argv[0] == "preprocess" else "train"
    # the stage drivers run from a checkout (they are not installed): cwd = the repository
    checkout = Path(__file__).resolve().parents[1]
    proc = subprocess.run([sys.executable, "-m", module, *[str(a) for a in argv[1:]]],
                          capture_output=True, text=True, cwd=checkout, timeout=120)
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("factornet: error: ")
    assert words[0] in lines[0]


# ------------------------------------------------------------------ the table itself

def test_errors_doc_covers_catalogue():
    """docs/ERRORS.md has exactly one row per case (or is rewritten in update mode)."""
    if UPDATE_DOC:
        write_doc(_recorded)
    rows = documented()
    assert sorted(rows) == sorted(CASES)
    for case, row in rows.items():
        assert row["input"] == CASES[case]
        assert row["exit"] == "2"
    assert len(CASES) >= 25


def write_doc(recorded):
    """Rewrite the table of docs/ERRORS.md: recorded messages replace old ones, rows of cases
    not run (xfail: the message their fix gives) are kept, the text around the table too."""
    old = documented()
    lines = DOC.read_text().splitlines() if DOC.is_file() else ["# Errors", ""]
    table = [i for i, line in enumerate(lines) if line.startswith("|")]
    head = lines[: table[0]] if table else lines + [""]
    tail = lines[table[-1] + 1:] if table else []
    rows = ["| case | bad input | message (stderr, after `factornet: error: `) | exit | status |",
            "|---|---|---|---|---|"]
    for case, words in CASES.items():
        message = recorded.get(case, old.get(case, {}).get("message", "?"))
        status = old.get(case, {}).get("status", "ok")
        rows.append(f"| `{case}` | {words} | {message.replace('|', chr(92) + '|')} | 2 | {status} |")
    DOC.write_text("\n".join(head + rows + tail) + "\n")

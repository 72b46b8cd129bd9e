"""bed.py: parsing golden values, every error message, round trips, real narrowPeak files."""

import gzip
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from factornet_jax.bed import PEAK_DTYPE, read_bed, read_chrom_sizes, write_bed
from factornet_jax.errors import InputFileError

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"
SIZES = {"chr1": 1000, "chr2": 500}


def write(tmp_path, text, name="x.bed", gz=False):
    path = tmp_path / name
    data = text.encode()
    path.write_bytes(gzip.compress(data) if gz else data)
    return path


def test_narrowpeak_summit_and_bed3_midpoint(tmp_path):
    text = (
        "track name=x\n"
        "browser position chr1\n"
        "# comment\n"
        "\n"
        "chr2\t100\t200\t.\t0\t.\t1.0\t-1\t2.0\t30\n"   # narrowPeak, summit offset 30
        "chr1\t10\t21\t.\t0\t.\t1.0\t-1\t2.0\t-1\n"     # summit -1 -> midpoint
        "chr1\t5\t7\n"                                # BED3 -> midpoint
        "chr1 300 400 name\r\n"                       # whitespace-separated, CRLF
    )
    rec = read_bed(write(tmp_path, text), SIZES)
    assert rec.dtype == PEAK_DTYPE
    assert rec["chrom"].tolist() == ["chr2", "chr1", "chr1", "chr1"]  # file order kept
    assert rec["start"].tolist() == [100, 10, 5, 300]
    assert rec["end"].tolist() == [200, 21, 7, 400]
    assert rec["summit"].tolist() == [130, 15, 6, 350]


def test_bed12_column_10_is_not_a_summit(tmp_path):
    line = "chr1\t100\t200\tn\t0\t+\t100\t200\t0\t2\t10,10\t0,90\n"
    assert read_bed(write(tmp_path, line))["summit"].tolist() == [150]


def test_gzip_detected_by_magic_bytes_not_name(tmp_path):
    text = "chr1\t1\t2\n"
    assert len(read_bed(write(tmp_path, text, name="plain.bed", gz=True))) == 1
    assert len(read_bed(write(tmp_path, text, name="notgz.bed.gz", gz=False))) == 1


def test_empty_file(tmp_path):
    path = write(tmp_path, "track name=x\n\n")
    assert read_bed(path).shape == (0,)
    with pytest.raises(InputFileError, match="no intervals"):
        read_bed(path, allow_empty=False)


@pytest.mark.parametrize(
    "line, message",
    [
        ("chr1\t10\n", "at least 3 columns"),
        ("chr1\tx\t20\n", "column 2 is not an integer coordinate: 'x'"),
        ("chr1\t10\t2.5\n", "column 3 is not an integer"),
        ("chr1\t-5\t20\n", "negative start"),
        ("chr1\t30\t20\n", "start is greater than end"),
        ("chr1\t20\t20\n", "zero-length interval"),
        ("chr1\t100\t110\t.\t0\t.\t1\t-1\t1\t11\n", "summit offset .* past the peak end"),
        ("chr3\t1\t2\n", "chromosome 'chr3' is not in the chrom sizes"),
        ("chr1\t900\t1001\n", "past the end of chr1 \\(size 1000\\)"),
    ],
)
def test_error_names_file_and_line(tmp_path, line, message):
    path = write(tmp_path, "# header\nchr1\t1\t2\n" + line)
    with pytest.raises(InputFileError, match=message) as info:
        read_bed(path, SIZES)
    assert info.value.line == 3
    assert str(info.value).startswith(f"{path}:3: ")


def test_naming_mismatch_hint(tmp_path):
    path = write(tmp_path, "1\t10\t20\n")
    with pytest.raises(InputFileError, match="names it 'chr1'; use chr1 naming"):
        read_bed(path, SIZES)
    with pytest.raises(InputFileError, match="names it '1'; use 1 naming"):
        read_bed(write(tmp_path, "chr1\t10\t20\n", name="y.bed"), {"1": 100})
    # dropping unknown contigs never hides a naming mismatch
    with pytest.raises(InputFileError, match="use chr1 naming"):
        read_bed(path, SIZES, drop_unknown_chroms=True)


def test_drop_unknown_chroms(tmp_path):
    path = write(tmp_path, "chr6_cox_hap2\t1\t5\nchr2\t1\t5\nchrM\t3\t4\n")
    rec = read_bed(path, SIZES, drop_unknown_chroms=True)
    assert rec["chrom"].tolist() == ["chr2"]


def test_truncated_gzip(tmp_path):
    data = gzip.compress(b"chr1\t1\t2\n" * 1000)
    path = tmp_path / "cut.bed.gz"
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(InputFileError, match="truncated or corrupt gzip"):
        read_bed(path)


def test_missing_file(tmp_path):
    with pytest.raises(InputFileError, match="file not found"):
        read_bed(tmp_path / "nope.bed")


def test_chrom_sizes(tmp_path):
    path = write(tmp_path, "chr2\t500\nchr1 1000 extra\n", name="g.sizes")
    sizes = read_chrom_sizes(path)
    assert sizes == {"chr2": 500, "chr1": 1000} and list(sizes) == ["chr2", "chr1"]
    for text, message in [
        ("chr1\n", "expected 2 columns"),
        ("chr1\tbig\n", "not a positive integer: 'big'"),
        ("chr1\t0\n", "not a positive integer"),
        ("chr1\t5\nchr1\t6\n", "listed twice"),
        ("", "no chromosomes"),
    ]:
        with pytest.raises(InputFileError, match=message):
            read_chrom_sizes(write(tmp_path, text, name="bad.sizes"))


def test_write_bed_round_trip_and_extra_columns(tmp_path):
    rec = np.zeros(2, PEAK_DTYPE)
    rec["chrom"], rec["start"], rec["end"] = ["chr2", "chr1"], [5, 7], [9, 70]
    path = tmp_path / "out.bed.gz"
    write_bed(path, rec, extra_columns={"score": np.array([0.5, 2.0])})
    assert path.read_bytes()[:2] == b"\x1f\x8b"
    assert gzip.decompress(path.read_bytes()).decode() == "chr2\t5\t9\t0.5\nchr1\t7\t70\t2.0\n"
    back = read_bed(path)
    np.testing.assert_array_equal(back[["chrom", "start", "end"]], rec[["chrom", "start", "end"]])
    write_bed(tmp_path / "empty.bed", rec[:0])
    assert (tmp_path / "empty.bed").read_text() == ""
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".partial")]


@settings(max_examples=30, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(["chr1", "chr2", "x_1"]),
                          st.integers(0, 10**9), st.integers(1, 10**6)), max_size=30))
def test_write_read_round_trip_property(tmp_path_factory, rows):
    rec = np.zeros(len(rows), PEAK_DTYPE)
    if rows:
        chrom, start, width = zip(*rows)
        rec["chrom"], rec["start"] = chrom, start
        rec["end"] = rec["start"] + np.array(width)
        rec["summit"] = (rec["start"] + rec["end"]) // 2
    path = tmp_path_factory.mktemp("rt") / "r.bed"
    write_bed(path, rec)
    np.testing.assert_array_equal(read_bed(path), rec)


@pytest.mark.skipif(not SHARED.is_dir(), reason="../shared/data not present")
def test_real_files_parse_every_line():
    sizes = read_chrom_sizes(SHARED / "resources" / "hg19.autoX.chrom.sizes")
    assert len(sizes) == 23 and sizes["chr1"] == 249250621
    paths = sorted((SHARED / "cells" / "HepG2").glob("*.narrowPeak.gz"))
    assert len(paths) >= 20
    for path in paths:
        n_lines = gzip.decompress(path.read_bytes()).count(b"\n")
        rec = read_bed(path, sizes)
        assert len(rec) == n_lines, path.name
        assert (rec["summit"] >= rec["start"]).all() and (rec["summit"] <= rec["end"]).all()
    # first line: chr17 39034760 39034956 ... summit offset 98
    ctcf = read_bed(SHARED / "cells" / "HepG2" / "ChIPseq.HepG2.CTCF.conservative.train.narrowPeak.gz")
    assert ctcf[0].tolist() == ("chr17", 39034760, 39034956, 39034858)
    # resource BEDs also cover alternative haplotypes: dropped on request
    cpg = SHARED / "resources" / "cpgisland.bed.gz"
    everything = read_bed(cpg)
    kept = read_bed(cpg, sizes, drop_unknown_chroms=True)
    assert len(everything) == gzip.decompress(cpg.read_bytes()).count(b"\n")
    assert 0 < len(kept) == np.isin(everything["chrom"], list(sizes)).sum() < len(everything)

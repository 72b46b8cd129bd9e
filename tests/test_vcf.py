"""vcf.py: streaming VCF blocks, one row per ALT, skipped alleles counted, every error names its
line; REF checked against the genome store."""
import gzip

import pytest

from factornet_jax.errors import InputFileError
from factornet_jax.vcf import VcfCounts, allele_codes, check_refs, iter_vcf_blocks

HEADER = ("##fileformat=VCFv4.2\n##contig=<ID=chr1,length=50000>\n"
          "#CHROM\tPOS\tID\tREF\tALT\tQUAL\tFILTER\tINFO\n")
SIZES = {"chr1": 50_000, "chr2": 33_333, "chr11": 20_000}


def vcf_text(records, header=HEADER):
    return header + "".join("\t".join(map(str, r)) + "\n" for r in records)


def write(path, text):
    if str(path).endswith(".gz"):
        with gzip.open(path, "wt") as handle:
            handle.write(text)
    else:
        path.write_text(text)
    return path


def read_all(path, sizes=SIZES, **kw):
    counts = VcfCounts()
    blocks = list(iter_vcf_blocks(path, sizes, counts=counts, **kw))
    return blocks, counts


def rec(chrom, pos, ref, alt, vid=".", info="."):
    return (chrom, pos, vid, ref, alt, ".", "PASS", info)


def test_multiallelic_split_symbolic_counted_and_order(tmp_path):
    records = [rec("chr2", 500, "A", "G", "rs1"), rec("chr1", 100, "C", "T,<DEL>,CA", "rs2"),
               rec("chr1", 90, "ac", "a"), rec("chr1", 80, "G", "."),
               rec("chr1", 70, "T", "*,G]17:198982],TTT"), rec("chr1", 60, "T", "A" * 60)]
    path = write(tmp_path / "v.vcf", vcf_text(records))
    blocks, counts = read_all(path, block_lines=3)        # blocks split records and the header
    rows = [(b.chroms[i], int(b.positions[i]), b.refs[i], b.alts[i], int(b.lines[i]),
             int(b.allele[i])) for b in blocks for i in range(len(b))]
    assert rows == [("chr2", 499, "A", "G", 4, 0), ("chr1", 99, "C", "T", 5, 0),
                    ("chr1", 99, "C", "CA", 5, 2), ("chr1", 89, "AC", "A", 6, 0),
                    ("chr1", 69, "T", "TTT", 8, 2)]      # input order, upper case
    assert (counts.records, counts.alleles) == (6, 5)
    assert counts.skipped() == {"symbolic": 3, "no_alt": 1, "too_long": 1}
    assert sum(len(b.header) for b in blocks) == 3
    assert [len(b.record_lines) for b in blocks] == [0, 3, 3]
    # record_alts lets --vcf-out put '.' for the skipped alleles
    assert blocks[1].record_alts.tolist() == [1, 3, 1]


@pytest.mark.parametrize("compress", ["gzip", "bgzip"])
def test_gzip_and_bgzip(tmp_path, compress):
    text = vcf_text([rec("chr1", 100 + i, "A", "C") for i in range(50)])
    if compress == "gzip":
        path = write(tmp_path / "v.vcf.gz", text)
    else:   # bgzip = concatenated gzip members; make one with several members
        path = tmp_path / "v.vcf.bgz"
        half = len(text) // 2
        path.write_bytes(gzip.compress(text[:half].encode()) + gzip.compress(text[half:].encode()))
    blocks, counts = read_all(path)
    assert counts.alleles == 50 and sum(len(b) for b in blocks) == 50


def test_no_contig_check_without_sizes(tmp_path):
    path = write(tmp_path / "v.vcf", vcf_text([rec("chrUn", 5, "A", "C")]))
    assert len(list(iter_vcf_blocks(path, None))[0]) == 1


@pytest.mark.parametrize("record,message,line", [
    (("chr1", 10, ".", "A", "C", "."), "at least 8 tab-separated columns", 4),
    (("chr1", "ten", ".", "A", "C", ".", ".", "."), "POS 'ten' is not an integer", 4),
    (("chr1", 0, ".", "A", "C", ".", ".", "."), "POS 0 is not a 1-based position", 4),
    (("chr1", 10, ".", "AX", "C", ".", ".", "."), "REF 'AX' is not a sequence", 4),
    (("chr1", 10, ".", "A", "CR", ".", ".", "."), "ALT 'CR' is not a sequence", 4),
    (("1", 10, ".", "A", "C", ".", ".", "."), "which names it 'chr1'", 4),
    (("chrZ", 10, ".", "A", "C", ".", ".", "."), "chromosome 'chrZ' is not in the genome store", 4),
    (("chr11", 20_000, ".", "AC", "C", ".", ".", "."), "runs past the end of chr11", 4),
])
def test_bad_lines_name_the_line(tmp_path, record, message, line):
    path = write(tmp_path / "v.vcf", HEADER + "\t".join(map(str, record)) + "\n")
    with pytest.raises(InputFileError, match=message) as err:
        read_all(path)
    assert err.value.line == line and str(path) in str(err.value)


def test_last_base_of_chromosome_is_fine(tmp_path):
    path = write(tmp_path / "v.vcf", vcf_text([rec("chr11", 20_000, "A", "C")]))
    assert read_all(path)[1].alleles == 1


@pytest.mark.parametrize("text", ["", HEADER, "\n\n"])
def test_empty_vcf(tmp_path, text):
    path = write(tmp_path / "v.vcf", text)
    with pytest.raises(InputFileError, match="no variant records found"):
        read_all(path)


def test_truncated_gzip_and_binary(tmp_path):
    data = gzip.compress(vcf_text([rec("chr1", 100 + i, "A", "C") for i in range(3000)]).encode())
    cut = tmp_path / "cut.vcf.gz"
    cut.write_bytes(data[: len(data) // 2])
    with pytest.raises(InputFileError, match="truncated or corrupt gzip"):
        read_all(cut)
    binary = tmp_path / "bin.vcf"
    binary.write_bytes(HEADER.encode() + b"chr1\t5\t.\t\xff\xfe\n")
    with pytest.raises(InputFileError, match="undecodable") as err:
        read_all(binary)
    assert err.value.line == 4
    with pytest.raises(InputFileError, match="file not found"):
        read_all(tmp_path / "missing.vcf")


def test_allele_codes():
    assert allele_codes("ACGTNacgtn").tolist() == [0, 1, 2, 3, 4, 0, 1, 2, 3, 4]


def test_check_refs_against_genome_store(tiny_stores, tmp_path):
    from factornet_jax.reader import open_genome_store
    genome = open_genome_store(tiny_stores["genome"])
    seq = tiny_stores["seqs"]["chr2"]
    positions = [1_000, 5_000, 120]                  # chr2 has an N run at 100..250
    refs = [seq[1_000:1_003], seq[5_000], "N"]
    wrong = {"A": "C", "C": "G", "G": "T", "T": "A"}[seq[7_000].upper()]
    records = [rec("chr2", p + 1, r, "A" if r.upper() != "A" else "C")
               for p, r in zip(positions, refs)] + [rec("chr2", 7_001, wrong, seq[7_000])]
    path = write(tmp_path / "v.vcf", vcf_text(records))
    (block,) = list(iter_vcf_blocks(path, SIZES))
    with pytest.raises(InputFileError, match=r"REF . at chr2:7001 differs from the genome store "
                                             r"\(.\).*--skip-ref-mismatch") as err:
        check_refs(block, genome, path)
    assert err.value.line == 7
    counts = VcfCounts(alleles=4)
    keep = check_refs(block, genome, path, skip_mismatch=True, counts=counts)
    assert keep.tolist() == [True, True, True, False]
    assert counts.ref_mismatch == 1 and counts.alleles == 3

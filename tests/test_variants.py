"""`factornet variants`: ALT scores against a store rebuilt from a hand-edited FASTA (SNVs, an
insertion, a deletion), REF scores against predict's windows, order, exclusion, scan, outputs,
the two loaders, and the user errors."""
import gzip
from pathlib import Path

import numpy as np
import pytest
from conftest import write_fasta
from test_predict import write_model

from factornet_jax.errors import ConfigError, InputFileError, OutputError

SEQ_LEN = 200
BATCH = 32          # windows per call: 16 variant rows (4 fake devices x 4)
HEADER = "##fileformat=VCFv4.2\n#CHROM\tPOS\tID\tREF\tALT\tQUAL\tFILTER\tINFO\n"


def write_vcf(path, records, header=HEADER):
    text = header + "".join(f"{c}\t{p}\t{i}\t{r}\t{a}\t.\tPASS\t{info}\n"
                            for c, p, i, r, a, info in records)
    path.write_text(text)
    return path


def rows_of(out_dir):
    from factornet_jax.variants import read_effects
    return read_effects(Path(out_dir) / "variants.tsv.gz")


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    folder, _ = write_model(tmp_path_factory.mktemp("vmodels") / "multi", 2, ["TFA", "TFB"])
    return folder


def edits(seqs):
    """(chrom, 0-based pos, REF, ALT) of the brute-force variants: two SNVs, an insertion, a
    deletion and an MNP, each chromosome edited at most once where the length changes."""
    chr1, chr2, chr11 = seqs["chr1"].upper(), seqs["chr2"].upper(), seqs["chr11"].upper()
    other = {"A": "G", "C": "T", "G": "A", "T": "C"}
    return [("chr1", 10_000, chr1[10_000], other[chr1[10_000]]),
            ("chr1", 30_000, chr1[30_000], other[chr1[30_000]]),
            ("chr1", 20_000, chr1[20_000:20_003], "".join(other[b] for b in chr1[20_000:20_003])),
            ("chr2", 15_000, chr2[15_000], chr2[15_000] + "GATTACAGATTACA"),
            ("chr11", 8_000, chr11[8_000:8_013], chr11[8_000])]


@pytest.fixture(scope="module")
def brute_force(tiny_stores, model, tmp_path_factory):
    """The variants applied to the FASTA by hand, and a store rebuilt from it whose signal at
    each position is the reference store's signal there (the documented alignment)."""
    import pyBigWig

    from factornet_jax.build import BuildRequest, build_stores
    from factornet_jax.reader import open_cell_store
    root = tmp_path_factory.mktemp("brute")
    seqs = {c: s.upper() for c, s in tiny_stores["seqs"].items()}
    variants = edits(seqs)
    for chrom, pos, ref, alt in variants:
        assert seqs[chrom][pos: pos + len(ref)] == ref
        seqs[chrom] = seqs[chrom][:pos] + alt + seqs[chrom][pos + len(ref):]
    write_fasta(root / "alt.fa", seqs)
    ref_store = open_cell_store(tiny_stores["cell_stores"][0])
    cell = root / "AltCell"
    cell.mkdir()
    (cell / "meta.txt").write_text((tiny_stores["cells"][0] / "meta.txt").read_text())
    with open(cell / "bigwig.txt", "w") as listing:
        for t, track in enumerate(ref_store.track_names):
            bw = pyBigWig.open(str(cell / f"{track}.bw"), "w")
            bw.addHeader([(c, len(s)) for c, s in seqs.items()])
            for chrom, s in seqs.items():
                size = ref_store.chrom_sizes[chrom]
                values = np.zeros(len(s), np.float64)
                n = min(size, len(s))
                values[:n] = ref_store.fetch(chrom, 0, size)[1][:n, t]
                bw.addEntries(chrom, 0, values=values.tolist(), span=1, step=1)
            bw.close()
            listing.write(f"{track}.bw\t{track}\n")
    build_stores(BuildRequest(cell_dirs=(str(cell),), genome=str(root / "alt.fa"),
                              stores_dir=str(root / "stores"), chunk_bases=4096))
    vcf = write_vcf(root / "edits.vcf", [(c, p + 1, f"v{i}", r, a, ".")
                                         for i, (c, p, r, a) in enumerate(variants)])
    return {"alt_store": root / "stores" / "AltCell.zarr", "vcf": vcf, "seqs": seqs}


def predict_windows(store_path, model_dir, chroms, starts):
    from factornet_jax.modeldir import load_model
    from factornet_jax.reader import open_cell_store
    cs = open_cell_store(store_path)
    onehot, signal = cs.fetch_batch(chroms, starts, SEQ_LEN)
    meta = np.tile(cs.meta_values, (len(starts), 1))
    return load_model(model_dir).predict(onehot, signal, meta=meta, batch_size=BATCH)


def test_alt_scores_equal_a_store_rebuilt_from_the_edited_fasta(tiny_stores, model, brute_force,
                                                                tmp_path):
    from factornet_jax.variants import score_variants
    store = tiny_stores["cell_stores"][0]
    summary = score_variants([store], model, brute_force["vcf"], tmp_path / "out", batch_size=BATCH,
                             plots=False)
    rows = rows_of(tmp_path / "out")
    assert summary.counts.alleles == 5 and summary.n_excluded == 0
    variants = edits(tiny_stores["seqs"])
    assert [(r["chrom"], int(r["pos"]) - 1, r["ref"], r["alt"], r["tf"]) for r in rows] == \
        [(c, p, ref, alt, tf) for c, p, ref, alt in variants for tf in ("TFA", "TFB")]
    chroms = [c for c, *_ in variants]
    starts = [p + len(ref) // 2 - SEQ_LEN // 2 for _, p, ref, _ in variants]
    alt_expect = predict_windows(brute_force["alt_store"], model, chroms, starts)
    ref_expect = predict_windows(store, model, chroms, starts)
    got = lambda key: np.array([float(r[key]) for r in rows]).reshape(-1, 2)    # noqa: E731
    np.testing.assert_allclose(got("alt_prob"), alt_expect, atol=1e-5, rtol=0)
    np.testing.assert_allclose(got("ref_prob"), ref_expect, atol=1e-5, rtol=0)
    np.testing.assert_allclose(got("diff"), alt_expect - ref_expect, atol=2e-5, rtol=0)
    assert (np.abs(alt_expect - ref_expect) > 1e-4).all(), "each edit changes its window's score"
    lod = np.log(alt_expect / (1 - alt_expect)) - np.log(ref_expect / (1 - ref_expect))
    np.testing.assert_allclose(got("log_odds_diff"), lod, atol=1e-3, rtol=1e-3)
    assert {r["status"] for r in rows} == {"scored"}


def test_alt_window_rule_on_codes():
    """The ALT window keeps the REF window start: SNV, deletion (pulls in), insertion (pushes out)."""
    from factornet_jax.variants import alt_windows
    ext = np.arange(12, dtype=np.uint8)[None].repeat(3, 0) % 4       # 0 1 2 3 0 1 2 3 ...
    starts = np.array([0, 0, 0])
    out = alt_windows(ext, starts, np.array([2, 2, 2]), np.array([1, 3, 1]),
                      np.array(["T", "C", "CAAA"], object), 8)
    assert out.tolist() == [[0, 1, 3, 3, 0, 1, 2, 3],      # base 2 -> T
                            [0, 1, 1, 1, 2, 3, 0, 1],      # GTA -> C: 2 bases pulled in
                            [0, 1, 1, 0, 0, 0, 3, 0]]      # G -> CAAA: 3 bases pushed out


@pytest.mark.parametrize("loader", [{"threads": 2}, {"loader_processes": 1}])
def test_cells_tfs_order_exclusion_and_outputs(tiny_stores, model, tmp_path, loader):
    """Unsorted, multi-allelic input; two cells; variants near the chromosome ends are NA; the
    annotated VCF and the plots are written; both loaders give the same scores."""
    from factornet_jax.variants import format_summary, score_variants
    seqs = {c: s.upper() for c, s in tiny_stores["seqs"].items()}
    rng = np.random.default_rng(3)
    records = []
    for i in range(20):
        chrom = ["chr1", "chr2", "chr11"][i % 3]
        pos = int(rng.integers(300, len(seqs[chrom]) - 300))
        ref = seqs[chrom][pos]
        alts = [b for b in "ACGT" if b != ref]
        alt = ",".join(alts[:2]) if i % 5 == 0 else alts[0]
        records.append((chrom, pos + 1, f"r{i}", ref, alt, "DP=3"))
    records.insert(4, ("chr2", 51, "edge", seqs["chr2"][50], "<INS>,A", "."))   # in the end zone
    records.insert(7, ("chr11", 19_950, "edge2", seqs["chr11"][19_949], "A", "."))
    vcf = write_vcf(tmp_path / "in.vcf", records)
    stores = tiny_stores["cell_stores"]
    out = tmp_path / "out"
    summary = score_variants(stores, model, vcf, out, tf="TFB", vcf_out=True, top=2,
                             batch_size=BATCH, block_lines=5, **loader)
    rows = rows_of(out)
    assert summary.counts.alleles == sum(
        len([a for a in r[4].split(",") if not a.startswith("<")]) for r in records)
    assert summary.counts.skipped() == {"symbolic": 1}
    assert len(rows) == summary.counts.alleles * 2 and {r["tf"] for r in rows} == {"TFB"}
    assert [r["cell"] for r in rows[:2]] == ["CellA", "CellB"]
    ids = [r["id"] for r in rows[::2]]
    assert ids == [rid for _, _, rid, _, alt, _ in records for a in alt.split(",")
                   if not a.startswith("<")]                               # input order
    edge = [r for r in rows if r["id"].startswith("edge")]
    assert {r["status"] for r in edge} == {"excluded"} and {r["diff"] for r in edge} == {"NA"}
    assert summary.n_excluded == len(edge) > 0
    assert all(r["status"] == "scored" for r in rows if not r["id"].startswith("edge"))
    assert "2 cell(s) x 1 TF(s)" in format_summary(summary)
    # REF scores are predict's windows: centred on the variant
    scored = [r for r in rows if r["status"] == "scored" and r["cell"] == "CellB"][:6]
    expect = predict_windows(stores[1], model, [r["chrom"] for r in scored],
                             [int(r["pos"]) - 1 - SEQ_LEN // 2 for r in scored])[:, 1]
    np.testing.assert_allclose([float(r["ref_prob"]) for r in scored], expect, atol=1e-5)
    # the annotated VCF: same records, INFO appended, Number=A values
    with gzip.open(out / "variants.vcf.gz", "rt") as handle:
        lines = handle.read().splitlines()
    header = [line for line in lines if line.startswith("##INFO")]
    assert len(header) == 8 and lines.index(header[-1]) < lines.index(
        next(line for line in lines if line.startswith("#CHROM")))
    body = [line.split("\t") for line in lines if not line.startswith("#")]
    assert [b[2] for b in body] == [r[2] for r in records]
    first = dict(kv.split("=") for kv in body[0][7].split(";"))
    assert first["DP"] == "3" and float(first["FN_DIFF_CellA_TFB"].split(",")[0]) == \
        pytest.approx(float(rows[0]["diff"]), abs=1e-6)
    sv = dict(kv.split("=") for kv in body[4][7].split(";"))
    assert sv["FN_ALT_CellB_TFB"].split(",")[0] == "."            # the <INS> allele
    assert sorted(p.name for p in out.iterdir()) == [".factornet-output.json", "manhattan.png",
                                                     "top_variants.png", "variants.tsv.gz",
                                                     "variants.vcf.gz"]
    # ALT scores of the same rows: the SNV applied to predict's window
    from factornet_jax.modeldir import load_model
    from factornet_jax.reader import open_cell_store
    cs = open_cell_store(stores[1])
    starts = np.array([int(r["pos"]) - 1 - SEQ_LEN // 2 for r in scored])
    onehot, signal = cs.fetch_batch([r["chrom"] for r in scored], starts, SEQ_LEN)
    for k, r in enumerate(scored):
        onehot[k, SEQ_LEN // 2] = np.eye(4, dtype=np.uint8)["ACGT".index(r["alt"])]
    alt_expect = load_model(model).predict(onehot, signal, np.tile(cs.meta_values, (6, 1)),
                                           batch_size=BATCH)[:, 1]
    np.testing.assert_allclose([float(r["alt_prob"]) for r in scored], alt_expect, atol=1e-5)


def test_scan_reports_the_largest_effect_over_moved_windows(tiny_stores, model, tmp_path):
    from factornet_jax.modeldir import load_model
    from factornet_jax.reader import open_cell_store
    from factornet_jax.variants import alt_windows, score_variants
    seqs = {c: s.upper() for c, s in tiny_stores["seqs"].items()}
    variants = [("chr1", 12_345, seqs["chr1"][12_345], "A" if seqs["chr1"][12_345] != "A" else "C"),
                ("chr2", 9_000, seqs["chr2"][9_000:9_004], seqs["chr2"][9_000])]
    vcf = write_vcf(tmp_path / "v.vcf", [(c, p + 1, ".", r, a, ".") for c, p, r, a in variants])
    store = tiny_stores["cell_stores"][0]
    score_variants([store], model, vcf, tmp_path / "out", tf="TFA", scan=50, batch_size=BATCH,
                   plots=False)
    rows = rows_of(tmp_path / "out")
    cs, loaded = open_cell_store(store), load_model(model)
    for row, (chrom, pos, ref, alt) in zip(rows, variants):
        starts = pos + len(ref) // 2 - SEQ_LEN // 2 + np.array([-50, 0, 50])
        ext, signal = cs.fetch_batch([chrom] * 3, starts, SEQ_LEN + 50, as_codes=True)
        alt_codes = alt_windows(ext, starts, np.full(3, pos), np.full(3, len(ref)),
                                np.array([alt] * 3, object), SEQ_LEN)
        onehot = np.eye(5, 4, dtype=np.uint8)[np.concatenate([ext[:, :SEQ_LEN], alt_codes])]
        sig = np.concatenate([signal[:, :SEQ_LEN]] * 2)
        probs = loaded.predict(onehot, sig, np.tile(cs.meta_values, (6, 1)), batch_size=BATCH)[:, 0]
        diffs = probs[3:] - probs[:3]
        best = int(np.argmax(np.abs(diffs)))
        assert int(row["scan_offset"]) == [-50, 0, 50][best]
        assert float(row["scan_diff"]) == pytest.approx(diffs[best], abs=1e-5)
        assert float(row["diff"]) == pytest.approx(diffs[1], abs=1e-5)


def test_cli_and_errors(tiny_stores, model, tmp_path, capsys):
    from factornet_jax.cli import main
    from factornet_jax.variants import score_variants
    seqs = tiny_stores["seqs"]
    store = tiny_stores["cell_stores"][0]
    good = seqs["chr1"][5_000].upper()
    wrong = "A" if good != "A" else "C"
    vcf = write_vcf(tmp_path / "bad.vcf", [("chr1", 4_001, ".", seqs["chr1"][4_000].upper(), "G", "."),
                                           ("chr1", 5_001, ".", wrong, "T", ".")])
    out = tmp_path / "out"
    with pytest.raises(InputFileError, match=r"bad.vcf:4: REF . at chr1:5001 differs"):
        score_variants([store], model, vcf, out, plots=False)
    assert not out.exists()                       # checked before any output
    with pytest.raises(SystemExit) as code:
        main(["variants", "-i", str(store), "-m", str(model), "-v", str(vcf), "-o", str(out),
              "--skip-ref-mismatch", "--no-plots", "--batch", str(BATCH), "-f", "TFA"])
    assert code.value.code == 0
    printed = capsys.readouterr().out
    assert "skipped 1 ref_mismatch" in printed and "1 alleles" in printed
    assert len(rows_of(out)) == 1
    with pytest.raises(OutputError, match="variants folder exists; use -oc"):
        score_variants([store], model, vcf, out, skip_ref_mismatch=True)
    with pytest.raises(ConfigError, match="--scan 60: at most 50 bp"):
        score_variants([store], model, vcf, tmp_path / "o2", scan=60)
    with pytest.raises(ConfigError, match="-f CTCF: not a TF"):
        score_variants([store], model, vcf, tmp_path / "o2", tf="CTCF")
    unknown = write_vcf(tmp_path / "u.vcf", [("1", 10, ".", "A", "C", ".")])
    with pytest.raises(SystemExit) as code:
        main(["variants", "-i", str(store), "-m", str(model), "-v", str(unknown), "-o",
              str(tmp_path / "o3")])
    assert code.value.code == 2
    assert "u.vcf:3: chromosome '1' is not in the genome store, which names it 'chr1'" in \
        capsys.readouterr().err
    assert not (tmp_path / "o3").exists()


def test_ref_scores_and_exclusion_equal_predict_with_gencode_and_blacklist(blacklisted_stores,
                                                                          tmp_path):
    """A GENCODE model on a store with a blacklist: each variant's REF score is predict's score of
    the 1-bp interval at the variant (same window, same GENCODE bin); predict's 0s are NA here."""
    from factornet_jax.predict import predict_bed
    from factornet_jax.reader import open_cell_store
    from factornet_jax.variants import score_variants
    folder, _ = write_model(tmp_path / "gencode", 1, ["TFA"], gencode=True)
    store = blacklisted_stores["store"]
    genome = open_cell_store(store).genome
    positions = np.array([50, 3_000, 9_700, 9_900, 10_200, 10_800, 11_000, 20_000, 25_123,
                          33_200])                       # blacklist chr2:10,000-10,500
    refs = genome.fetch_codes_batch(["chr2"] * len(positions), positions, 1)[:, 0]
    assert (refs < 4).all()
    records = [("chr2", p + 1, f"s{i}", "ACGT"[r], "ACGT"[(r + 1) % 4], ".")
               for i, (p, r) in enumerate(zip(positions, refs))]
    vcf = write_vcf(tmp_path / "v.vcf", records)
    bed = tmp_path / "v.bed"
    bed.write_text("".join(f"chr2\t{p}\t{p + 1}\n" for p in positions))
    predict_bed(store, folder, bed, tmp_path / "p.bedGraph.gz", batch_size=BATCH)
    with gzip.open(tmp_path / "p.bedGraph.gz", "rt") as handle:
        expect = np.array([float(line.split("\t")[3]) for line in handle])
    summary = score_variants([store], folder, vcf, tmp_path / "out", batch_size=BATCH, plots=False)
    rows = rows_of(tmp_path / "out")
    excluded = np.array([r["status"] == "excluded" for r in rows])
    # zone: chr2 [0, 200), the blacklist widened by seq_len [9800, 10700), [33133, 33333)
    assert excluded.tolist() == [True, False, False, True, True, False, False, False, False, True]
    assert summary.n_excluded == excluded.sum()
    assert (expect[excluded] == 0).all() and {r["ref_prob"] for r in rows if r["status"] ==
                                                "excluded"} == {"NA"}
    np.testing.assert_allclose([float(r["ref_prob"]) for r in rows if r["status"] == "scored"],
                               expect[~excluded], atol=1e-5)

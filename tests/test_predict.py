"""`factornet predict`: scores against LoadedModel.predict on hand-fetched windows, exclusion
zone, GENCODE flags, order, output formats and the user errors."""
import gzip
from pathlib import Path

import numpy as np
from conftest import write_text_file
import pytest

from factornet_jax.errors import ConfigError, FactorNetError, InputFileError

SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"

TRACKS = ("Unique35", "DGF")
META = ("GEPC1", "GEPC2", "GEPC3")
SEQ_LEN = 200
BATCH = 64


def write_model(folder, num_tasks, tfs, meta=True, gencode=False, params=None,
                track_names=TRACKS, meta_names=META):
    """A model dir with fresh parameters (or `params`); returns (folder, params)."""
    import jax

    from factornet_jax import modeldir
    from factornet_jax.model import ModelConfig, abstract_params
    cfg = ModelConfig(seq_len=SEQ_LEN, track_names=track_names, num_tasks=num_tasks,
                      num_meta=len(meta_names) if meta else 0, use_gencode=gencode, kernels=4,
                      recurrent=4, dense=8)
    if params is None:   # random weights of the right shapes, no init compilation
        rng = np.random.default_rng(num_tasks + 10 * gencode)
        params = jax.tree_util.tree_map(
            lambda leaf: rng.normal(0, 0.3, leaf.shape).astype(np.float32), abstract_params(cfg))
    features = ["bigwig"] + (["meta"] if meta else []) + (["gencode"] if gencode else [])
    folder = Path(folder)
    folder.mkdir(parents=True)
    modeldir.write_config(folder, modeldir.make_config(cfg, tfs, track_names,
                                                       meta_names if meta else (), features))
    modeldir.save_params(folder / "best.npz", params)
    return folder, params


def write_bed(path, rows, header=""):
    return write_text_file(path, header + "".join(f"{c}\t{s}\t{e}\n" for c, s, e in rows))


def ladder(chrom, first, last, step=50, width=200):
    return [(chrom, s, s + width) for s in range(first, last, step)]


def oracle(store_path, model_dir, rows, task, excluded, gencode=None):
    """Expected scores: LoadedModel.predict on windows fetched one by one, 0 where excluded."""
    from factornet_jax.modeldir import load_model
    from factornet_jax.reader import open_cell_store
    cs = open_cell_store(store_path)
    model = load_model(model_dir)
    expect = np.zeros(len(rows))
    use = np.flatnonzero(~excluded)
    windows = [cs.fetch(rows[i][0], (rows[i][1] + rows[i][2]) // 2 - SEQ_LEN // 2,
                        (rows[i][1] + rows[i][2]) // 2 + SEQ_LEN // 2) for i in use]
    onehot = np.stack([w[0] for w in windows])
    signal = np.stack([w[1] for w in windows])
    meta = np.tile(cs.meta_values, (len(use), 1)) if model.meta_names else None
    probs = model.predict(onehot, signal, meta=meta,
                          gencode=None if gencode is None else gencode[use], batch_size=BATCH)
    expect[use] = probs[:, task]
    return expect


def read_rows(path):
    """(chrom, start, end, score) rows of a written bedGraph.gz, in file order."""
    with gzip.open(path, "rt") as handle:   # also proves it is complete, valid gzip
        return [(c, int(s), int(e), float(v)) for c, s, e, v in
                (line.split("\t") for line in handle.read().splitlines())]


@pytest.fixture(scope="module")
def multitask_model(tmp_path_factory):
    folder, params = write_model(tmp_path_factory.mktemp("models") / "multi", 2, ["TFA", "TFB"])
    return {"dir": folder, "params": params}


@pytest.mark.parametrize("loader", [{"threads": 2}, {"loader_processes": 2}])
def test_scores_match_loaded_model_in_input_order(tiny_stores, multitask_model, tmp_path, loader):
    from factornet_jax.evaluate import read_predictions
    from factornet_jax.predict import predict_bed
    sizes = {"chr2": 33_333, "chr11": 20_000}
    rows = (ladder("chr2", 0, 1_500) + ladder("chr11", 19_000, 19_801)
            + ladder("chr2", 32_900, 33_134) + [("chr11", 5_003, 5_120)])   # a 117-bp interval
    order = np.random.default_rng(0).permutation(len(rows))
    rows = [rows[i] for i in order]                          # any order is accepted
    bed = write_bed(tmp_path / "bins.bed", rows, header="track name=bins\n# comment\n")
    store = tiny_stores["cell_stores"][1]
    out = tmp_path / "out" / "pred.bedGraph.gz"
    summary = predict_bed(store, multitask_model["dir"], bed, out, tf="TFB", batch_size=BATCH,
                          block_lines=37, **loader)
    # the exclusion zone without a blacklist: the first and last seq_len bp of each chromosome
    excluded = np.array([s < SEQ_LEN or e > sizes[c] - SEQ_LEN for c, s, e in rows])
    expect = oracle(store, multitask_model["dir"], rows, 1, excluded)
    got = read_rows(out)
    assert [r[:3] for r in got] == [tuple(r) for r in rows]
    np.testing.assert_allclose([r[3] for r in got], expect, rtol=5e-6, atol=1e-7)
    assert (expect[~excluded] > 0).all() and (np.array([r[3] for r in got])[excluded] == 0).all()
    assert summary.n_bins == len(rows) and summary.n_excluded == excluded.sum()
    assert summary.n_windows == (~excluded).sum() and summary.tf == "TFB"
    assert summary.batch_size % summary.devices == 0
    parsed = read_predictions(out)                            # the evaluate command's reader
    assert sorted(parsed) == ["chr11", "chr2"]
    assert len(parsed["chr2"]) + len(parsed["chr11"]) == len(rows)
    assert list(out.parent.iterdir()) == [out]                # no temporary file left behind


@pytest.mark.parametrize("loader", [{"threads": 1}, {"loader_processes": 1}])
def test_blocks_without_usable_rows_are_written_in_order(tiny_stores, multitask_model, tmp_path, loader):
    """Blocks whose every interval is excluded (no batch at all) between scored blocks."""
    from factornet_jax.predict import predict_bed
    rows = (ladder("chr2", 0, 200, step=10, width=10) + ladder("chr2", 2_000, 2_000 + 20 * 50)
            + [("chr2", 33_200, 33_300)] * 20 + ladder("chr2", 5_000, 5_000 + 20 * 50))
    bed = write_bed(tmp_path / "bins.bed", rows)
    store = tiny_stores["cell_stores"][1]
    out = tmp_path / "pred.bedGraph.gz"
    summary = predict_bed(store, multitask_model["dir"], bed, out, tf="TFA", batch_size=8,
                          block_lines=20, **loader)
    excluded = np.repeat([True, False, True, False], 20)
    expect = oracle(store, multitask_model["dir"], rows, 0, excluded)
    got = read_rows(out)
    assert [r[:3] for r in got] == [tuple(r) for r in rows]
    np.testing.assert_allclose([r[3] for r in got], expect, rtol=5e-6, atol=1e-7)
    assert summary.n_windows == 40 and summary.n_excluded == 40


def test_blacklist_zero_gencode_flags_and_bigwig(blacklisted_stores, tmp_path):
    import pyBigWig

    from factornet_jax.bed import read_bed
    from factornet_jax.intervals import IntervalSet
    from factornet_jax.labels import gencode_flags
    from factornet_jax.predict import predict_bed
    model_dir, _ = write_model(tmp_path / "gencode", 1, ["TFA"], meta=False, gencode=True)
    rows = ladder("chr2", 8_000, 13_000)
    bed = write_bed(tmp_path / "ladder.bed.gz", rows)
    out, bw = tmp_path / "p.bedGraph.gz", tmp_path / "p.bw"
    summary = predict_bed(blacklisted_stores["store"], model_dir, bed, out, bigwig=bw,
                          batch_size=BATCH)
    starts = np.array([r[1] for r in rows])
    # blacklist [10000, 10500) widened by seq_len on both sides
    excluded = (starts < 10_500 + SEQ_LEN) & (starts + 200 > 10_000 - SEQ_LEN)
    annotations = {name: IntervalSet.from_records(read_bed(path)) for name, path in
                   ((n, blacklisted_stores["annotations"] / f"{n}.bed") for n in
                    ("cpg", "cds", "intron", "promoter", "utr5", "utr3"))}
    flags = gencode_flags(annotations, np.full(len(rows), "chr2"), starts)
    assert 0 < flags.any(axis=1).sum() < len(rows)            # the flags do vary
    expect = oracle(blacklisted_stores["store"], model_dir, rows, 0, excluded, gencode=flags)
    scores = np.array([r[3] for r in read_rows(out)])
    assert excluded.sum() == 21 and (scores[excluded] == 0).all()
    np.testing.assert_allclose(scores, expect, rtol=5e-6, atol=1e-7)
    assert summary.n_excluded == 21
    without_flags = oracle(blacklisted_stores["store"], model_dir, rows, 0, excluded,
                           gencode=np.zeros_like(flags))
    assert np.abs(without_flags - expect)[flags.any(axis=1) & ~excluded].min() > 1e-4
    # bigWig: the central 50 bp of every bin, tiling the ladder
    handle = pyBigWig.open(str(bw))
    entries = handle.intervals("chr2")
    handle.close()
    assert [(s, e) for s, e, _ in entries] == [(r[1] + 75, r[1] + 125) for r in rows]
    np.testing.assert_allclose([v for _, _, v in entries], expect, rtol=5e-6, atol=1e-7)


def test_bigwig_central_spans_of_uneven_sorted_intervals(tiny_stores, multitask_model, tmp_path):
    """Overlapping central spans are cut to start after the previous entry."""
    import pyBigWig

    from factornet_jax.predict import predict_bed
    rows = [("chr2", 1_000, 1_200), ("chr2", 1_000, 1_400), ("chr2", 1_010, 1_030),
            ("chr2", 5_000, 5_030), ("chr11", 700, 900)]
    bed = write_bed(tmp_path / "b.bed", rows)
    out, bw = tmp_path / "p.bedGraph.gz", tmp_path / "p.bw"
    predict_bed(tiny_stores["cell_stores"][0], multitask_model["dir"], bed, out, tf="TFA",
                bigwig=bw, batch_size=BATCH)
    scores = [r[3] for r in read_rows(out)]
    handle = pyBigWig.open(str(bw))
    assert list(handle.chroms()) == ["chr2", "chr11", "chr1"]   # the BED's order first
    got = handle.intervals("chr2") + handle.intervals("chr11")
    handle.close()
    # spans [1075,1125), [1175,1225), [1010,1030)->dropped, [5000,5030), [775,825)
    assert [(s, e) for s, e, _ in got] == [(1075, 1125), (1175, 1225), (5000, 5030), (775, 825)]
    np.testing.assert_allclose([v for _, _, v in got], [scores[i] for i in (0, 1, 3, 4)], rtol=5e-6)


def test_cli_runs_and_refuses_existing_output(tiny_stores, multitask_model, tmp_path, capsys):
    from factornet_jax.cli import build_parser, run_command
    bed = write_bed(tmp_path / "b.bed", ladder("chr1", 1_000, 2_000))
    out = tmp_path / "p.bedGraph.gz"
    argv = ["predict", "-i", str(tiny_stores["cell_stores"][0]), "-m",
            str(multitask_model["dir"]), "-f", "TFA", "-b", str(bed), "-o", str(out),
            "--batch", str(BATCH)]
    parser = build_parser(only=("predict",))
    assert run_command(parser, argv) == 0
    assert "windows/s" in capsys.readouterr().out
    first = out.read_bytes()
    assert run_command(parser, argv) == 2                    # exists, no -oc
    assert f"use -oc {out}" in capsys.readouterr().err
    argv_oc = [("-oc" if a == "-o" else a) for a in argv]
    assert run_command(parser, argv_oc) == 0
    assert out.read_bytes() == first                         # deterministic bytes (mtime 0)
    # a cell folder resolves to the store built into --stores
    argv_folder = argv_oc[:2] + [str(tiny_stores["cells"][0]), "--stores", str(tiny_stores["dir"])] \
        + argv_oc[3:]
    assert run_command(parser, argv_folder) == 0
    assert out.read_bytes() == first


def test_multitask_model_needs_a_tf(tiny_stores, multitask_model, tmp_path):
    from factornet_jax.predict import predict_bed
    bed = write_bed(tmp_path / "b.bed", ladder("chr1", 1_000, 1_100))
    store = tiny_stores["cell_stores"][0]
    with pytest.raises(ConfigError, match="-f.*TFA, TFB"):
        predict_bed(store, multitask_model["dir"], bed, tmp_path / "o.gz")
    with pytest.raises(ConfigError, match="-f CTCF: not a TF.*TFA, TFB"):
        predict_bed(store, multitask_model["dir"], bed, tmp_path / "o.gz", tf="CTCF")
    assert not list(tmp_path.glob("*o.gz*"))


def test_mismatched_tracks_and_meta_name_both_lists(tiny_stores, multitask_model, tmp_path):
    from factornet_jax.predict import predict_bed
    bed = write_bed(tmp_path / "b.bed", ladder("chr1", 1_000, 1_100))
    store = tiny_stores["cell_stores"][0]
    swapped, _ = write_model(tmp_path / "swapped", 2, ["TFA", "TFB"],
                             params=multitask_model["params"], track_names=("DGF", "Unique35"))
    with pytest.raises(FactorNetError, match=r"\['Unique35', 'DGF'\].*\['DGF', 'Unique35'\]"):
        predict_bed(store, swapped, bed, tmp_path / "o.gz", tf="TFA")
    other_meta, _ = write_model(tmp_path / "meta", 2, ["TFA", "TFB"],
                                params=multitask_model["params"], meta_names=("PC1", "PC2", "PC3"))
    with pytest.raises(FactorNetError, match=r"meta.*GEPC1.*PC1', 'PC2', 'PC3'\]"):
        predict_bed(store, other_meta, bed, tmp_path / "o.gz", tf="TFA")


def test_gencode_model_needs_genome_annotations(tiny_stores, tmp_path):
    from factornet_jax.predict import predict_bed
    model_dir, _ = write_model(tmp_path / "g", 1, ["TFA"], meta=False, gencode=True)
    bed = write_bed(tmp_path / "b.bed", ladder("chr1", 1_000, 1_100))
    with pytest.raises(FactorNetError, match="GENCODE.*--annotations"):
        predict_bed(tiny_stores["cell_stores"][0], model_dir, bed, tmp_path / "o.gz")


@pytest.mark.parametrize("rows, line, pattern", [
    ([("chr1", 0, 200), ("chrX", 0, 200)], 4, "chrX.*not in the cell store"),
    ([("chr1", 0, 200), ("1", 0, 200)], 4, "names it 'chr1'"),
    ([("chr2", 33_200, 33_400)], 3, "past the end of chr2"),
    ([("chr1", 500, 300)], 3, "end 300 is not after start 500"),
    ([("chr1", "x", 300)], 3, "column 2 is not an integer"),
])
def test_bad_bed_lines_are_named(tiny_stores, multitask_model, tmp_path, rows, line, pattern):
    from factornet_jax.predict import predict_bed
    bed = write_bed(tmp_path / "b.bed.gz", rows, header="# header\n\n")
    with pytest.raises(InputFileError, match=pattern) as err:
        predict_bed(tiny_stores["cell_stores"][0], multitask_model["dir"], bed,
                    tmp_path / "o.gz", tf="TFA")
    assert f"b.bed.gz:{line}:" in str(err.value)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["b.bed.gz"]


def test_bigwig_needs_sorted_bed(tiny_stores, multitask_model, tmp_path):
    from factornet_jax.predict import predict_bed
    store, model = tiny_stores["cell_stores"][0], multitask_model["dir"]
    cases = {"down.bed": [("chr1", 1_000, 1_200), ("chr1", 900, 1_100)],
             "back.bed": [("chr1", 1_000, 1_200), ("chr2", 900, 1_100), ("chr1", 2_000, 2_200)]}
    for name, rows in cases.items():
        bed = write_bed(tmp_path / name, rows)
        with pytest.raises(InputFileError, match=f"{name}:(2|3): --bigwig needs a BED sorted"):
            predict_bed(store, model, bed, tmp_path / "o.gz", tf="TFA", bigwig=tmp_path / "o.bw")
    assert not list(tmp_path.glob("*o.*"))


def test_iter_bed_blocks_streams_gzip_with_line_numbers(tmp_path):
    from factornet_jax.bed import iter_bed_blocks
    rows = ladder("chr1", 0, 5_000)
    bed = write_bed(tmp_path / "b.bed.gz", rows, header="browser x\n")
    blocks = list(iter_bed_blocks(bed, block_lines=7))
    assert max(len(b) for b in blocks) <= 7
    assert np.concatenate([b.starts for b in blocks]).tolist() == [r[1] for r in rows]
    assert np.concatenate([b.lines for b in blocks]).tolist() == list(range(2, len(rows) + 2))
    truncated = tmp_path / "t.bed.gz"
    truncated.write_bytes(bed.read_bytes()[:-20])
    with pytest.raises(InputFileError, match="truncated or corrupt gzip"):
        list(iter_bed_blocks(truncated))
    with pytest.raises(InputFileError, match="file not found"):
        list(iter_bed_blocks(tmp_path / "missing.bed"))


def test_blocks_without_usable_rows_keep_their_place(tiny_stores, multitask_model, tmp_path):
    from factornet_jax.predict import predict_bed
    rows = (ladder("chr1", 0, 150) + ladder("chr1", 1_000, 1_300)
            + ladder("chr1", 49_650, 49_801) + ladder("chr11", 5_000, 5_100))
    bed = write_bed(tmp_path / "b.bed", rows)
    out = tmp_path / "p.bedGraph.gz"
    summary = predict_bed(tiny_stores["cell_stores"][0], multitask_model["dir"], bed, out,
                          tf="TFA", batch_size=4, block_lines=3)
    got = read_rows(out)
    assert [r[:3] for r in got] == rows
    scores = np.array([r[3] for r in got])
    # first 3 and the 4 at chr1's end are in the exclusion zone (first / last 200 bp)
    assert (scores[:3] == 0).all() and (scores[9:13] == 0).all()
    assert (scores[3:9] > 0).all() and (scores[13:] > 0).all()
    assert summary.n_excluded == 7 and summary.batch_size == 4


@pytest.mark.skipif(not (SHARED_DATA / "resources").is_dir(), reason="../shared data absent")
def test_scan_reads_the_dream_ladder_format():
    from factornet_jax.bed import read_chrom_sizes
    from factornet_jax.bed import scan_bed
    resources = SHARED_DATA / "resources"
    sizes = read_chrom_sizes(resources / "hg19.autoX.chrom.sizes")
    scan = scan_bed(resources / "sample_ladder_regions.blacklistfiltered.bed.gz", sizes,
                    need_sorted=True)
    assert scan.n_bins == 100_000 and scan.chrom_order == ["chr1"] and scan.sorted_runs


# ---------------------------------------------------------------- ensembles

def test_ensemble_is_the_mean_of_separate_runs_with_a_std_track(tiny_stores, multitask_model, tmp_path):
    import pyBigWig

    from factornet_jax.predict import format_summary, predict_bed
    store = tiny_stores["cell_stores"][0]
    second, _ = write_model(tmp_path / "second", 1, ["TFB"], meta=False)
    rows = ladder("chr1", 300, 9_000) + [("chr1", 20_000, 20_200), ("chr2", 5_000, 5_200)]
    bed = write_bed(tmp_path / "bins.bed", rows)
    single = []
    for i, model in enumerate((multitask_model["dir"], second)):
        predict_bed(store, model, bed, tmp_path / f"one{i}.bedGraph.gz", tf="TFB", batch_size=BATCH)
        single.append(np.array([r[3] for r in read_rows(tmp_path / f"one{i}.bedGraph.gz")]))
    out, std = tmp_path / "ens.bedGraph.gz", tmp_path / "ens.std.bw"
    summary = predict_bed(store, [multitask_model["dir"], second], bed, out, tf="TFB",
                          std_bigwig=std, batch_size=BATCH)
    assert summary.n_models == 2 and "mean of 2 models" in format_summary(summary)
    got = np.array([r[3] for r in read_rows(out)])
    assert np.abs(single[0] - single[1]).max() > 0.01
    np.testing.assert_allclose(got, (single[0] + single[1]) / 2, rtol=1e-5, atol=1e-6)
    handle = pyBigWig.open(str(std))
    values = [v for _, _, v in handle.intervals("chr1")] + [v for _, _, v in handle.intervals("chr2")]
    handle.close()
    np.testing.assert_allclose(values, np.abs(single[0] - single[1]) / 2, rtol=1e-4, atol=1e-6)
    # -oc recognises the std track as ours; a plain -o refuses it
    predict_bed(store, [multitask_model["dir"], second], bed, out, tf="TFB", std_bigwig=std,
                batch_size=BATCH, overwrite=True)
    with pytest.raises(FactorNetError, match="exists"):
        predict_bed(store, [multitask_model["dir"], second], bed, tmp_path / "new.bedGraph.gz",
                    tf="TFB", std_bigwig=std, batch_size=BATCH)


def test_ensemble_errors(tiny_stores, multitask_model, tmp_path):
    from factornet_jax.predict import predict_bed
    store = tiny_stores["cell_stores"][0]
    bed = write_bed(tmp_path / "bins.bed", ladder("chr1", 300, 2_000))
    other, _ = write_model(tmp_path / "other", 1, ["TFC"], meta=False)
    with pytest.raises(ConfigError, match="--std-bigwig: the spread of an ensemble needs two"):
        predict_bed(store, [multitask_model["dir"]], bed, tmp_path / "a.gz", tf="TFA",
                    std_bigwig=tmp_path / "s.bw")
    single, _ = write_model(tmp_path / "single", 1, ["TFA"], meta=False)
    with pytest.raises(ConfigError, match=r"-m: the models predict different TFs \(TFA, TFC\)"):
        predict_bed(store, [single, other], bed, tmp_path / "b.gz")
    assert not list(tmp_path.glob("*.gz.*")) and not (tmp_path / "b.gz").exists()

"""`factornet visualize` and motif matching: planted motifs, hand-set kernels, golden values."""
import os
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from conftest import make_cell_dir, write_fasta
from factornet_jax import modeldir
from factornet_jax.errors import FactorNetError
from factornet_jax.meme import Motif, read_meme, reverse_complement, write_meme
from factornet_jax.motif_match import match_motifs

CONSENSUS = "GATTACAGGC"          # not palindromic: its reverse complement is GCCTGTAATC
PLANT_AT = 25                     # motif start inside each 60 bp window
SEQ_LEN, WIDTH = 60, 14
MOTIF_OFFSET = (WIDTH + 1) // 2 - (len(CONSENSUS) + 1) // 2    # model.motif_offset (FactorNet's centring)
N_WINDOWS = 30
TRACKS = ("DGF_fwd", "DGF_rev")


def sharp_pwm(consensus, p=0.94):
    pwm = np.full((len(consensus), 4), (1 - p) / 3)
    pwm[np.arange(len(consensus)), ["ACGT".index(c) for c in consensus]] = p
    return pwm


def random_motifs(rng, n, prefix="DECOY"):
    return [Motif(f"{prefix}{i}", f"alt{i}", rng.dirichlet(np.full(4, 0.4), int(rng.integers(6, 17))))
            for i in range(n)]


# ------------------------------------------------------------------ motif matching (TOMTOM)

def test_planted_motif_found_at_its_offset_on_both_strands():
    rng = np.random.default_rng(0)
    database = random_motifs(rng, 40)
    target = database[17]
    query = rng.dirichlet(np.full(4, 2.0), 26)          # weak flanks
    query[7:7 + target.width] = target.pwm
    best = match_motifs([query], database)[0]
    assert [m.rank for m in best] == [1, 2, 3]
    assert (best[0].motif, best[0].alt_name, best[0].strand, best[0].offset) == ("DECOY17", "alt17", "+", 7)
    assert best[0].overlap == target.width and best[0].index == 17
    assert best[0].p_value < 1e-10 and best[0].q_value < 1e-8 and best[1].p_value > 1e-4
    assert best[0].p_value <= best[1].p_value <= best[2].p_value
    # the reverse complement of the query holds the motif's reverse complement at 26 - 7 - w
    best_rc = match_motifs([reverse_complement(query)], database)[0][0]
    assert (best_rc.motif, best_rc.strand, best_rc.offset) == ("DECOY17", "-", 26 - 7 - target.width)


def test_motif_hanging_off_the_query_end_is_found_with_negative_offset():
    rng = np.random.default_rng(1)
    target = Motif("T", None, rng.dirichlet(np.full(4, 0.3), 12))
    database = random_motifs(rng, 30) + [target]          # >= 25 targets: a usable null
    query = np.vstack([target.pwm[4:], rng.dirichlet(np.full(4, 2.0), 10)])   # columns 4.. of T first
    best = match_motifs([query], database, top=1)[0][0]
    assert (best.motif, best.offset, best.overlap, best.strand) == ("T", -4, 8, "+")
    assert best.alt_name is None and best.p_value < 1e-4


@settings(max_examples=25, deadline=None)
@given(p=st.lists(st.floats(0.0, 1.0), min_size=1, max_size=30))
def test_q_values_are_benjamini_hochberg(p):
    """Against the textbook definition: q_i = min over j with p_j >= p_i of p_j * n / rank_j."""
    from factornet_jax.motif_match import benjamini_hochberg
    p = np.array(p)
    n = len(p)
    ranks = np.array([(p <= v).sum() for v in p])            # the largest rank among ties
    expect = [min(1.0, min(p[j] * n / ranks[j] for j in range(n) if p[j] >= p[i])) for i in range(n)]
    np.testing.assert_allclose(benjamini_hochberg(p), expect, rtol=1e-12)


def test_matching_without_memelite_names_the_extra(monkeypatch):
    import sys

    from factornet_jax.errors import ConfigError
    monkeypatch.setitem(sys.modules, "memelite", None)
    with pytest.raises(ConfigError, match=r"install factornet-jax\[motifs\]"):
        match_motifs([np.full((6, 4), 0.25)], random_motifs(np.random.default_rng(0), 2))


# ------------------------------------------------------------------ a store with a planted motif

def model_config():
    from factornet_jax.model import ModelConfig
    return ModelConfig(seq_len=SEQ_LEN, track_names=TRACKS, num_tasks=1, kernels=4, kernel_width=WIDTH,
                       recurrent=0, dense=4)


def hand_set_params():
    """Kernel 0: the planted motif (exact matches only), 1: its reverse complement,
    2: never positive, 3: random with a positive bias (positive on every window).
    Position-dense: identity, kernel 3 never positive."""
    import jax
    from factornet_jax.model import abstract_params, inject_motif
    cfg = model_config()
    rng = np.random.default_rng(3)
    params = jax.tree_util.tree_map(lambda s: (0.5 * rng.normal(size=s.shape)).astype(np.float32),
                                    abstract_params(cfg))
    params = inject_motif(params, sharp_pwm(CONSENSUS))
    # activation of the consensus, no bias: the sum of the best log-odds of each motif row
    exact = float(np.asarray(params["conv"]["kernel"])[:, :4, 0].max(axis=1).sum())
    params["conv"]["bias"] = np.array([0.5 - exact, 0.5 - exact, -1e3, 0.5], np.float32)
    params["position_dense"] = {"kernel": np.eye(4, dtype=np.float32),
                                "bias": np.array([0, 0, 0, -1e3], np.float32)}
    return params


@pytest.fixture(scope="module")
def planted(tmp_path_factory):
    from factornet_jax.build import BuildRequest, build_stores
    root = tmp_path_factory.mktemp("visualize")
    rng = np.random.default_rng(11)
    sizes = {"chr1": 3000, "chr11": 6000}
    seqs = {c: np.array(list("ACGT"))[rng.integers(0, 4, n)] for c, n in sizes.items()}
    window_starts = 100 + 150 * np.arange(N_WINDOWS)
    for start in window_starts:
        seqs["chr11"][start + PLANT_AT: start + PLANT_AT + len(CONSENSUS)] = list(CONSENSUS)
    write_fasta(root / "genome.fa", {c: "".join(s) for c, s in seqs.items()})
    cell = make_cell_dir(root, "Cell", sizes, seed=5, tfs=("TFA",), tracks=TRACKS, meta=False)
    build_stores(BuildRequest(cell_dirs=(str(cell),), genome=str(root / "genome.fa"),
                              stores_dir=str(root / "stores"), chunk_bases=1024))
    # intervals [w + 10, w + 50): midpoint w + 30, window [w, w + 60); two run off chr11, one elsewhere
    bed = root / "sites.bed"
    lines = [f"chr11\t{s + 10}\t{s + 50}\n" for s in window_starts[::-1]]
    lines += ["chr11\t5980\t5990\n", "chr11\t0\t10\n", "chr1\t500\t540\n"]
    bed.write_text("".join(lines))
    cfg = model_config()
    model = root / "model"
    modeldir.write_config(model, modeldir.make_config(cfg, ["TFA"], cfg.track_names))
    modeldir.save_params(model / "best.npz", hand_set_params())
    database = root / "db.meme"
    write_meme(database, random_motifs(np.random.default_rng(2), 30)[:15]
               + [Motif("PLANTED", "GATTACA", sharp_pwm(CONSENSUS))]
               + random_motifs(np.random.default_rng(4), 15, prefix="OTHER"))
    return {"root": root, "store": root / "stores" / "Cell.zarr", "bed": bed, "model": model,
            "db": database, "window_starts": window_starts}


@pytest.fixture(scope="module")
def result(planted):
    from factornet_jax.visualize import visualize
    out = planted["root"] / "out"
    summary = visualize(planted["store"], planted["model"], planted["bed"], out, motif_db=planted["db"],
                        batch_size=8)                  # 30 windows: 3 full batches + 1 padded
    return summary, out


def test_layers_match_the_model_intermediates(planted):
    """The jitted first layers equal the model's own conv / position_dense outputs (both strands)."""
    import jax
    from factornet_jax.model import FactorNet
    from factornet_jax.reader import open_cell_store
    from factornet_jax.visualize import layer_activations, strand_inputs
    cfg, params = model_config(), hand_set_params()
    store = open_cell_store(planted["store"])
    onehot, signal = store.fetch_batch(["chr11"] * 3, planted["window_starts"][:3], SEQ_LEN)
    signal = signal * np.array([1.0, 3.0], np.float32)           # make _fwd and _rev differ
    _, state = FactorNet(cfg).apply({"params": params}, onehot, signal, capture_intermediates=True,
                                    mutable=["intermediates"])
    conv_model = state["intermediates"]["conv"]["__call__"][0]
    dense_model = state["intermediates"]["position_dense"]["__call__"][0]
    conv, dense = layer_activations(cfg, params, strand_inputs(cfg, onehot, signal))
    # visualize stacks [forward rows; reverse rows]; the model may order its 2N rows otherwise
    conv_model, dense_model = np.asarray(jax.nn.relu(conv_model)), np.asarray(jax.nn.relu(dense_model))
    distance = np.abs(np.asarray(conv)[:, None] - conv_model[None]).max(axis=(2, 3))   # (2N, 2N)
    rows = distance.argmin(axis=1)
    assert sorted(rows) == list(range(6))
    np.testing.assert_allclose(conv, conv_model[rows], rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(dense, dense_model[rows], rtol=1e-5, atol=1e-5)


def test_summary_counts_windows_sites_and_skipped_kernels(result):
    summary, out = result
    assert (summary.n_intervals, summary.n_windows, summary.n_off_chrom) == (N_WINDOWS + 2, N_WINDOWS, 2)
    # kernel 0 fires on the forward strand of every window, 1 on the reverse, 2 never,
    # 3 (positive bias) on both strands of every window, padding rows never
    assert summary.nsites == (N_WINDOWS, N_WINDOWS, 0, 2 * N_WINDOWS)
    assert summary.nsites2 == (N_WINDOWS, N_WINDOWS, 0, 0)
    assert summary.skipped == (2,) and summary.skipped2 == (2, 3)
    line = summary.line()
    assert "\n" not in line and "skipped, never positive: 2" in line and "2 off the chromosome" in line
    assert not Path(str(out) + ".partial").exists()


def test_learned_motifs_round_trip_through_meme(result):
    _, out = result
    onehot = np.eye(4)[["ACGT".index(c) for c in CONSENSUS]]
    for name in ("motifs.txt", "motifs2.txt"):
        motifs = {m.name: m for m in read_meme(out / name)}
        expected = ["kernel_0", "kernel_1", "kernel_3"] if name == "motifs.txt" else ["kernel_0", "kernel_1"]
        assert sorted(motifs) == expected
        k0, k1 = motifs["kernel_0"], motifs["kernel_1"]
        assert k0.pwm.shape == (WIDTH, 4) and k0.nsites == N_WINDOWS
        np.testing.assert_allclose(k0.pwm.sum(axis=1), 1.0, atol=1e-5)
        # the motif columns are exactly the consensus; kernel 1 saw the reverse strand
        np.testing.assert_allclose(k0.pwm[MOTIF_OFFSET:MOTIF_OFFSET + len(CONSENSUS)], onehot, atol=1e-6)
        np.testing.assert_allclose(k1.pwm, reverse_complement(k0.pwm), atol=1e-6)
    assert read_meme(out / "motifs.txt")[2].nsites == 2 * N_WINDOWS


def test_mean_signal_equals_signal_under_planted_sites(result, planted):
    from factornet_jax.reader import open_cell_store
    _, out = result
    store = open_cell_store(planted["store"])
    site = PLANT_AT - MOTIF_OFFSET
    under = np.stack([store.fetch("chr11", s + site, s + site + WIDTH)[1] for s in planted["window_starts"]])
    expected = under.mean(axis=0)                                   # (w, 2) forward strand
    for suffix in ("", "2"):
        fwd = np.load(out / f"DGF_fwd_meansignal{suffix}.npy", allow_pickle=False)
        rev = np.load(out / f"DGF_rev_meansignal{suffix}.npy", allow_pickle=False)
        assert fwd.shape == (4, WIDTH) and fwd.dtype == np.float32
        np.testing.assert_allclose(fwd[0], expected[:, 0], rtol=1e-5)
        np.testing.assert_allclose(rev[0], expected[:, 1], rtol=1e-5)
        # kernel 1's sites are on the reverse strand: time reversed, _fwd and _rev swapped
        np.testing.assert_allclose(fwd[1], expected[::-1, 1], rtol=1e-5)
        np.testing.assert_allclose(rev[1], expected[::-1, 0], rtol=1e-5)
        assert np.isnan(fwd[2]).all()                                # no sites
    assert np.isnan(np.load(out / "DGF_fwd_meansignal2.npy")[3]).all()


def read_matches(path):
    header, *rows = [line.rstrip("\n").split("\t") for line in open(path)]
    return header, [dict(zip(header, row)) for row in rows]


def test_planted_kernel_matches_planted_database_motif(result):
    _, out = result
    header, rows = read_matches(out / "matches.tsv")
    assert header == ["kernel", "layer", "rank", "motif", "alt_name", "p_value", "q_value", "offset", "strand",
                      "overlap"]
    top = {(r["layer"], r["kernel"]): r for r in rows if r["rank"] == "1"}
    assert sorted(top) == [("conv", "0"), ("conv", "1"), ("conv", "3"),
                           ("position_dense", "0"), ("position_dense", "1")]
    for layer in ("conv", "position_dense"):
        for kernel, strand in (("0", "+"), ("1", "-")):
            row = top[layer, kernel]
            assert (row["motif"], row["alt_name"], row["strand"]) == ("PLANTED", "GATTACA", strand)
            assert (int(row["offset"]), int(row["overlap"])) == (MOTIF_OFFSET, len(CONSENSUS))
            assert float(row["p_value"]) < 1e-4 and float(row["q_value"]) < 0.05
    assert len(rows) == 5 * 3


def test_logos_are_png_files_with_ink(result):
    from matplotlib.image import imread
    _, out = result
    names = sorted(p.name for p in (out / "logos").iterdir())
    assert names == ["conv_0.png", "conv_1.png", "conv_3.png", "position_dense_0.png", "position_dense_1.png"]
    for path in [out / "logos" / n for n in names] + [out / "overview.png", out / "overview2.png"]:
        assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        image = imread(path)
        assert image.ndim == 3 and (image[..., :3] < 0.5).any()      # not blank
    # the consensus letters of kernel 0 are drawn in their colours (green A, red T, orange G, blue C)
    logo = imread(out / "logos" / "conv_0.png")[..., :3]
    for colour in ("#109648", "#255C99", "#F7B32B", "#D62839"):
        rgb = np.array([int(colour[i:i + 2], 16) / 255 for i in (1, 3, 5)])
        assert (np.abs(logo - rgb).max(axis=-1) < 0.05).sum() > 50


def test_logo_stack_heights_are_information_content():
    from factornet_jax.visualize import logo_stack
    pwm = np.array([[1, 0, 0, 0], [0.25] * 4, [0.5, 0.5, 0, 0], [0.1, 0.2, 0.3, 0.4]])
    order, bottoms, heights = logo_stack(pwm)
    np.testing.assert_allclose(heights.sum(axis=1), [2.0, 0.0, 1.0, 2 + (pwm[3] * np.log2(pwm[3])).sum()])
    assert order[0, -1] == 0 and heights[0, -1] == pytest.approx(2.0)       # A on top, 2 bits
    assert list(order[3]) == [0, 1, 2, 3]                                    # smallest at the bottom
    np.testing.assert_allclose(bottoms[:, 1:], np.cumsum(heights, axis=1)[:, :-1])


def test_cli_refuses_existing_output_and_overwrites_with_oc(result, planted, capsys):
    from factornet_jax.cli import build_parser, run_command
    _, out = result
    argv = ["visualize", "-i", str(planted["store"]), "-m", str(planted["model"]), "-b", str(planted["bed"]),
            "-c", "chr11", "--motif-db", str(planted["db"]), "--batch", "8"]
    before = (out / "matches.tsv").read_bytes()
    assert run_command(build_parser(), argv + ["-o", str(out)]) == 2
    assert f"visualize folder exists; use -oc {out}" in capsys.readouterr().err
    (out / "stale.txt").write_text("the user's")      # a file we did not write: -oc keeps it
    assert run_command(build_parser(), argv + ["-oc", str(out)]) == 2
    assert f"holds {out / 'stale.txt'}" in capsys.readouterr().err
    (out / "stale.txt").unlink()
    assert run_command(build_parser(), argv + ["-oc", str(out)]) == 0
    assert capsys.readouterr().out.startswith("visualize: 30 windows on chr11")
    assert (out / "matches.tsv").read_bytes() == before
    assert sorted(p.name for p in out.parent.iterdir() if p.name.startswith(("out", ".out"))) == ["out"]


def test_default_database_is_used_when_none_given(planted, tmp_path):
    from factornet_jax.reference_files import default_motif_db
    from factornet_jax.visualize import visualize
    default = str(default_motif_db())
    summary = visualize(planted["store"], planted["model"], planted["bed"], tmp_path / "v", batch_size=8)
    assert summary.motif_db == default
    names = {m.name for m in read_meme(default)}
    _, rows = read_matches(tmp_path / "v" / "matches.tsv")
    assert len(rows) == 5 * 3 and {r["motif"] for r in rows} <= names


@pytest.mark.parametrize("change, message", [
    (dict(chrom="chr7"), "chromosome 'chr7' is not in the cell store"),
    (dict(chrom="chr1", bed="other"), "no intervals on chr1"),
    (dict(batch_size=0), "--batch 0"),
])
def test_user_errors_are_one_line(planted, tmp_path, change, message):
    from factornet_jax.visualize import visualize
    bed = planted["bed"]
    if change.pop("bed", None):
        bed = tmp_path / "other.bed"
        bed.write_text("chr11\t100\t200\n")
    with pytest.raises(FactorNetError, match=message):
        visualize(planted["store"], planted["model"], bed, tmp_path / "v", **change)
    assert not (tmp_path / "v").exists() and not (tmp_path / "v.partial").exists()


def test_track_names_must_match_the_model(planted, tmp_path):
    from factornet_jax.model import ModelConfig
    from factornet_jax.visualize import visualize
    cfg = ModelConfig(seq_len=SEQ_LEN, track_names=("DNase",), kernels=4, kernel_width=WIDTH, recurrent=0, dense=4)
    model = tmp_path / "model"
    modeldir.write_config(model, modeldir.make_config(cfg, ["TFA"], cfg.track_names))
    import jax
    from factornet_jax.model import abstract_params
    modeldir.save_params(model / "best.npz", jax.tree_util.tree_map(
        lambda s: np.zeros(s.shape, np.float32), abstract_params(cfg)))
    with pytest.raises(FactorNetError, match="track names"):
        visualize(planted["store"], model, planted["bed"], tmp_path / "v")


# ------------------------------------------------------------------ slow: a trained model

@pytest.mark.skipif(os.environ.get("FACTORNET_SLOW") != "1", reason="slow: set FACTORNET_SLOW=1")
def test_trained_kernel_matches_the_simulated_tf_motif(tmp_path):
    from factornet_jax.build import BuildRequest, build_stores
    from factornet_jax.train_config import TrainConfig
    from factornet_jax.meme import find_motif
    from factornet_jax.simulate import SimulationConfig, simulate
    from factornet_jax.training import train_and_evaluate
    from factornet_jax.visualize import visualize

    sim = simulate(tmp_path / "sim", SimulationConfig(seed=3, genome_mb=12.0, cells=("CellA",), tfs=("CTCF",),
                                                      cofactors=(("CTCF", "ZNF143"),)))
    cell = sim.cells["CellA"]
    build_stores(BuildRequest(cell_dirs=(str(cell.folder),), genome=str(sim.fasta),
                              stores_dir=str(tmp_path / "stores")))
    store = tmp_path / "stores" / "CellA.zarr"
    # global max-pool (-r -1) at lr 0.003 learns CTCF in ~25 s on 2 CPU cores (valid loss ~0.10)
    config = TrainConfig(inputs=(str(store),), output=str(tmp_path / "model"), epochs=60, patience=60,
                         learning_rate=0.003, seq_len=200, kernel_width=20, kernels=16, recurrent=-1,
                         dense=32, factor="CTCF", seed=1)
    train_and_evaluate(config, log=lambda *a, **k: None)
    summary = visualize(store, tmp_path / "model", cell.conservative["CTCF"], tmp_path / "vis",
                        chrom="chr1", motif_db=sim.motifs)
    _, rows = read_matches(tmp_path / "vis" / "matches.tsv")
    ctcf = find_motif(read_meme(sim.motifs), "CTCF").name
    assert any(r["motif"] == ctcf and r["rank"] == "1" and float(r["q_value"]) < 0.05 and int(r["overlap"]) >= 10
               for r in rows), summary.line()

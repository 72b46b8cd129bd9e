"""`factornet explain` and factornet_jax.contributions: ISM against brute force, gradients against
finite differences, IG completeness, occlusion by hand, the dinucleotide shuffle, the output
folder (zarr, TSV, bigWigs, PNGs) and the one-line user errors."""
from pathlib import Path

import numpy as np
import pytest

from factornet_jax.errors import ConfigError, FactorNetError, InputFileError

TRACKS = ("Unique35", "DGF")
META = ("GEPC1", "GEPC2", "GEPC3")
SEQ_LEN = 120
BATCH = 64


def write_model(folder, tfs=("TFA", "TFB"), track_names=TRACKS, scale=0.3, seed=0, gencode=False):
    """A tiny meta (+ GENCODE) model dir with random weights (no init compilation); its path."""
    import jax

    from factornet_jax import modeldir
    from factornet_jax.model import ModelConfig, abstract_params
    cfg = ModelConfig(seq_len=SEQ_LEN, track_names=track_names, num_tasks=len(tfs),
                      num_meta=len(META), use_gencode=gencode, kernels=4, kernel_width=8,
                      recurrent=4, dense=8)
    rng = np.random.default_rng(seed)
    params = jax.tree_util.tree_map(lambda leaf: rng.normal(0, scale, leaf.shape).astype(np.float32),
                                    abstract_params(cfg))
    folder = Path(folder)
    folder.mkdir(parents=True)
    modeldir.write_config(folder, modeldir.make_config(cfg, list(tfs), track_names, META,
                                                       ["bigwig", "meta"] + ["gencode"] * gencode))
    modeldir.save_params(folder / "best.npz", params)
    return folder


@pytest.fixture(scope="module")
def setup(tiny_stores, tmp_path_factory):
    """The model, and windows of the tiny store (one holding N bases)."""
    from factornet_jax.modeldir import load_model
    from factornet_jax.reader import open_cell_store
    model_dir = write_model(tmp_path_factory.mktemp("explain_models") / "m")
    model = load_model(model_dir)
    store = open_cell_store(tiny_stores["cell_stores"][0])
    chroms = np.array(["chr1", "chr2", "chr11"])
    starts = np.array([60, 5_000, 12_345])          # chr1 [100, 250) is N: window 0 has some
    onehot, signal = store.fetch_batch(chroms, starts, SEQ_LEN)
    meta = np.tile(store.meta_values, (3, 1)).astype(np.float32)
    assert (onehot[0].sum(axis=1) == 0).any()
    return {"model": model, "model_dir": model_dir, "store": store, "onehot": onehot,
            "signal": signal, "meta": meta, "tiny": tiny_stores}


def test_score_is_the_logit_of_predict(setup):
    from factornet_jax.contributions import score
    m, x, s, meta = setup["model"], setup["onehot"], setup["signal"], setup["meta"]
    f = score(m, x, s, meta, task=1, batch_size=BATCH)
    np.testing.assert_allclose(1 / (1 + np.exp(-f)), m.predict(x, s, meta, batch_size=BATCH)[:, 1],
                               rtol=1e-5, atol=1e-7)


def test_ism_equals_brute_force(setup):
    """Mutate every position to every base by hand, predict, subtract: ISM is exact."""
    from factornet_jax.contributions import ism, score
    m, x, s, meta = setup["model"], setup["onehot"], setup["signal"], setup["meta"]
    got = ism(m, x[:2], s[:2], meta[:2], task=1, batch_size=BATCH)
    assert got.shape == (2, SEQ_LEN, 4) and got.dtype == np.float32
    reference = score(m, x[:2], s[:2], meta[:2], task=1, batch_size=BATCH)
    for w in range(2):
        mutants = np.repeat(x[w:w + 1], SEQ_LEN * 4, axis=0)
        pos, base = np.divmod(np.arange(SEQ_LEN * 4), 4)
        mutants[np.arange(len(pos)), pos] = 0
        mutants[np.arange(len(pos)), pos, base] = 1
        f = score(m, mutants, np.repeat(s[w:w + 1], len(pos), 0), np.repeat(meta[w:w + 1], len(pos), 0),
                  task=1, batch_size=BATCH)
        brute = (f - reference[w]).reshape(SEQ_LEN, 4)
        brute[x[w] > 0] = 0.0                            # the reference base itself
        np.testing.assert_allclose(got[w], brute, rtol=0, atol=1e-6)
        assert np.abs(got[w]).max() > 1e-3              # not trivially zero
    n_pos = x[0].sum(axis=1) == 0
    assert (got[0][n_pos] != 0).all()                    # an N position: all four bases tried
    assert (got[1][x[1] > 0] == 0).all()


def test_mutation_plan_has_three_per_base_and_four_per_n():
    from factornet_jax.contributions import mutation_plan
    x = np.eye(4, dtype=np.uint8)[[0, 1, 2, 3, 0]][None].copy()
    x[0, 2] = 0
    window, position, base = mutation_plan(x)
    assert np.bincount(position).tolist() == [3, 3, 4, 3, 3]
    assert not (x[0, position, base] > 0).any()


def test_gradients_equal_finite_differences(setup):
    from factornet_jax.contributions import gradients, score
    m, x, s, meta = setup["model"], setup["onehot"].astype(np.float32), setup["signal"], setup["meta"]
    g = gradients(m, x, s, meta, task=0, batch_size=BATCH)
    eps = 1e-2

    def central(name, index):
        parts = {"x": x, "s": s, "meta": meta}
        values = []
        for sign in (1, -1):
            moved = {k: v.copy() for k, v in parts.items()}
            moved[name][index] += sign * eps
            values.append(score(m, moved["x"], moved["s"], moved["meta"], task=0, batch_size=BATCH))
        return (values[0] - values[1])[index[0]] / (2 * eps)

    tol = 0.05 * np.abs(g["onehot"]).max()
    for index in [(0, 10, 2), (1, 60, 0), (2, 100, 3)]:
        np.testing.assert_allclose(g["onehot"][index], central("x", index), rtol=0.05, atol=tol)
    for index in [(0, 30, 1), (2, 70, 0)]:
        np.testing.assert_allclose(g["signal"][index], central("s", index), rtol=0.05,
                                   atol=0.05 * np.abs(g["signal"]).max())
    np.testing.assert_allclose(g["meta"][1, 2], central("meta", (1, 2)), rtol=0.05,
                               atol=0.05 * np.abs(g["meta"]).max())
    assert np.abs(g["onehot"]).max() > 1e-3
    # along the gradient itself (the largest change of f, so the tightest check): per window,
    # (f(x + e u) - f(x - e u)) / 2e = |g| for u = g / |g|
    norm = np.sqrt((g["onehot"] ** 2).sum(axis=(1, 2)) + (g["signal"] ** 2).sum(axis=(1, 2))
                   + (g["meta"] ** 2).sum(axis=1))
    u = {k: g[k] / norm.reshape((-1,) + (1,) * (g[k].ndim - 1)) for k in ("onehot", "signal", "meta")}
    step = 3e-2
    ahead = score(m, x + step * u["onehot"], s + step * u["signal"], meta + step * u["meta"], task=0)
    behind = score(m, x - step * u["onehot"], s - step * u["signal"], meta - step * u["meta"], task=0)
    np.testing.assert_allclose((ahead - behind) / (2 * step), norm, rtol=0.02)


def test_integrated_gradients_completeness(setup):
    """Attributions sum to f(x) - f(baseline) within 1 % with enough steps, and the gap falls
    with more steps (so a wrong quadrature would show)."""
    from factornet_jax.contributions import integrated_gradients, sequence_baseline
    m, x, s, meta = setup["model"], setup["onehot"], setup["signal"], setup["meta"]
    baseline = {"onehot": sequence_baseline(x, "shuffle"), "signal": np.full_like(s, 0.5),
                "meta": np.zeros_like(meta)}
    gaps = {}
    for steps in (2, 512):
        ig = integrated_gradients(m, x, s, meta, baseline=baseline, task=1, steps=steps,
                                  batch_size=BATCH)
        total = ig["onehot"].sum(axis=(1, 2)) + ig["signal"].sum(axis=(1, 2)) + ig["meta"].sum(axis=1)
        diff = ig["value"] - ig["baseline_value"]
        gaps[steps] = np.abs(total - diff) / np.abs(diff)
    assert np.abs(diff).min() > 0.05
    assert gaps[512].max() < 0.01, gaps
    assert gaps[2].max() > gaps[512].max()
    from factornet_jax.contributions import score
    np.testing.assert_allclose(ig["value"], score(m, x, s, meta, task=1), atol=1e-5)
    np.testing.assert_allclose(ig["baseline_value"],
                               score(m, baseline["onehot"], baseline["signal"], baseline["meta"], task=1),
                               atol=1e-5)


def test_inputs_left_out_of_the_baseline_get_no_attribution(setup):
    from factornet_jax.contributions import integrated_gradients, sequence_baseline
    m, x, s, meta = setup["model"], setup["onehot"], setup["signal"], setup["meta"]
    ig = integrated_gradients(m, x, s, meta, baseline={"onehot": sequence_baseline(x, "uniform")},
                              steps=8, batch_size=BATCH)
    assert (ig["signal"] == 0).all() and (ig["meta"] == 0).all()
    assert np.abs(ig["onehot"]).max() > 0


def test_hypothetical_contributions_at_the_observed_base_are_the_actual_ones():
    from factornet_jax.contributions import hypothetical_from_gradients, ism_hypothetical
    rng = np.random.default_rng(1)
    x = np.eye(4, dtype=np.uint8)[rng.integers(0, 4, (2, 7))]
    g = rng.normal(size=(2, 7, 4)).astype(np.float32)
    x0 = np.full((2, 7, 4), 0.25, np.float32)
    hyp, act = hypothetical_from_gradients(g, x, x0)
    np.testing.assert_allclose(act.sum(-1), ((x - x0) * g).sum(-1), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(hyp, g - g.mean(-1, keepdims=True), rtol=1e-5, atol=1e-6)
    ism_values = g * (1 - x)
    hyp, act = ism_hypothetical(ism_values, x)
    np.testing.assert_allclose(act.sum(-1), -ism_values.mean(-1), rtol=1e-5, atol=1e-6)


def test_occlusion_equals_occluding_by_hand(setup):
    from factornet_jax.contributions import occlusion, score
    m, x, s, meta = setup["model"], setup["onehot"], setup["signal"], setup["meta"]
    background = np.array([1.0, 0.25], np.float32)
    occ = occlusion(m, x, s, background, meta, task=0, width=25, batch_size=BATCH)
    assert occ["starts"].tolist() == [0, 25, 50, 75, 100]
    f = score(m, x, s, meta, task=0)
    for k, start in enumerate(occ["starts"]):
        for track in range(2):
            hidden = s.copy()
            hidden[:, start:start + 25, track] = background[track]
            np.testing.assert_allclose(occ["delta"][:, k, track], f - score(m, x, hidden, meta, task=0),
                                       atol=1e-5)
    np.testing.assert_allclose(occ["per_base"].sum(axis=1), occ["delta"].sum(axis=1), atol=1e-5)


def test_dinucleotide_shuffle_keeps_dinucleotide_counts():
    from factornet_jax.contributions import dinucleotide_shuffle

    def counts(x):
        codes = np.where(x.any(1), x.argmax(1), 4)
        return np.bincount(codes[:-1] * 5 + codes[1:], minlength=25)

    rng = np.random.default_rng(3)
    x = np.eye(4, dtype=np.uint8)[rng.integers(0, 4, 400)]
    x[50:60] = 0
    a = dinucleotide_shuffle(x, np.random.default_rng(5))
    b = dinucleotide_shuffle(x, np.random.default_rng(5))
    c = dinucleotide_shuffle(x, np.random.default_rng(6))
    assert (counts(a) == counts(x)).all() and (a[0] == x[0]).all() and (a[-1] == x[-1]).all()
    assert (a == b).all() and (a != x).any() and (a != c).any()
    assert a.dtype == x.dtype and a.shape == x.shape


# ------------------------------------------------------------------ the command

def write_bed(path, rows):
    Path(path).write_text("".join(f"{c}\t{s}\t{e}\n" for c, s, e in rows))
    return path


ROWS = [("chr2", 5_000, 5_200), ("chr1", 3_000, 3_020), ("chr2", 5_040, 5_240)]


@pytest.fixture(scope="module")
def explained(setup, tmp_path_factory):
    from factornet_jax.cli import build_parser, run_command
    root = tmp_path_factory.mktemp("explained")
    bed = write_bed(root / "regions.bed", ROWS)
    out = root / "out"
    argv = ["explain", "-i", str(setup["tiny"]["cell_stores"][0]), "-m", str(setup["model_dir"]),
            "-f", "TFB", "-b", str(bed), "-o", str(out), "--method", "ism", "--steps", "64",
            "--bigwig", "--plots", "2", "--batch", str(BATCH), "--occlusion-width", "30"]
    assert run_command(build_parser(only=("explain",)), argv) == 0
    return {"out": out, "argv": argv, "bed": bed}


def test_output_folder_holds_what_was_computed(setup, explained):
    import zarr

    from factornet_jax.contributions import ism, ism_hypothetical
    out = explained["out"]
    group = zarr.open_group(str(out / "contributions.zarr"), mode="r")
    attrs = group.attrs["factornet"]
    assert attrs["tf"] == "TFB" and attrs["method"] == "ism" and attrs["track_names"] == list(TRACKS)
    n = len(ROWS)
    for name, shape in (("hypothetical", (n, SEQ_LEN, 4)), ("actual", (n, SEQ_LEN, 4)),
                        ("tracks", (n, SEQ_LEN, 2)), ("occlusion", (n, SEQ_LEN, 2)),
                        ("meta", (n, 3)), ("onehot", (n, SEQ_LEN, 4)), ("signal", (n, SEQ_LEN, 2))):
        assert group[name].shape == shape, name
    windows = np.array([(s + e) // 2 - SEQ_LEN // 2 for _, s, e in ROWS])
    assert group["regions/window_start"][:].tolist() == windows.tolist()
    assert [attrs["chroms"][i] for i in group["regions/chrom_index"][:]] == [c for c, _, _ in ROWS]
    # the sequence contributions are ISM of the windows `predict` would score
    onehot, signal = setup["store"].fetch_batch([c for c, _, _ in ROWS], windows, SEQ_LEN)
    np.testing.assert_array_equal(group["onehot"][:], onehot)
    meta = np.tile(setup["store"].meta_values, (n, 1))
    np.testing.assert_array_equal(group["meta_input"][:], meta.astype(np.float32))
    hyp, act = ism_hypothetical(ism(setup["model"], onehot, signal, meta, task=1), onehot)
    np.testing.assert_allclose(group["hypothetical"][:], hyp, atol=1e-6)
    np.testing.assert_allclose(group["actual"][:], act, atol=1e-6)
    np.testing.assert_allclose(group["prediction"][:],
                               setup["model"].predict(onehot, signal, meta)[:, 1], rtol=1e-5)
    # the summary: one line per region, the split sums to the logit difference
    lines = (out / "summary.tsv").read_text().splitlines()
    header = lines[0].split("\t")
    table = [dict(zip(header, line.split("\t"))) for line in lines[1:]]
    assert len(table) == n and [t["chrom"] for t in table] == [c for c, _, _ in ROWS]
    for t in table:
        parts = [float(t[k]) for k in header if k.startswith("contrib:")]
        diff = float(t["logit"]) - float(t["baseline_logit"])
        assert abs(sum(parts) - diff) <= 0.02 * abs(diff) + 1e-4
        assert abs(sum(abs(float(t[k])) for k in header if k.startswith("share:")) - 1) < 1e-3
    assert {"contrib:sequence", "contrib:track:DGF", "contrib:meta"} <= set(header)
    pngs = sorted((out / "regions").iterdir())
    assert len(pngs) == 2 and all(p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" for p in pngs)
    assert (out / ".factornet-output.json").is_file()


def test_bigwigs_follow_the_nearest_centre_rule(explained):
    import pyBigWig
    import zarr
    out = explained["out"]
    group = zarr.open_group(str(out / "contributions.zarr"), mode="r")
    actual = group["actual"][:].sum(axis=-1)
    dgf = group["tracks"][:][:, :, 1]
    w = group["regions/window_start"][:]
    # chr2 windows 5040 and 5080 (centres 5100, 5140) split at 5120; chr1 alone
    expect = {("chr2", 5_040, 5_121): (0, 0), ("chr2", 5_121, 5_200): (2, 5_121 - int(w[2])),
              ("chr1", int(w[1]), int(w[1]) + SEQ_LEN): (1, 0)}
    for name, values in (("sequence", actual), ("DGF", dgf)):
        handle = pyBigWig.open(str(out / "bigwig" / f"{name}.bw"))
        for (chrom, lo, hi), (region, offset) in expect.items():
            got = np.array(handle.values(chrom, lo, hi))
            np.testing.assert_allclose(got, values[region, offset:offset + hi - lo], rtol=1e-5, atol=1e-7)
        assert handle.intervals("chr2")[0][0] == 5_040 and handle.intervals("chr2")[-1][1] == 5_200
        handle.close()


def test_bigwig_spans_resolve_overlaps_and_duplicates():
    from factornet_jax.explain import bigwig_spans
    chroms = np.array(["b", "a", "a", "a", "a"])
    starts = np.array([0, 100, 0, 100, 250], np.int64)
    order, lo, hi = bigwig_spans(chroms, starts, 100, ["a", "b"])
    # a: windows 0, 100 (twice: the second dropped), 250; then b
    assert order.tolist() == [2, 1, 4, 0]
    assert lo.tolist() == [0, 101, 250, 0] and hi.tolist() == [100, 200, 350, 100]


def test_cli_refuses_existing_output_and_replaces_with_oc(explained, capsys):
    from factornet_jax.cli import build_parser, run_command
    parser = build_parser(only=("explain",))
    argv = explained["argv"]
    assert run_command(parser, argv) == 2
    assert "exists" in capsys.readouterr().err.lower()
    marker = (explained["out"] / ".factornet-output.json").read_text()
    assert '"explain"' in marker


@pytest.mark.parametrize("method", ["ig", "saliency"])
def test_other_methods_give_actual_equal_to_hypothetical_at_the_base(setup, method, tmp_path):
    from factornet_jax.contributions import gradients
    from factornet_jax.explain import ExplainConfig, explain_chunk
    m, x, s, meta = setup["model"], setup["onehot"], setup["signal"], setup["meta"]
    config = ExplainConfig("", "", "", "", method=method, steps=16)
    out = explain_chunk(m, (x, s, meta, None), np.arange(3), 0, config, np.array([1.0, 0.5], np.float32))
    np.testing.assert_allclose(out["actual"], out["hypothetical"] * (x > 0), atol=1e-7)
    if method == "saliency":
        np.testing.assert_allclose(out["actual"], gradients(m, x, s, meta)["onehot"] * x, atol=1e-6)
    assert out["tracks"].shape == s.shape and out["meta"].shape == meta.shape


@pytest.mark.parametrize("change, error, message", [
    ({"rows": [("chr11", 19_950, 19_990)]}, InputFileError, "regions.bed:1: the 120-bp window"),
    ({"tf": "TFZ"}, ConfigError, "-f TFZ: not a TF of model"),
    ({"tf": None}, ConfigError, "-f: model"),
    ({"method": "deeplift"}, ConfigError, "--method deeplift"),
    ({"steps": 0}, ConfigError, "--steps 0"),
    ({"tracks": ("Unique35", "DNase")}, FactorNetError, "its signal tracks"),
])
def test_user_errors_are_one_line_and_write_nothing(setup, tmp_path, change, error, message):
    from factornet_jax.explain import ExplainConfig, explain
    model_dir = setup["model_dir"]
    if "tracks" in change:
        model_dir = write_model(tmp_path / "other", track_names=change["tracks"])
    bed = write_bed(tmp_path / "regions.bed", change.get("rows", ROWS[:1]))
    out = tmp_path / "out"
    config = ExplainConfig(str(setup["tiny"]["cell_stores"][0]), str(model_dir), str(bed), str(out),
                           tf=change.get("tf", "TFA"), method=change.get("method", "saliency"),
                           steps=change.get("steps", 4), plots=0)
    with pytest.raises(error, match=message.replace("(", r"\(")) as info:
        explain(config)
    assert "\n" not in str(info.value)
    assert not out.exists() and sorted(p.name for p in tmp_path.iterdir()) in (
        ["regions.bed"], ["other", "regions.bed"])


def test_motifs_flag_without_the_extra_says_what_to_install(setup, tmp_path, monkeypatch):
    import sys

    from factornet_jax.explain import ExplainConfig, explain
    monkeypatch.setitem(sys.modules, "modiscolite", None)
    bed = write_bed(tmp_path / "regions.bed", ROWS[:1])
    config = ExplainConfig(str(setup["tiny"]["cell_stores"][0]), str(setup["model_dir"]), str(bed),
                           str(tmp_path / "out"), tf="TFA", motifs=True)
    with pytest.raises(ConfigError, match=r"install factornet-jax\[motifs\]"):
        explain(config)
    assert not (tmp_path / "out").exists()


def test_chunks_of_different_sizes_share_one_compilation(setup):
    """Rows are padded to a power of two and batches to a fixed size: ISM of 3 and of 4 windows
    (and gradients of any batch) reuse the same compiled functions."""
    from factornet_jax.contributions import _functions, gradients, ism
    m, x, s, meta = setup["model"], setup["onehot"], setup["signal"], setup["meta"]
    fns = _functions(m.model_config)
    ism(m, np.concatenate([x, x[:1]]), np.concatenate([s, s[:1]]), np.concatenate([meta, meta[:1]]),
        batch_size=BATCH)
    before = fns["mutated"]._cache_size()
    ism(m, x, s, meta, batch_size=BATCH)
    gradients(m, x[:1], s[:1], meta[:1], batch_size=BATCH)
    grads = fns["grad"]._cache_size()
    gradients(m, x, s, meta, batch_size=BATCH)
    assert fns["mutated"]._cache_size() == before and fns["grad"]._cache_size() == grads


# ------------------------------------------------------------------ a model that knows a motif

def test_contributions_concentrate_on_a_motif_the_model_reads(tmp_path):
    """A hand-made model: two conv kernels hold a motif (both strands, FactorNet's -mo), a
    third reads only the DNase channel, all adding to the score: at windows holding the motif, ISM, IG and
    gradient x input put their weight inside it (inside / outside >> 1), and the split gives
    the track share when the motif is absent but the signal is high (the simulated-data
    checks of docs/INTERPRETATION.md in miniature)."""
    import jax

    from factornet_jax import contributions as C
    from factornet_jax import modeldir
    from factornet_jax.meme import Motif
    from factornet_jax.model import ModelConfig, abstract_params, inject_motif
    rng = np.random.default_rng(0)
    consensus = "GATTACAGGC"
    pwm = np.full((10, 4), 0.02)
    pwm[np.arange(10), ["ACGT".index(c) for c in consensus]] = 0.94
    cfg = ModelConfig(seq_len=100, track_names=("DNase",), kernels=3, kernel_width=12, recurrent=-1,
                      dense=4)
    params = jax.tree_util.tree_map(lambda a: np.zeros(a.shape, np.float32), abstract_params(cfg))
    params = inject_motif(params, Motif("M", None, pwm).pwm)   # kernels 0, 1: the motif, both strands
    params["conv"]["bias"][:2] = -10.0                         # only near-full matches fire
    params["conv"]["kernel"][:, 4, 2] = 0.1                     # kernel 2: open chromatin
    params["conv"]["bias"][2] = -2.0
    params["position_dense"]["kernel"] = np.eye(3, dtype=np.float32)
    params["dense"]["kernel"] = np.ones((3, 4), np.float32) * 0.5
    params["output"]["kernel"] = np.ones((4, 1), np.float32) * 0.5
    params["output"]["bias"][:] = -3.0
    folder = tmp_path / "m"
    folder.mkdir()
    modeldir.write_config(folder, modeldir.make_config(cfg, ["TF"], cfg.track_names))
    modeldir.save_params(folder / "best.npz", params)
    model = modeldir.load_model(folder)
    codes = rng.integers(0, 4, (6, 100))
    codes[:3, 40:50] = ["ACGT".index(c) for c in consensus]       # windows 0-2: the motif
    onehot = np.eye(4, dtype=np.uint8)[codes]
    signal = np.full((6, 100, 1), 0.5, np.float32)
    signal[3:, 30:70] = 12.0                                      # windows 3-5: open, no motif
    inside = np.zeros(100, bool)
    inside[40:50] = True
    ism_actual = C.ism_hypothetical(C.ism(model, onehot, signal), onehot)[1].sum(-1)
    ig = C.integrated_gradients(model, onehot, signal,
                                baseline={"onehot": C.sequence_baseline(onehot, "shuffle"),
                                          "signal": np.full_like(signal, 0.5)}, steps=256)
    saliency = (C.gradients(model, onehot, signal)["onehot"] * onehot).sum(-1)
    for name, actual in (("ism", ism_actual), ("ig", ig["onehot"].sum(-1)), ("saliency", saliency)):
        per_base = np.abs(actual[:3])
        ratio = per_base[:, inside].mean(axis=1) / np.maximum(per_base[:, ~inside].mean(axis=1), 1e-9)
        assert (ratio > 20).all(), (name, ratio)
    seq = ig["onehot"].sum(axis=(1, 2))
    track = ig["signal"].sum(axis=(1, 2))
    assert (np.abs(track[3:]) > 5 * np.abs(seq[3:])).all() and (track[3:] > 0).all()
    assert (seq[:3] > np.abs(track[:3])).all()

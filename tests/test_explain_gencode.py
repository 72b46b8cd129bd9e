"""`factornet explain` on a model with GENCODE bin flags (ModelConfig.use_gencode, features
"gencode"): IG completeness with the flags on the path, ISM against brute force, and the whole
command on a store built with annotation BEDs, its flags checked against the BEDs directly."""
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from factornet_jax.labels import GENCODE_FEATURES
from test_explain import META, SEQ_LEN, TRACKS, write_bed, write_model

BATCH = 64


def write_gencode_model(folder, tfs=("TFA", "TFB"), scale=0.3, seed=1):
    """A tiny meta + GENCODE model dir with random weights."""
    return write_model(folder, tfs, TRACKS, scale, seed, gencode=True)


def read_annotation_beds(folder):
    """feature -> list of (chrom, start, end) straight from the BED text (no factornet code)."""
    out = {}
    for name in GENCODE_FEATURES:
        rows = []
        for line in (Path(folder) / f"{name}.bed").read_text().splitlines():
            chrom, start, end = line.split("\t")[:3]
            rows.append((chrom, int(start), int(end)))
        out[name] = rows
    return out


def flags_by_hand(beds, chrom, bin_start, bin_end):
    """(6,) 1.0 where the half-open bin shares a base with a feature's BED interval."""
    return np.array([float(any(c == chrom and s < bin_end and bin_start < e for c, s, e in beds[name]))
                     for name in GENCODE_FEATURES], np.float32)


@pytest.fixture(scope="module")
def gsetup(blacklisted_stores, tmp_path_factory):
    """The GENCODE model and three chr2 windows of the annotated store, each with its own
    (made-up, distinct) flags so a row mix-up would show."""
    from factornet_jax.modeldir import load_model
    from factornet_jax.reader import open_cell_store
    model_dir = write_gencode_model(tmp_path_factory.mktemp("gencode_models") / "m")
    model = load_model(model_dir)
    store = open_cell_store(blacklisted_stores["store"])
    chroms = np.array(["chr2", "chr2", "chr2"])
    starts = np.array([1_000, 5_000, 20_000])
    onehot, signal = store.fetch_batch(chroms, starts, SEQ_LEN)
    meta = np.tile(store.meta_values, (3, 1)).astype(np.float32)
    gencode = np.array([[1, 0, 1, 1, 0, 1], [0, 1, 0, 0, 1, 1], [1, 1, 1, 0, 0, 0]], np.float32)
    yield {"model": model, "model_dir": model_dir, "store": store, "onehot": onehot,
           "signal": signal, "meta": meta, "gencode": gencode, "bl": blacklisted_stores}
    store.close()


def test_the_model_reads_the_gencode_flags(gsetup):
    """Guard for the tests below: the flags move f (else they would prove nothing)."""
    from factornet_jax.contributions import score
    g = gsetup
    f = score(g["model"], g["onehot"], g["signal"], g["meta"], g["gencode"], task=1, batch_size=BATCH)
    f0 = score(g["model"], g["onehot"], g["signal"], g["meta"], np.zeros_like(g["gencode"]), task=1,
               batch_size=BATCH)
    assert np.abs(f - f0).min() > 1e-2, (f, f0)
    np.testing.assert_allclose(1 / (1 + np.exp(-f)),
                               g["model"].predict(g["onehot"], g["signal"], g["meta"], g["gencode"],
                                                  batch_size=BATCH)[:, 1], rtol=1e-5, atol=1e-7)


def test_ig_completeness_with_gencode_and_meta(gsetup):
    """All four inputs on the path (gencode from 0): attributions sum to f(x) - f(baseline)
    within 1 % at 512 steps; the gencode attributions are 0 where a flag is 0 (x = x0) and
    not all 0 elsewhere."""
    from factornet_jax.contributions import integrated_gradients, score, sequence_baseline
    g = gsetup
    m, x, s, meta, gen = g["model"], g["onehot"], g["signal"], g["meta"], g["gencode"]
    baseline = {"onehot": sequence_baseline(x, "shuffle"), "signal": np.full_like(s, 0.5),
                "meta": np.zeros_like(meta), "gencode": np.zeros_like(gen)}
    gaps = {}
    for steps in (2, 512):
        ig = integrated_gradients(m, x, s, meta, gen, baseline=baseline, task=1, steps=steps,
                                  batch_size=BATCH)
        assert ig["gencode"].shape == gen.shape and ig["gencode"].dtype == np.float32
        total = (ig["onehot"].sum(axis=(1, 2)) + ig["signal"].sum(axis=(1, 2))
                 + ig["meta"].sum(axis=1) + ig["gencode"].sum(axis=1))
        diff = ig["value"] - ig["baseline_value"]
        gaps[steps] = np.abs(total - diff) / np.abs(diff)
    assert np.abs(diff).min() > 0.05
    assert gaps[512].max() < 0.01, gaps
    assert gaps[2].max() > gaps[512].max()
    np.testing.assert_allclose(ig["value"], score(m, x, s, meta, gen, task=1), atol=1e-5)
    np.testing.assert_allclose(ig["baseline_value"],
                               score(m, baseline["onehot"], baseline["signal"], baseline["meta"],
                                     baseline["gencode"], task=1), atol=1e-5)
    assert (ig["gencode"][gen == 0] == 0).all()
    assert np.abs(ig["gencode"][gen == 1]).max() > 1e-3


def test_ig_of_the_gencode_flags_alone_is_what_removing_them_costs(gsetup):
    """Only gencode moves (0 -> flags): its attributions alone sum to f(x) - f(x, flags 0)."""
    from factornet_jax.contributions import integrated_gradients, score
    g = gsetup
    m, x, s, meta, gen = g["model"], g["onehot"], g["signal"], g["meta"], g["gencode"]
    ig = integrated_gradients(m, x, s, meta, gen, baseline={"gencode": np.zeros_like(gen)}, task=0,
                              steps=512, batch_size=BATCH)
    diff = score(m, x, s, meta, gen, task=0) - score(m, x, s, meta, np.zeros_like(gen), task=0)
    assert np.abs(diff).min() > 1e-2
    np.testing.assert_allclose(ig["gencode"].sum(axis=1), diff, rtol=0.01, atol=1e-4)
    assert (ig["onehot"] == 0).all() and (ig["signal"] == 0).all() and (ig["meta"] == 0).all()


def test_gencode_left_out_of_the_baseline_gets_no_attribution(gsetup):
    from factornet_jax.contributions import integrated_gradients, sequence_baseline
    g = gsetup
    m, x, s, meta, gen = g["model"], g["onehot"], g["signal"], g["meta"], g["gencode"]
    ig = integrated_gradients(m, x, s, meta, gen, baseline={"onehot": sequence_baseline(x, "uniform")},
                              steps=8, batch_size=BATCH)
    assert (ig["gencode"] == 0).all() and (ig["meta"] == 0).all() and (ig["signal"] == 0).all()
    assert np.abs(ig["onehot"]).max() > 0


def test_ism_on_a_gencode_model_equals_brute_force(gsetup):
    """Mutate a few (window, position) pairs to every base by hand, score with that window's own
    flags, subtract: ISM matches (windows 1 and 2 too, so a row mix-up of the flags would show),
    and ISM changes when the flags do."""
    from factornet_jax.contributions import ism, score
    g = gsetup
    m, x, s, meta, gen = g["model"], g["onehot"], g["signal"], g["meta"], g["gencode"]
    got = ism(m, x, s, meta, gen, task=1, batch_size=BATCH)
    assert got.shape == (3, SEQ_LEN, 4)
    reference = score(m, x, s, meta, gen, task=1, batch_size=BATCH)
    picks = [(0, 7), (1, 60), (2, 33), (2, 119)]
    mutants, rows = [], []
    for w, pos in picks:
        for b in range(4):
            mutant = x[w].copy()
            mutant[pos] = 0
            mutant[pos, b] = 1
            mutants.append(mutant)
            rows.append(w)
    rows = np.array(rows)
    f = score(m, np.stack(mutants), s[rows], meta[rows], gen[rows], task=1, batch_size=BATCH)
    brute = (f - reference[rows]).reshape(len(picks), 4)
    for k, (w, pos) in enumerate(picks):
        expect = brute[k].copy()
        expect[x[w, pos] > 0] = 0.0
        np.testing.assert_allclose(got[w, pos], expect, rtol=0, atol=1e-6)
    assert np.abs(np.array([got[w, p] for w, p in picks])).max() > 1e-3
    other = ism(m, x, s, meta, 1 - gen, task=1, batch_size=BATCH)
    assert np.abs(other - got).max() > 1e-4


# ------------------------------------------------------------------ the command

def probe_regions(beds):
    """BED rows on chr2 probing the centred bin's edges against one cpg interval [a, b): bins
    ending at a (0) and one base past it (1), starting at b (0) and one base before it (1),
    inside it; odd-length rows test the midpoint's rounding; plus a chr1 row (no annotations)."""
    cpg = sorted((s, e) for c, s, e in beds["cpg"] if c == "chr2")

    def isolated(s, e):     # no other cpg interval within 300 bp, clear of the blacklist
        return (400 < s and e < 33_000 and not 9_500 < s < 11_000
                and all(e2 < s - 300 or s2 > e + 300 for s2, e2 in cpg if (s2, e2) != (s, e)))
    a, b = next((s, e) for s, e in cpg if isolated(s, e))
    mids = [a - 100, a - 99, b + 100, b + 99, (a + b) // 2]
    rows = []
    for k, mid in enumerate(mids):
        if k % 2:
            rows.append(("chr2", mid - 7, mid + 8))      # (start + end) // 2 == mid
        else:
            rows.append(("chr2", mid - 30, mid + 30))
    rows.append(("chr1", 3_000, 3_020))
    return rows


@pytest.fixture(scope="module")
def gexplained(gsetup, tmp_path_factory):
    from factornet_jax.cli import build_parser, run_command
    root = tmp_path_factory.mktemp("gencode_explained")
    beds = read_annotation_beds(gsetup["bl"]["annotations"])
    rows = probe_regions(beds)
    bed = write_bed(root / "regions.bed", rows)
    out = root / "out"
    argv = ["explain", "-i", str(gsetup["bl"]["store"]), "-m", str(gsetup["model_dir"]),
            "-f", "TFB", "-b", str(bed), "-o", str(out), "--method", "ig", "--steps", "64",
            "--baseline", "uniform", "--track-baseline", "zero", "--plots", "0",
            "--batch", str(BATCH)]
    assert run_command(build_parser(only=("explain",)), argv) == 0
    return {"out": out, "rows": rows, "beds": beds, "bed": bed}


def test_explain_uses_the_flags_of_each_regions_centred_bin(gsetup, gexplained):
    """The flags explain used are those of [mid - 100, mid + 100) from the annotation BEDs
    (checked by hand and, when on PATH, by bedtools): gencode contributions are 0 exactly where
    a flag is 0, nonzero where it is 1, and the written values are IG recomputed with the flags
    found by hand; the summary's contrib:gencode is their sum."""
    import zarr

    from factornet_jax.contributions import integrated_gradients, score
    rows, beds, out = gexplained["rows"], gexplained["beds"], gexplained["out"]
    mids = np.array([(s + e) // 2 for _, s, e in rows])
    flags = np.stack([flags_by_hand(beds, c, mid - 100, mid + 100) for (c, _, _), mid in zip(rows, mids)])
    cpg = GENCODE_FEATURES.index("cpg")
    assert flags[:5, cpg].tolist() == [0, 1, 0, 1, 1]           # the probes do probe the edges
    assert (flags[5] == 0).all()                                  # chr1: no annotation there
    if shutil.which("bedtools"):
        bins = gexplained["bed"].with_name("bins.bed")
        bins.write_text("".join(f"{c}\t{mid - 100}\t{mid + 100}\n" for (c, _, _), mid in zip(rows, mids)))
        for k, name in enumerate(GENCODE_FEATURES):
            counts = subprocess.run(["bedtools", "intersect", "-c", "-a", str(bins), "-b",
                                     str(Path(gsetup["bl"]["annotations"]) / f"{name}.bed")],
                                    check=True, capture_output=True, text=True).stdout.splitlines()
            assert [float(int(line.split("\t")[-1]) > 0) for line in counts] == flags[:, k].tolist(), name

    group = zarr.open_group(str(out / "contributions.zarr"), mode="r")
    n = len(rows)
    contrib = group["gencode"][:]
    assert contrib.shape == (n, 6) and group["meta"].shape == (n, len(META))
    np.testing.assert_array_equal(group["gencode_input"][:], flags)   # the flags fed to the model
    assert (contrib[flags == 0] == 0).all()
    assert (contrib[flags == 1] != 0).all()

    # recompute the joint IG path with the hand-made flags (uniform sequence, zero tracks)
    m = gsetup["model"]
    windows = mids - SEQ_LEN // 2
    assert group["regions/window_start"][:].tolist() == windows.tolist()
    onehot, signal = gsetup["store"].fetch_batch(np.array([c for c, _, _ in rows]), windows, SEQ_LEN)
    np.testing.assert_array_equal(group["onehot"][:], onehot)
    meta = np.tile(gsetup["store"].meta_values, (n, 1)).astype(np.float32)
    ig = integrated_gradients(m, onehot, signal, meta, flags,
                              baseline={"onehot": np.full(onehot.shape, 0.25, np.float32),
                                        "signal": np.zeros_like(signal), "meta": np.zeros_like(meta),
                                        "gencode": np.zeros_like(flags)},
                              task=1, steps=64, batch_size=BATCH)
    np.testing.assert_allclose(contrib, ig["gencode"], rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(group["value"][:], score(m, onehot, signal, meta, flags, task=1),
                               atol=1e-5)
    # and the flags matter: the value with them all zero is different
    assert np.abs(group["value"][:4] - score(m, onehot, signal, meta, np.zeros_like(flags), task=1)[:4]
                  ).max() > 1e-3

    lines = (out / "summary.tsv").read_text().splitlines()
    header = lines[0].split("\t")
    assert "contrib:gencode" in header and "share:gencode" in header and "contrib:meta" in header
    table = [dict(zip(header, line.split("\t"))) for line in lines[1:]]
    assert len(table) == n
    for k, t in enumerate(table):
        np.testing.assert_allclose(float(t["contrib:gencode"]), contrib[k].sum(), rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(float(t["contrib:gencode"]), ig["gencode"][k].sum(), rtol=1e-4,
                                   atol=1e-6)
        parts = [float(t[c]) for c in header if c.startswith("contrib:")]
        diff = float(t["logit"]) - float(t["baseline_logit"])
        assert abs(sum(parts) - diff) <= 0.02 * abs(diff) + 1e-4
    assert float(table[5]["contrib:gencode"]) == 0.0

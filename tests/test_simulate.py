"""The simulated dataset (simulate.py) and `factornet simulate`, on a ~1 Mb genome."""
import dataclasses
import gzip
import shutil
from pathlib import Path

import numpy as np
import pyBigWig
import pyfaidx
import pytest

from factornet_jax.bed import read_bed, read_chrom_sizes
from factornet_jax.cli import COMMANDS, build_parser, run_command
from factornet_jax.errors import ConfigError
from factornet_jax.labels import GENCODE_FEATURES
from factornet_jax.meme import find_motif, read_meme, scan_max
from factornet_jax.simulate import (
    MAPPABILITY_VALUES, SimulationConfig, chrom_sizes_for, simulate,
)

CONFIG = SimulationConfig(genome_mb=1.0, seed=3)
LUT = np.full(256, 4, np.uint8)
for _i, _c in enumerate("ACGT"):
    LUT[ord(_c)] = LUT[ord(_c.lower())] = _i


@pytest.fixture(scope="module")
def sim(tmp_path_factory):
    return simulate(tmp_path_factory.mktemp("sim") / "data", CONFIG)


@pytest.fixture(scope="module")
def genome(sim):
    """chrom -> (codes (size,) uint8, upper/lower text)."""
    fasta = pyfaidx.Fasta(str(sim.fasta), sequence_always_upper=False)
    out = {}
    for name in fasta.keys():
        text = str(fasta[name][:])
        out[name] = (LUT[np.frombuffer(text.encode(), np.uint8)], text)
    return out


@pytest.fixture(scope="module")
def dnase(sim):
    """(cell, chrom) -> DNase values (size,) with uncovered bases as 0."""
    out = {}
    for cell, files in sim.cells.items():
        bw = pyBigWig.open(str(files.bigwigs["DGF"]))
        for chrom, size in sim.chrom_sizes.items():
            out[cell, chrom] = np.nan_to_num(np.asarray(bw.values(chrom, 0, size), dtype=np.float64))
        bw.close()
    return out


def _truth(sim):
    lines = gzip.decompress(sim.truth.read_bytes()).decode().splitlines()
    header = lines[0].split("\t")
    rows = [dict(zip(header, line.split("\t"))) for line in lines[1:]]
    return header, rows


def _tree_bytes(root: Path) -> dict:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_same_seed_same_bytes_other_seed_differs(sim, tmp_path):
    again = simulate(tmp_path / "again", CONFIG)
    first, second = _tree_bytes(sim.out_dir), _tree_bytes(again.out_dir)
    assert sorted(first) == sorted(second)
    assert [name for name in first if first[name] != second[name]] == []
    other = simulate(tmp_path / "other", dataclasses.replace(CONFIG, seed=4))
    third = _tree_bytes(other.out_dir)
    for name in ("genome.fa", "truth.tsv.gz", "cells/CellA/CellA.1x.bw",
                 "cells/CellB/ChIPseq.CellB.CTCF.conservative.train.narrowPeak.gz"):
        assert third[name] != first[name], name
    assert not (tmp_path / "again.partial").exists()


def test_layout_and_chromosomes(sim):
    sizes = sim.chrom_sizes
    assert list(sizes) == ["chr1", "chr2", "chr3", "chr4", "chr5", "chr8", "chr11", "chr21"]
    assert abs(sum(sizes.values()) - 1_000_000) < 100
    assert sizes["chr1"] > sizes["chr8"] > sizes["chr21"]  # hg19 proportions
    assert read_chrom_sizes(sim.chrom_sizes_path) == sizes
    for path in [sim.fasta, sim.fai, sim.blacklist, sim.ladder, sim.truth, sim.motifs, sim.summary,
                 *sim.annotations.values()]:
        assert path.is_file(), path
    for files in sim.cells.values():
        for path in [files.bigwig_txt, files.chip_txt, files.meta_txt, *files.bigwigs.values(),
                     *files.conservative.values(), *files.relaxed.values()]:
            assert path.is_file(), path


def test_fasta_and_fai_agree_with_pyfaidx(sim, genome, tmp_path):
    copy = tmp_path / "genome.fa"
    shutil.copyfile(sim.fasta, copy)
    pyfaidx.Faidx(str(copy))  # pyfaidx writes its own index
    assert (tmp_path / "genome.fa.fai").read_text() == sim.fai.read_text()
    lines = sim.fasta.read_text().splitlines()
    assert max(len(line) for line in lines if not line.startswith(">")) == 60
    assert {name: len(text) for name, (_, text) in genome.items()} == sim.chrom_sizes


def test_sequence_realism(genome):
    text = "".join(t for _, t in genome.values())
    codes = np.concatenate([c for c, _ in genome.values()])
    called = codes[codes < 4]
    gc = np.isin(called, [1, 2]).mean()
    assert 0.36 < gc < 0.45
    lower = sum(ch.islower() for ch in text[::7]) / len(text[::7])
    assert 0.2 < lower < 0.6
    c_then_g = ((codes[:-1] == 1) & (codes[1:] == 2)).mean()
    observed_over_expected = c_then_g / ((codes == 1).mean() * (codes == 2).mean())
    assert observed_over_expected < 0.6  # CpG depletion
    for name, (_, chrom_text) in genome.items():
        assert chrom_text[:50] == "N" * 50, name  # telomere-like gap at the start
    assert 0.005 < (codes == 4).mean() < 0.1


def test_bigwigs_match_fasta(sim, dnase):
    for cell, files in sim.cells.items():
        assert files.bigwig_txt.read_text() == f"Unique35.bigWig\tUnique35\n{cell}.1x.bw\tDGF\n"
        for track, path in files.bigwigs.items():
            bw = pyBigWig.open(str(path))
            assert bw.chroms() == sim.chrom_sizes, (cell, track)
            bw.close()
    bw = pyBigWig.open(str(sim.cells["CellA"].bigwigs["Unique35"]))
    values = np.concatenate([np.asarray(bw.values(c, 0, s)) for c, s in sim.chrom_sizes.items()])
    covered = values[~np.isnan(values)]
    assert set(np.unique(covered)) <= set(MAPPABILITY_VALUES.astype(np.float32).tolist())
    assert 0.85 < (covered == 1).mean() < 0.999  # mostly unique, with low stretches
    # the mappability track is the same file in every folder
    assert len({f.bigwigs["Unique35"].read_bytes() for f in sim.cells.values()}) == 1
    # DNase is "1x": mean coverage 1 over non-N bases
    for cell in sim.cells:
        total = sum(dnase[cell, c].sum() for c in sim.chrom_sizes)
        assert total / (np.isnan(values).size - np.isnan(values).sum()) == pytest.approx(1.0, rel=0.02)


def test_meta_and_chip_txt(sim):
    metas = []
    for cell, files in sim.cells.items():
        rows = [line.split("\t") for line in files.meta_txt.read_text().splitlines()]
        assert [name for _, name in rows] == [f"GEPC{i}" for i in range(1, 9)]
        metas.append(tuple(float(v) for v, _ in rows))
        chip = [line.split("\t") for line in files.chip_txt.read_text().splitlines()]
        assert chip == [[f"ChIPseq.{cell}.{tf}.conservative.train.narrowPeak.gz", tf,
                         f"ChIPseq.{cell}.{tf}.relaxed.narrowPeak.gz"] for tf in CONFIG.tfs]
    assert len(set(metas)) == len(metas)


def test_peaks_sorted_and_valid(sim):
    order = list(sim.chrom_sizes)
    for files in sim.cells.values():
        for path in [*files.conservative.values(), *files.relaxed.values()]:
            peaks = read_bed(path, sim.chrom_sizes)
            assert len(peaks) > 10
            key = [(order.index(c), s, e) for c, s, e in zip(peaks["chrom"], peaks["start"], peaks["end"])]
            assert key == sorted(key), path
            assert np.all((peaks["summit"] >= peaks["start"]) & (peaks["summit"] < peaks["end"]))
            columns = {len(line.split("\t")) for line in gzip.decompress(path.read_bytes()).decode().splitlines()}
            assert columns == {10}


def test_relaxed_contains_conservative(sim):
    for files in sim.cells.values():
        for tf in CONFIG.tfs:
            cons = read_bed(files.conservative[tf])
            relaxed = read_bed(files.relaxed[tf])
            assert len(relaxed) > len(cons)
            for chrom, start, end in zip(cons["chrom"], cons["start"], cons["end"]):
                here = relaxed[relaxed["chrom"] == chrom]
                assert np.any((here["start"] <= start) & (here["end"] >= end)), (tf, chrom, start)


def test_conservative_peaks_lie_on_open_chromatin(sim, dnase):
    genome_mean = np.mean(np.concatenate(list(dnase.values())))
    for cell, files in sim.cells.items():
        for tf in CONFIG.tfs:
            peaks = read_bed(files.conservative[tf])
            inside = np.mean([dnase[cell, c][s:e].mean() for c, s, e in
                              zip(peaks["chrom"], peaks["start"], peaks["end"])])
            assert inside > 3 * genome_mean, (cell, tf, inside, genome_mean)


def test_truth_table(sim, genome):
    header, rows = _truth(sim)
    assert header[:6] == ["chrom", "start", "end", "tf", "cell", "probability"]
    prob = np.array([float(r["probability"]) for r in rows])
    bound = np.array([r["bound"] == "1" for r in rows])
    assert np.all((prob >= 0) & (prob <= 1))
    assert not np.any(bound & (prob == 0))  # closed sites are never bound
    motifs = read_meme(sim.motifs)
    motif_rows = [r for r in rows if r["kind"] == "motif"]
    # planted instances are where the table says, scoring at least their recorded score
    for r in motif_rows[::3 * len(CONFIG.cells)]:
        codes = genome[r["chrom"]][0][int(r["start"]):int(r["end"])]
        pwm = find_motif(motifs, r["tf"]).pwm
        assert scan_max(codes[None], pwm, onehot=False)[0] >= float(r["motif_score"]) - 1e-3
    # binding is partly explained by the motif: ~20-60 % of open motif sites bound,
    # a minority of bound sites without the motif
    open_motif = np.array([r["kind"] == "motif" and float(r["probability"]) > 0 for r in rows])
    assert 0.2 < bound[open_motif].mean() < 0.65
    motifless = np.array([r["kind"] != "motif" for r in rows])
    assert 0.02 < (bound & motifless).sum() / bound.sum() < 0.25
    # a nearby co-factor motif raises binding
    cof = np.array([r["cofactor"] == "1" for r in rows])
    assert prob[open_motif & cof].mean() > prob[open_motif & ~cof].mean() + 0.1
    # open regions are partly shared, partly cell-specific
    by_site = {}
    for r in motif_rows:
        by_site.setdefault((r["chrom"], r["start"], r["tf"]), []).append(float(r["probability"]) > 0)
    patterns = np.array(list(by_site.values()))
    all_open = patterns.all(axis=1).mean()
    some_open = patterns.any(axis=1).mean()
    assert 0.2 < all_open < some_open - 0.15


def test_conservative_peaks_come_from_bound_sites(sim):
    _, rows = _truth(sim)
    for cell, files in sim.cells.items():
        for tf in CONFIG.tfs:
            centres = {}
            for r in rows:
                if r["cell"] == cell and r["tf"] == tf and r["bound"] == "1":
                    centres.setdefault(r["chrom"], []).append((int(r["start"]) + int(r["end"])) // 2)
            peaks = read_bed(files.conservative[tf])
            for chrom, summit in zip(peaks["chrom"], peaks["summit"]):
                assert np.min(np.abs(np.asarray(centres[chrom]) - summit)) < 60


def test_footprint_at_bound_motifs(sim, dnase):
    _, rows = _truth(sim)
    centre, shoulder = [], []
    for r in rows:
        if r["kind"] == "motif" and r["bound"] == "1":
            mid = (int(r["start"]) + int(r["end"])) // 2
            values = dnase[r["cell"], r["chrom"]]
            centre.append(values[mid - 3:mid + 3].mean())
            shoulder.append(np.r_[values[mid - 30:mid - 18], values[mid + 18:mid + 30]].mean())
    assert np.mean(centre) < 0.6 * np.mean(shoulder)


def test_promoters_more_open_than_genome(sim, dnase):
    promoters = read_bed(sim.annotations["promoter"])
    assert len(promoters) >= 2  # a 1 Mb genome has only a handful of genes
    at_promoters = np.concatenate([dnase[cell, c][s:e] for cell in sim.cells for c, s, e in
                                   zip(promoters["chrom"], promoters["start"], promoters["end"])])
    genome_mean = np.mean(np.concatenate(list(dnase.values())))
    assert at_promoters.mean() > 2 * genome_mean


def test_annotations_sorted_merged(sim):
    for name in GENCODE_FEATURES:
        records = read_bed(sim.annotations[name], sim.chrom_sizes)
        assert len(records) > 0, name
        for chrom in sim.chrom_sizes:
            here = records[records["chrom"] == chrom]
            assert np.all(here["start"][1:] > here["end"][:-1]), (name, chrom)  # sorted, merged
    promoters = read_bed(sim.annotations["promoter"])
    assert np.all((promoters["end"] - promoters["start"]) >= 400)


def test_ladder_and_blacklist(sim):
    ladder = read_bed(sim.ladder, sim.chrom_sizes)
    blacklist = read_bed(sim.blacklist, sim.chrom_sizes)
    assert set(ladder["chrom"]) == set(CONFIG.test_chroms)
    assert np.all(ladder["end"] - ladder["start"] == 200)
    assert np.all(ladder["start"] % 50 == 0)
    first = ladder[ladder["chrom"] == "chr1"]
    assert first["start"][0] == 0
    assert len(blacklist) >= len(sim.chrom_sizes)
    for chrom, start, end in zip(blacklist["chrom"], blacklist["start"], blacklist["end"]):
        here = ladder[ladder["chrom"] == chrom]
        assert not np.any((here["start"] < end) & (here["end"] > start))
    # bins not touching the blacklist are all there
    size = sim.chrom_sizes["chr21"]
    bl = blacklist[blacklist["chrom"] == "chr21"]
    expected = [s for s in range(0, size - 199, 50) if not np.any((bl["start"] < s + 200) & (bl["end"] > s))]
    assert ladder[ladder["chrom"] == "chr21"]["start"].tolist() == expected


def test_cli_runs_and_refuses_existing_dir(tmp_path, capsys):
    parser = build_parser([c for c in COMMANDS if c[1] == "simulate"])  # other commands may not exist yet
    out = tmp_path / "cli"
    assert run_command(parser, ["simulate", "-o", str(out), "--genome-mb", "1", "--cells", "X", "Y"]) == 0
    assert "simulated 1.0 Mb" in capsys.readouterr().out
    assert sorted(p.name for p in (out / "cells").iterdir()) == ["X", "Y"]
    assert run_command(parser, ["simulate", "-o", str(out), "--genome-mb", "1"]) == 2
    assert f"use -oc {out}" in capsys.readouterr().err
    assert run_command(parser, ["simulate", "-o", str(tmp_path / "b"), "--genome-mb", "1", "--tf", "NOPE"]) == 2
    assert "--tf NOPE" in capsys.readouterr().err
    assert not (tmp_path / "b").exists() and list(tmp_path.iterdir()) == [out]


def test_bad_config_errors(tmp_path):
    with pytest.raises(ConfigError, match="test chromosome chr21"):
        simulate(tmp_path / "x", dataclasses.replace(CONFIG, chroms=("chr1", "chr8")))
    with pytest.raises(ConfigError, match="unique"):
        simulate(tmp_path / "x", dataclasses.replace(CONFIG, cells=("A", "A")))
    with pytest.raises(ConfigError, match="genome-mb"):
        simulate(tmp_path / "x", dataclasses.replace(CONFIG, genome_mb=0))
    with pytest.raises(ConfigError, match="unknown chromosome"):
        chrom_sizes_for(dataclasses.replace(CONFIG, chroms=("1", "chr1")))
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "precious.txt").write_text("keep")
    with pytest.raises(ConfigError, match="not a simulated dataset"):
        simulate(tmp_path / "mine", CONFIG, overwrite=True)
    assert (tmp_path / "mine" / "precious.txt").read_text() == "keep"


def test_other_motif_file_works_cofactor_from_default(tmp_path):
    """--motifs with only REST: REST planted from it, its co-factor SP1 from HOCOMOCO v9."""
    from factornet_jax.meme import write_meme
    from factornet_jax.reference_files import default_motif_db
    own = tmp_path / "rest.meme"
    write_meme(own, [find_motif(read_meme(default_motif_db()), "REST")])
    config = dataclasses.replace(CONFIG, genome_mb=0.5, tfs=("REST",), cells=("OnlyCell",), motifs_path=str(own))
    result = simulate(tmp_path / "b", config)
    assert read_bed(result.cells["OnlyCell"].conservative["REST"]).size > 0
    assert [m.alt_name for m in read_meme(result.motifs)] == ["REST", "SP1"]

"""The store reader against independent oracles: pyfaidx for sequence, pyBigWig for signal."""
import numpy as np
import pyBigWig
import pyfaidx
import pytest
import zarr
from conftest import flip_byte

from factornet_jax import open_cell_store
from factornet_jax.errors import FactorNetError, StoreError


def oracle_onehot(fasta, chrom, start, end):
    seq = str(pyfaidx.Fasta(str(fasta))[chrom][start:end]).upper()
    out = np.zeros((end - start, 4), dtype=np.uint8)
    for k, letter in enumerate("ACGT"):
        out[np.frombuffer(seq.encode(), dtype=np.uint8) == ord(letter), k] = 1
    return out


def oracle_signal(cell_dir, chrom, start, end):
    tracks = [line.split("\t")[0] for line in open(cell_dir / "bigwig.txt").read().splitlines()]
    columns = []
    for name in tracks:
        bw = pyBigWig.open(str(cell_dir / name))
        columns.append(np.nan_to_num(np.array(bw.values(chrom, start, end), dtype=np.float32)))
    return np.stack(columns, axis=1)


def test_random_windows_match_pyfaidx_and_pybigwig(tiny_stores):
    cs = open_cell_store(tiny_stores["cell_stores"][0], threads=2)
    rng = np.random.default_rng(1)
    chroms = rng.choice(list(cs.chrom_sizes), 40)
    length = 1000
    starts = np.array([rng.integers(0, cs.chrom_sizes[c] - length) for c in chroms])
    starts[0] = 4096 - 10                       # crosses a chunk boundary
    chroms[1], starts[1] = "chr2", 33_333 - length  # touches the (partial) last chunk
    onehot, signal = cs.fetch_batch(chroms, starts, length)
    assert onehot.shape == (40, length, 4) and onehot.dtype == np.uint8
    assert signal.shape == (40, length, 2) and signal.dtype == np.float32
    for b in range(len(chroms)):
        end = starts[b] + length
        np.testing.assert_array_equal(onehot[b], oracle_onehot(tiny_stores["fasta"], chroms[b], starts[b], end))
        np.testing.assert_array_equal(signal[b], oracle_signal(tiny_stores["cells"][0], chroms[b], starts[b], end))


def test_fetch_single_window_and_n_lowercase(tiny_stores):
    cs = open_cell_store(tiny_stores["cell_stores"][1])
    onehot, signal = cs.fetch("chr1", 0, 500)
    assert onehot[100:250].sum() == 0       # N run
    assert onehot[400:410].sum() == 0       # IUPAC codes
    seq = tiny_stores["seqs"]["chr1"]
    lower = next(i for i in range(500) if seq[i] in "acgt")
    assert onehot[lower].sum() == 1         # lowercase counts as a base
    assert signal.shape == (500, 2)


def test_direct_decode_equals_zarr(tiny_stores):
    cs = open_cell_store(tiny_stores["cell_stores"][0])
    arr = zarr.open_array(str(tiny_stores["cell_stores"][0] / "signal" / "chr11"), mode="r")
    _, signal = cs.fetch("chr11", 0, 20_000)
    np.testing.assert_array_equal(signal, arr[...])
    seq = zarr.open_array(str(tiny_stores["genome"] / "sequence" / "chr11"), mode="r")[...]
    codes, _ = cs.fetch_batch(["chr11"], [0], 20_000, as_codes=True)
    np.testing.assert_array_equal(codes[0], seq)


def test_padding_and_out_of_bounds(tiny_stores):
    cs = open_cell_store(tiny_stores["cell_stores"][0])
    with pytest.raises(FactorNetError, match="runs past the chromosome"):
        cs.fetch("chr11", 19_500, 20_500)
    with pytest.raises(FactorNetError, match="runs past the chromosome"):
        cs.fetch("chr11", -5, 100)
    onehot, signal = cs.fetch("chr11", 19_500, 20_500, pad=True)
    assert onehot[500:].sum() == 0 and signal[500:].sum() == 0
    inside, inside_sig = cs.fetch("chr11", 19_500, 20_000)
    np.testing.assert_array_equal(onehot[:500], inside)
    np.testing.assert_array_equal(signal[:500], inside_sig)
    with pytest.raises(FactorNetError, match="chromosome 'chrZ' is not in the store"):
        cs.fetch("chrZ", 0, 10)


def test_store_attributes_and_peaks(tiny_stores):
    from factornet_jax.bed import read_bed
    cs = open_cell_store(tiny_stores["cell_stores"][0])
    assert cs.track_names == ["Unique35", "DGF"]
    assert cs.tfs == ["TFA", "TFB"]
    assert cs.meta_names == ["GEPC1", "GEPC2", "GEPC3"]
    assert cs.chrom_sizes == {"chr1": 50_000, "chr2": 33_333, "chr11": 20_000}
    peaks = cs.peaks("TFA")
    expected = read_bed(tiny_stores["cells"][0] / "TFA.conservative.narrowPeak.gz")
    np.testing.assert_array_equal(peaks, expected)
    assert cs.peaks("TFA", kind="relaxed") is not None
    with pytest.raises(FactorNetError, match="TF 'NOPE' not in this store"):
        cs.peaks("NOPE")


def test_missing_and_corrupted_chunks_are_errors(tiny_stores, tmp_path):
    import shutil
    stores = tmp_path / "copy"
    shutil.copytree(tiny_stores["dir"], stores)
    chunk = stores / "CellA.zarr" / "signal" / "chr2" / "c" / "3" / "0"
    flip_byte(chunk, chunk.stat().st_size // 2)
    assert_fetch_fails(stores / "CellA.zarr", "chr2", 3 * 4096, 100, "chunk 3 of signal/chr2 is corrupted")
    (stores / "genome.zarr" / "sequence" / "chr2" / "c" / "1").unlink()
    assert_fetch_fails(stores / "CellA.zarr", "chr2", 4096, 100, "chunk 1 of sequence/chr2 is missing")


def assert_fetch_fails(store_path, chrom, start, length, match):
    """A freshly opened store raises StoreError(match) for the window chrom:start+length."""
    cs = open_cell_store(store_path)
    with pytest.raises(StoreError, match=match):
        cs.fetch(chrom, start, start + length)


def test_incomplete_store_is_never_opened(tiny_stores, tmp_path):
    import json
    import shutil
    stores = tmp_path / "copy"
    shutil.copytree(tiny_stores["dir"], stores)
    meta_path = stores / "CellA.zarr" / "zarr.json"
    meta = json.loads(meta_path.read_text())
    meta["attributes"]["factornet"]["complete"] = False
    meta_path.write_text(json.dumps(meta))
    with pytest.raises(StoreError, match="incomplete"):
        open_cell_store(stores / "CellA.zarr")
    shutil.move(stores / "CellB.zarr", stores / "CellB.zarr.partial")
    with pytest.raises(StoreError, match="interrupted"):
        open_cell_store(stores / "CellB.zarr")


@pytest.fixture(scope="module")
def sharded_stores(tiny_inputs, tmp_path_factory):
    """The tiny inputs built with 512-bp chunks, 16 chunks per shard: long arrays are sharded
    (several shard files per chromosome), so windows cross both chunk and shard boundaries."""
    from factornet_jax import stores
    from factornet_jax.build import BuildRequest, build_stores
    out = tmp_path_factory.mktemp("sharded")
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(stores, "SHARD_CHUNKS", 16)
        build_stores(BuildRequest(cell_dirs=tuple(str(c) for c in tiny_inputs["cells"]),
                                  genome=str(tiny_inputs["fasta"]), stores_dir=str(out),
                                  chunk_bases=512))
    return out


def test_sharded_layout_reads_like_the_oracles_and_zarr(sharded_stores, tiny_stores):
    import json
    meta = json.loads((sharded_stores / "CellA.zarr" / "signal" / "chr1" / "zarr.json").read_text())
    assert meta["codecs"][0]["name"] == "sharding_indexed"          # really the sharded layout
    assert len(list((sharded_stores / "CellA.zarr" / "signal" / "chr1" / "c").iterdir())) == 7
    cs = open_cell_store(sharded_stores / "CellA.zarr")
    rng = np.random.default_rng(5)
    chroms = rng.choice(["chr1", "chr2"], 30)
    starts = np.array([rng.integers(0, cs.chrom_sizes[c] - 1000) for c in chroms])
    starts[0], chroms[0] = 16 * 512 - 300, "chr1"                  # crosses a shard boundary
    onehot, signal = cs.fetch_batch(chroms, starts, 1000)
    for b in range(len(chroms)):
        end = starts[b] + 1000
        np.testing.assert_array_equal(onehot[b], oracle_onehot(tiny_stores["fasta"], chroms[b], starts[b], end))
        np.testing.assert_array_equal(signal[b], oracle_signal(tiny_stores["cells"][0], chroms[b], starts[b], end))
    whole = zarr.open_array(str(sharded_stores / "CellA.zarr" / "signal" / "chr1"), mode="r")[...]
    np.testing.assert_array_equal(cs.fetch("chr1", 0, 50_000)[1], whole)


def test_sharded_damage_is_an_error(sharded_stores, tmp_path):
    import shutil
    copy = tmp_path / "copy"
    shutil.copytree(sharded_stores, copy)
    flip_byte(copy / "CellA.zarr" / "signal" / "chr1" / "c" / "1" / "0", 40)   # in an inner chunk
    assert_fetch_fails(copy / "CellA.zarr", "chr1", 16 * 512, 600, "of signal/chr1 is corrupted")
    flip_byte(copy / "CellA.zarr" / "signal" / "chr1" / "c" / "2" / "0", -10)  # in the shard index
    assert_fetch_fails(copy / "CellA.zarr", "chr1", 32 * 512, 600, "signal/chr1")
    (copy / "genome.zarr" / "sequence" / "chr1" / "c" / "3").unlink()
    assert_fetch_fails(copy / "CellA.zarr", "chr1", 48 * 512, 600, "of sequence/chr1 is missing")


def test_the_reader_does_not_import_the_writer():
    """Issue 16: the schema and the byte format have their own modules, so reading a store
    never loads the build code (stores.py, build.py)."""
    import subprocess
    import sys
    code = ("import sys, factornet_jax.reader; "
            "print(sorted(m for m in sys.modules if m in ('factornet_jax.stores', 'factornet_jax.build')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"

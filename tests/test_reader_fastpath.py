"""The batch reader's fast path (ChunkedArray.read_chunks, byte copies of windows) against zarr
and against its other paths (decoded-chunk cache, decode threads), concurrently, on both
layouts and both codecs, and its errors (same messages, raised in chunk order)."""
import shutil
import threading

import google_crc32c
import numpy as np
import pytest
import zarr

from factornet_jax import reader
from factornet_jax.errors import StoreError
from factornet_jax.reader import ChunkCache, ChunkedArray, _BatchReader, open_cell_store

CHUNK = 512
PER_SHARD = 16


@pytest.fixture(scope="module")
def stores(tiny_inputs, tmp_path_factory):
    """512-bp chunks, 16 per shard: chr1 (98 chunks) and chr2 (66) are sharded, chr11 (40)
    is one file per chunk, so a batch mixes both layouts."""
    from factornet_jax import stores as stores_module
    from factornet_jax.build import BuildRequest, build_stores
    out = tmp_path_factory.mktemp("fastpath")
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(stores_module, "SHARD_CHUNKS", PER_SHARD)
        build_stores(BuildRequest(cell_dirs=(str(tiny_inputs["cells"][0]),),
                                  genome=str(tiny_inputs["fasta"]), stores_dir=str(out),
                                  chunk_bases=CHUNK))
    return out


def zarr_windows(store_dir, chroms, starts, length):
    """The expected batch, cut out of whole arrays read through zarr (4 / 0 off the ends)."""
    codes = np.full((len(chroms), length), 4, dtype=np.uint8)
    signal = np.zeros((len(chroms), length, 2), dtype=np.float32)
    whole = {}
    for b, (chrom, start) in enumerate(zip(chroms, starts)):
        if chrom not in whole:
            whole[chrom] = tuple(zarr.open_array(str(store_dir / part / chrom), mode="r")[...]
                                 for part in ("genome.zarr/sequence", "CellA.zarr/signal"))
        seq, sig = whole[chrom]
        lo, hi = max(start, 0), min(start + length, len(seq))
        if hi > lo:
            codes[b, lo - start: hi - start] = seq[lo:hi]
            signal[b, lo - start: hi - start] = sig[lo:hi]
    return codes, signal


def edge_windows(length):
    """Windows on chunk and shard boundaries, spanning several chunks, and off the ends."""
    shard = CHUNK * PER_SHARD
    return [("chr1", 0), ("chr1", CHUNK - 10), ("chr1", shard - 300), ("chr1", 2 * shard - 1),
            ("chr2", 33_333 - length), ("chr2", 33_333 - 100), ("chr2", -300), ("chr2", 40_000),
            ("chr11", 20_000 - 700), ("chr11", -length - 5), ("chr11", 3 * CHUNK),
            ("chr1", 50_000 - length + 1), ("chr1", 50_000 - 1), ("chr1", 6 * shard + 7)]


def random_batch(rng, n, length):
    sizes = {"chr1": 50_000, "chr2": 33_333, "chr11": 20_000}
    chroms = rng.choice(list(sizes), n)
    starts = np.array([rng.integers(-length // 2, sizes[c] - length // 2) for c in chroms])
    return list(chroms), starts


@pytest.mark.parametrize("length", [1000, 1500, 300])
def test_fast_path_matches_zarr_and_the_other_paths(stores, length):
    rng = np.random.default_rng(length)
    edges = edge_windows(length)
    chroms, starts = random_batch(rng, 50, length)
    chroms += [c for c, _ in edges]
    starts = np.concatenate([starts, [s for _, s in edges]])
    expected = zarr_windows(stores, chroms, starts, length)
    path = stores / "CellA.zarr"
    for store in (open_cell_store(path), open_cell_store(path, cache_bytes=1 << 20),
                  open_cell_store(path, threads=3)):
        for _ in range(2):                       # the second time from the cache, if any
            codes, signal = store.fetch_batch(chroms, starts, length, pad=True, as_codes=True)
            np.testing.assert_array_equal(codes, expected[0])
            np.testing.assert_array_equal(signal, expected[1])
    codes = store.genome.fetch_codes_batch(chroms, starts, length, pad=True)
    np.testing.assert_array_equal(codes, expected[0])


def test_concurrent_batches_match_serial_reads(stores, monkeypatch):
    """4 threads on one store (as BatchLoader's threads do), with descriptor LRUs of 2 so
    descriptors are closed and reopened under the readers all the time."""
    monkeypatch.setattr(reader, "default_max_open", lambda: 2)
    rng = np.random.default_rng(3)
    batches = [random_batch(rng, 64, 1000) for _ in range(24)]
    serial_store = open_cell_store(stores / "CellA.zarr")
    serial = [serial_store.fetch_batch(c, s, 1000, pad=True, as_codes=True) for c, s in batches]
    store = open_cell_store(stores / "CellA.zarr")
    assert store._signal.files.max_open == 2 and store.genome._reader.files.max_open == 2
    results, errors = {}, []

    def work(t):
        try:
            for _ in range(3):
                for i in range(t, len(batches), 4):
                    got = store.fetch_batch(*batches[i], 1000, pad=True, as_codes=True)
                    results.setdefault(i, []).append(got)
        except Exception as err:  # noqa: BLE001 -- reported below
            errors.append(err)

    threads = [threading.Thread(target=work, args=(t,)) for t in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors
    for i, expected in enumerate(serial):
        assert len(results[i]) == 3
        for codes, signal in results[i]:
            np.testing.assert_array_equal(codes, expected[0])
            np.testing.assert_array_equal(signal, expected[1])


def shard_file(store_dir, shard):
    return store_dir / "CellA.zarr" / "signal" / "chr1" / "c" / str(shard) / "0"


def shard_entries(path):
    data = path.read_bytes()
    index = np.frombuffer(data[-(PER_SHARD * 16 + 4):-4], dtype="<u8").reshape(PER_SHARD, 2)
    return data, index


def corrupt_chunk(store_dir, chunk):
    path = shard_file(store_dir, chunk // PER_SHARD)
    data, index = shard_entries(path)
    offset, nbytes = index[chunk % PER_SHARD].tolist()
    data = bytearray(data)
    data[offset + nbytes // 2] ^= 0xFF
    path.write_bytes(bytes(data))


def test_errors_name_the_first_damaged_chunk(stores, tmp_path):
    copy = tmp_path / "copy"
    shutil.copytree(stores, copy)
    corrupt_chunk(copy, 20)                              # shard 1
    shard_file(copy, 3).unlink()                         # chunks 48-63
    windows = (["chr1", "chr1"], [20 * CHUNK + 5, 50 * CHUNK])
    with pytest.raises(StoreError, match="chunk 20 of signal/chr1 is corrupted"):
        open_cell_store(copy / "CellA.zarr").fetch_batch(*windows, 100)
    corrupt_chunk(copy, 60 + 16)                         # shard 4, after the missing shard 3
    with pytest.raises(StoreError, match="chunk 50 of signal/chr1 is missing"):
        open_cell_store(copy / "CellA.zarr").fetch_batch(["chr1", "chr1"],
                                                         [50 * CHUNK, 76 * CHUNK], 100)
    with pytest.raises(StoreError, match="chunk 76 of signal/chr1 is corrupted"):
        open_cell_store(copy / "CellA.zarr").fetch_batch(["chr1"], [76 * CHUNK], 100)


def test_shard_file_removed_after_its_index_was_read(stores, tmp_path):
    copy = tmp_path / "copy"
    shutil.copytree(stores, copy)
    store = open_cell_store(copy / "CellA.zarr")
    store.fetch_batch(["chr1"], [2 * PER_SHARD * CHUNK], 100)   # shard 2's index is kept
    store._signal.files.close_descriptors()                     # and no descriptor is open
    shard_file(copy, 2).unlink()
    with pytest.raises(StoreError, match=f"chunk {2 * PER_SHARD + 3} of signal/chr1 is missing"):
        store.fetch_batch(["chr1", "chr1"], [2 * PER_SHARD * CHUNK + 3 * CHUNK, 10], 100)


def blosc_with_crc(raw):
    from numcodecs import Blosc
    body = Blosc(cname="lz4", clevel=1).encode(raw)
    return body + google_crc32c.value(body).to_bytes(4, "little")


def test_chunk_of_the_wrong_size_is_an_error(stores, tmp_path):
    copy = tmp_path / "copy"
    shutil.copytree(stores, copy)
    expected = CHUNK * 2 * 4
    # sharded: rewrite shard 0 with chunk 5 re-encoded short (valid blosc, valid crc32c)
    path = shard_file(copy, 0)
    data, index = shard_entries(path)
    parts = [data[o: o + n] for o, n in index.tolist()]
    parts[5] = blosc_with_crc(np.zeros(100, dtype=np.float32).tobytes())
    offsets = np.cumsum([0] + [len(p) for p in parts[:-1]])
    table = np.stack([offsets, [len(p) for p in parts]], axis=1).astype("<u8").tobytes()
    path.write_bytes(b"".join(parts) + table + google_crc32c.value(table).to_bytes(4, "little"))
    message = f"chunk 5 of signal/chr1 decodes to 400 bytes, expected {expected}"
    with pytest.raises(StoreError, match=message):
        open_cell_store(copy / "CellA.zarr").fetch_batch(["chr1"], [5 * CHUNK], 100)
    # one file per chunk
    chunk = copy / "CellA.zarr" / "signal" / "chr11" / "c" / "2" / "0"
    chunk.write_bytes(blosc_with_crc(np.zeros(10, dtype=np.float32).tobytes()))
    message = f"chunk 2 of signal/chr11 decodes to 40 bytes, expected {expected}"
    with pytest.raises(StoreError, match=message):
        open_cell_store(copy / "CellA.zarr").fetch_batch(["chr11"], [2 * CHUNK], 100)


@pytest.mark.parametrize("shards", [None, (CHUNK * 8, 3)])
def test_zstd_arrays_read_like_zarr(tmp_path, shards):
    from zarr.codecs import Crc32cCodec, ZstdCodec
    values = np.random.default_rng(0).gamma(1.0, 2.0, (CHUNK * 20 + 77, 3)).astype(np.float32)
    values[CHUNK * 3: CHUNK * 5] = 1.5
    arr = zarr.create_array(str(tmp_path / "signal" / "chrZ"), shape=values.shape,
                            chunks=(CHUNK, 3), shards=shards, dtype="float32",
                            compressors=[ZstdCodec(level=3), Crc32cCodec()], fill_value=0)
    arr[...] = values
    assert ChunkedArray(str(tmp_path), "signal/chrZ").sharded == (shards is not None)
    batch = _BatchReader(str(tmp_path), "signal", {"chrZ": len(values)}, ChunkCache(), threads=1)
    starts = np.array([0, CHUNK - 3, CHUNK * 8 - 100, len(values) - 700, len(values) - 10, -20])
    out = batch.read(np.array(["chrZ"] * len(starts)), starts, 700,
                     np.zeros((len(starts), 700, 3), dtype=np.float32))
    for b, start in enumerate(starts):
        lo, hi = max(start, 0), min(start + 700, len(values))
        np.testing.assert_array_equal(out[b, lo - start: hi - start], values[lo:hi])
        assert not out[b, :lo - start].any() and not out[b, hi - start:].any()


# ------------------------------------------------------------------ lifetimes: close() and `with`

def open_descriptors_under(folder):
    """This process's open descriptors of files under `folder`."""
    import os
    found = []
    for fd in os.listdir("/proc/self/fd"):
        try:
            target = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:
            continue
        if target.startswith(str(folder)):
            found.append(target)
    return found


def test_a_closed_store_holds_no_files_and_refuses_reads(stores, tmp_path):
    shutil.copytree(stores, tmp_path / "copy")
    stores = tmp_path / "copy"                             # no other test's store reads here
    with open_cell_store(stores / "CellA.zarr", threads=3) as store:
        chroms, starts = random_batch(np.random.default_rng(9), 64, 1000)
        store.fetch_batch(chroms, starts, 1000, pad=True)
        held = open_descriptors_under(stores)
        assert any("/signal/" in p for p in held) and any("/sequence/" in p for p in held)
        assert store._signal._pool is not None              # decode threads were started
    assert open_descriptors_under(stores) == []            # its genome store's too
    assert store.closed and store.genome.closed and store._signal._pool is None
    with pytest.raises(ValueError, match="closed store"):
        store.fetch_batch(chroms, starts, 1000, pad=True)
    with pytest.raises(ValueError, match="closed store"):
        store.genome.fetch_codes_batch(chroms, starts, 1000, pad=True)
    store.close()                                          # twice is harmless
    other = open_cell_store(stores / "CellA.zarr")         # other stores are not affected
    other.fetch_batch(chroms, starts, 1000, pad=True)
    other.genome.close()
    with pytest.raises(ValueError, match="closed store"):
        other.fetch_batch(chroms, starts, 1000, pad=True)
    other.close()
    assert open_descriptors_under(stores) == []


def test_open_stores_closes_what_it_opened_on_error(stores, tmp_path, monkeypatch):
    from factornet_jax.errors import FactorNetError
    opened = []
    real = reader.open_cell_store
    monkeypatch.setattr(reader, "open_cell_store", lambda path: opened.append(real(path)) or opened[-1])
    with pytest.raises(FactorNetError, match="neither a cell store nor a cell folder"):
        reader.open_stores([stores / "CellA.zarr", tmp_path / "nothing"], str(tmp_path), "-i")
    assert len(opened) == 1 and opened[0].closed


def test_out_of_descriptors_makes_room_then_says_so(monkeypatch, tmp_path):
    """EMFILE (other stores hold the process's descriptors): the store closes the older half
    of its own and retries; when it holds none, a one-line StoreError."""
    import errno
    import os
    paths = []
    for k in range(5):
        paths.append(tmp_path / f"f{k}")
        paths[-1].write_bytes(bytes([k]) * 10)
    files = reader.OpenFiles(max_open=8)
    for k in range(4):
        assert files.pread(("a", k), str(paths[k]), 1, 0) == bytes([k])
    real_open, failures = os.open, []

    def crowded(path, flags):
        if failures:
            failures.pop()
            raise OSError(errno.EMFILE, "Too many open files")
        return real_open(path, flags)

    monkeypatch.setattr(os, "open", crowded)
    failures.append(1)
    assert files.pread(("a", 4), str(paths[4]), 1, 0) == bytes([4])
    assert list(files._fds) == [("a", 2), ("a", 3), ("a", 4)]
    files.close_descriptors()
    failures.extend([1, 1])
    with pytest.raises(StoreError, match="too many open files; close stores not in use"):
        files.pread(("a", 0), str(paths[0]), 1, 0)
    files.close()


def test_an_unclosed_store_closes_its_files_when_collected(stores, tmp_path):
    import gc
    shutil.copytree(stores, tmp_path / "copy")
    store = open_cell_store(tmp_path / "copy" / "CellA.zarr")
    store.fetch_batch(*random_batch(np.random.default_rng(2), 32, 1000), 1000, pad=True)
    assert open_descriptors_under(tmp_path / "copy")
    del store
    gc.collect()
    assert open_descriptors_under(tmp_path / "copy") == []


def test_errors_of_one_file_per_chunk_arrays_come_in_chunk_order(stores, tmp_path):
    """chr11 keeps one file per chunk: a corrupted chunk before a missing one is reported."""
    copy = tmp_path / "copy"
    shutil.copytree(stores, copy)
    folder = copy / "CellA.zarr" / "signal" / "chr11" / "c"
    data = bytearray((folder / "4" / "0").read_bytes())
    data[len(data) // 2] ^= 0xFF
    (folder / "4" / "0").write_bytes(bytes(data))
    shutil.rmtree(folder / "9")
    with pytest.raises(StoreError, match="chunk 4 of signal/chr11 is corrupted"):
        open_cell_store(copy / "CellA.zarr").fetch_batch(["chr11", "chr11"],
                                                         [4 * CHUNK, 9 * CHUNK], 100)
    with pytest.raises(StoreError, match="chunk 9 of signal/chr11 is missing"):
        open_cell_store(copy / "CellA.zarr").fetch_batch(["chr11", "chr11"],
                                                         [2 * CHUNK, 9 * CHUNK], 100)

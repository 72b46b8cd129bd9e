"""The shard byte format (shard_format.py) both ways against zarr-python: shards our writer
makes are read by zarr.open_array, and arrays zarr-python writes with the same codecs and
shards are read identically by our reader, including its errors for missing chunks and
damaged indexes."""
import json

import numpy as np
import pytest
import zarr
from conftest import flip_byte
from zarr.codecs import BloscCodec, Crc32cCodec

from factornet_jax import shard_format as sf
from factornet_jax.errors import StoreError
from factornet_jax.reader import ChunkedArray
from factornet_jax.stores import ChunkEncoder, SequentialWriter, _create_array

CHUNK = 256


def blosc_codecs(dtype):
    shuffle, typesize = ("bitshuffle", 1) if dtype == np.uint8 else ("noshuffle", 4)
    return [BloscCodec(cname="lz4hc", clevel=5, shuffle=shuffle, typesize=typesize), Crc32cCodec()]


def values_for(dtype, rows, seed=0):
    """(rows,) uint8 codes or (rows, 3) float32 signal with runs, zeros and a tail."""
    rng = np.random.default_rng(seed)
    if dtype == np.uint8:
        return rng.integers(0, 5, rows).astype(np.uint8)
    values = np.repeat(rng.gamma(1.0, 2.0, (rows // 7 + 1, 3)), 7, axis=0)[:rows]
    values[CHUNK: 3 * CHUNK] = 0
    return values.astype(np.float32)


def read_all(store_dir, name):
    """Every row of the array through our reader, chunk by chunk."""
    arr = ChunkedArray(str(store_dir), name)
    try:
        rows = np.concatenate([arr.read_chunk(i) for i in range(arr.n_chunks)])
    finally:
        arr.close()
    return rows[: arr.shape[0]]


@pytest.mark.parametrize("dtype", [np.uint8, np.float32])
@pytest.mark.parametrize("with_encoder", [False, True])
def test_shards_we_write_are_read_by_zarr_byte_for_byte(tmp_path, dtype, with_encoder):
    """SequentialWriter's shard files (blocks of odd sizes, a partial last chunk and shard)
    are what zarr-python reads, and byte for byte what it writes itself."""
    rows = 70 * CHUNK + 123                          # 5 shards of 16 chunks, the last partial
    values = values_for(dtype, rows)
    shape, chunks = (rows, *values.shape[1:]), (CHUNK, *values.shape[1:])
    ours = zarr.open_group(str(tmp_path / "ours"), mode="w", zarr_format=3)
    arr = _create_array(ours, "a", shape, chunks, dtype, blosc_codecs(dtype), shard_chunks=16)
    encoder = ChunkEncoder(2) if with_encoder else None
    writer = SequentialWriter(arr, tmp_path / "ours", encoder)
    for lo in range(0, rows, 1000):
        writer.write(values[lo: lo + 1000])
    if encoder is not None:
        encoder.close()
    assert json.loads((tmp_path / "ours" / "a" / "zarr.json").read_text())["codecs"][0]["name"] \
        == "sharding_indexed"
    np.testing.assert_array_equal(zarr.open_array(str(tmp_path / "ours" / "a"), mode="r")[...],
                                  values)
    np.testing.assert_array_equal(read_all(tmp_path / "ours", "a"), values)

    theirs = zarr.open_group(str(tmp_path / "theirs"), mode="w", zarr_format=3)
    _create_array(theirs, "a", shape, chunks, dtype, blosc_codecs(dtype), shard_chunks=16)[...] = values
    files = sorted(p.relative_to(tmp_path / "ours") for p in (tmp_path / "ours" / "a" / "c").rglob("*")
                   if p.is_file())
    assert len(files) == 5
    for path in files:
        assert (tmp_path / "ours" / path).read_bytes() == (tmp_path / "theirs" / path).read_bytes()


def zarr_sharded(path, values, chunks_per_shard=8, write_empty_chunks=False, **codecs):
    """An array written by zarr-python alone: blosc + crc32c chunks in shards."""
    arr = zarr.create_array(str(path), shape=values.shape, chunks=(CHUNK, *values.shape[1:]),
                            shards=(CHUNK * chunks_per_shard, *values.shape[1:]),
                            dtype=values.dtype, compressors=blosc_codecs(values.dtype.type),
                            fill_value=0, config={"write_empty_chunks": write_empty_chunks},
                            **codecs)
    arr[...] = values
    return arr


@pytest.mark.parametrize("dtype", [np.uint8, np.float32])
def test_arrays_zarr_writes_are_read_identically(tmp_path, dtype):
    values = values_for(dtype, 37 * CHUNK + 5, seed=1)
    zarr_sharded(tmp_path / "signal" / "chrZ", values, write_empty_chunks=True)
    arr = ChunkedArray(str(tmp_path), "signal/chrZ")
    assert arr.sharded and arr.chunks_per_shard == 8 and arr.n_chunks == 38
    np.testing.assert_array_equal(read_all(tmp_path, "signal/chrZ"), values)
    chunks = arr.read_chunks(np.array([0, 7, 8, 9, 37]))          # across shards, the last one
    for index, chunk in zip([0, 7, 8, 9, 37], chunks):
        expected = np.zeros((CHUNK, *values.shape[1:]), dtype)
        part = values[index * CHUNK: (index + 1) * CHUNK]
        expected[: len(part)] = part
        assert bytes(chunk) == expected.tobytes()
    arr.close()


def test_chunks_zarr_left_out_are_missing_errors(tmp_path):
    """zarr skips all-zero chunks (write_empty_chunks=False): an index entry of NO_CHUNK, or no
    shard file at all when the whole shard is empty. Our stores write every chunk, so to our
    reader such a chunk is missing (an error), never zeros."""
    values = values_for(np.float32, 24 * CHUNK, seed=2)
    values[CHUNK: 3 * CHUNK] = 0                     # chunks 1-2: left out of shard 0
    values[16 * CHUNK:] = 0                          # shard 2 (chunks 16-23): no file
    zarr_sharded(tmp_path / "signal" / "chrZ", values)
    shard0 = (tmp_path / "signal" / "chrZ" / "c" / "0" / "0").read_bytes()
    index = sf.decode_index(shard0[-sf.index_nbytes(8):], 8)
    assert index[1].tolist() == [sf.NO_CHUNK] * 2 and index[0, 0] == 0
    assert not (tmp_path / "signal" / "chrZ" / "c" / "2").exists()
    arr = ChunkedArray(str(tmp_path), "signal/chrZ")
    np.testing.assert_array_equal(arr.read_chunk(3), values[3 * CHUNK: 4 * CHUNK])
    with pytest.raises(StoreError, match="chunk 1 of signal/chrZ is missing"):
        arr.read_chunk(1)
    with pytest.raises(StoreError, match="chunk 2 of signal/chrZ is missing"):
        arr.read_chunks(np.array([0, 2, 3]))
    with pytest.raises(StoreError, match="chunk 17 of signal/chrZ is missing"):
        arr.read_chunks(np.array([9, 17]))
    arr.close()


def test_corrupted_index_crc_is_an_error(tmp_path):
    values = values_for(np.uint8, 16 * CHUNK, seed=3)
    zarr_sharded(tmp_path / "sequence" / "chrZ", values, write_empty_chunks=True)
    flip_byte(tmp_path / "sequence" / "chrZ" / "c" / "1", -2)     # in the index's crc32c
    arr = ChunkedArray(str(tmp_path), "sequence/chrZ")
    np.testing.assert_array_equal(arr.read_chunk(2), values[2 * CHUNK: 3 * CHUNK])
    with pytest.raises(StoreError, match="chunk 9 of sequence/chrZ is corrupted"):
        arr.read_chunk(9)
    with pytest.raises(StoreError, match="chunk 8 of sequence/chrZ is corrupted"):
        arr.read_chunks(np.array([3, 8, 9]))
    arr.close()


def test_index_at_the_start_is_read(tmp_path):
    """zarr's other index location (not what our builds write, read all the same)."""
    from zarr.codecs import BytesCodec, ShardingCodec
    values = values_for(np.float32, 20 * CHUNK + 9, seed=4) + 1     # no chunk left out
    inner = [BytesCodec(), *blosc_codecs(np.float32)]
    arr = zarr.create(shape=values.shape, chunks=(8 * CHUNK, 3), dtype="float32", fill_value=0,
                      store=str(tmp_path / "signal" / "chrZ"), zarr_format=3,
                      codecs=[ShardingCodec(chunk_shape=(CHUNK, 3), codecs=inner,
                                            index_location="start")])
    arr[...] = values
    assert not ChunkedArray(str(tmp_path), "signal/chrZ").index_at_end
    np.testing.assert_array_equal(read_all(tmp_path, "signal/chrZ"), values)


# ------------------------------------------------------------------ the format itself

def test_index_round_trip_and_empty_slots():
    data = sf.encode_index([10, None, 7], 5)
    assert len(data) == sf.index_nbytes(5) == 5 * 16 + 4
    index = sf.decode_index(data, 5)
    assert index.dtype == np.dtype("<u8")
    assert index.tolist() == [[0, 10]] + [[sf.NO_CHUNK] * 2] + [[10, 7]] + [[sf.NO_CHUNK] * 2] * 2
    for bad in (data[:-1], data[:-1] + bytes([data[-1] ^ 1]), bytes([data[0] ^ 4]) + data[1:]):
        with pytest.raises(sf.ChecksumError):
            sf.decode_index(bad, 5)


def test_shard_bytes_are_payloads_then_index():
    parts = [b"abcde", None, b"xy"]
    shard = sf.encode_shard(parts, 4)
    assert shard[:7] == b"abcdexy"
    index = sf.decode_index(shard[7:], 4)
    assert [bytes(shard[o: o + n]) for o, n in index[[0, 2]].tolist()] == [b"abcde", b"xy"]


def test_chunk_round_trip_and_checks():
    layout = sf.ArrayLayout.from_metadata(json.loads(json.dumps(_metadata())))
    rows = np.arange(10 * 3, dtype=np.float32).reshape(10, 3)      # short: padded with zeros
    stored = sf.encode_chunk(rows, layout)
    crc32c, blosc_decompress, _ = sf.chunk_codecs()
    raw = sf.decode_chunk(stored, layout.chunk_nbytes, crc32c, blosc_decompress)
    decoded = np.frombuffer(raw, np.float32).reshape(layout.chunk_shape)
    np.testing.assert_array_equal(decoded[:10], rows)
    assert not decoded[10:].any()
    dest = np.empty(layout.chunk_nbytes, np.uint8)
    assert sf.decode_chunk(stored, layout.chunk_nbytes, crc32c, blosc_decompress, dest) is dest
    assert dest.tobytes() == bytes(raw)
    with pytest.raises(sf.ChecksumError):
        sf.decode_chunk(stored[:-1] + bytes([stored[-1] ^ 1]), layout.chunk_nbytes, crc32c,
                        blosc_decompress)
    with pytest.raises(sf.ChunkSizeError) as err:
        sf.decode_chunk(stored, layout.chunk_nbytes + 4, crc32c, blosc_decompress, dest)
    assert err.value.size == layout.chunk_nbytes


def _metadata(**change):
    """zarr.json of a sharded float32 (1000, 3) array, 8 chunks of CHUNK rows per shard."""
    inner = [{"name": "bytes", "configuration": {"endian": "little"}},
             {"name": "blosc", "configuration": {"typesize": 4, "cname": "lz4hc", "clevel": 5,
                                                 "shuffle": "noshuffle", "blocksize": 0}},
             {"name": "crc32c"}]
    config = {"chunk_shape": [CHUNK, 3], "codecs": inner, "index_location": "end",
              "index_codecs": [{"name": "bytes", "configuration": {"endian": "little"}},
                               {"name": "crc32c"}]}
    config.update(change)
    return {"shape": [1000, 3], "data_type": "float32", "fill_value": 0.0,
            "chunk_grid": {"name": "regular", "configuration": {"chunk_shape": [8 * CHUNK, 3]}},
            "chunk_key_encoding": {"name": "default", "configuration": {"separator": "/"}},
            "codecs": [{"name": "sharding_indexed", "configuration": config}]}


@pytest.mark.parametrize("change", [
    {"index_codecs": [{"name": "bytes", "configuration": {"endian": "big"}}, {"name": "crc32c"}]},
    {"index_codecs": [{"name": "bytes", "configuration": {"endian": "little"}}]},
    {"codecs": [{"name": "bytes"}, {"name": "gzip", "configuration": {"level": 1}},
                {"name": "crc32c"}]},
    {"codecs": [{"name": "bytes"}, {"name": "blosc", "configuration": {}}]},
    {"chunk_shape": [CHUNK * 3, 3]},                       # not a divisor of the shard
])
def test_other_layouts_are_refused(change, tmp_path):
    with pytest.raises(sf.UnsupportedLayout):
        sf.ArrayLayout.from_metadata(_metadata(**change))
    (tmp_path / "signal" / "chrZ").mkdir(parents=True)
    (tmp_path / "signal" / "chrZ" / "zarr.json").write_text(json.dumps(_metadata(**change)))
    with pytest.raises(StoreError, match="not a store this version wrote; rebuild it"):
        ChunkedArray(str(tmp_path), "signal/chrZ")


def test_dot_separated_chunk_keys_are_refused():
    meta = _metadata()
    meta["chunk_key_encoding"] = {"name": "default", "configuration": {"separator": "."}}
    with pytest.raises(sf.UnsupportedLayout):
        sf.ArrayLayout.from_metadata(meta)

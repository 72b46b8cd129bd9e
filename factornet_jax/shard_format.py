"""The bytes of our zarr v3 arrays, encoded and decoded in this one place.

An array (its zarr.json, parsed into `ArrayLayout`) is chunked along its first axis. Each
chunk is stored as the codecs `bytes` (little-endian), `blosc` (or `zstd`), `crc32c`: the
compressed frame followed by its crc32c, 4 bytes little-endian. Short arrays keep one file
per chunk, `<array>/c/<chunk>/0...` (one `/0` per further axis). Longer ones are shards
(`sharding_indexed`): file `<array>/c/<shard>/0...` holds up to `chunks_per_shard` chunk
payloads back to back, then the index, a (chunks_per_shard, 2) little-endian uint64 table
of (offset, nbytes) per chunk, NO_CHUNK in both for a chunk never written, followed by the
crc32c of the table. This is what zarr-python writes and reads (tests/test_shard_format.py
checks both ways); `stores.SequentialWriter` writes it without zarr's per-chunk overhead and
`reader.ChunkedArray` reads it with one `pread` per chunk.
"""
import functools
import os
from dataclasses import dataclass

import numpy as np

NO_CHUNK = 2**64 - 1          # shard index entry (offset and nbytes) of a chunk never written
INDEX_ENTRY_BYTES = 16        # one (offset, nbytes) pair of little-endian uint64
CHECKSUM_BYTES = 4            # the crc32c trailer of a chunk or an index, little-endian
# The crc32c of any message followed by its own crc32c is this constant, and any other
# 4-byte trailer gives another value (appending 4 bytes to a CRC is a bijection of the
# trailer): checking a stored chunk is one crc32c over all its bytes.
CRC32C_RESIDUE = 0x48674BC7
BLOSC_SHUFFLE = {"noshuffle": 0, "shuffle": 1, "bitshuffle": 2}


class UnsupportedLayout(ValueError):
    """zarr.json describes codecs or a layout this module does not read; args[0]: the codec
    names, outer then inner."""


class ChecksumError(ValueError):
    """Stored bytes (a chunk or a shard index) whose crc32c does not match."""


class ChunkSizeError(ValueError):
    """A chunk that decodes to `size` bytes instead of the layout's chunk_nbytes."""

    def __init__(self, size):
        super().__init__(size)
        self.size = size


@functools.cache
def chunk_codecs():
    """(crc32c, blosc decompress, zstd decode), imported on first use (Blosc single-threaded)."""
    import google_crc32c
    from numcodecs import Zstd
    blosc = single_threaded_blosc()
    return google_crc32c.value, blosc.decompress, Zstd().decode


def single_threaded_blosc():
    """numcodecs' blosc module, switched to single-threaded contextual calls (process-wide).

    With ``use_threads = False`` each compress/decompress call is contextual: no global
    Blosc lock, so our own encoder and reader threads run in parallel (Blosc's internal
    threads only add overhead on 8-64 kB chunks). Called where chunks are first encoded or
    decoded, never at import time.
    """
    from numcodecs import blosc
    blosc.use_threads = False
    return blosc


def _names(codecs):
    return [c["name"] for c in codecs]


def _little_endian(codec):
    return (codec.get("configuration") or {}).get("endian", "little") in ("little", None)


@dataclass(frozen=True)
class ArrayLayout:
    """Shape, chunking and codecs of one stored array, as its zarr.json says.

    shape: (length, *rest); chunk_shape: the (inner) chunk, (chunk_len, *rest);
    shard_len: rows per shard file (chunk_len when not sharded); compressor: "blosc" or
    "zstd" with its zarr configuration in `compressor_config`.
    """
    shape: tuple
    dtype: np.dtype
    chunk_shape: tuple
    shard_len: int
    sharded: bool
    index_at_end: bool
    compressor: str
    compressor_config: dict
    codec_names: tuple

    @classmethod
    def from_metadata(cls, meta):
        """The layout of a parsed zarr.json; UnsupportedLayout when it is not ours."""
        codecs = meta["codecs"]
        names = _names(codecs)
        outer = tuple(meta["chunk_grid"]["configuration"]["chunk_shape"])
        key_encoding = meta.get("chunk_key_encoding", {})
        ok = (key_encoding.get("name", "default") == "default"
              and (key_encoding.get("configuration") or {}).get("separator", "/") == "/")
        sharded = names == ["sharding_indexed"]
        if sharded:
            config = codecs[0]["configuration"]
            inner_codecs = config["codecs"]
            index_codecs = config.get("index_codecs", [])
            chunk_shape = tuple(config["chunk_shape"])
            location = config.get("index_location", "end")
            names = names + _names(inner_codecs)
            ok = (ok and _names(index_codecs) == ["bytes", "crc32c"]
                  and _little_endian(index_codecs[0]) and location in ("start", "end")
                  and outer[1:] == chunk_shape[1:] and outer[0] % chunk_shape[0] == 0)
        else:
            inner_codecs, chunk_shape, location = codecs, outer, "end"
        inner = _names(inner_codecs)
        ok = (ok and len(inner) == 3 and inner[0] == "bytes" and _little_endian(inner_codecs[0])
              and inner[1] in ("blosc", "zstd") and inner[2] == "crc32c")
        if not ok:
            raise UnsupportedLayout(names)
        return cls(shape=tuple(meta["shape"]), dtype=np.dtype(meta["data_type"]),
                   chunk_shape=chunk_shape, shard_len=outer[0], sharded=sharded,
                   index_at_end=location == "end", compressor=inner[1],
                   compressor_config=dict(inner_codecs[1].get("configuration") or {}),
                   codec_names=tuple(names))

    @property
    def chunk_len(self):
        return self.chunk_shape[0]

    @property
    def n_chunks(self):
        return -(-self.shape[0] // self.chunk_len) if self.shape[0] else 0

    @property
    def chunks_per_shard(self):
        return self.shard_len // self.chunk_len

    @property
    def n_shards(self):
        return -(-self.n_chunks // self.chunks_per_shard)

    @property
    def chunk_nbytes(self):
        return int(np.prod(self.chunk_shape)) * self.dtype.itemsize

    @property
    def index_nbytes(self):
        return index_nbytes(self.chunks_per_shard)

    @property
    def index_offset(self):
        """Where the shard index starts: from the end (< 0) or the start of the file."""
        return -self.index_nbytes if self.index_at_end else 0

    @property
    def key_suffix(self):
        return "/0" * (len(self.shape) - 1)

    def file_path(self, array_dir, position):
        """The file of chunk `position` (unsharded) or of shard `position` (sharded)."""
        return f"{array_dir}/c/{position}{self.key_suffix}"


def index_nbytes(chunks_per_shard):
    return chunks_per_shard * INDEX_ENTRY_BYTES + CHECKSUM_BYTES


def with_crc32c(body):
    """bytes `body` followed by its crc32c (4 bytes, little-endian)."""
    crc32c = chunk_codecs()[0]
    return bytes(body) + crc32c(body).to_bytes(CHECKSUM_BYTES, "little")


def encode_chunk(rows, layout):
    """(n <= chunk_len, *rest) rows -> the stored bytes of one chunk: zero-padded to the chunk
    shape (past the array end), little-endian, compressed as `layout` says, plus crc32c."""
    chunk = np.zeros(layout.chunk_shape, dtype=layout.dtype.newbyteorder("<"))
    chunk[: len(rows)] = rows
    config = layout.compressor_config
    if layout.compressor == "blosc":
        blosc = single_threaded_blosc()
        frame = blosc.compress(chunk, config["cname"].encode(), int(config["clevel"]),
                               BLOSC_SHUFFLE[config["shuffle"]])
    else:
        from numcodecs import Zstd
        frame = Zstd(level=int(config.get("level", 0))).encode(chunk)
    return with_crc32c(frame)


def decode_chunk(data, chunk_nbytes, crc32c, decompress, dest=None):
    """The stored bytes of one chunk -> its decoded bytes (chunk_nbytes), checked.

    crc32c, decompress: from chunk_codecs() (passed in: this runs once per chunk read). With
    `dest` (a writable chunk_nbytes buffer; Blosc only) the chunk is decoded into it, and
    returned. Raises ChecksumError or ChunkSizeError.
    """
    if len(data) <= CHECKSUM_BYTES or crc32c(data) != CRC32C_RESIDUE:
        raise ChecksumError()
    body = memoryview(data)[:-CHECKSUM_BYTES]
    if dest is not None:
        # the Blosc header's bytes 4-8: the decoded size (blosc would fill dest partially)
        size = int.from_bytes(body[4:8], "little") if len(body) >= 16 else -1
        if size != chunk_nbytes:
            raise ChunkSizeError(size)
        decompress(body, dest)
        return dest
    raw = decompress(body)
    if len(raw) != chunk_nbytes:
        raise ChunkSizeError(len(raw))
    return raw


def encode_index(sizes, chunks_per_shard):
    """Shard index bytes for chunk payloads of `sizes` bytes (None: chunk not written) laid out
    back to back from offset 0, in chunk order; slots past len(sizes) are empty."""
    index = np.full((chunks_per_shard, 2), NO_CHUNK, dtype="<u8")
    written = np.array([size is not None for size in sizes], dtype=bool)
    nbytes = np.array([size or 0 for size in sizes], dtype=np.uint64)
    index[: len(sizes)][written] = np.stack([np.cumsum(nbytes) - nbytes, nbytes], axis=1)[written]
    return with_crc32c(index.tobytes())


def decode_index(data, chunks_per_shard, crc32c=None):
    """Shard index bytes -> (chunks_per_shard, 2) uint64 (offset, nbytes); NO_CHUNK marks a
    chunk never written. Raises ChecksumError when the bytes are short or the crc differs."""
    crc32c = crc32c or chunk_codecs()[0]
    if len(data) != index_nbytes(chunks_per_shard) or crc32c(data) != CRC32C_RESIDUE:
        raise ChecksumError()
    return np.frombuffer(data, dtype="<u8", count=2 * chunks_per_shard).reshape(-1, 2)


def encode_shard(parts, chunks_per_shard):
    """A shard file's bytes (index at the end): payloads `parts` (stored chunk bytes, or None
    for a chunk not written) for chunks 0..len(parts)-1 of the shard."""
    body = b"".join(p for p in parts if p is not None)
    return body + encode_index([None if p is None else len(p) for p in parts], chunks_per_shard)


def write_shard(path, parts, chunks_per_shard):
    """Write encode_shard(parts) to `path` (its folder made when needed)."""
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as handle:
        handle.write(encode_shard(parts, chunks_per_shard))

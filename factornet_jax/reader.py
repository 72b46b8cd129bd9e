"""Read windows from built stores: `open_cell_store(path).fetch_batch(chroms, starts, length)`.

Zarr-python's per-call overhead (~1 ms) is far above the cost of decoding one chunk, so
windows are not sliced through zarr one at a time. Instead a batch is planned: the chunks
its windows touch are listed (vectorised, per chromosome), each is read and decoded once
(Blosc straight through numcodecs, crc32c checked; optionally in threads, as Blosc
releases the GIL, and through an LRU cache, both off by default as measured), and the
windows are cut out of the decoded chunks. The arrays are the ones `stores.py` wrote with
zarr, in either layout zarr v3 has: one file per chunk, or shards (`sharding_indexed`: many chunks per file plus an index of
(offset, nbytes) per chunk). A shard's index is read once and kept; its file stays open
(a bounded LRU of descriptors), so reading a chunk is one `pread`. `tests/test_reader.py`
checks the two paths (this one and zarr's) agree. Measurements: docs/BENCHMARKS.md.
"""
import itertools
import json
import os
import threading
from collections import OrderedDict
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from factornet_jax.errors import FactorNetError, StoreError
from factornet_jax.fasta import ONEHOT_OF_CODE
from factornet_jax.stores import ATTR, CELL_FORMAT, FORMAT_VERSION, GENCODE_FEATURES, GENOME_FORMAT

# No decoded-chunk cache by default: on random 1 kb windows (40 Mb genome, 4 kb chunks) a
# 128 MB cache read 17% fewer samples per CPU-second and took 130 MB more RSS (decoding a chunk
# costs ~5 us, about what the cache's bookkeeping costs); windows of one batch still share
# their chunks. Pass cache_bytes for workloads that re-read the same region across batches.
DEFAULT_CACHE_BYTES = 0
_NO_CHUNK = 2**64 - 1  # shard index entry of a chunk that was never written


def _codec_functions():
    """(crc32c, blosc decompress, zstd decode), imported once on first use."""
    global _CODECS
    if _CODECS is None:
        import google_crc32c
        from numcodecs import Zstd, blosc
        # Single-threaded contextual decode: no global Blosc lock, so our reader threads run
        # in parallel (Blosc's own threads only add overhead on 8-64 kB chunks).
        blosc.use_threads = False
        _CODECS = (google_crc32c.value, blosc.decompress, Zstd().decode)
    return _CODECS


_CODECS = None


class _OpenFiles:
    """A bounded LRU of read-only descriptors of shard files, shared by every array.

    `pread` holds the lock while it reads, so a descriptor is never closed under a reader
    (the read itself is ~2 us; decoding, the bigger part, runs outside the lock).
    """

    def __init__(self, max_open):
        self.max_open = max_open
        self._fds = OrderedDict()
        self._lock = threading.Lock()

    def pread(self, key, path, nbytes, offset):
        """nbytes bytes of `path` at offset (fewer at the end of the file); offset < 0 counts
        from the end. `key` names the file for one opened store, so a store rebuilt at the
        same path and opened again never reads through a descriptor of the old files."""
        with self._lock:
            fd = self._fds.get(key)
            if fd is None:
                fd = os.open(path, os.O_RDONLY)  # FileNotFoundError goes to the caller
                self._fds[key] = fd
                while len(self._fds) > self.max_open:
                    os.close(self._fds.popitem(last=False)[1])
            else:
                self._fds.move_to_end(key)
            if offset < 0:
                offset = max(os.fstat(fd).st_size + offset, 0)
            return os.pread(fd, nbytes, offset)

    def close(self):
        with self._lock:
            while self._fds:
                os.close(self._fds.popitem()[1])


def _max_open_files():
    try:
        import resource
        soft = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    except (ImportError, ValueError, OSError):
        soft = 1024
    return int(max(16, min(1024, soft // 2 if soft > 0 else 256)))


_OPEN_FILES = _OpenFiles(_max_open_files())
_ARRAY_TOKENS = itertools.count()


def _onehot(codes):
    """(B, L) uint8 codes -> (B, L, 4) uint8 one-hot; np.take is ~10x faster than
    ONEHOT_OF_CODE[codes] here (measured: 70 vs 870 us for 128 x 1000)."""
    return np.take(ONEHOT_OF_CODE, codes, axis=0)


def _codec_names(codecs):
    return [c["name"] for c in codecs]


def _plain_codecs_ok(names):
    return names[-1:] == ["crc32c"] and len(names) == 3 and names[1] in ("blosc", "zstd")


class ChunkedArray:
    """One stored array (length, *rest) chunked along its first axis, decoded chunk by chunk.

    Chunk `index` is the zarr chunk (the inner chunk of a sharded array): rows
    [index * chunk_len, (index + 1) * chunk_len).
    """

    def __init__(self, store_path, name):
        self.store_path = store_path
        self.name = name
        self.dir = os.path.join(store_path, name)
        meta_path = os.path.join(self.dir, "zarr.json")
        if not os.path.isfile(meta_path):
            raise StoreError(f"{store_path}: array {name} is missing; the store is damaged, "
                             "rebuild it with `factornet preprocess build ... --force`")
        with open(meta_path) as handle:
            meta = json.load(handle)
        self.shape = tuple(meta["shape"])
        outer_shape = tuple(meta["chunk_grid"]["configuration"]["chunk_shape"])
        self.dtype = np.dtype(meta["data_type"])
        codecs = meta["codecs"]
        names = _codec_names(codecs)
        self.sharded = names == ["sharding_indexed"]
        if self.sharded:
            config = codecs[0]["configuration"]
            inner = _codec_names(config["codecs"])
            index_codecs = config.get("index_codecs", [])
            self.chunk_shape = tuple(config["chunk_shape"])
            self.shard_len = outer_shape[0]
            self.chunks_per_shard = self.shard_len // self.chunk_shape[0]
            self.index_at_end = config.get("index_location", "end") == "end"
            self.index_nbytes = self.chunks_per_shard * 16 + 4
            ok = (_plain_codecs_ok(inner)
                  and _codec_names(index_codecs) == ["bytes", "crc32c"]
                  and index_codecs[0].get("configuration", {}).get("endian", "little") == "little"
                  and config.get("index_location", "end") in ("start", "end")
                  and outer_shape[1:] == self.chunk_shape[1:]
                  and self.shard_len % self.chunk_shape[0] == 0)
            names = names + inner
        else:
            self.chunk_shape = outer_shape
            inner = names
            ok = _plain_codecs_ok(names)
        if not ok:
            raise StoreError(f"{store_path}: array {name} has codecs {names}, not a store this "
                             "version wrote; rebuild it")
        self.chunk_len = self.chunk_shape[0]
        self.n_chunks = -(-self.shape[0] // self.chunk_len) if self.shape[0] else 0
        self.suffix = "/0" * (len(self.shape) - 1)
        self.compressor = inner[1]
        self.chunk_nbytes = int(np.prod(self.chunk_shape)) * self.dtype.itemsize
        self._shard_index = {}
        self._lock = threading.Lock()
        self._token = next(_ARRAY_TOKENS)

    def _missing(self, index):
        return StoreError(f"{self.store_path}: chunk {index} of {self.name} is missing; the "
                          "store is damaged, rebuild it with --force")

    def _corrupted(self, index):
        return StoreError(f"{self.store_path}: chunk {index} of {self.name} is corrupted "
                          "(checksum mismatch); rebuild the store with --force")

    def _read_shard_index(self, shard, index, crc32c):
        """(chunks_per_shard, 2) uint64 (offset, nbytes) of shard `shard`, read once."""
        table = self._shard_index.get(shard)
        if table is not None:
            return table
        path = f"{self.dir}/c/{shard}{self.suffix}"
        try:
            data = _OPEN_FILES.pread((self._token, shard), path, self.index_nbytes, -self.index_nbytes
                                     if self.index_at_end else 0)
        except FileNotFoundError:
            raise self._missing(index) from None
        body = data[:-4]
        if len(data) != self.index_nbytes or crc32c(body) != int.from_bytes(data[-4:], "little"):
            raise self._corrupted(index)
        table = np.frombuffer(body, dtype="<u8").reshape(self.chunks_per_shard, 2)
        with self._lock:
            self._shard_index[shard] = table
        return table

    def _read_bytes(self, index, crc32c):
        """The stored bytes of chunk `index` (codec output incl. the crc32c trailer)."""
        if not self.sharded:
            try:
                fd = os.open(f"{self.dir}/c/{index}{self.suffix}", os.O_RDONLY)
            except FileNotFoundError:
                raise self._missing(index) from None
            try:
                return os.pread(fd, os.fstat(fd).st_size, 0)
            finally:
                os.close(fd)
        shard, inner = divmod(index, self.chunks_per_shard)
        table = self._read_shard_index(shard, index, crc32c)
        offset = table.item(inner, 0)
        if offset == _NO_CHUNK:
            raise self._missing(index)
        return _OPEN_FILES.pread((self._token, shard), f"{self.dir}/c/{shard}{self.suffix}",
                                 table.item(inner, 1), offset)

    def read_chunk(self, index):
        """Decode chunk `index` -> (chunk_len, *rest) array; errors name the array and chunk."""
        crc32c, blosc_decompress, zstd_decode = _CODECS or _codec_functions()
        data = self._read_bytes(index, crc32c)
        body = data[:-4]
        if len(data) < 5 or crc32c(body) != int.from_bytes(data[-4:], "little"):
            raise self._corrupted(index)
        raw = blosc_decompress(body) if self.compressor == "blosc" else zstd_decode(body)
        if len(raw) != self.chunk_nbytes:
            raise StoreError(f"{self.store_path}: chunk {index} of {self.name} decodes to "
                             f"{len(raw)} bytes, expected {self.chunk_nbytes}; rebuild the store")
        return np.frombuffer(raw, dtype=self.dtype).reshape(self.chunk_shape)


class ChunkCache:
    """Thread-safe LRU of decoded chunks, bounded in bytes (0: keep nothing between batches)."""

    def __init__(self, max_bytes=DEFAULT_CACHE_BYTES):
        self.max_bytes = max_bytes
        self.bytes = 0
        self._items = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key):
        if not self._items:
            return None
        with self._lock:
            value = self._items.get(key)
            if value is not None:
                self._items.move_to_end(key)
            return value

    def put(self, key, value):
        if value.nbytes > self.max_bytes:
            return
        with self._lock:
            if key in self._items:
                return
            self._items[key] = value
            self.bytes += value.nbytes
            while self.bytes > self.max_bytes and len(self._items) > 1:
                _, old = self._items.popitem(last=False)
                self.bytes -= old.nbytes


def _read_attrs(path, expected_format, what):
    meta = os.path.join(path, "zarr.json")
    if not os.path.isdir(path):
        hint = ""
        if os.path.isdir(path + ".partial"):
            hint = " (a build was interrupted: run the same `factornet preprocess build` again)"
        raise StoreError(f"{path}: no such {what} store{hint}")
    if not os.path.isfile(meta):
        raise StoreError(f"{path}: not a {what} store (no zarr.json); build it with "
                         "`factornet preprocess build`")
    with open(meta) as handle:
        try:
            attrs = json.load(handle).get("attributes", {}).get(ATTR)
        except ValueError:
            attrs = None
    if not attrs or attrs.get("format") != expected_format:
        raise StoreError(f"{path}: not a factornet-jax {what} store")
    if attrs.get("version") != FORMAT_VERSION:
        raise StoreError(f"{path}: store format version {attrs.get('version')}, this program "
                         f"reads {FORMAT_VERSION}; rebuild it with `factornet preprocess build --force`")
    if not attrs.get("complete"):
        raise StoreError(f"{path}: store is incomplete (its build did not finish); run the build again")
    return attrs


def _listing(names, most=6):
    names = list(names)
    return ", ".join(names[:most]) + (", ..." if len(names) > most else "")


def _check_windows(chroms, starts, length, chrom_sizes, pad, store_path):
    for chrom in np.unique(chroms):
        if chrom not in chrom_sizes:
            raise FactorNetError(f"{store_path}: chromosome {str(chrom)!r} is not in the store "
                                 f"(it has {_listing(chrom_sizes)})")
    if pad:
        return
    sizes = np.fromiter((chrom_sizes[c] for c in chroms), dtype=np.int64, count=len(chroms))
    bad = np.flatnonzero((starts < 0) | (starts + length > sizes))
    if bad.size:
        i = bad[0]
        raise FactorNetError(f"window {chroms[i]}:{starts[i]}-{starts[i] + length} runs past the "
                             f"chromosome (size {sizes[i]}); ask for pad=True to zero-fill")


class _BatchReader:
    """Cuts windows of `length` out of per-chromosome ChunkedArrays (the shared batch logic)."""

    def __init__(self, store_path, prefix, chrom_sizes, cache, threads):
        self.store_path = store_path
        self.prefix = prefix
        self.chrom_sizes = chrom_sizes
        self.cache = cache
        self.threads = threads
        self._arrays = {}
        self._pool = None
        self._lock = threading.Lock()

    def array(self, chrom):
        arr = self._arrays.get(chrom)
        if arr is None:
            with self._lock:
                arr = self._arrays.get(chrom)
                if arr is None:
                    arr = ChunkedArray(self.store_path, f"{self.prefix}/{chrom}")
                    self._arrays[chrom] = arr
        return arr

    def _decode_all(self, keys):
        """Decoded chunks for `keys` [(chrom, index)], a list in the same order; only the
        ones not in the cache are read."""
        cache, prefix = self.cache, self.prefix
        chunks = [cache.get((prefix, chrom, index)) for chrom, index in keys]
        missing = [k for k, value in enumerate(chunks) if value is None]
        if not missing:
            return chunks

        def load(k):
            chrom, index = keys[k]
            return self.array(chrom).read_chunk(index)

        if self.threads > 1 and len(missing) >= 2 * self.threads:
            # One task per thread (a task per chunk costs more than the decode itself).
            with self._lock:
                if self._pool is None:
                    self._pool = ThreadPoolExecutor(self.threads, thread_name_prefix="chunks")
            groups = [missing[i::self.threads] for i in range(self.threads)]
            parts = list(self._pool.map(lambda group: [load(k) for k in group], groups))
            decoded = [None] * len(missing)
            for i, part in enumerate(parts):
                decoded[i::self.threads] = part
        else:
            decoded = [load(k) for k in missing]
        for k, value in zip(missing, decoded):
            chunks[k] = value
            cache.put((prefix, *keys[k]), value)
        return chunks

    def read(self, chroms, starts, length, out):
        """Fill out[b] (length, *rest) with the window chroms[b]:starts[b]; zeros off the ends."""
        if not len(chroms):
            return out
        names, inverse = np.unique(chroms, return_inverse=True)
        plans, keys = [], []
        for k, chrom in enumerate(names):
            rows = np.flatnonzero(inverse == k) if len(names) > 1 else np.arange(len(chroms))
            chunk_len = self.array(chrom).chunk_len
            win = starts[rows]
            lo = np.maximum(win, 0)
            hi = np.minimum(win + length, self.chrom_sizes[chrom])
            inside = hi > lo
            if not inside.all():
                rows, win, lo, hi = rows[inside], win[inside], lo[inside], hi[inside]
                if not len(rows):
                    continue
            first = lo // chunk_len
            span = (hi - 1) // chunk_len - first + 1
            if span.max() == 1:
                needed = np.unique(first)
            else:  # every chunk from first to last of each window
                steps = np.arange(span.sum()) - np.repeat(np.cumsum(span) - span, span)
                needed = np.unique(np.repeat(first, span) + steps)
            slots = len(keys) + np.searchsorted(needed, first)
            chrom = str(chrom)
            keys.extend((chrom, index) for index in needed.tolist())
            plans.append((chunk_len, rows.tolist(), slots.tolist(), (lo - first * chunk_len).tolist(),
                          (lo - win).tolist(), (hi - lo).tolist()))
        chunks = self._decode_all(keys)
        for chunk_len, rows, slots, offsets, dests, widths in plans:
            for b, slot, offset, dest, width in zip(rows, slots, offsets, dests, widths):
                if offset + width <= chunk_len:   # the usual case: one chunk holds the window
                    out[b, dest: dest + width] = chunks[slot][offset: offset + width]
                    continue
                while width > 0:                  # consecutive chunks sit in consecutive slots
                    take = min(width, chunk_len - offset)
                    out[b, dest: dest + take] = chunks[slot][offset: offset + take]
                    slot, offset, dest, width = slot + 1, 0, dest + take, width - take
        return out


def _read_small(path, store_path):
    """A small interval/peak array, refused unless its writer marked it complete."""
    import zarr
    arr = zarr.open_array(path, mode="r")
    if not arr.attrs.get("complete"):
        raise StoreError(f"{store_path}: {os.path.relpath(path, store_path)} was not completely "
                         "written (interrupted update); run the same build again")
    return np.asarray(arr[...]).reshape(-1, 4)


class GenomeStore:
    """A built genome store: sequence codes per chromosome, blacklist and annotations."""

    def __init__(self, path, cache=None, threads=1):
        self.path = os.path.abspath(str(path))
        self.attrs = _read_attrs(self.path, GENOME_FORMAT, "genome")
        self.chrom_sizes = dict(zip(self.attrs["chroms"], self.attrs["sizes"]))
        self.fingerprint = self.attrs["fingerprint"]
        self.cache = cache or ChunkCache()
        self._reader = _BatchReader(self.path, "sequence", self.chrom_sizes, self.cache, threads)

    def fetch_codes_batch(self, chroms, starts, length, pad=False):
        """(B,) chroms, (B,) starts -> (B, length) uint8 base codes (4 = N or off the end)."""
        chroms, starts = np.asarray(chroms), np.asarray(starts, dtype=np.int64)
        _check_windows(chroms, starts, length, self.chrom_sizes, pad, self.path)
        out = np.full((len(chroms), length), 4, dtype=np.uint8)
        return self._reader.read(chroms, starts, length, out)

    def fetch_onehot_batch(self, chroms, starts, length, pad=False):
        """-> (B, length, 4) uint8 one-hot A,C,G,T."""
        return _onehot(self.fetch_codes_batch(chroms, starts, length, pad))

    def _intervals(self, key):
        from factornet_jax.intervals import IntervalSet
        path = os.path.join(self.path, "intervals", key)
        if not os.path.isdir(path):
            return None
        values = _read_small(path, self.path)
        names = np.array(self.attrs["chroms"])
        return IntervalSet.from_arrays(names[values[:, 0]] if len(values) else np.array([], "U1"),
                                       values[:, 1], values[:, 2])

    def blacklist(self):
        """Blacklist as an IntervalSet (empty when none was given at build)."""
        from factornet_jax.intervals import IntervalSet
        return self._intervals("blacklist") or IntervalSet.empty()

    def annotations(self):
        """GENCODE feature name -> IntervalSet, in GENCODE_FEATURES order."""
        if set(self.attrs.get("annotations", [])) != set(GENCODE_FEATURES):
            raise FactorNetError(f"{self.path}: the genome store has no GENCODE annotations; add "
                                 "them with `factornet preprocess build ... --annotations DIR`")
        return {name: self._intervals(name) for name in GENCODE_FEATURES}

    @property
    def has_annotations(self):
        return set(self.attrs.get("annotations", [])) == set(GENCODE_FEATURES)


class CellStore:
    """A built cell-line store plus its genome store: windows of one-hot sequence and signal."""

    def __init__(self, path, threads=1, cache_bytes=DEFAULT_CACHE_BYTES):
        self.path = os.path.abspath(str(path))
        self.attrs = _read_attrs(self.path, CELL_FORMAT, "cell")
        self.name = self.attrs["name"]
        self.cache = ChunkCache(cache_bytes)
        self.genome = GenomeStore(self._genome_path(), cache=self.cache, threads=threads)
        if self.genome.fingerprint != self.attrs["genome"]["fingerprint"]:
            raise StoreError(f"{self.path}: built against another genome than {self.genome.path} "
                             "(FASTA changed); rebuild the cell store with --force")
        self.chrom_sizes = dict(zip(self.attrs["chroms"], self.attrs["sizes"]))
        self.track_names = list(self.attrs["track_names"])
        self.tfs = list(self.attrs["tfs"])
        self.meta_names = list(self.attrs["meta_names"])
        self.meta_values = np.asarray(self.attrs["meta_values"], dtype=np.float32)
        self.fingerprint = self.attrs["sources"]
        self._signal = _BatchReader(self.path, "signal", self.chrom_sizes, self.cache, threads)

    def _genome_path(self):
        info = self.attrs["genome"]
        relative = os.path.normpath(os.path.join(os.path.dirname(self.path), info["path"]))
        for candidate in (relative, info["abspath"]):
            if os.path.isdir(candidate):
                return candidate
        raise StoreError(f"{self.path}: its genome store {relative} is missing; rebuild it "
                         "with `factornet preprocess build`")

    @property
    def num_tracks(self):
        return len(self.track_names)

    def fetch(self, chrom, start, end, pad=False):
        """One window -> onehot (end-start, 4) uint8, signal (end-start, S) float32."""
        onehot, signal = self.fetch_batch([chrom], [start], end - start, pad=pad)
        return onehot[0], signal[0]

    def fetch_batch(self, chroms, starts, length, pad=False, as_codes=False):
        """Windows in any order -> onehot (B, L, 4) uint8 (or codes (B, L)), signal (B, L, S) float32."""
        chroms, starts = np.asarray(chroms), np.asarray(starts, dtype=np.int64)
        _check_windows(chroms, starts, length, self.chrom_sizes, pad, self.path)
        codes = np.full((len(chroms), length), 4, dtype=np.uint8)
        self.genome._reader.read(chroms, starts, length, codes)
        signal = np.zeros((len(chroms), length, self.num_tracks), dtype=np.float32)
        self._signal.read(chroms, starts, length, signal)
        return (codes if as_codes else _onehot(codes)), signal

    def peaks(self, tf, kind="conservative"):
        """Peaks of `tf` as a PEAK_DTYPE array; kind="relaxed" gives None when none was given."""
        from factornet_jax.bed import PEAK_DTYPE
        if tf not in self.tfs:
            raise FactorNetError(f"{self.path}: TF {tf!r} not in this store (it has "
                                 f"{', '.join(self.tfs) or 'no TFs'})")
        if kind not in ("conservative", "relaxed"):
            raise ValueError(f"kind must be 'conservative' or 'relaxed', not {kind!r}")
        path = os.path.join(self.path, "peaks", tf, kind)
        if not os.path.isdir(path):
            return None
        values = _read_small(path, self.path)
        out = np.empty(len(values), dtype=PEAK_DTYPE)
        out["chrom"] = np.array(self.attrs["chroms"])[values[:, 0]] if len(values) else []
        out["start"], out["end"], out["summit"] = values[:, 1], values[:, 2], values[:, 3]
        return out


def local_path(path):
    """A store path or file:// URL -> a local path; other URL schemes are refused clearly.

    The batch reader reads chunk files directly (that is what makes it fast); for object
    stores, mount the bucket (s3fs, gcsfuse) and pass the mounted path.
    """
    path = str(path)
    if path.startswith("file://"):
        return path[len("file://"):]
    if "://" in path:
        raise StoreError(f"{path}: only local paths and file:// URLs are read directly; mount the "
                         "remote store (e.g. s3fs, gcsfuse) and pass the mounted path")
    return path


def open_cell_store(path, threads=1, cache_bytes=DEFAULT_CACHE_BYTES):
    """Open a built cell store (and the genome store it belongs to), checking both."""
    return CellStore(local_path(path), threads=threads, cache_bytes=cache_bytes)


def open_genome_store(path, threads=1):
    return GenomeStore(local_path(path), threads=threads)

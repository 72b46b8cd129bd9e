"""Read windows from built stores: `open_cell_store(path).fetch_batch(chroms, starts, length)`.

Zarr-python's per-call overhead (~1 ms) is far above the cost of decoding one chunk, so
windows are not sliced through zarr one at a time. Instead a batch is planned: the chunks
its windows touch are listed, each is read and decoded once (Blosc straight through numcodecs,
crc32c checked, several at a time in threads: Blosc releases the GIL), kept in a small LRU
cache, and the windows are cut out of the decoded chunks. The arrays are the ones
`stores.py` wrote with zarr; `tests/test_reader.py` checks both paths agree.
"""
import json
import os
import threading
from collections import OrderedDict
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from factornet_jax.errors import FactorNetError, StoreError
from factornet_jax.fasta import ONEHOT_OF_CODE
from factornet_jax.stores import ATTR, CELL_FORMAT, FORMAT_VERSION, GENCODE_FEATURES, GENOME_FORMAT

DEFAULT_CACHE_BYTES = 128 << 20


class ChunkedArray:
    """One stored array (length, *rest) chunked along its first axis, decoded chunk by chunk."""

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
        self.chunk_shape = tuple(meta["chunk_grid"]["configuration"]["chunk_shape"])
        self.dtype = np.dtype(meta["data_type"])
        self.chunk_len = self.chunk_shape[0]
        self.n_chunks = -(-self.shape[0] // self.chunk_len) if self.shape[0] else 0
        self.suffix = "/0" * (len(self.shape) - 1)
        codecs = [c["name"] for c in meta["codecs"]]
        if codecs[-1:] != ["crc32c"] or codecs[1] not in ("blosc", "zstd") or len(codecs) != 3:
            raise StoreError(f"{store_path}: array {name} has codecs {codecs}, not a store this "
                             "version wrote; rebuild it")
        self.compressor = codecs[1]
        self.chunk_nbytes = int(np.prod(self.chunk_shape)) * self.dtype.itemsize

    def read_chunk(self, index):
        """Decode chunk `index` -> (chunk_len, *rest) array; errors name the array and chunk."""
        import google_crc32c
        path = f"{self.dir}/c/{index}{self.suffix}"
        try:
            with open(path, "rb") as handle:
                data = handle.read()
        except FileNotFoundError:
            raise StoreError(f"{self.store_path}: chunk {index} of {self.name} is missing; the "
                             "store is damaged, rebuild it with --force") from None
        body, stored = data[:-4], data[-4:]
        if len(data) < 5 or np.uint32(google_crc32c.value(body)).tobytes() != stored:
            raise StoreError(f"{self.store_path}: chunk {index} of {self.name} is corrupted "
                             "(checksum mismatch); rebuild the store with --force")
        if self.compressor == "blosc":
            from numcodecs import blosc
            # Single-threaded contextual decode: no global Blosc lock, so our reader threads
            # run in parallel (Blosc's own threads only add overhead on 16-128 kB chunks).
            blosc.use_threads = False
            raw = blosc.decompress(body)
        else:
            from numcodecs import Zstd
            raw = Zstd().decode(body)
        if len(raw) != self.chunk_nbytes:
            raise StoreError(f"{self.store_path}: chunk {index} of {self.name} decodes to "
                             f"{len(raw)} bytes, expected {self.chunk_nbytes}; rebuild the store")
        return np.frombuffer(raw, dtype=self.dtype).reshape(self.chunk_shape)


class ChunkCache:
    """Thread-safe LRU of decoded chunks, bounded in bytes."""

    def __init__(self, max_bytes=DEFAULT_CACHE_BYTES):
        self.max_bytes = max_bytes
        self.bytes = 0
        self._items = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key):
        with self._lock:
            value = self._items.get(key)
            if value is not None:
                self._items.move_to_end(key)
            return value

    def put(self, key, value):
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


def _check_windows(chroms, starts, length, chrom_sizes, pad, store_path):
    for chrom in np.unique(chroms):
        if chrom not in chrom_sizes:
            raise FactorNetError(f"{store_path}: chromosome {str(chrom)!r} is not in the store "
                                 f"(it has {', '.join(list(chrom_sizes)[:6])}...)")
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
        """Decoded chunks for `keys` [(chrom, index)], reading only the ones not cached."""
        chunks, missing = {}, []
        for key in keys:
            value = self.cache.get((self.prefix, *key))
            if value is None:
                missing.append(key)
            else:
                chunks[key] = value
        if missing:
            def load(key):
                return self.array(key[0]).read_chunk(key[1])
            if self.threads > 1 and len(missing) >= 2 * self.threads:
                # One task per thread (a task per chunk costs more than the decode itself).
                if self._pool is None:
                    self._pool = ThreadPoolExecutor(self.threads, thread_name_prefix="chunks")
                groups = np.array_split(np.arange(len(missing)), self.threads)
                parts = self._pool.map(lambda idx: [load(missing[i]) for i in idx], groups)
                decoded = [chunk for part in parts for chunk in part]
            else:
                decoded = [load(key) for key in missing]
            for key, value in zip(missing, decoded):
                self.cache.put((self.prefix, *key), value)
                chunks[key] = value
        return chunks

    def read(self, chroms, starts, length, out):
        """Fill out[b] (length, *rest) with the window chroms[b]:starts[b]; zeros off the ends."""
        first_arr = self.array(chroms[0]) if len(chroms) else None
        if first_arr is None:
            return out
        chunk_len = first_arr.chunk_len
        first = np.maximum(starts, 0) // chunk_len
        last = (np.minimum(starts + length, [self.chrom_sizes[c] for c in chroms]) - 1) // chunk_len
        keys = sorted({(c, int(i)) for c, f, l in zip(chroms, first, last) for i in range(f, l + 1)})
        chunks = self._decode_all(keys)
        for b, (chrom, start) in enumerate(zip(chroms, starts)):
            size = self.chrom_sizes[chrom]
            lo, hi = max(int(start), 0), min(int(start) + length, size)
            pos = lo
            while pos < hi:
                index = pos // chunk_len
                chunk = chunks[(chrom, index)]
                offset = pos - index * chunk_len
                take = min(hi - pos, chunk_len - offset)
                out[b, pos - start: pos - start + take] = chunk[offset: offset + take]
                pos += take
        return out


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
        return ONEHOT_OF_CODE[self.fetch_codes_batch(chroms, starts, length, pad)]

    def _intervals(self, key):
        from factornet_jax.intervals import IntervalSet
        path = os.path.join(self.path, "intervals", key)
        if not os.path.isdir(path):
            return None
        import zarr
        values = np.asarray(zarr.open_array(path, mode="r")[...]).reshape(-1, 4)
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
        return (codes if as_codes else ONEHOT_OF_CODE[codes]), signal

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
        import zarr
        values = np.asarray(zarr.open_array(path, mode="r")[...]).reshape(-1, 4)
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

"""Read windows from built stores: `open_cell_store(path).fetch_batch(chroms, starts, length)`.

Zarr-python's per-call overhead (~1 ms) is far above the cost of decoding one chunk, so
windows are not sliced through zarr one at a time. Instead a batch is planned: the chunks
its windows touch are listed (vectorised, all chromosomes at once), each is read and decoded
once (Blosc straight through numcodecs, crc32c checked; optionally in threads, as Blosc
releases the GIL, and through an LRU cache, both off by default as measured), and the
windows are copied out of the decoded chunks as bytes. The bytes on disk (one file per
chunk, or zarr v3 shards: many chunks per file plus an index of (offset, nbytes) per chunk)
are described and decoded by `shard_format.py`; the store layout is `store_schema.py`. A
shard's index is read once and kept; its file stays open (a bounded LRU of descriptors,
owned by the store and closed with it), so reading a chunk is one `pread`. Decoding costs a
few us a chunk, so the default path (`ChunkedArray.read_chunks`) keeps Python per chunk to a
minimum: one numpy lookup of all the batch's (offset, nbytes) per array, one hold of the
descriptor lock per group of chunks, and one crc32c, one decompress per chunk.
`tests/test_reader.py` checks the two paths (this one and zarr's) agree. Measurements:
docs/BENCHMARKS.md.

    with open_cell_store("stores/HepG2.zarr") as store:     # closes its files at the end
        onehot, signal = store.fetch_batch(chroms, starts, 1000)
"""
import errno
import itertools
import json
import operator
import os
import threading
import weakref
from collections import OrderedDict
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from factornet_jax.errors import FactorNetError, StoreError
from factornet_jax.fasta import ONEHOT_OF_CODE
from factornet_jax.labels import GENCODE_FEATURES
from factornet_jax.shard_format import (NO_CHUNK, ArrayLayout, ChecksumError, ChunkSizeError,
                                        UnsupportedLayout, chunk_codecs, decode_chunk,
                                        decode_index)
from factornet_jax.store_schema import (BLACKLIST, CELL_FORMAT, COMPLETE, FORMAT_VERSION,
                                        GENOME_FORMAT, PEAK_KINDS, SEQUENCE, SIGNAL, interval_key,
                                        peaks_key, read_store_attrs)

# No decoded-chunk cache by default: on random 1 kb windows (40 Mb genome, 4 kb chunks) a
# 128 MB cache read 17% fewer samples per CPU-second and took 130 MB more RSS (decoding a chunk
# costs ~5 us, about what the cache's bookkeeping costs); windows of one batch still share
# their chunks. Pass cache_bytes for workloads that re-read the same region across batches.
DEFAULT_CACHE_BYTES = 0
# Most chunks read from one shard file under one hold of the descriptor lock (bounds the time
# another thread waits, and the stored bytes held at once).
_PREAD_GROUP = 64


class OpenFiles:
    """A bounded LRU of read-only descriptors of one store's shard files; close() closes them.

    `pread` holds the lock while it reads, so a descriptor is never closed under a reader
    (the read itself is ~2 us; decoding, the bigger part, runs outside the lock). A store
    owns one (a CellStore and its GenomeStore one each); `max_open` bounds each, so several
    open stores share the process's descriptor limit (see `default_max_open`). One that is
    garbage-collected unclosed closes its descriptors then.
    """

    def __init__(self, max_open=None):
        self.max_open = default_max_open() if max_open is None else max_open
        self.closed = False
        self._fds = OrderedDict()
        self._lock = threading.Lock()
        weakref.finalize(self, _close_all, self._fds)

    def _descriptor(self, key, path):
        """The descriptor of `path` (named `key`: (array name, shard)), opened on first use;
        the caller holds the lock."""
        fd = self._fds.get(key)
        if fd is None:
            if self.closed:
                raise ValueError(f"{path}: read from a closed store")
            fd = self._open(path)   # FileNotFoundError goes to the caller
            self._fds[key] = fd
            while len(self._fds) > self.max_open:
                os.close(self._fds.popitem(last=False)[1])
        else:
            self._fds.move_to_end(key)
        return fd

    def _open(self, path):
        """os.open, making room when the process is out of descriptors (other stores hold them)."""
        try:
            return os.open(path, os.O_RDONLY)
        except OSError as err:
            if err.errno not in (errno.EMFILE, errno.ENFILE):
                raise
        for _ in range((len(self._fds) + 1) // 2):           # the older half of ours
            os.close(self._fds.popitem(last=False)[1])
        try:
            return os.open(path, os.O_RDONLY)
        except OSError as err:
            if err.errno not in (errno.EMFILE, errno.ENFILE):
                raise
            raise StoreError(f"{path}: too many open files; close stores not in use, or raise "
                             "the limit (`ulimit -n`)") from None

    def pread(self, key, path, nbytes, offset):
        """nbytes bytes of `path` at offset (fewer at the end of the file); offset < 0 counts
        from the end."""
        with self._lock:
            fd = self._descriptor(key, path)
            if offset < 0:
                offset = max(os.fstat(fd).st_size + offset, 0)
            return os.pread(fd, nbytes, offset)

    def pread_chunks(self, name, shard_path, shards, offsets, sizes):
        """[bytes] read at offsets[i] (sizes[i] bytes) of shard file shards[i] of the array
        `name` (shards ascending; shard_path(shard) its path), all in one hold of the lock:
        one descriptor lookup per shard file instead of the lock and the LRU bookkeeping per
        chunk (as much again as the ~0.5 us pread). Stops at a shard file that does not exist:
        fewer results than offsets. A descriptor is only used under the lock, so no other
        thread closes it meanwhile."""
        out = []
        with self._lock:
            current = None
            for shard, offset, nbytes in zip(shards, offsets, sizes):
                if shard != current:
                    try:
                        fd = self._descriptor((name, shard), shard_path(shard))
                    except FileNotFoundError:
                        break
                    current = shard
                out.append(os.pread(fd, nbytes, offset))
        return out

    def close_descriptors(self):
        """Close every open descriptor; later reads open them again."""
        with self._lock:
            _close_all(self._fds)

    def close(self):
        """Close every descriptor; later reads raise ValueError."""
        with self._lock:
            self.closed = True
            _close_all(self._fds)


def _close_all(fds):
    while fds:
        os.close(fds.popitem()[1])


def default_max_open():
    """Descriptors one OpenFiles keeps: an eighth of the soft RLIMIT_NOFILE, 16 to 512 (an
    hg19 store has ~200 shard files; with a 1024 limit, eight stores' LRUs fit in it)."""
    try:
        import resource
        soft = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    except (ImportError, ValueError, OSError):
        soft = 1024
    if soft < 0:                                      # RLIM_INFINITY
        soft = 4096
    return int(max(16, min(512, soft // 8)))


def _onehot(codes):
    """(B, L) uint8 codes -> (B, L, 4) uint8 one-hot (np.take: ~10x faster than fancy
    indexing here; docs/BENCHMARKS.md, "Chunk size, codecs and sharding")."""
    return np.take(ONEHOT_OF_CODE, codes, axis=0)


class ChunkedArray:
    """One stored array (length, *rest) chunked along its first axis, decoded chunk by chunk.

    Chunk `index` is the zarr chunk (the inner chunk of a sharded array): rows
    [index * chunk_len, (index + 1) * chunk_len). Shard files are read through `files` (the
    store's OpenFiles; None: the array's own, closed by close()).
    """

    def __init__(self, store_path, name, files=None):
        self.store_path = store_path
        self.name = name
        self.dir = os.path.join(store_path, name)
        meta_path = os.path.join(self.dir, "zarr.json")
        if not os.path.isfile(meta_path):
            raise StoreError(f"{store_path}: array {name} is missing; the store is damaged, "
                             "rebuild it with `factornet preprocess build ... --force`")
        with open(meta_path) as handle:
            meta = json.load(handle)
        try:
            layout = ArrayLayout.from_metadata(meta)
        except UnsupportedLayout as err:
            raise StoreError(f"{store_path}: array {name} has codecs {err.args[0]}, not a store "
                             "this version wrote; rebuild it") from None
        self.layout = layout
        self.shape, self.dtype, self.chunk_shape = layout.shape, layout.dtype, layout.chunk_shape
        self.sharded, self.compressor = layout.sharded, layout.compressor
        self.chunk_len, self.n_chunks = layout.chunk_len, layout.n_chunks
        self.chunk_nbytes = layout.chunk_nbytes
        self.suffix = layout.key_suffix
        if self.sharded:
            self.shard_len, self.chunks_per_shard = layout.shard_len, layout.chunks_per_shard
            self.index_at_end, self.index_nbytes = layout.index_at_end, layout.index_nbytes
            # Every shard's index, filled a shard at a time (each read once, on first use), so
            # the (offset, nbytes) of a batch's chunks are one numpy lookup whatever the shards.
            self._entries = np.empty((layout.n_shards * self.chunks_per_shard, 2), dtype="<u8")
            self._loaded = np.zeros(layout.n_shards, dtype=bool)
        self._own_files = files is None
        self.files = OpenFiles() if files is None else files
        self._lock = threading.Lock()

    def close(self):
        """Close the shard files, when this array opened its own OpenFiles."""
        if self._own_files:
            self.files.close()

    def _missing(self, index):
        return StoreError(f"{self.store_path}: chunk {index} of {self.name} is missing; the "
                          "store is damaged, rebuild it with --force")

    def _corrupted(self, index):
        return StoreError(f"{self.store_path}: chunk {index} of {self.name} is corrupted "
                          "(checksum mismatch); rebuild the store with --force")

    def _read_shard_index(self, shard, index, crc32c):
        """(chunks_per_shard, 2) uint64 (offset, nbytes) of shard `shard`, read once."""
        rows = slice(shard * self.chunks_per_shard, (shard + 1) * self.chunks_per_shard)
        if self._loaded[shard]:
            return self._entries[rows]
        try:
            data = self.files.pread((self.name, shard), self._shard_path(shard),
                                    self.index_nbytes, self.layout.index_offset)
        except FileNotFoundError:
            raise self._missing(index) from None
        try:
            entries = decode_index(data, self.chunks_per_shard, crc32c)
        except ChecksumError:
            raise self._corrupted(index) from None
        with self._lock:  # set _loaded only once the entries are in place
            self._entries[rows] = entries
            self._loaded[shard] = True
        return self._entries[rows]

    def _shard_path(self, shard):
        return self.layout.file_path(self.dir, shard)

    def _read_bytes(self, index, crc32c):
        """The stored bytes of chunk `index` (codec output incl. the crc32c trailer)."""
        if not self.sharded:
            try:
                fd = os.open(self.layout.file_path(self.dir, index), os.O_RDONLY)
            except FileNotFoundError:
                raise self._missing(index) from None
            try:
                return os.pread(fd, os.fstat(fd).st_size, 0)
            finally:
                os.close(fd)
        shard, inner = divmod(index, self.chunks_per_shard)
        table = self._read_shard_index(shard, index, crc32c)
        offset = table.item(inner, 0)
        if offset == NO_CHUNK:
            raise self._missing(index)
        try:
            return self.files.pread((self.name, shard), self._shard_path(shard),
                                    table.item(inner, 1), offset)
        except FileNotFoundError:  # the shard file went away after its index was read
            raise self._missing(index) from None

    def _locate(self, indices, crc32c):
        """(offsets, nbytes) lists of sharded chunks `indices` (ascending ndarray), reading the
        shard indexes not read yet, and (stop, error): when a chunk cannot be located (its shard
        file or index is missing or damaged, or the chunk was never written), the lists stop
        before the first such chunk and `error` is what reading chunk by chunk raises there."""
        stop, error = len(indices), None
        shards = indices // self.chunks_per_shard
        unread = np.flatnonzero(~self._loaded[shards])
        for position in unread.tolist():                      # in chunk order
            shard = int(shards[position])
            if not self._loaded[shard]:
                try:
                    self._read_shard_index(shard, int(indices[position]), crc32c)
                except Exception as err:                      # raised after the chunks before
                    stop, error = position, err
                    break
        offsets, sizes = self._entries[indices[:stop]].T.tolist() if stop else ([], [])
        if NO_CHUNK in offsets:
            stop = offsets.index(NO_CHUNK)
            error = self._missing(int(indices[stop]))
            offsets, sizes = offsets[:stop], sizes[:stop]
        return offsets, sizes, stop, error

    def _read_sharded(self, indices, crc32c, decompress, dest):
        """read_chunks of a sharded array: the chunks' (offset, nbytes) in one numpy lookup, then
        up to _PREAD_GROUP of them read in one hold of the descriptor lock and decoded. Errors
        are raised in chunk order, as reading chunk by chunk would."""
        offsets, sizes, stop, error = self._locate(indices, crc32c)
        shards = (indices[:stop] // self.chunks_per_shard).tolist()
        indices = indices[:stop].tolist()
        chunks = []
        for lo in range(0, stop, _PREAD_GROUP):
            hi = min(stop, lo + _PREAD_GROUP)
            stored = self.files.pread_chunks(self.name, self._shard_path, shards[lo:hi],
                                             offsets[lo:hi], sizes[lo:hi])
            chunks += self._decode_group(indices[lo:hi], stored, crc32c, decompress, dest, lo)
            if len(stored) < hi - lo:                         # that shard file is gone
                raise self._missing(indices[lo + len(stored)])
        if error is not None:
            raise error
        return chunks

    def _decode_group(self, indices, stored, crc32c, decompress, dest, first):
        """memoryviews of the decoded `stored` bytes of chunks `indices`, decoded into
        dest's slots first, first + 1, ... (dest None: fresh buffers). decode_chunk is called
        directly (no Python layer per chunk); on an error the group is decoded again through
        _decoded, which names the first bad chunk."""
        size = self.chunk_nbytes
        try:
            if dest is None:
                return [memoryview(decode_chunk(data, size, crc32c, decompress))
                        for data in stored]
            return [memoryview(decode_chunk(data, size, crc32c, decompress,
                                            dest[k * size: (k + 1) * size]))
                    for k, data in enumerate(stored, first)]
        except (ChecksumError, ChunkSizeError):
            for k, (index, data) in enumerate(zip(indices, stored), first):
                self._decoded(index, data, crc32c, decompress,
                              None if dest is None else dest[k * size: (k + 1) * size])
            raise

    def _decompressor(self):
        crc32c, blosc_decompress, zstd_decode = chunk_codecs()
        return crc32c, (blosc_decompress if self.compressor == "blosc" else zstd_decode)

    def _decoded(self, index, data, crc32c, decompress, dest=None):
        """Stored bytes of chunk `index` -> its decoded bytes (chunk_nbytes), checked
        (shard_format.decode_chunk); errors name the array and chunk. With `dest` (a writable
        chunk_nbytes buffer; Blosc only) the chunk is decoded into it: no allocation per chunk
        (fresh 8-32 kB buffers per chunk cost page faults, see BENCHMARKS.md)."""
        try:
            return decode_chunk(data, self.chunk_nbytes, crc32c, decompress, dest)
        except ChecksumError:
            raise self._corrupted(index) from None
        except ChunkSizeError as err:
            raise StoreError(f"{self.store_path}: chunk {index} of {self.name} decodes to "
                             f"{err.size} bytes, expected {self.chunk_nbytes}; rebuild the store") from None

    def read_chunk(self, index):
        """Decode chunk `index` -> (chunk_len, *rest) array; errors name the array and chunk."""
        crc32c, decompress = self._decompressor()
        raw = self._decoded(index, self._read_bytes(index, crc32c), crc32c, decompress)
        return np.frombuffer(raw, dtype=self.dtype).reshape(self.chunk_shape)

    def read_chunks(self, indices, dest=None):
        """Decoded chunks `indices` (ascending ndarray) -> a list of flat byte memoryviews
        (chunk_nbytes each, C order), what the batch reader copies windows from. Same checks
        and errors as read_chunk, in chunk order; cheaper per chunk (see _read_sharded).
        `dest`: a writable buffer of len(indices) * chunk_nbytes bytes that Blosc chunks are
        decoded into (the views are then slices of it); None: fresh buffers."""
        crc32c, decompress = self._decompressor()
        if self.compressor != "blosc":
            dest = None
        if self.sharded:
            return self._read_sharded(indices, crc32c, decompress, dest)
        indices, stored, error = indices.tolist(), [], None
        for index in indices:               # up to the first missing chunk file
            try:
                stored.append(self._read_bytes(index, crc32c))
            except StoreError as err:       # raised after the chunks before it
                error = err
                break
        chunks = self._decode_group(indices, stored, crc32c, decompress, dest, 0)
        if error is not None:
            raise error
        return chunks


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
    attrs = read_store_attrs(path)
    if not attrs or attrs.get("format") != expected_format:
        raise StoreError(f"{path}: not a factornet-jax {what} store")
    if attrs.get("version") != FORMAT_VERSION:
        raise StoreError(f"{path}: store format version {attrs.get('version')}, this program "
                         f"reads {FORMAT_VERSION}; rebuild it with `factornet preprocess build --force`")
    if not attrs.get(COMPLETE):
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
    """Cuts windows of `length` out of per-chromosome ChunkedArrays (the shared batch logic).

    Reads shard files through `files` (an OpenFiles; None: its own); close() shuts down its
    decode threads and closes the files it owns.
    """

    def __init__(self, store_path, prefix, chrom_sizes, cache, threads, files=None):
        self.store_path = store_path
        self.prefix = prefix
        self.chrom_sizes = chrom_sizes
        self.cache = cache
        self.threads = threads
        self._own_files = files is None
        self.files = OpenFiles() if files is None else files
        self._arrays = {}
        self._pool = None
        self._lock = threading.Lock()
        self._local = threading.local()

    def close(self):
        with self._lock:
            pool, self._pool = self._pool, None
        if pool is not None:
            pool.shutdown(wait=True)
        if self._own_files:
            self.files.close()

    def array(self, chrom):
        arr = self._arrays.get(chrom)
        if arr is None:
            with self._lock:
                arr = self._arrays.get(chrom)
                if arr is None:
                    arr = ChunkedArray(self.store_path, f"{self.prefix}/{chrom}", self.files)
                    self._arrays[chrom] = arr
        return arr

    def _decode_all(self, requests):
        """Decoded chunks (flat byte memoryviews) for `requests` [(chrom, array, ascending chunk
        indices)], one list in request order.

        The usual case (no cache, one thread; the defaults) is each array's read_chunks, the
        fast path: per shard file one index lookup and one hold of the descriptor lock, then
        check and decompress each chunk, instead of a cache lookup, a lock and five Python
        calls per chunk (docs/BENCHMARKS.md, "Chunk size, codecs and sharding"). With a cache, only the chunks not in it are read; with threads,
        split between them.
        """
        cache, prefix, threads = self.cache, self.prefix, self.threads
        total = sum(len(needed) for _, _, needed in requests)
        if cache.max_bytes <= 0 and not (threads > 1 and total >= 2 * threads):
            # decoded into this thread's scratch buffer, reused batch after batch: the views
            # live only until read() has copied the windows out
            scratch = self._scratch(sum(len(needed) * arr.chunk_nbytes for _, arr, needed in requests))
            chunks, pos = [], 0
            for _, arr, needed in requests:
                nbytes = len(needed) * arr.chunk_nbytes
                chunks += arr.read_chunks(needed, scratch[pos: pos + nbytes])
                pos += nbytes
            return chunks
        keys = [(chrom, index) for chrom, _, needed in requests for index in needed.tolist()]
        chunks = [cache.get((prefix, chrom, index)) for chrom, index in keys]
        missing = [k for k, value in enumerate(chunks) if value is None]
        if not missing:
            return chunks
        if threads > 1 and len(missing) >= 2 * threads:
            # One task per thread (a task per chunk costs more than the decode itself).
            with self._lock:
                if self.files.closed:
                    raise ValueError(f"{self.store_path}: read from a closed store")
                if self._pool is None:
                    self._pool = ThreadPoolExecutor(threads, thread_name_prefix="chunks")
            groups = [[keys[k] for k in missing[i::threads]] for i in range(threads)]
            parts = list(self._pool.map(self._read_keys, groups))
            decoded = [None] * len(missing)
            for i, part in enumerate(parts):
                decoded[i::threads] = part
        else:
            decoded = self._read_keys([keys[k] for k in missing])
        for k, value in zip(missing, decoded):
            chunks[k] = value
            cache.put((prefix, *keys[k]), value)
        return chunks

    def _scratch(self, nbytes):
        """A uint8 array of at least `nbytes`, this thread's, grown when needed (numpy, not a
        bytearray: numcodecs takes an ndarray `dest` with the least Python per call)."""
        buffer = getattr(self._local, "scratch", None)
        if buffer is None or len(buffer) < nbytes:
            buffer = np.empty(max(nbytes, 0 if buffer is None else 2 * len(buffer)), np.uint8)
            self._local.scratch = buffer
        return buffer

    def _read_keys(self, keys):
        """Decoded chunks for `keys` [(chrom, index)] in (chrom, index) order, a list."""
        chunks = []
        for chrom, group in itertools.groupby(keys, key=operator.itemgetter(0)):
            indices = np.array([index for _, index in group], dtype=np.int64)
            chunks += self.array(chrom).read_chunks(indices)
        return chunks

    def read(self, chroms, starts, length, out):
        """Fill out[b] (length, *rest) with the window chroms[b]:starts[b]; zeros off the ends.
        `out` is C-contiguous (the callers' fresh arrays): windows are copied in as bytes.

        Planned for all chromosomes at once, vectorised: each window's part inside its
        chromosome, the chunks it touches (keyed chrom number * stride + chunk index, so the
        sorted unique keys list every needed chunk once, by chromosome then index) and the
        slot of its first chunk; consecutive chunks get consecutive slots."""
        if not len(chroms):
            return out
        names, inverse = np.unique(chroms, return_inverse=True)
        arrays = [self.array(str(name)) for name in names]
        for arr in arrays:
            _check_rows(arr, out)
        chunk_len = np.array([arr.chunk_len for arr in arrays], dtype=np.int64)[inverse]
        size = np.array([self.chrom_sizes[name] for name in names], dtype=np.int64)[inverse]
        lo = np.maximum(starts, 0)
        hi = np.minimum(starts + length, size)
        rows = np.flatnonzero(hi > lo)
        if len(rows) < len(chroms):
            if not len(rows):
                return out
            inverse, starts, chunk_len, lo, hi = (a[rows] for a in
                                                  (inverse, starts, chunk_len, lo, hi))
        first = lo // chunk_len
        span = (hi - 1) // chunk_len - first + 1
        stride = max(arr.n_chunks for arr in arrays) + 1
        first_key = inverse * stride + first
        if span.max() == 1:
            keys = np.unique(first_key)
        else:  # every chunk from first to last of each window
            steps = np.arange(span.sum()) - np.repeat(np.cumsum(span) - span, span)
            keys = np.unique(np.repeat(first_key, span) + steps)
        bounds = np.searchsorted(keys, np.arange(len(names) + 1) * stride).tolist()
        requests = [(str(names[k]), arrays[k], keys[a:b] - k * stride)
                    for k, (a, b) in enumerate(zip(bounds[:-1], bounds[1:])) if b > a]
        chunks = self._decode_all(requests)
        _copy_windows(out, chunks, rows * length + (lo - starts), np.searchsorted(keys, first_key),
                      lo - first * chunk_len, hi - lo, span)
        return out


def _check_rows(arr, out):
    """The batch reader copies bytes: the array's rows must be out's (dtype and shape)."""
    if arr.dtype != out.dtype or arr.chunk_shape[1:] != out.shape[2:]:
        raise StoreError(f"{arr.store_path}: array {arr.name} holds {arr.dtype} rows of shape "
                         f"{arr.chunk_shape[1:]}, expected {out.dtype} {out.shape[2:]}; rebuild it")


def _copy_windows(out, chunks, dests, slots, offsets, widths, span):
    """Copy each window part (widths[i] rows) from chunks[slots[i]] at row offsets[i] (running on
    into the next slots when span[i] > 1) to row dests[i] of out viewed as (B * L) rows.

    Byte memoryview slices: ~0.15 us a window against ~0.35 us for numpy slice assignment,
    and no ndarray per chunk."""
    row_bytes = out.itemsize * int(np.prod(out.shape[2:], dtype=np.int64))
    if not row_bytes:
        return
    view = memoryview(out).cast("B")

    def parts(which):  # (dest byte, slot, source byte, nbytes) lists of the windows `which`
        return ((dests[which] * row_bytes).tolist(), slots[which].tolist(),
                (offsets[which] * row_bytes).tolist(), (widths[which] * row_bytes).tolist())

    one = span == 1                           # the usual case: one chunk holds the window
    for p, slot, q, n in zip(*parts(one)):
        view[p: p + n] = chunks[slot][q: q + n]
    if one.all():
        return
    for p, slot, q, n in zip(*parts(~one)):
        while n > 0:                          # consecutive chunks sit in consecutive slots
            chunk = chunks[slot]
            take = min(n, len(chunk) - q)
            view[p: p + take] = chunk[q: q + take]
            slot, q, p, n = slot + 1, 0, p + take, n - take


def _read_small(path, store_path):
    """A small interval/peak array, refused unless its writer marked it complete."""
    import zarr
    arr = zarr.open_array(path, mode="r")
    if not arr.attrs.get(COMPLETE):
        raise StoreError(f"{store_path}: {os.path.relpath(path, store_path)} was not completely "
                         "written (interrupted update); run the same build again")
    return np.asarray(arr[...]).reshape(-1, 4)


class _Closable:
    """close() and `with store:` for the store classes (each defines _close_parts)."""

    closed = False

    def close(self):
        """Close the store's shard files and stop its decode threads; reading afterwards
        raises ValueError. Closing twice is harmless."""
        if not self.closed:
            self.closed = True
            self._close_parts()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def _check_open(self):
        if self.closed:
            raise ValueError(f"{self.path}: read from a closed store")


class GenomeStore(_Closable):
    """A built genome store: sequence codes per chromosome, blacklist and annotations.

    Holds open descriptors of its shard files until close() (or the end of a `with` block).
    """

    def __init__(self, path, cache=None, threads=1):
        self.path = os.path.abspath(str(path))
        self.attrs = _read_attrs(self.path, GENOME_FORMAT, "genome")
        self.chrom_sizes = dict(zip(self.attrs["chroms"], self.attrs["sizes"]))
        self.fingerprint = self.attrs["fingerprint"]
        self.cache = cache or ChunkCache()
        self._reader = _BatchReader(self.path, SEQUENCE, self.chrom_sizes, self.cache, threads)

    def _close_parts(self):
        self._reader.close()

    def fetch_codes_batch(self, chroms, starts, length, pad=False):
        """(B,) chroms, (B,) starts -> (B, length) uint8 base codes (4 = N or off the end)."""
        self._check_open()
        chroms, starts = np.asarray(chroms), np.asarray(starts, dtype=np.int64)
        _check_windows(chroms, starts, length, self.chrom_sizes, pad, self.path)
        out = np.full((len(chroms), length), 4, dtype=np.uint8)
        return self._reader.read(chroms, starts, length, out)

    def fetch_onehot_batch(self, chroms, starts, length, pad=False):
        """-> (B, length, 4) uint8 one-hot A,C,G,T."""
        return _onehot(self.fetch_codes_batch(chroms, starts, length, pad))

    def _intervals(self, key):
        from factornet_jax.intervals import IntervalSet
        path = os.path.join(self.path, interval_key(key))
        if not os.path.isdir(path):
            return None
        values = _read_small(path, self.path)
        names = np.array(self.attrs["chroms"])
        return IntervalSet.from_arrays(names[values[:, 0]] if len(values) else np.array([], "U1"),
                                       values[:, 1], values[:, 2])

    def blacklist(self):
        """Blacklist as an IntervalSet (empty when none was given at build)."""
        from factornet_jax.intervals import IntervalSet
        return self._intervals(BLACKLIST) or IntervalSet.empty()

    def annotations(self):
        """GENCODE feature name -> IntervalSet, in GENCODE_FEATURES order."""
        if set(self.attrs.get("annotations", [])) != set(GENCODE_FEATURES):
            raise FactorNetError(f"{self.path}: the genome store has no GENCODE annotations; add "
                                 "them with `factornet preprocess build ... --annotations DIR`")
        return {name: self._intervals(name) for name in GENCODE_FEATURES}

    @property
    def has_annotations(self):
        return set(self.attrs.get("annotations", [])) == set(GENCODE_FEATURES)


class CellStore(_Closable):
    """A built cell-line store plus its genome store: windows of one-hot sequence and signal.

    Holds open descriptors of its shard files (and its genome store's) until close() (or the
    end of a `with` block), which closes the genome store too.
    """

    def __init__(self, path, threads=1, cache_bytes=DEFAULT_CACHE_BYTES):
        self.path = os.path.abspath(str(path))
        self.attrs = _read_attrs(self.path, CELL_FORMAT, "cell")
        self.name = self.attrs["name"]
        self.cache = ChunkCache(cache_bytes)
        self.genome = GenomeStore(self._genome_path(), cache=self.cache, threads=threads)
        if self.genome.fingerprint != self.attrs["genome"]["fingerprint"]:
            self.genome.close()
            raise StoreError(f"{self.path}: built against another genome than {self.genome.path} "
                             "(FASTA changed); rebuild the cell store with --force")
        self.chrom_sizes = dict(zip(self.attrs["chroms"], self.attrs["sizes"]))
        self.track_names = list(self.attrs["track_names"])
        self.tfs = list(self.attrs["tfs"])
        self.meta_names = list(self.attrs["meta_names"])
        self.meta_values = np.asarray(self.attrs["meta_values"], dtype=np.float32)
        self.fingerprint = self.attrs["sources"]
        self._signal = _BatchReader(self.path, SIGNAL, self.chrom_sizes, self.cache, threads)
        # optional read-time transform of the signal (B, L, S) -> (B, L, S): the quantile
        # normalisation of drift.SignalMap, set by the run that chose it (train run, predict)
        self.signal_map = None

    def _close_parts(self):
        self._signal.close()
        self.genome.close()

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
        self._check_open()
        self.genome._check_open()
        chroms, starts = np.asarray(chroms), np.asarray(starts, dtype=np.int64)
        _check_windows(chroms, starts, length, self.chrom_sizes, pad, self.path)
        codes = np.full((len(chroms), length), 4, dtype=np.uint8)
        self.genome._reader.read(chroms, starts, length, codes)
        signal = np.zeros((len(chroms), length, self.num_tracks), dtype=np.float32)
        self._signal.read(chroms, starts, length, signal)
        if self.signal_map is not None:
            signal = self.signal_map(signal)
        return (codes if as_codes else _onehot(codes)), signal

    def peaks(self, tf, kind="conservative"):
        """Peaks of `tf` as a PEAK_DTYPE array; kind="relaxed" gives None when none was given."""
        from factornet_jax.bed import PEAK_DTYPE
        if tf not in self.tfs:
            raise FactorNetError(f"{self.path}: TF {tf!r} not in this store (it has "
                                 f"{', '.join(self.tfs) or 'no TFs'})")
        if kind not in PEAK_KINDS:
            raise ValueError(f"kind must be 'conservative' or 'relaxed', not {kind!r}")
        path = os.path.join(self.path, peaks_key(tf, kind))
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
    """Open a built cell store (and the genome store it belongs to), checking both; a
    CellStore, to close() or use in a `with` block."""
    return CellStore(local_path(path), threads=threads, cache_bytes=cache_bytes)


def open_genome_store(path, threads=1):
    """Open a built genome store; a GenomeStore, to close() or use in a `with` block."""
    return GenomeStore(local_path(path), threads=threads)


def resolve_store(path, stores_dir):
    """-i accepts a cell store, or a cell folder whose store was built into `stores_dir`."""
    path = str(path).rstrip("/")
    if os.path.isfile(os.path.join(path, "zarr.json")) or path.endswith(".zarr"):
        return path
    if os.path.isfile(os.path.join(path, "bigwig.txt")):
        candidate = os.path.join(stores_dir, os.path.basename(path) + ".zarr")
        if os.path.isfile(os.path.join(candidate, "zarr.json")):
            return candidate
        raise FactorNetError(f"-i {path}: cell folder is not built; run `factornet preprocess "
                             f"build -i {path} --genome GENOME.fa --stores {stores_dir}` first")
    raise FactorNetError(f"-i {path}: neither a cell store nor a cell folder")


def open_stores(paths, stores_dir, flag):
    """The cell stores of `paths` (each resolved by `resolve_store`), which must share their
    track names and meta names (`flag` names the option in the error). On an error the
    stores opened so far are closed; otherwise closing them is the caller's."""
    stores = []
    try:
        for path in paths:
            stores.append(open_cell_store(resolve_store(path, stores_dir)))
        first = stores[0]
        for store in stores[1:]:
            if store.track_names != first.track_names:
                raise FactorNetError(f"{flag} {store.path}: track names {store.track_names} differ "
                                     f"from {first.path}'s {first.track_names}")
            if store.meta_names != first.meta_names:
                raise FactorNetError(f"{flag} {store.path}: meta names {store.meta_names} differ "
                                     f"from {first.path}'s {first.meta_names}")
    except BaseException:
        for store in stores:
            store.close()
        raise
    return stores

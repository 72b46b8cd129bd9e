"""The `preprocess build` stage: FASTA / bigWig / peaks -> Zarr v3 stores.

Layout (store_schema.py, docs/ARCHITECTURE.md): a genome store with per-chromosome uint8 base
codes and interval sets (blacklist, GENCODE annotations); a cell store with per-chromosome
float32 signal (length, n_tracks) and per-TF peaks. Every chunk is written, with a crc32c checksum.

Crash safety: a build writes into `<store>.partial/`, marks each finished array with the
attribute `complete`, and renames the folder into place last. Re-running a killed build
keeps the finished arrays of a partial store whose recorded inputs still match, rewrites the
rest, and finishes; a lock file stops two builds of one store at once.

Sharded arrays are written by `SequentialWriter` in the byte format of shard_format.py, their
chunks compressed by a `ChunkEncoder` (threads owned by one build, shut down at its end).
"""
import fcntl
import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from factornet_jax.bed import chrom_naming_hint
from factornet_jax.errors import FactorNetError, InputFileError, StoreError
from factornet_jax.fasta import file_digest, read_codes, read_fai
from factornet_jax.labels import GENCODE_FEATURES
from factornet_jax.outputs import replace_path
from factornet_jax.shard_format import ArrayLayout, encode_chunk, single_threaded_blosc, write_shard
# The schema names are importable from here too (stores.SHARD_CHUNKS, stores.Codecs, ...); the
# build reads SHARD_CHUNKS and UNSHARDED_MAX_CHUNKS from this module, so tests and benchmarks
# that patch stores.SHARD_CHUNKS change the build.
from factornet_jax.store_schema import (  # noqa: F401
    ATTR, BLACKLIST, CELL_FORMAT, COMPLETE, DEFAULT_CHUNK_BASES, FORMAT_VERSION, GENOME_FORMAT,
    HAS_VALUES, SHARD_CHUNKS, UNSHARDED_MAX_CHUNKS, Codecs, interval_key, peaks_key,
    read_store_attrs, sequence_key, signal_key)

# File-name tokens that identify each annotation BED in an --annotations folder.
ANNOTATION_TOKENS = {"cpg": ("cpg", "cpgisland", "cpgislands"), "cds": ("cds",),
                     "intron": ("intron", "introns"), "promoter": ("promoter", "promoters"),
                     "utr5": ("utr5", "5utr"), "utr3": ("utr3", "3utr")}

WRITE_BLOCK_BASES = 1 << 22  # bases read, encoded and written per step (bounded memory)


def _codec_list(cname, clevel, shuffle, typesize):
    from zarr.codecs import BloscCodec, Crc32cCodec
    return [BloscCodec(cname=cname, clevel=clevel, shuffle=shuffle, typesize=typesize),
            Crc32cCodec()]


# ---------------------------------------------------------------- sources and fingerprints

def source_record(path):
    """What identifies an input file: absolute path, size, mtime and content digest."""
    stat = os.stat(path)
    return {"path": os.path.abspath(path), "size": stat.st_size, "mtime_ns": stat.st_mtime_ns,
            "digest": file_digest(path)}


def source_changed(recorded, path):
    """True when `path` no longer holds the bytes `recorded` describes (cheap when untouched)."""
    if not os.path.isfile(path):
        return True
    stat = os.stat(path)
    if stat.st_size != recorded["size"]:
        return True
    if stat.st_mtime_ns == recorded["mtime_ns"]:
        return False
    return file_digest(path) != recorded["digest"]


def _existing_build(out_path, current, build_key, key_what, force, n_bases, t0):
    """The summary of a complete store at `out_path` built from `current` inputs and
    `build_key` (nothing to do), None when it must be built (absent, partial, or --force);
    StoreError when it was built from other inputs (`key_what` names the build key)."""
    attrs = read_store_attrs(out_path)
    if not attrs or not attrs.get(COMPLETE) or force:
        return None
    changed = _changed_inputs(attrs["sources"], current)
    if attrs.get("build_key") != build_key:
        changed.append(key_what)
    if changed:
        raise StoreError(f"{out_path} was built from other inputs ({'; '.join(changed)} "
                         "changed); pass --force to rebuild it")
    return BuildSummary(out_path, False, n_bases, store_bytes(out_path), time.perf_counter() - t0)


def _changed_inputs(recorded_sources, current_paths):
    """Names of inputs whose files differ from those a store was built from."""
    changed = []
    if set(recorded_sources) != set(current_paths):
        changed += sorted(set(recorded_sources) ^ set(current_paths))
    for role, path in current_paths.items():
        if role in recorded_sources and (
                os.path.abspath(path) != recorded_sources[role]["path"]
                or source_changed(recorded_sources[role], path)):
            changed.append(f"{role} ({path})")
    return changed


# ---------------------------------------------------------------- atomic, resumable builds

class StoreLock:
    """An exclusive lock on `<store>.lock`; a second build of the same store refuses to run."""

    def __init__(self, store_path):
        self.path = str(store_path) + ".lock"
        self.handle = None

    def __enter__(self):
        self.handle = open(self.path, "a+")
        try:
            fcntl.flock(self.handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            self.handle.close()
            raise StoreError(f"{self.path}: another build of this store is running; wait for it "
                             "to finish (or remove the lock file if no build is running)") from None
        return self

    def __exit__(self, *exc):
        fcntl.flock(self.handle, fcntl.LOCK_UN)
        self.handle.close()


def _open_partial(partial, attrs):
    """Open (or start) a partial store; drop it if it was started from other inputs."""
    import zarr
    existing = read_store_attrs(partial)
    digests = {role: source["digest"] for role, source in attrs["sources"].items()}
    if existing is not None and (existing.get("build_key") != attrs["build_key"] or {
            role: source["digest"] for role, source in existing.get("sources", {}).items()} != digests):
        # started from other inputs: its finished arrays must not be mixed with new ones
        shutil.rmtree(partial)
        existing = None
    group = zarr.open_group(partial, mode="a", zarr_format=3)
    if existing is None:
        group.attrs[ATTR] = {**attrs, COMPLETE: False}
    return group


def _array_done(group, name):
    try:
        return bool(group[name].attrs.get(COMPLETE, False))
    except KeyError:
        return False


def _create_array(group, name, shape, chunks, dtype, codecs, shard_chunks=None):
    """A chunked array, sharded (up to SHARD_CHUNKS chunks per file) unless it is short."""
    shard_chunks = SHARD_CHUNKS if shard_chunks is None else shard_chunks
    n_chunks = -(-shape[0] // chunks[0])
    shards = None
    if shard_chunks > 1 and n_chunks > UNSHARDED_MAX_CHUNKS:
        shards = (chunks[0] * min(shard_chunks, n_chunks), *chunks[1:])
    return group.create_array(name, shape=shape, chunks=chunks, shards=shards, dtype=dtype,
                              compressors=codecs, fill_value=0, overwrite=True,
                              config={"write_empty_chunks": True})


class ChunkEncoder:
    """Threads that compress chunks during one build; close() (or the end of a `with` block)
    shuts them down. Blosc releases the GIL, so chunks compress in parallel.

        with ChunkEncoder() as encoder:
            writer = SequentialWriter(arr, store_dir, encoder)
    """

    def __init__(self, threads=None):
        from concurrent.futures import ThreadPoolExecutor
        single_threaded_blosc()          # contextual Blosc calls: no global lock between threads
        self.threads = threads or min(4, os.cpu_count() or 1)
        self._pool = ThreadPoolExecutor(self.threads, thread_name_prefix="encode")

    def map(self, fn, items):
        """[fn(item)] in order, computed in the threads."""
        if self._pool is None:
            raise ValueError("ChunkEncoder is closed")
        return list(self._pool.map(fn, items))

    def close(self):
        if self._pool is not None:
            self._pool.shutdown(wait=True)
            self._pool = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


class SequentialWriter:
    """Write an array created by `_create_array` front to back, block by block.

    Sharded arrays are encoded here directly, a whole shard file at a time, in the byte
    format of shard_format.py (each chunk with the array's own codecs, as its zarr.json says,
    then the shard index): zarr-python spends ~0.2 ms of per-chunk bookkeeping on writes, which
    made builds 2-3x slower than the compression itself. Chunks are compressed by `encoder`
    (a ChunkEncoder; None: in the calling thread). Unsharded (short) arrays are written
    through zarr.
    """

    def __init__(self, arr, store_dir, encoder=None):
        import json
        self.arr = arr
        self.length = arr.shape[0]
        self.dir = Path(store_dir) / arr.path
        self.encoder = encoder
        self.written = 0
        meta = json.loads((self.dir / "zarr.json").read_text())
        self.sharded = meta["codecs"][0]["name"] == "sharding_indexed"
        if not self.sharded:
            return
        self.layout = ArrayLayout.from_metadata(meta)
        assert self.layout.index_at_end, "arrays are created with the shard index at the end"
        self.chunk_shape = self.layout.chunk_shape
        self.remainder = np.zeros((0, *self.chunk_shape[1:]), dtype=arr.dtype)  # < one chunk
        self.parts = []            # encoded chunks of the shard being filled
        self.shard_index = 0

    def write(self, block):
        """Append rows [written, written + len(block)) of the array."""
        if not self.sharded:
            self.arr[self.written: self.written + len(block)] = block
            self.written += len(block)
            return
        rows = np.concatenate([self.remainder, block]) if len(self.remainder) else np.asarray(block)
        chunk_len = self.chunk_shape[0]
        self.written += len(block)
        full = len(rows) // chunk_len * chunk_len
        if self.written == self.length:
            full = len(rows)                       # the last chunk, padded
        pieces = [rows[k:k + chunk_len] for k in range(0, full, chunk_len)]
        encoded = (self.encoder.map(self._encode, pieces) if self.encoder is not None
                   else [self._encode(piece) for piece in pieces])
        for chunk in encoded:                      # in order
            self._add_encoded(chunk)
        self.remainder = np.array(rows[full:], copy=True)
        if self.written == self.length and self.parts:
            self._write_shard()

    def _encode(self, rows):
        """One chunk (padded with zeros past the array end) -> its stored bytes."""
        return encode_chunk(rows, self.layout)

    def _add_encoded(self, encoded):
        self.parts.append(encoded)
        if len(self.parts) == self.layout.chunks_per_shard:
            self._write_shard()

    def _write_shard(self):
        """The current shard's chunks and index, to its file."""
        write_shard(str(self.layout.file_path(self.dir, self.shard_index)), self.parts,
                    self.layout.chunks_per_shard)
        self.parts = []
        self.shard_index += 1


def _write_small(group, name, values):
    """A small int64/float array in one chunk (intervals, peaks)."""
    from zarr.codecs import Crc32cCodec, ZstdCodec
    values = np.ascontiguousarray(values)
    shape = values.shape
    chunks = tuple(max(1, s) for s in shape)
    arr = group.create_array(name, shape=shape, chunks=chunks, dtype=values.dtype,
                             compressors=[ZstdCodec(level=3), Crc32cCodec()], fill_value=0,
                             overwrite=True, config={"write_empty_chunks": True})
    if values.size:
        arr[...] = values
    arr.attrs[COMPLETE] = True


def _finish(partial, final, group, force):
    attrs = dict(group.attrs[ATTR])
    attrs[COMPLETE] = True
    attrs["built_at"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    group.attrs[ATTR] = attrs
    if os.path.exists(final) and not force:
        raise StoreError(f"{final} exists; pass --force to replace it")
    replace_path(partial, final)    # build_stores checked that `final` is a store of ours


# ---------------------------------------------------------------- interval sets in stores

def intervals_to_array(records, chrom_index):
    """PEAK_DTYPE records -> (N, 4) int64 [chrom index, start, end, summit]."""
    out = np.empty((len(records), 4), dtype=np.int64)
    out[:, 0] = [chrom_index[c] for c in records["chrom"]] if len(records) else []
    out[:, 1] = records["start"]
    out[:, 2] = records["end"]
    out[:, 3] = records["summit"]
    return out


def find_annotation_files(folder):
    """Map GENCODE feature name -> BED path in `folder`, recognised by file-name tokens."""
    import re
    if not os.path.isdir(folder):
        raise InputFileError(folder, "annotations folder not found")
    found = {}
    for entry in sorted(os.listdir(folder)):
        if not re.search(r"\.bed(\.gz)?$", entry):
            continue
        tokens = set(re.split(r"[._\-]", entry.lower()))
        for feature, names in ANNOTATION_TOKENS.items():
            if tokens & set(names):
                if feature in found:
                    raise InputFileError(folder, f"two files match {feature}: "
                                         f"{os.path.basename(found[feature])} and {entry}")
                found[feature] = os.path.join(folder, entry)
    missing = [f for f in GENCODE_FEATURES if f not in found]
    if missing:
        raise InputFileError(folder, f"no BED file for {', '.join(missing)}; expected names "
                             f"containing {', '.join(GENCODE_FEATURES)}")
    return {f: found[f] for f in GENCODE_FEATURES}


# ---------------------------------------------------------------- genome store

@dataclass(frozen=True)
class BuildSummary:
    """What a build did, for the one-line summary."""
    path: str
    built: bool
    bases: int
    bytes_on_disk: int
    seconds: float


def store_bytes(path):
    total = 0
    for root, _, files in os.walk(path):
        total += sum(os.path.getsize(os.path.join(root, f)) for f in files)
    return total


def select_chroms(fai_records, chroms, fasta_path):
    """Chromosomes to build, in FASTA order, restricted by --chroms."""
    names = [r.name for r in fai_records]
    if not chroms:
        return [r for r in fai_records if r.length > 0]
    unknown = [c for c in chroms if c not in names]
    if unknown:
        hint = chrom_naming_hint(unknown[0], names)
        raise FactorNetError(f"--chroms: {', '.join(unknown)} not in {fasta_path}{hint}")
    wanted = set(chroms)
    return [r for r in fai_records if r.name in wanted]


def build_genome_store(fasta, out_path, chroms=None, chunk_bases=DEFAULT_CHUNK_BASES,
                       codecs=Codecs(), force=False, progress=None):
    """Encode a FASTA into `out_path` (sequence codes per chromosome). Returns BuildSummary."""
    t0 = time.perf_counter()
    fai = select_chroms(read_fai(fasta), chroms, fasta)
    current = {"fasta": fasta}
    build_key = {"chroms": [r.name for r in fai], "sizes": [r.length for r in fai],
                 "chunk_bases": chunk_bases, "codecs": codecs.__dict__}
    done = _existing_build(out_path, current, build_key, "chromosome set or chunking", force,
                           sum(r.length for r in fai), t0)
    if done is not None:
        return done
    partial = str(out_path) + ".partial"
    with StoreLock(out_path):
        sources = {"fasta": source_record(fasta)}
        group = _open_partial(partial, {
            "format": GENOME_FORMAT, "version": FORMAT_VERSION, "chroms": build_key["chroms"],
            "sizes": build_key["sizes"], "fingerprint": sources["fasta"]["digest"],
            "sources": sources, "build_key": build_key, "chunk_bases": chunk_bases})
        seq_codecs = _codec_list(codecs.sequence_cname, codecs.sequence_clevel,
                                 codecs.sequence_shuffle, 1)
        with open(fasta, "rb") as handle, ChunkEncoder() as encoder:
            for record in fai:
                name = sequence_key(record.name)
                if _array_done(group, name):
                    continue
                arr = _create_array(group, name, (record.length,), (chunk_bases,), "uint8", seq_codecs)
                writer = SequentialWriter(arr, partial, encoder)
                for start in range(0, record.length, WRITE_BLOCK_BASES):
                    end = min(start + WRITE_BLOCK_BASES, record.length)
                    writer.write(read_codes(fasta, record, start, end, handle))
                    if progress:
                        progress(record.name, end - start)
                arr.attrs[COMPLETE] = True
        if not _array_done(group, interval_key(BLACKLIST)):
            _write_small(group, interval_key(BLACKLIST), np.zeros((0, 4), np.int64))
        _finish(partial, out_path, group, force)
    return BuildSummary(out_path, True, sum(r.length for r in fai), store_bytes(out_path),
                        time.perf_counter() - t0)


def set_genome_intervals(genome_path, blacklist=None, annotations_dir=None):
    """Store (or replace) the blacklist and GENCODE annotation intervals of a built genome store.

    They are small, so they are rewritten in place under the store's lock rather than forcing a
    sequence rebuild; each array is marked complete only once written.
    """
    import zarr

    from factornet_jax.bed import read_bed
    attrs = read_store_attrs(genome_path)
    chroms, sizes = attrs["chroms"], attrs["sizes"]
    chrom_sizes = dict(zip(chroms, sizes))
    index = {c: i for i, c in enumerate(chroms)}
    wanted = {}
    if blacklist:
        wanted["blacklist"] = blacklist
    if annotations_dir:
        wanted.update(find_annotation_files(annotations_dir))
    recorded = attrs.get("interval_sources", {})
    todo = {k: p for k, p in wanted.items()
            if k not in recorded or source_changed(recorded[k], p)
            or recorded[k]["path"] != os.path.abspath(p)}
    if not todo:
        return False
    # Resource BEDs hold contigs the genome may lack (chrM, haplotypes): dropped; a chr1-vs-1
    # naming mismatch or an interval past a chromosome end is still an error. Every file is
    # read and checked before anything is written, so a bad one changes nothing.
    parsed = {key: read_bed(path, chrom_sizes=chrom_sizes, drop_unknown_chroms=True,
                                   sizes_from="genome FASTA")
              for key, path in todo.items()}
    with StoreLock(genome_path):
        group = zarr.open_group(genome_path, mode="a", zarr_format=3)
        for key, path in todo.items():
            _write_small(group, interval_key(key), intervals_to_array(parsed[key], index))
            recorded[key] = source_record(path)
        attrs = dict(group.attrs[ATTR])
        attrs["interval_sources"] = recorded
        attrs["annotations"] = [f for f in GENCODE_FEATURES if f in recorded]
        group.attrs[ATTR] = attrs
    return True


# ---------------------------------------------------------------- cell store

def _bigwig_chroms(track, chrom_sizes, listed_in):
    import pyBigWig
    try:
        handle = pyBigWig.open(track.path)
    except RuntimeError:
        handle = None
    if handle is None or not handle.isBigWig():
        raise InputFileError(listed_in, f"{track.path} is not a readable bigWig file")
    bw_chroms = handle.chroms()
    missing = [c for c in chrom_sizes if c not in bw_chroms]
    if missing:
        hint = chrom_naming_hint(missing[0], list(bw_chroms))
        raise InputFileError(track.path, f"has no chromosome {missing[0]!r}{hint}; restrict the "
                             "build with --chroms or use a bigWig for this genome")
    for chrom, size in chrom_sizes.items():
        if bw_chroms[chrom] != size:
            raise InputFileError(track.path, f"chromosome {chrom!r} is {bw_chroms[chrom]} bp here but "
                                 f"{size} bp in the genome FASTA; use a bigWig made for this genome build")
    return handle


def _read_peaks(entry, kind, path, chrom_sizes, chip_txt):
    from factornet_jax.bed import read_bed
    # Peaks on chromosomes outside the build (--chroms, unplaced contigs) are dropped; other
    # naming styles (1 vs chr1) and peaks past a chromosome end are errors.
    records = read_bed(path, chrom_sizes=chrom_sizes, drop_unknown_chroms=True,
                                   sizes_from="genome FASTA")
    if len(records) == 0:
        raise InputFileError(path, f"{kind} peak file of {entry.tf} is empty; "
                             f"remove the TF from {chip_txt} or give a file with peaks")
    return records


def cell_build_key(cell, genome_attrs, chrom_names, chunk_bases, codecs):
    return {"genome": genome_attrs["fingerprint"], "chroms": chrom_names,
            "tracks": [t.name for t in cell.tracks], "tfs": [c.tf for c in cell.chip],
            "meta": [list(cell.meta_names), list(cell.meta_values)],
            "chunk_bases": chunk_bases, "codecs": codecs.__dict__}


def cell_source_paths(cell):
    paths = {f"bigwig {t.name}": t.path for t in cell.tracks}
    for entry in cell.chip:
        paths[f"peaks {entry.tf} conservative"] = entry.conservative
        if entry.relaxed:
            paths[f"peaks {entry.tf} relaxed"] = entry.relaxed
    return paths


def build_cell_store(cell, genome_path, out_path, chroms=None, chunk_bases=DEFAULT_CHUNK_BASES,
                     codecs=Codecs(), force=False, progress=None):
    """Write one cell line's signal tracks, peaks and meta into `out_path`. Returns BuildSummary."""
    t0 = time.perf_counter()
    genome_attrs = read_store_attrs(genome_path)
    if not genome_attrs or not genome_attrs.get(COMPLETE):
        raise StoreError(f"{genome_path}: genome store missing or incomplete; build it first")
    all_sizes = dict(zip(genome_attrs["chroms"], genome_attrs["sizes"]))
    if chroms:
        missing = [c for c in chroms if c not in all_sizes]
        if missing:
            raise StoreError(f"--chroms {', '.join(missing)} not in the genome store {genome_path}; "
                             "rebuild it with those chromosomes (--force)")
    chrom_names = [c for c in genome_attrs["chroms"] if not chroms or c in chroms]
    chrom_sizes = {c: all_sizes[c] for c in chrom_names}
    build_key = cell_build_key(cell, genome_attrs, chrom_names, chunk_bases, codecs)
    current = cell_source_paths(cell)
    done = _existing_build(out_path, current, build_key, "cell folder lists, chromosome set or genome",
                           force, sum(chrom_sizes.values()), t0)
    if done is not None:
        return done

    bigwig_txt = os.path.join(cell.folder, "bigwig.txt")
    chip_txt = os.path.join(cell.folder, "chip.txt")
    handles = []
    try:  # the bigWig handles are closed however the build ends
        handles += [_bigwig_chroms(t, chrom_sizes, bigwig_txt) for t in cell.tracks]
        peaks = {}
        for entry in cell.chip:  # parse (and validate) all peaks before writing anything big
            peaks[(entry.tf, "conservative")] = _read_peaks(
                entry, "conservative", entry.conservative, chrom_sizes, chip_txt)
            if entry.relaxed:
                peaks[(entry.tf, "relaxed")] = _read_peaks(entry, "relaxed", entry.relaxed,
                                                           chrom_sizes, chip_txt)
        partial = str(out_path) + ".partial"
        with StoreLock(out_path), ChunkEncoder() as encoder:
            sources = {role: source_record(path) for role, path in current.items()}
            genome_rel = os.path.relpath(os.path.abspath(genome_path),
                                         os.path.dirname(os.path.abspath(out_path)))
            group = _open_partial(partial, {
                "format": CELL_FORMAT, "version": FORMAT_VERSION, "name": cell.name,
                "track_names": [t.name for t in cell.tracks], "tfs": [c.tf for c in cell.chip],
                "relaxed_tfs": [c.tf for c in cell.chip if c.relaxed],
                "meta_names": list(cell.meta_names), "meta_values": list(cell.meta_values),
                "chroms": chrom_names, "sizes": [chrom_sizes[c] for c in chrom_names],
                "genome": {"path": genome_rel, "abspath": os.path.abspath(genome_path),
                           "fingerprint": genome_attrs["fingerprint"]},
                "sources": sources, "build_key": build_key, "chunk_bases": chunk_bases})
            index = {c: i for i, c in enumerate(chrom_names)}
            for (tf, kind), records in peaks.items():
                name = peaks_key(tf, kind)
                if not _array_done(group, name):
                    _write_small(group, name, intervals_to_array(records, index))
            n_tracks = len(cell.tracks)
            sig_codecs = _codec_list(codecs.signal_cname, codecs.signal_clevel,
                                     codecs.signal_shuffle, 4)
            has_values = np.zeros(n_tracks, dtype=bool)
            for chrom in chrom_names:
                name = signal_key(chrom)
                if _array_done(group, name):
                    has_values |= np.asarray(group[name].attrs.get(HAS_VALUES, [True] * n_tracks))
                    continue
                size = chrom_sizes[chrom]
                arr = _create_array(group, name, (size, n_tracks), (chunk_bases, n_tracks),
                                    "float32", sig_codecs)
                chrom_has = np.zeros(n_tracks, dtype=bool)
                writer = SequentialWriter(arr, partial, encoder)
                block = np.empty((min(WRITE_BLOCK_BASES, size), n_tracks), dtype=np.float32)
                for start in range(0, size, WRITE_BLOCK_BASES):
                    end = min(start + WRITE_BLOCK_BASES, size)
                    out = block[: end - start]
                    for k, handle in enumerate(handles):
                        _read_bigwig_block(handle, chrom, start, end, out[:, k])
                    chrom_has |= out.any(axis=0)
                    writer.write(out)
                    if progress:
                        progress(chrom, end - start)
                arr.attrs[HAS_VALUES] = chrom_has.tolist()
                arr.attrs[COMPLETE] = True
                has_values |= chrom_has
            empty = [t.name for t, ok in zip(cell.tracks, has_values) if not ok]
            if empty:
                raise InputFileError(bigwig_txt, f"track {empty[0]!r} has no values (all NaN or "
                                     "zero) on the chosen chromosomes; check the bigWig file")
            _finish(partial, out_path, group, force)
    finally:
        for handle in handles:
            handle.close()
    return BuildSummary(out_path, True, sum(chrom_sizes.values()), store_bytes(out_path),
                        time.perf_counter() - t0)


def _read_bigwig_block(handle, chrom, start, end, out):
    """Fill out[:] with the bigWig's values on [start, end); NaN, inf and gaps become 0."""
    values = handle.values(chrom, start, end, numpy=True)
    np.nan_to_num(values, copy=False, nan=0.0, posinf=0.0, neginf=0.0)
    out[:] = values

"""What a built store looks like: format names, version, attribute keys, array keys, chunking
and codec settings. Imported by the writer (`stores.py`) and the reader (`reader.py`); neither
imports the other. The layout in words: docs/ARCHITECTURE.md, "Stores (zarr v3)".

    genome store  sequence/<chrom>          (length,) uint8 base codes
                  intervals/<name>          (N, 4) int64 [chrom index, start, end, summit]
    cell store    signal/<chrom>            (length, n_tracks) float32
                  peaks/<tf>/<kind>         (N, 4) int64 [chrom index, start, end, summit]
"""
import json
import os
from dataclasses import dataclass

GENOME_FORMAT = "factornet-jax/genome"
CELL_FORMAT = "factornet-jax/cell"
FORMAT_VERSION = 1
ATTR = "factornet"            # the group attribute holding a store's description (a dict)
COMPLETE = "complete"         # group and array attribute: true once fully written
HAS_VALUES = "has_values"     # signal array attribute: (n_tracks,) bools, a track not all zero

SEQUENCE = "sequence"         # genome store: one array per chromosome under these groups
SIGNAL = "signal"             # cell store
INTERVALS = "intervals"       # genome store: blacklist and GENCODE annotations
PEAKS = "peaks"               # cell store: peaks/<tf>/<conservative|relaxed>
PEAK_KINDS = ("conservative", "relaxed")
BLACKLIST = "blacklist"

# Measured (docs/BENCHMARKS.md, "Chunk size, codecs and sharding"): random 1 kb windows
# read fastest per CPU-second with 2-4 kb chunks in shards; 4 kb compresses better than 2 kb.
DEFAULT_CHUNK_BASES = 4096
# Chunks per shard file (zarr v3 sharding_indexed, byte format in shard_format.py): an hg19
# store is ~200 files instead of ~730,000, they all stay open, and the reader preads a chunk
# instead of opening a file. Arrays of at most UNSHARDED_MAX_CHUNKS chunks (chrM, small
# contigs) keep one file per chunk.
SHARD_CHUNKS = 4096
UNSHARDED_MAX_CHUNKS = 64


@dataclass(frozen=True)
class Codecs:
    """Compression of the two big array kinds (a measured choice, see BENCHMARKS.md).

    Sequence codes: lz4hc + bitshuffle decodes a 4 kb chunk ~4x faster than zstd at the same
    size. Signal: bigWig values come in runs of equal float32 rows, which LZ matching finds
    without shuffling: lz4hc/noshuffle is smaller and faster to decode than lz4/bitshuffle.
    Each chunk is Blosc followed by a crc32c (shard_format.py).
    """
    sequence_cname: str = "lz4hc"
    sequence_clevel: int = 5
    sequence_shuffle: str = "bitshuffle"
    signal_cname: str = "lz4hc"
    signal_clevel: int = 5
    signal_shuffle: str = "noshuffle"


def sequence_key(chrom):
    return f"{SEQUENCE}/{chrom}"


def signal_key(chrom):
    return f"{SIGNAL}/{chrom}"


def interval_key(name):
    """`name`: BLACKLIST or a GENCODE feature (labels.GENCODE_FEATURES)."""
    return f"{INTERVALS}/{name}"


def peaks_key(tf, kind):
    return f"{PEAKS}/{tf}/{kind}"


def read_store_attrs(path):
    """The `factornet` attributes (a dict) of a store folder, or None when it is not a zarr
    group of ours (no zarr.json, unreadable JSON, no such attribute)."""
    meta = os.path.join(str(path), "zarr.json")
    if not os.path.isfile(meta):
        return None
    with open(meta) as handle:
        try:
            return json.load(handle).get("attributes", {}).get(ATTR)
        except ValueError:
            return None

"""Baseline scores of bins, to show what a model adds: the mean of one signal track (e.g.
DNase) over each bin, written as a bedGraph that `evaluate` scores like a prediction."""
import gzip

import numpy as np

from factornet_jax.errors import ConfigError

READ_CHUNK = 8192   # bins per store read


def track_mean(store, chroms, starts, ends, track):
    """(N,) float64 mean of `track` over each interval [start, end) of an open cell store.

    Intervals of one length are read in chunks of `READ_CHUNK` windows (the DREAM ladder has
    200-bp bins); others one length group at a time.
    """
    if track not in store.track_names:
        raise ConfigError(f"track {track!r} is not in {store.path} (it has "
                          f"{', '.join(store.track_names)})")
    column = list(store.track_names).index(track)
    chroms, starts, ends = np.asarray(chroms), np.asarray(starts, np.int64), np.asarray(ends, np.int64)
    means = np.zeros(len(starts))
    for width in np.unique(ends - starts):
        rows = np.flatnonzero(ends - starts == width)
        for lo in range(0, len(rows), READ_CHUNK):
            sel = rows[lo:lo + READ_CHUNK]
            _, signal = store.fetch_batch(chroms[sel], starts[sel], int(width), pad=True, as_codes=True)
            means[sel] = signal[:, :, column].mean(axis=1)
    return means


def write_track_mean_bedgraph(store, bins_by_chrom, track, out_path):
    """Write the `track_mean` of every bin as a gzipped bedGraph (chrom, start, end, score).

    bins_by_chrom : dict chrom -> structured array with "start" and "end" (as
        `evaluate.read_predictions` returns), written in that order.
    """
    with gzip.open(out_path, "wt") as handle:
        for chrom, bins in bins_by_chrom.items():
            scores = track_mean(store, np.full(len(bins), chrom), bins["start"], bins["end"], track)
            handle.writelines(f"{chrom}\t{s}\t{e}\t{v:.5g}\n"
                              for s, e, v in zip(bins["start"].tolist(), bins["end"].tolist(), scores))

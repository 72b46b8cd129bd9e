"""Baseline scores of bins, to show what a model adds: the mean of one signal track (e.g.
DNase) over each bin (written as a bedGraph that `evaluate` scores like a prediction, for the
demo), and the best PWM score of the TF's motif in each bin (`evaluate --baselines`)."""
import gzip

import numpy as np

from factornet_jax.errors import ConfigError

READ_CHUNK = 8192   # bins per store read


def interval_groups(chroms, starts, ends, chunk=READ_CHUNK):
    """Yield (rows, width): the intervals of one length, `chunk` at a time (one store read each;
    the DREAM ladder has one length, 200 bp)."""
    starts, ends = np.asarray(starts, np.int64), np.asarray(ends, np.int64)
    for width in np.unique(ends - starts):
        rows = np.flatnonzero(ends - starts == width)
        for lo in range(0, len(rows), chunk):
            yield rows[lo:lo + chunk], int(width)


def track_mean(store, chroms, starts, ends, track):
    """(N,) float64 mean of `track` over each interval [start, end) of an open cell store."""
    if track not in store.track_names:
        raise ConfigError(f"track {track!r} is not in {store.path} (it has "
                          f"{', '.join(store.track_names)})")
    column = list(store.track_names).index(track)
    chroms, starts = np.asarray(chroms), np.asarray(starts, np.int64)
    means = np.zeros(len(starts))
    for sel, width in interval_groups(chroms, starts, ends):
        _, signal = store.fetch_batch(chroms[sel], starts[sel], width, pad=True, as_codes=True)
        means[sel] = signal[:, :, column].mean(axis=1)
    return means


def pwm_max(genome, chroms, starts, ends, pwm):
    """(N,) float64 best log2-odds score of `pwm` over each interval, both strands
    (`meme.scan_max`, uniform background, pseudocount 0.01), from an open genome store (bases
    past a chromosome end are N and score 0)."""
    from factornet_jax.meme import scan_max
    chroms, starts = np.asarray(chroms), np.asarray(starts, np.int64)
    out = np.zeros(len(starts))
    for sel, width in interval_groups(chroms, starts, ends):
        codes = genome.fetch_codes_batch(chroms[sel], starts[sel], width, pad=True)
        out[sel] = scan_max(codes, pwm, onehot=False)
    return out


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

"""Training examples and batches: labels per cell line -> epoch examples -> batches of windows.

`TrainingData` builds, once, the positive bins and exclusion zones of every cell store (the
FactorNet semantics live in labels.py); `epoch_examples(epoch)` draws that epoch's jittered
positives and fresh negatives from a Generator seeded by (seed, epoch), so a resumed run sees
exactly the data an uninterrupted one would. `BatchLoader` turns examples into fixed-shape
batches in host threads, several batches ahead of the device.
"""
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np

from factornet_jax.errors import FactorNetError
from factornet_jax.intervals import IntervalSet
from factornet_jax.labels import (BIN_SIZE, BinSet, exclusion_zone, gencode_flags,
                                  jitter_positive_bins, multitask_bins,
                                  multitask_negative_exclusion, sample_negative_bins,
                                  singletask_negative_exclusion, singletask_positives, window_starts)


@dataclass(frozen=True)
class Examples:
    """Rows of training or validation data (struct of arrays).

    cell: (N,) int32 index into the stores; chrom: (N,) str; bin_start: (N,) int64;
    labels: (N, T) uint8.
    """
    cell: np.ndarray
    chrom: np.ndarray
    bin_start: np.ndarray
    labels: np.ndarray

    def __len__(self):
        return len(self.cell)

    def take(self, idx):
        return Examples(self.cell[idx], self.chrom[idx], self.bin_start[idx], self.labels[idx])

    @classmethod
    def concat(cls, parts, role="training"):
        parts = [p for p in parts if len(p)]
        if not parts:
            raise FactorNetError(f"no {role} examples: no peaks fall on the {role} chromosomes "
                                 "outside the blacklist; check -v/-t and the peak files")
        chroms = np.concatenate([p.chrom.astype(object) for p in parts]).astype(str)
        return cls(np.concatenate([p.cell for p in parts]), chroms,
                   np.concatenate([p.bin_start for p in parts]),
                   np.concatenate([p.labels for p in parts]))

    @classmethod
    def from_bins(cls, cell, bins: BinSet):
        return cls(np.full(len(bins), cell, np.int32), bins.chroms, bins.starts, bins.labels)


@dataclass
class _CellLabels:
    """What one cell store contributes, computed once."""
    positives: BinSet | None            # multi-task: positive bins with per-TF labels
    peak_chroms: np.ndarray | None      # single-task: positives' chromosomes
    peak_mids: np.ndarray | None        # single-task: peak midpoints
    peak_widths: np.ndarray | None      # single-task: peak widths
    negative_exclusion: IntervalSet     # where negatives must not fall


class TrainingData:
    """Label structures of a set of cell stores on a set of chromosomes.

    tasks: the TF names (multi-task: every TF of the stores; single-task: [factor]).
    """

    def __init__(self, stores, chroms, seq_len, factor=None, negatives=1, seed=0, role="training"):
        self.stores = stores
        self.chroms = list(chroms)
        self.seq_len = seq_len
        self.factor = factor
        self.negatives = negatives
        self.seed = seed
        self.role = role
        self.tasks = [factor] if factor else list(stores[0].tfs)
        self.cells = [self._cell_labels(store) for store in stores]

    def _cell_labels(self, store):
        sizes = store.chrom_sizes
        zone = exclusion_zone(store.genome.blacklist(), sizes, self.seq_len)
        if self.factor is None:
            conservative = [IntervalSet.from_records(store.peaks(tf)) for tf in self.tasks]
            positives = multitask_bins(conservative, self.chroms, sizes, zone)
            return _CellLabels(positives, None, None, None,
                               multitask_negative_exclusion(positives, zone))
        peaks = store.peaks(self.factor)
        relaxed = store.peaks(self.factor, kind="relaxed")
        relaxed = peaks if relaxed is None else np.concatenate([relaxed, peaks])
        chroms, mids, widths = singletask_positives(peaks, self.chroms, zone)
        excluded = singletask_negative_exclusion(IntervalSet.from_records(relaxed), zone, sizes)
        return _CellLabels(None, chroms, mids, widths, excluded)

    @property
    def num_positives(self):
        return sum(len(c.positives) if c.positives is not None else len(c.peak_mids)
                   for c in self.cells)

    def examples(self, rng, jitter=True):
        """One epoch's rows: every positive (jittered for single-task) plus fresh negatives,
        shuffled. Multi-task: as many negatives as positives; single-task: `negatives` each."""
        parts = []
        for k, (store, cell) in enumerate(zip(self.stores, self.cells)):
            if cell.positives is not None:
                positives = cell.positives
                n_neg = len(positives)
            else:
                starts = (jitter_positive_bins(rng, cell.peak_chroms, cell.peak_mids, cell.peak_widths)
                          if jitter else cell.peak_mids - BIN_SIZE // 2)
                positives = BinSet(cell.peak_chroms, starts, np.ones((len(starts), 1), np.uint8))
                n_neg = len(positives) * self.negatives
            if len(positives) == 0:
                continue
            negatives = sample_negative_bins(rng, n_neg, cell.negative_exclusion, self.chroms,
                                             store.chrom_sizes, num_tasks=len(self.tasks))
            parts += [Examples.from_bins(k, positives), Examples.from_bins(k, negatives)]
        examples = Examples.concat(parts, self.role)
        return examples.take(rng.permutation(len(examples)))

    def epoch_examples(self, epoch):
        """Training rows of `epoch` (0-based): a function of (seed, epoch) alone."""
        return self.examples(np.random.default_rng([self.seed, epoch]))


@dataclass(frozen=True)
class BatchSpec:
    """What goes into a batch besides the windows."""
    seq_len: int
    use_meta: bool
    use_gencode: bool


class BatchLoader:
    """Iterate fixed-shape numpy batches over `examples`, prepared ahead in threads.

    Each batch is a dict: codes (B, L) uint8 (A,C,G,T = 0..3, N = 4), signal (B, L, S) float32,
    labels (B, T) float32, weights (B,) float32 (0 on padding rows of the last batch),
    and meta (B, M) / gencode (B, 6) float32 when the spec asks for them. `rows` selects this
    process's slice of every global batch (multi-host); the default is the whole batch.
    """

    def __init__(self, stores, examples, batch_size, spec, threads=2, prefetch=4,
                 rows=None, max_batches=0):
        self.stores = stores
        self.examples = examples
        self.batch_size = batch_size
        self.spec = spec
        self.threads = threads
        self.prefetch = max(prefetch, threads)
        self.rows = rows or slice(0, batch_size)
        n = -(-len(examples) // batch_size)
        self.num_batches = min(n, max_batches) if max_batches else n
        self._annotations = {}

    def __len__(self):
        return self.num_batches

    def _gencode(self, store, chroms, starts):
        key = store.genome.path
        if key not in self._annotations:
            self._annotations[key] = store.genome.annotations()
        return gencode_flags(self._annotations[key], chroms, starts)

    def make_batch(self, index):
        """Batch `index` (this process's rows of it), padded to the full batch shape."""
        lo = index * self.batch_size
        idx = np.arange(lo, min(lo + self.batch_size, len(self.examples)))[self.rows]
        rows = len(range(*self.rows.indices(self.batch_size)))
        rows_ex = self.examples.take(idx)
        seq_len, n_tracks = self.spec.seq_len, self.stores[0].num_tracks
        batch = {
            "codes": np.full((rows, seq_len), 4, np.uint8),
            "signal": np.zeros((rows, seq_len, n_tracks), np.float32),
            "labels": np.zeros((rows, rows_ex.labels.shape[1]), np.float32),
            "weights": np.zeros(rows, np.float32),
        }
        n = len(idx)
        batch["labels"][:n] = rows_ex.labels
        batch["weights"][:n] = 1.0
        if self.spec.use_meta:
            batch["meta"] = np.zeros((rows, len(self.stores[0].meta_values)), np.float32)
        if self.spec.use_gencode:
            batch["gencode"] = np.zeros((rows, 6), np.float32)
        for cell in np.unique(rows_ex.cell):
            sel = np.flatnonzero(rows_ex.cell == cell)
            store = self.stores[cell]
            chroms, bins = rows_ex.chrom[sel], rows_ex.bin_start[sel]
            codes, signal = store.fetch_batch(chroms, window_starts(bins, BIN_SIZE, seq_len),
                                              seq_len, pad=True, as_codes=True)
            batch["codes"][sel], batch["signal"][sel] = codes, signal
            if self.spec.use_meta:
                batch["meta"][sel] = store.meta_values
            if self.spec.use_gencode:
                batch["gencode"][sel] = self._gencode(store, chroms, bins)
        return batch

    def __iter__(self):
        if self.threads <= 1:
            for i in range(self.num_batches):
                yield self.make_batch(i)
            return
        with ThreadPoolExecutor(self.threads, thread_name_prefix="batches") as pool:
            pending = deque()
            for i in range(min(self.prefetch, self.num_batches)):
                pending.append(pool.submit(self.make_batch, i))
            next_index = len(pending)
            while pending:
                batch = pending.popleft().result()
                if next_index < self.num_batches:
                    pending.append(pool.submit(self.make_batch, next_index))
                    next_index += 1
                yield batch

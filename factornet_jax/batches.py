"""Training examples and batches: labels per cell line -> epoch examples -> batches of windows.

`TrainingData` builds, once, the positive bins and exclusion zones of every cell store (the
FactorNet semantics live in labels.py); `epoch_examples(epoch)` draws that epoch's jittered
(single-task) or shifted (multi-task) positives and fresh negatives from a Generator seeded by
(seed, epoch), so a resumed run sees exactly the data an uninterrupted one would.
`validation_examples()` draws the validation negatives once; `epoch_validation(examples,
epoch)` moves multi-task validation windows by a fresh shift each epoch, as FactorNet's
validation iterator did on every read. `BatchLoader` turns examples into fixed-shape
batches in host threads, several batches ahead of the device.
"""
import itertools
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np

from factornet_jax.errors import FactorNetError
from factornet_jax.intervals import IntervalSet
from factornet_jax.labels import (BIN_SIZE, GENCODE_SIZE, MULTITASK_SHIFT, BinSet, exclusion_zone,
                                  gencode_flags, jitter_positive_bins, multitask_bins,
                                  multitask_negative_exclusion, sample_negative_bins, shift_bins,
                                  singletask_negative_exclusion, singletask_positives,
                                  usable_peaks, window_starts)


@dataclass(frozen=True)
class Examples:
    """Rows of training or validation data (struct of arrays).

    cell: (N,) int32 index into the stores; chrom: (N,) str; bin_start: (N,) int64, the bin the
    window is centred on (after jitter or shift); labels: (N, T) uint8; anchor: (N,) int64 or
    None (= bin_start), the bin whose GENCODE flags the row carries: FactorNet computes them
    once per example, on the bin before jitter or shift.
    """
    cell: np.ndarray
    chrom: np.ndarray
    bin_start: np.ndarray
    labels: np.ndarray
    anchor: np.ndarray | None = None

    def __len__(self):
        return len(self.cell)

    @property
    def feature_start(self):
        """(N,) int64 start of the bin the GENCODE flags describe."""
        return self.bin_start if self.anchor is None else self.anchor

    def take(self, idx):
        return Examples(self.cell[idx], self.chrom[idx], self.bin_start[idx], self.labels[idx],
                        None if self.anchor is None else self.anchor[idx])

    def moved(self, bin_start):
        """These rows centred on `bin_start` instead, keeping their GENCODE anchor."""
        return Examples(self.cell, self.chrom, np.asarray(bin_start, np.int64), self.labels,
                        self.feature_start)

    @classmethod
    def concat(cls, parts, role="training"):
        parts = [p for p in parts if len(p)]
        if not parts:
            raise FactorNetError(f"no {role} examples: no peaks fall on the {role} chromosomes "
                                 "outside the blacklist; check -v/-t and the peak files")
        chroms = np.concatenate([p.chrom.astype(object) for p in parts]).astype(str)
        anchor = (None if all(p.anchor is None for p in parts)
                  else np.concatenate([p.feature_start for p in parts]))
        return cls(np.concatenate([p.cell for p in parts]), chroms,
                   np.concatenate([p.bin_start for p in parts]),
                   np.concatenate([p.labels for p in parts]), anchor)

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
    shift: multi-task windows move by a uniform integer in [-shift, +shift] each time they are
    read (FactorNet: 20; 0: never).
    """

    def __init__(self, stores, chroms, seq_len, factor=None, negatives=1, seed=0, role="training",
                 shift=MULTITASK_SHIFT):
        self.stores = stores
        self.shift = shift
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
                               multitask_negative_exclusion(conservative, zone, sizes))
        peaks = store.peaks(self.factor)
        relaxed = store.peaks(self.factor, kind="relaxed")
        if relaxed is None:  # FactorNet: the conservative peaks left after the blacklist filter
            relaxed = usable_peaks(peaks, list(sizes), zone)
        chroms, mids, widths = singletask_positives(peaks, self.chroms, zone)
        excluded = singletask_negative_exclusion(IntervalSet.from_records(relaxed), zone, sizes)
        return _CellLabels(None, chroms, mids, widths, excluded)

    @property
    def num_positives(self):
        return sum(len(c.positives) if c.positives is not None else len(c.peak_mids)
                   for c in self.cells)

    def examples(self, rng, jitter=True, shift=True):
        """One epoch's rows: every positive plus fresh negatives, shuffled. Multi-task: as many
        negatives as positives, every row then shifted (unless `shift` is False); single-task:
        `negatives` per positive, positives jittered (unless `jitter` is False)."""
        parts = []
        for k, (store, cell) in enumerate(zip(self.stores, self.cells)):
            if cell.positives is not None:
                positives = cell.positives
                n_neg = len(positives)
            else:
                centred = cell.peak_mids - BIN_SIZE // 2
                positives = BinSet(cell.peak_chroms, centred, np.ones((len(centred), 1), np.uint8))
                n_neg = len(positives) * self.negatives
            if len(positives) == 0:
                continue
            positive_rows = Examples.from_bins(k, positives)
            if cell.positives is None and jitter:
                positive_rows = positive_rows.moved(jitter_positive_bins(
                    rng, cell.peak_chroms, cell.peak_mids, cell.peak_widths))
            negatives = sample_negative_bins(rng, n_neg, cell.negative_exclusion, self.chroms,
                                             store.chrom_sizes, num_tasks=len(self.tasks))
            parts += [positive_rows, Examples.from_bins(k, negatives)]
        examples = Examples.concat(parts, self.role)
        examples = examples.take(rng.permutation(len(examples)))
        return self.shifted(examples, rng) if shift else examples

    def shifted(self, examples, rng):
        """Multi-task: `examples` with every window moved by [-shift, +shift]; single-task: as is."""
        if self.factor is not None or self.shift <= 0:
            return examples
        return examples.moved(shift_bins(rng, examples.bin_start, self.shift))

    def epoch_examples(self, epoch):
        """Training rows of `epoch` (0-based): a function of (seed, epoch) alone."""
        return self.examples(np.random.default_rng([self.seed, epoch]))

    def validation_examples(self):
        """Validation rows, drawn once (FactorNet): positives unjittered and unshifted, fixed
        negatives. Pass them through `epoch_validation` for the rows an epoch scores."""
        return self.examples(np.random.default_rng([self.seed, 1 << 20]), jitter=False, shift=False)

    def epoch_validation(self, examples, epoch):
        """The validation rows of `epoch`: multi-task windows moved by a fresh shift (FactorNet's
        validation iterator shifts on every read), single-task rows as they are."""
        return self.shifted(examples, np.random.default_rng([self.seed, 2 << 20, epoch]))


@dataclass(frozen=True)
class BatchSpec:
    """What goes into a batch besides the windows."""
    seq_len: int
    use_meta: bool
    use_gencode: bool


class BatchAssembler:
    """Fills one batch's arrays from the stores; shared by the thread and process loaders.

    Each batch is a dict: codes (B, L) uint8 (A,C,G,T = 0..3, N = 4), signal (B, L, S) float32,
    labels (B, T) float32, weights (B,) float32 (0 on padding rows of the last batch),
    and meta (B, M) / gencode (B, 6) float32 when the spec asks for them.
    """

    def __init__(self, stores, spec):
        self.stores = stores
        self.spec = spec
        self._annotations = {}

    def layout(self, rows, num_tasks):
        """[(key, shape, dtype, padding value)] of a batch of `rows` rows."""
        seq_len, first = self.spec.seq_len, self.stores[0]
        layout = [("codes", (rows, seq_len), "uint8", 4),
                  ("signal", (rows, seq_len, first.num_tracks), "float32", 0),
                  ("labels", (rows, num_tasks), "float32", 0),
                  ("weights", (rows,), "float32", 0)]
        if self.spec.use_meta:
            layout.append(("meta", (rows, len(first.meta_values)), "float32", 0))
        if self.spec.use_gencode:
            layout.append(("gencode", (rows, GENCODE_SIZE), "float32", 0))
        return layout

    def _gencode(self, store, chroms, starts):
        key = store.genome.path
        if key not in self._annotations:
            self._annotations[key] = store.genome.annotations()
        return gencode_flags(self._annotations[key], chroms, starts)

    def fill(self, batch, layout, rows_ex):
        """Write the windows, labels and features of `rows_ex` into rows 0..n-1 of `batch`
        (arrays shaped as `layout`) and the padding value into the rows after them."""
        n = len(rows_ex)
        for key, _shape, _dtype, pad in layout:
            batch[key][n:] = pad
        batch["labels"][:n] = rows_ex.labels
        batch["weights"][:n] = 1.0
        seq_len = self.spec.seq_len
        for cell in np.unique(rows_ex.cell):
            sel = np.flatnonzero(rows_ex.cell == cell)
            store = self.stores[cell]
            chroms, bins = rows_ex.chrom[sel], rows_ex.bin_start[sel]
            anchors = rows_ex.feature_start[sel]
            codes, signal = store.fetch_batch(chroms, window_starts(bins, BIN_SIZE, seq_len),
                                              seq_len, pad=True, as_codes=True)
            batch["codes"][sel], batch["signal"][sel] = codes, signal
            if self.spec.use_meta:
                batch["meta"][sel] = store.meta_values
            if self.spec.use_gencode:
                batch["gencode"][sel] = self._gencode(store, chroms, anchors)
        return batch


def empty_batch(layout):
    return {key: np.empty(shape, dtype) for key, shape, dtype, _pad in layout}


class BatchLoader:
    """Iterate fixed-shape batches (see `BatchAssembler`) over `examples`, prepared ahead.

    `threads` background threads assemble batches (0: in the caller's thread), or, with
    `workers` (a `batch_processes.BatchWorkers`), worker processes do. `rows` selects this
    process's slice of every global batch (multi-host); the default is the whole batch.
    """

    def __init__(self, stores, examples, batch_size, spec, threads=1, prefetch=4,
                 rows=None, max_batches=0, workers=None):
        self.stores = stores
        self.examples = examples
        self.batch_size = batch_size
        self.spec = spec
        self.threads = threads
        self.prefetch = max(prefetch, threads, 1)
        self.rows = rows or slice(0, batch_size)
        self.workers = workers
        n = -(-len(examples) // batch_size)
        self.num_batches = min(n, max_batches) if max_batches else n
        self.assembler = BatchAssembler(stores, spec)
        rows_per_batch = len(range(*self.rows.indices(batch_size)))
        self.layout = self.assembler.layout(rows_per_batch, examples.labels.shape[1])

    def __len__(self):
        return self.num_batches

    def batch_rows(self, index):
        """The examples of batch `index` that this process loads."""
        lo = index * self.batch_size
        return self.examples.take(np.arange(lo, min(lo + self.batch_size, len(self.examples)))[self.rows])

    def make_batch(self, index):
        """Batch `index` (this process's rows of it), padded to the full batch shape."""
        return self.fill(self.batch_rows(index))

    def __iter__(self):
        rows = (self.batch_rows(i) for i in range(self.num_batches))
        if self.workers is not None:
            return self.workers.map(self.stores, self.spec,
                                    self.layout, rows)
        return ordered_map(self.fill, rows, self.threads, self.prefetch)

    def fill(self, rows_ex):
        """A new batch holding `rows_ex` (this process's rows of one batch)."""
        return self.assembler.fill(empty_batch(self.layout), self.layout, rows_ex)


_END = object()


def ordered_map(fn, items, threads, ahead):
    """fn(item) for each item, in order; `threads` background threads work up to `ahead` items
    ahead of the consumer (0 threads: in the caller's thread). A None item gives None."""
    def call(item):
        return None if item is None else fn(item)

    if threads < 1:
        yield from map(call, items)
        return
    items = iter(items)
    with ThreadPoolExecutor(threads, thread_name_prefix="batches") as pool:
        pending = deque(pool.submit(call, item) for item in itertools.islice(items, max(ahead, 1)))
        while pending:
            result = pending.popleft().result()
            item = next(items, _END)
            if item is not _END:
                pending.append(pool.submit(call, item))
            yield result

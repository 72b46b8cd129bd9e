"""Shared-computation scoring of tiling ladders: the per-position layers once per stretch.

A ladder (ENCODE-DREAM: 200-bp bins at 50-bp steps) scores windows that overlap by
``seq_len - step`` bp. The Conv1D and the per-position Dense of the tower give, at each
position, a value that depends only on the ``kernel_width`` bases under the kernel, so a run
of n consecutive windows needs them once over the stretch of ``seq_len + (n - 1) * step`` bp
(``FactorNet.ladder``), not n times over ``seq_len`` bp; pooling, the BiLSTM and the dense
head still run per window, on the shared output. The scores equal the per-window path's up
to float32 rounding (tests/test_ladder.py).

Which intervals share a stretch
    Consecutive lines of one BED block on the same chromosome whose centres are exactly
    ``step`` apart, all of them usable (clear of the exclusion zone, window inside the
    chromosome), form a run; runs are cut into segments of at most ``windows`` windows. One
    segment is one stretch read from the store (``CellStore.fetch_batch`` of the stretch:
    each base of a run is read once per segment, not once per window) and one row of the
    compiled ladder step; a short segment is padded with windows whose scores are dropped.
    ``step`` is the most common distance between consecutive centres (the BED's stride).
Which path runs
    `choose_sharing` counts multiply-adds of both paths from the model's sizes and the BED's
    run structure (`StepCounts`, gathered by the checking pass of `predict`) and takes the
    shared path when it needs less than ``SHARED_MAX_COST`` of the per-window arithmetic;
    arbitrary BEDs (no common step, short runs, step >= the window) keep the per-window path.
    ``--sharing shared|per-window`` forces one.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from factornet_jax.bed import StepCounts
from factornet_jax.errors import ConfigError

SHARINGS = ("auto", "shared", "per-window")
LADDER_WINDOWS = 64        # windows per stretch (one row of the ladder step)
SHARED_MAX_COST = 0.8      # auto: shared path when its arithmetic is below this share


@dataclass(frozen=True)
class Sharing:
    """The scoring path of one prediction run."""
    path: str                 # "shared" or "per-window"
    step: int | None = None   # bp between the windows of a stretch (shared)
    windows: int = 1          # windows per stretch (shared)
    cost: float = 1.0         # estimated arithmetic relative to the per-window path

    def describe(self) -> str:
        if self.path == "shared":
            return (f"shared-computation path ({self.windows} windows per stretch at "
                    f"{self.step}-bp steps, ~{self.cost:.0%} of the per-window arithmetic)")
        return "per-window path"

    def stretch(self, seq_len) -> int:
        """Bases of one stretch."""
        return seq_len + (self.windows - 1) * self.step


def arithmetic(cfg):
    """Multiply-adds of the model for one strand: (per position of the per-position layers,
    per window of the pooled head)."""
    per_position = cfg.kernel_width * cfg.in_channels * cfg.kernels + cfg.kernels * cfg.kernels
    if cfg.recurrent > 0:
        head = 2 * cfg.pooled_len * 4 * cfg.recurrent * (cfg.kernels + cfg.recurrent)
        flat = cfg.pooled_len * 2 * cfg.recurrent
    elif cfg.recurrent == 0:
        head, flat = 0, cfg.pooled_len * cfg.kernels
    else:
        head, flat = 0, cfg.kernels
    head += flat * cfg.dense + (cfg.dense + cfg.num_extra) * cfg.dense * bool(cfg.num_extra)
    head += cfg.dense * cfg.num_tasks
    return per_position, head


def choose_sharing(cfg, n_bins, steps: StepCounts, batch_size, mode="auto") -> Sharing:
    """The path for a BED of `n_bins` intervals with centre distances `steps`.

    batch_size: windows per compiled call of the per-window path; a stretch holds
    ``min(LADDER_WINDOWS, batch_size)`` windows.
    """
    if mode not in SHARINGS:
        raise ConfigError(f"--sharing {mode}: choose one of {', '.join(SHARINGS)}")
    if mode == "per-window":
        return Sharing("per-window")
    step, following = steps.common_step()
    usable_step = step is not None and step < cfg.seq_len - cfg.kernel_width + 1
    if not usable_step:
        if mode == "shared":
            raise ConfigError(f"--sharing shared: the BED's intervals are not a ladder (no common "
                              f"step between consecutive centres shorter than the "
                              f"{cfg.seq_len}-bp window); use --sharing auto")
        return Sharing("per-window")
    windows = max(1, min(LADDER_WINDOWS, int(batch_size)))
    per_position, head = arithmetic(cfg)
    per_window = cfg.conv_len * per_position + head
    stretch = cfg.seq_len + (windows - 1) * step
    per_segment = (stretch - cfg.kernel_width + 1) * per_position + windows * head
    runs = max(n_bins - following, 1)
    segments = min(n_bins, runs + -(-n_bins // windows))
    cost = segments * per_segment / (n_bins * per_window)
    if mode == "shared" or cost < SHARED_MAX_COST:
        return Sharing("shared", step, windows, cost)
    return Sharing("per-window", cost=cost)


def segments(chroms, mids, usable, step, windows):
    """Runs of usable intervals at `step`, cut into segments of at most `windows`.

    Parameters
    ----------
    chroms : (N,) str; mids : (N,) int64 centres; usable : (N,) bool, in file order

    Returns
    -------
    first : (M,) int64 block row of each segment's first window; count : (M,) int64 windows
    """
    rows = np.flatnonzero(usable)
    if not rows.size:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    joined = ((rows[1:] == rows[:-1] + 1) & (chroms[rows[1:]] == chroms[rows[:-1]])
              & (mids[rows[1:]] - mids[rows[:-1]] == step))
    run_start = np.flatnonzero(np.concatenate([[True], ~joined]))
    run_len = np.diff(np.concatenate([run_start, [rows.size]]))
    pieces = -(-run_len // windows)
    seg_run = np.repeat(np.arange(run_start.size), pieces)
    seg_index = np.arange(seg_run.size) - np.repeat(np.cumsum(pieces) - pieces, pieces)
    offset = seg_index * windows
    first = rows[run_start[seg_run] + offset]
    count = np.minimum(run_len[seg_run] - offset, windows)
    return first.astype(np.int64), count.astype(np.int64)


@dataclass(frozen=True)
class StretchBatch:
    """G stretches to score together: where they are and which block rows they hold.

    chroms : (G,) str; starts : (G,) int64 stretch starts (window starts of the first window);
    bin_starts : (G, n) int64 start of the 200-bp bin of each window (GENCODE flags);
    slots : (R,) int64 flat index g * n + k of each scored window; rows : (R,) block rows
    """
    chroms: np.ndarray
    starts: np.ndarray
    bin_starts: np.ndarray
    slots: np.ndarray
    rows: np.ndarray


def stretch_batches(chroms, mids, first, count, sharing: Sharing, per_call, seq_len, bin_size):
    """Group segments into StretchBatches of `per_call` stretches (the last one padded with
    repeats of its first stretch, whose windows are not collected)."""
    n, step = sharing.windows, sharing.step
    k = np.arange(n)
    for lo in range(0, len(first), per_call):
        f, c = first[lo: lo + per_call], count[lo: lo + per_call]
        g = len(f)
        pad = per_call - g
        f_all = np.concatenate([f, np.repeat(f[:1], pad)])
        win_mids = mids[f_all][:, None] + step * k                        # (G, n)
        taken = k[None, :] < c[:, None]                                    # (g, n)
        slots = (np.arange(g)[:, None] * n + k)[taken]
        rows = (f[:, None] + k)[taken]
        yield StretchBatch(chroms[f_all], mids[f_all] - seq_len // 2,
                           win_mids - bin_size // 2, slots.astype(np.int64), rows.astype(np.int64))


def ladder_layout(sharing: Sharing, per_call, seq_len, num_tracks, num_meta, use_gencode):
    """[(key, shape, dtype)] of a ladder batch of `per_call` stretches."""
    from factornet_jax.labels import GENCODE_SIZE
    stretch, n = sharing.stretch(seq_len), sharing.windows
    layout = [("codes", (per_call, stretch), "uint8"),
              ("signal", (per_call, stretch, num_tracks), "float32")]
    if num_meta:
        layout.append(("meta", (per_call, n, num_meta), "float32"))
    if use_gencode:
        layout.append(("gencode", (per_call, n, GENCODE_SIZE), "float32"))
    return layout


class StretchReader:
    """Reads StretchBatches from one cell store into ladder batches (codes, signal, meta,
    gencode), each stretch in one read; safe to call from one loader thread at a time."""

    def __init__(self, store, sharing: Sharing, seq_len, use_meta, use_gencode):
        self.store = store
        self.stretch = sharing.stretch(seq_len)
        self.windows = sharing.windows
        self.use_meta = use_meta
        self.annotations = store.genome.annotations() if use_gencode else None

    def read(self, item: StretchBatch) -> dict:
        from factornet_jax.labels import gencode_flags
        codes, signal = self.store.fetch_batch(item.chroms, item.starts, self.stretch, pad=True,
                                               as_codes=True)
        batch = {"codes": codes, "signal": signal}
        g = len(item.chroms)
        if self.use_meta:
            meta = np.asarray(self.store.meta_values, np.float32)
            batch["meta"] = np.broadcast_to(meta, (g, self.windows, meta.size)).copy()
        if self.annotations is not None:
            flags = gencode_flags(self.annotations, np.repeat(item.chroms, self.windows),
                                  item.bin_starts.reshape(-1))
            batch["gencode"] = flags.reshape(g, self.windows, -1)
        return batch

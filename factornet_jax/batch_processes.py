"""Batches assembled in worker processes, for hosts whose accelerator outruns one Python thread.

Most of a batch's cost is Python per chunk read (docs/BENCHMARKS.md), which holds the GIL:
a second loader thread makes batches slower, not faster. `BatchWorkers(n)` starts n spawned
processes (no fork: the parent runs JAX threads) that open the stores read-only, by path, and
write each batch into a shared-memory slot; the parent copies the slot out, so the slot is
free at once and nothing handed to JAX aliases memory a worker will overwrite. Only the slot
number and the batch's rows of examples (a few kB) cross a pipe. One pool serves every loader
of a run (training and validation, all epochs), so processes start once.

    with BatchWorkers(4, slot_bytes=layout_nbytes(assembler.layout(rows, num_tasks))) as workers:
        for batch in BatchLoader(..., workers=workers): ...   # or workers.map(...)
"""
import contextlib
import math
import multiprocessing
from collections import deque
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from multiprocessing import shared_memory

import numpy as np

from factornet_jax.errors import FactorNetError

_ALIGN = 64
_WORKER = None      # in a worker process: its _WorkerState


def _aligned(nbytes):
    return -(-nbytes // _ALIGN) * _ALIGN


def layout_nbytes(layout):
    """Bytes of one slot holding a batch of `layout` (batches.BatchAssembler.layout)."""
    return sum(_aligned(math.prod(shape) * np.dtype(dtype).itemsize)
               for _key, shape, dtype, _pad in layout)


def slot_views(buffer, layout):
    """numpy views of a batch of `layout` laid out in `buffer`."""
    views, offset = {}, 0
    for key, shape, dtype, _pad in layout:
        views[key] = np.ndarray(shape, np.dtype(dtype), buffer=buffer, offset=offset)
        offset += _aligned(math.prod(shape) * np.dtype(dtype).itemsize)
    return views


class _WorkerState:
    def __init__(self, slot_names):
        self.memories = [shared_memory.SharedMemory(name=name) for name in slot_names]
        self.assemblers = {}

    def assembler(self, store_paths, spec):
        key = (tuple(store_paths), spec)
        found = self.assemblers.get(key)
        if found is None:
            from factornet_jax.batches import BatchAssembler
            from factornet_jax.reader import open_cell_store
            found = BatchAssembler([open_cell_store(path) for path in store_paths], spec)
            self.assemblers[key] = found
        return found


def _start_worker(slot_names):
    global _WORKER
    _WORKER = _WorkerState(slot_names)


def _fill_slot(slot, store_paths, signal_maps, spec, layout, rows_ex):
    state = _WORKER
    batch = slot_views(state.memories[slot].buf, layout)
    assembler = state.assembler(store_paths, spec)
    for store, signal_map in zip(assembler.stores, signal_maps):   # the run's read-time maps
        store.signal_map = signal_map
    assembler.fill(batch, layout, rows_ex)
    return slot


class BatchWorkers:
    """`processes` worker processes and `slots` shared-memory slots of `slot_bytes` each."""

    def __init__(self, processes, slot_bytes, slots=None):
        if processes < 1:
            raise ValueError("BatchWorkers needs at least one process")
        self.processes = processes
        self.slot_bytes = max(int(slot_bytes), 1)
        n_slots = slots or 2 * processes
        self._memories = []
        self._pool = None
        try:
            for _ in range(n_slots):
                self._memories.append(shared_memory.SharedMemory(create=True, size=self.slot_bytes))
            self._pool = ProcessPoolExecutor(
                processes, mp_context=multiprocessing.get_context("spawn"),
                initializer=_start_worker, initargs=([m.name for m in self._memories],))
        except BaseException:
            self.close()
            raise

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def close(self):
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None
        while self._memories:
            memory = self._memories.pop()
            try:
                memory.close()
            except BufferError:     # a view of the slot is still alive: unlinking frees the name
                pass
            memory.unlink()

    def map(self, stores, spec, layout, row_batches):
        """Yield the batch (a dict of arrays shaped as `layout`, see
        batches.BatchAssembler) of each Examples in the iterable `row_batches`, in order,
        several ahead; a None item gives None (no worker involved). `stores`: the open cell
        stores of the run; workers reopen them by path and read them with the same
        `signal_map` (drift.SignalMap or None)."""
        if self._pool is None:
            raise ValueError("BatchWorkers is closed")
        if layout_nbytes(layout) > self.slot_bytes:
            raise ValueError(f"a batch needs {layout_nbytes(layout)} bytes; slots hold {self.slot_bytes}")
        store_paths = [str(store.path) for store in stores]
        signal_maps = [store.signal_map for store in stores]
        views = [slot_views(m.buf, layout) for m in self._memories]
        free = deque(range(len(self._memories)))
        pending = deque()            # (future or None, slot or None), in order
        items = iter(row_batches)

        def submit():                # at most one item per slot ahead, markers included
            while free and len(pending) < len(views):
                rows_ex = next(items, _END)
                if rows_ex is _END:
                    return
                if rows_ex is None:
                    pending.append((None, None))
                    continue
                slot = free.popleft()
                pending.append((self._pool.submit(_fill_slot, slot, store_paths, signal_maps, spec, layout,
                                                  rows_ex), slot))

        try:
            submit()
            while pending:
                future, slot = pending.popleft()
                if future is None:
                    yield None
                    continue
                try:
                    future.result()
                except BrokenProcessPool:
                    raise FactorNetError("a batch worker process died (out of memory or killed?); "
                                         "rerun, or with fewer --loader-processes") from None
                batch = {key: view.copy() for key, view in views[slot].items()}
                free.append(slot)
                submit()
                yield batch
        finally:
            # a consumer that stops early: let the workers finish the slots they are writing,
            # so a later map never hands out a slot still being written
            for future, _slot in pending:
                try:
                    if future is not None:
                        future.result()
                except Exception:
                    pass


_END = object()


def batch_workers(processes, layout, prefetch=4):
    """BatchWorkers for batches of `layout` when `processes` > 0, else a context giving None."""
    if not processes:
        return contextlib.nullcontext()
    return BatchWorkers(processes, layout_nbytes(layout), slots=max(prefetch, 2 * processes))

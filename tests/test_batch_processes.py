"""Batches assembled in worker processes (--loader-processes) equal those of the thread loader.

One pool of spawned workers serves the whole module, as one serves a whole training run.
"""
import shutil

import numpy as np
import pytest

from conftest import flip_byte
from test_batches import SEQ_LEN, toy, toy_stores  # noqa: F401  (module-scoped fixtures)


@pytest.fixture(scope="module")
def examples(toy_stores):
    from factornet_jax.batches import TrainingData
    data = TrainingData(toy_stores, ["chr1", "chr2"], SEQ_LEN, seed=5)
    return data.epoch_examples(0).take(np.arange(45))   # 45 rows: the last batch of 8 is padded


@pytest.fixture(scope="module")
def workers(toy_stores, examples):
    from factornet_jax.batch_processes import BatchWorkers, layout_nbytes
    from factornet_jax.batches import BatchAssembler, BatchSpec
    layout = BatchAssembler(toy_stores, BatchSpec(SEQ_LEN, True, True)).layout(8, examples.labels.shape[1])
    with BatchWorkers(2, layout_nbytes(layout), slots=3) as pool:
        yield pool


def loader(stores, examples, spec=None, **kwargs):
    from factornet_jax.batches import BatchLoader, BatchSpec
    return BatchLoader(stores, examples, 8, spec or BatchSpec(SEQ_LEN, True, True), **kwargs)


def assert_same_batches(expected, got):
    assert len(expected) == len(got)
    for a, b in zip(expected, got):
        assert set(a) == set(b)
        for key in a:
            assert a[key].dtype == b[key].dtype and a[key].shape == b[key].shape, key
            np.testing.assert_array_equal(a[key], b[key], err_msg=key)


def test_worker_batches_equal_thread_batches(toy_stores, examples, workers):
    expected = list(loader(toy_stores, examples, threads=0))
    assert len(expected) == 6 and not expected[-1]["weights"][5:].any()
    got = list(loader(toy_stores, examples, workers=workers))
    assert_same_batches(expected, got)
    # the batches handed out are copies: the slots are reused without touching them
    assert not any(np.shares_memory(got[0]["signal"], b["signal"]) for b in got[1:])
    # a second epoch through the same pool, fewer keys (no meta/gencode) and a row slice
    from factornet_jax.batches import BatchSpec
    plain = BatchSpec(SEQ_LEN, False, False)
    for rows in (None, slice(4, 8)):
        expected = list(loader(toy_stores, examples, plain, threads=0, rows=rows))
        got = list(loader(toy_stores, examples, plain, workers=workers, rows=rows))
        assert_same_batches(expected, got)


def test_consumer_stopping_early_leaves_the_pool_usable(toy_stores, examples, workers):
    expected = list(loader(toy_stores, examples, threads=0))
    batches = iter(loader(toy_stores, examples, workers=workers))
    first = next(batches)
    batches.close()            # slots still being written are waited for, not reused early
    assert_same_batches(expected[:1], [first])
    assert_same_batches(expected, list(loader(toy_stores, examples, workers=workers)))


def test_worker_errors_reach_the_caller(toy, examples, workers, tmp_path):
    from factornet_jax.errors import StoreError
    from factornet_jax.reader import open_cell_store
    copy = tmp_path / "stores"
    shutil.copytree(toy["stores_dir"], copy)
    for chunk in (copy / "ToyA.zarr" / "signal").glob("chr*/c/*/0"):
        flip_byte(chunk, chunk.stat().st_size // 2)
    stores = [open_cell_store(copy / p.name) for p in toy["stores"]]
    with pytest.raises(StoreError, match="of signal/chr[12] is corrupted"):
        list(loader(stores, examples, workers=workers))
    # the pool still serves good stores afterwards
    good = [open_cell_store(p) for p in toy["stores"]]
    assert len(list(loader(good, examples, workers=workers))) == 6


def test_closed_pool_and_small_slots_are_refused(toy_stores, examples):
    from factornet_jax.batch_processes import BatchWorkers
    pool = BatchWorkers(1, slot_bytes=64)
    with pytest.raises(ValueError, match="slots hold 64"):
        next(iter(loader(toy_stores, examples, workers=pool)))
    pool.close()
    with pytest.raises(ValueError, match="closed"):
        next(iter(loader(toy_stores, examples, workers=pool)))

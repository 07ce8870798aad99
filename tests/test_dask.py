"""mmap_ninja.dask: bags and arrays written as sharded stores by Dask's workers (threads, processes and a
distributed LocalCluster) and read back; failures leave nothing visible; rewrites replace the store whole."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from support import assert_item_equal

pytest.importorskip("dask.bag")
pytest.importorskip("dask.array")
import dask.array as da  # noqa: E402
import dask.bag as db  # noqa: E402

import mmap_ninja  # noqa: E402
from mmap_ninja import ShardedMmap  # noqa: E402
from mmap_ninja import dask as ninja_dask  # noqa: E402


def images(n: int, seed: int = 0) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [
        rng.integers(0, 255, size=(int(rng.integers(1, 9)), int(rng.integers(1, 9)), 3), dtype=np.uint8)
        for _ in range(n)
    ]


def fail_on(x: np.ndarray) -> np.ndarray:
    """A task function that fails on one particular item (importable by spawned workers)."""
    if x.shape == (7, 7, 3):
        raise ValueError("cannot decode this one")
    return x


class Unpicklable(np.ndarray):
    """An item that cannot travel between processes."""

    def __reduce__(self) -> Any:
        raise TypeError("this item was sent to another process")


def decode_here(i: int) -> np.ndarray:
    return np.arange(i % 5 + 1).view(Unpicklable)


def test_partitions_are_written_where_they_are_computed(tmp_path: Path) -> None:
    bag = db.from_sequence(range(40), npartitions=4).map(decode_here)
    with pytest.raises(TypeError, match="another process"):
        bag.compute(scheduler="processes")  # shipping the items back fails...
    store = ninja_dask.to_ragged(bag, tmp_path / "s", scheduler="processes", num_workers=2)
    assert [x.tolist() for x in store] == [list(range(i % 5 + 1)) for i in range(40)]  # ...writing them does not


def shard_dirs(path: Path) -> list[str]:
    return sorted(p.name for p in path.iterdir() if p.name.startswith("shard-"))


@pytest.mark.parametrize("scheduler", ["sync", "threads", "processes"])
def test_bag_round_trip(tmp_path: Path, scheduler: str) -> None:
    items = images(150)
    store = ninja_dask.to_ragged(db.from_sequence(items, npartitions=5), tmp_path / "s", scheduler=scheduler)
    assert len(store) == 150 and len(store.shards) == 5
    for got, want in zip(mmap_ninja.open_existing(tmp_path / "s"), items, strict=True):
        assert_item_equal(got, want)
    bag = ninja_dask.from_ragged(tmp_path / "s")
    assert bag.npartitions == 5
    assert bag.map(lambda x: int(x.sum())).sum().compute(scheduler=scheduler) == sum(int(x.sum()) for x in items)
    for got, want in zip(bag.compute(scheduler=scheduler), items, strict=True):
        assert_item_equal(got, want)


@pytest.mark.parametrize("scheduler", ["sync", "processes"])
def test_array_round_trip_with_chunks_along_every_axis(tmp_path: Path, scheduler: str) -> None:
    values = np.random.default_rng(1).random((1000, 6, 2)).astype(np.float32)
    array = da.from_array(values, chunks=(300, 4, 1))
    store = ninja_dask.to_dense(array, tmp_path / "d", scheduler=scheduler)
    assert [n for _, n in store.shards] == [300, 300, 300, 100]
    np.testing.assert_array_equal(store[np.arange(1000)], values)
    back = ninja_dask.from_dense(tmp_path / "d")
    assert back.chunks[0] == (300, 300, 300, 100) and back.dtype == np.float32
    np.testing.assert_array_equal(back.compute(scheduler=scheduler), values)
    assert float(back.sum().compute(scheduler=scheduler)) == pytest.approx(float(values.sum()), rel=1e-5)
    with pytest.raises(ValueError, match="dense shards"):
        ninja_dask.from_ragged(tmp_path / "d")


@pytest.mark.parametrize("scheduler", ["sync", "processes"])
def test_failed_task_leaves_the_previous_store_whole(tmp_path: Path, scheduler: str) -> None:
    items = images(60, seed=2)
    first = ninja_dask.to_ragged(db.from_sequence(items, npartitions=3), tmp_path / "s", scheduler=scheduler)
    poisoned = [*items, np.zeros((7, 7, 3), np.uint8), *items]
    with pytest.raises(ValueError, match="cannot decode"):
        bag = db.from_sequence(poisoned, npartitions=4).map(fail_on)
        ninja_dask.to_ragged(bag, tmp_path / "s", scheduler=scheduler)
    store = ShardedMmap(tmp_path / "s")
    assert store.generation == first.generation and len(store) == 60
    for got, want in zip(store, items, strict=True):
        assert_item_equal(got, want)
    if scheduler == "sync":  # every task had ended when the write gave up: nothing is left behind
        assert shard_dirs(tmp_path / "s") == sorted(name for name, _ in first.shards)
    # Whatever other workers were still writing is removed by the next write.
    ninja_dask.to_ragged(db.from_sequence(items[:10], npartitions=2), tmp_path / "s", scheduler="sync")
    assert shard_dirs(tmp_path / "s") == sorted(name for name, _ in ShardedMmap(tmp_path / "s").shards)


def test_rewrite_replaces_the_store_atomically(tmp_path: Path) -> None:
    old_items, new_items = images(40, seed=3), images(25, seed=4)
    ninja_dask.to_ragged(db.from_sequence(old_items, npartitions=2), tmp_path / "s", scheduler="sync")
    reader = ShardedMmap(tmp_path / "s")
    first = reader[0]
    ninja_dask.to_ragged(db.from_sequence(new_items, npartitions=3), tmp_path / "s", scheduler="sync")
    assert_item_equal(first, old_items[0])
    assert len(ShardedMmap(tmp_path / "s")) == 25 and len(shard_dirs(tmp_path / "s")) == 3
    assert_item_equal(ShardedMmap(tmp_path / "s")[24], new_items[24])


@pytest.fixture(scope="module")
def client() -> Iterator[object]:
    distributed = pytest.importorskip("distributed")
    cluster = distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None)
    with cluster, distributed.Client(cluster) as c:
        yield c


def test_distributed_local_cluster(tmp_path: Path, client: object) -> None:
    items = images(120, seed=5)
    store = ninja_dask.to_ragged(db.from_sequence(items, npartitions=4), tmp_path / "s")
    for got, want in zip(store, items, strict=True):
        assert_item_equal(got, want)
    assert ninja_dask.from_ragged(tmp_path / "s").count().compute() == 120
    values = np.arange(500 * 3, dtype=np.int64).reshape(500, 3)
    ninja_dask.to_dense(da.from_array(values, chunks=(128, 3)), tmp_path / "d")
    assert int(ninja_dask.from_dense(tmp_path / "d").sum().compute()) == int(values.sum())
    with pytest.raises(ValueError, match="cannot decode"):
        ninja_dask.to_ragged(db.from_sequence([np.zeros((7, 7, 3), np.uint8)]).map(fail_on), tmp_path / "s")
    assert ShardedMmap(tmp_path / "s").generation == store.generation

"""mmap_ninja.ray under a local two-CPU Ray: ``ShardedDatasink`` writes one shard per block and commits them in
block order, ``ShardedDatasource`` reads one task per shard, and a failed write leaves the previous store as it
was. Skipped when ray (with its data extra) is not installed (CI does not download it)."""

from __future__ import annotations

import pickle
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import mmap_ninja
from mmap_ninja.sharded import ShardedMmap, ShardedWriter, from_partitions

ray = pytest.importorskip("ray")
pytest.importorskip("ray.data")  # ray installed without its `data` extra lacks pyarrow

from mmap_ninja.ray import ShardedDatasink, ShardedDatasource  # noqa: E402


@pytest.fixture(scope="module", autouse=True)
def local_ray() -> Iterator[None]:
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        yield
    finally:
        ray.shutdown()


@contextmanager
def ordered() -> Iterator[None]:
    """Datasets created meanwhile keep their order on output (to compare what a read returns)."""
    options = ray.data.DataContext.get_current().execution_options
    before, options.preserve_order = options.preserve_order, True
    try:
        yield
    finally:
        options.preserve_order = before


def _ragged_items(n: int) -> list[np.ndarray]:
    rng = np.random.default_rng(7)
    items = [
        rng.standard_normal((int(rng.integers(0, 5)), int(rng.integers(1, 4)))).astype(np.float32) for _ in range(n)
    ]
    items[3] = np.zeros((0, 3), dtype=np.float32)
    return items


def _stray_shards(path: Path) -> list[str]:
    listed = {name for name, _ in ShardedMmap(path).shards} if (path / "shards.ninja").exists() else set()
    return sorted(p.name for p in path.iterdir() if p.name.startswith("shard-") and p.name not in listed)


def _assert_items_equal(got: list[Any], want: list[np.ndarray]) -> None:
    assert len(got) == len(want)
    for g, w in zip(got, want, strict=True):
        assert isinstance(g, np.ndarray)
        assert (g.dtype, g.shape) == (w.dtype, w.shape)
        np.testing.assert_array_equal(g, w)


def test_ragged_round_trip_keeps_block_order_even_when_blocks_finish_out_of_order(tmp_path: Path) -> None:
    items = _ragged_items(40)

    def first_block_last(batch: dict[str, Any]) -> dict[str, Any]:
        if 0 in batch["id"]:
            time.sleep(1.5)  # the first block's write task finishes after the others
        return batch

    ds = ray.data.from_items([{"id": i, "item": x} for i, x in enumerate(items)], override_num_blocks=5)
    ds.map_batches(first_block_last, batch_format="numpy").write_datasink(ShardedDatasink(tmp_path / "s"))

    store = mmap_ninja.open_existing(tmp_path / "s")
    assert isinstance(store, ShardedMmap)
    assert store.kind == "ragged"
    assert len(store.shards) == 5
    assert sum(n for _, n in store.shards) == len(store) == len(items)
    _assert_items_equal(list(store), items)
    assert _stray_shards(tmp_path / "s") == []

    source = ShardedDatasource(tmp_path / "s")
    tasks = source.get_read_tasks(1)
    assert [task.metadata.num_rows for task in tasks] == [n for _, n in store.shards]
    assert source.estimate_inmemory_data_size() == sum(task.metadata.size_bytes for task in tasks) > 0
    with ordered():
        read = ray.data.read_datasource(source)
    assert read.count() == len(items)
    _assert_items_equal([row["item"] for row in read.take_all()], items)


def test_dense_round_trip(tmp_path: Path) -> None:
    rows = np.arange(60 * 6, dtype=np.int16).reshape(60, 3, 2)
    ds = ray.data.from_items([{"data": row} for row in rows], override_num_blocks=4)
    ds.write_datasink(ShardedDatasink(tmp_path / "d", kind="numpy", column="data"))

    store = mmap_ninja.open_existing(tmp_path / "d")
    assert (store.kind, len(store.shards), len(store)) == ("numpy", 4, 60)
    got = store[:]
    assert (got.dtype, got.shape) == (rows.dtype, rows.shape)
    np.testing.assert_array_equal(got, rows)

    with ordered():
        read = ray.data.read_datasource(ShardedDatasource(tmp_path / "d", column="data"))
    batch = read.take_batch(60, batch_format="numpy")["data"]
    assert (batch.dtype, batch.shape) == (rows.dtype, rows.shape)
    np.testing.assert_array_equal(batch, rows)


def test_string_round_trip(tmp_path: Path) -> None:
    strings = [f"line {i} é" * (i % 3) for i in range(25)]
    ray.data.from_items([{"item": s} for s in strings], override_num_blocks=3).write_datasink(
        ShardedDatasink(tmp_path / "t", kind="string")
    )
    store = mmap_ninja.open_existing(tmp_path / "t")
    assert (store.kind, len(store.shards), list(store)) == ("string", 3, strings)
    with ordered():
        read = ray.data.read_datasource(ShardedDatasource(tmp_path / "t"))
    assert [row["item"] for row in read.take_all()] == strings


def test_failed_write_leaves_the_previous_store_and_no_stray_shards(tmp_path: Path) -> None:
    path = tmp_path / "s"
    before = from_partitions(path, [[np.arange(3)], [np.arange(4), np.ones((2, 2), dtype=np.int64)]])
    listing = sorted(p.name for p in path.iterdir())

    def fail_in_last_block(batch: dict[str, Any]) -> dict[str, Any]:
        if 99 in batch["id"]:
            time.sleep(1.0)  # the other blocks' shards are written by then
            raise ValueError("boom in the last block")
        return batch

    items = [{"id": i, "item": np.full((i % 4 + 1, 2), i)} for i in range(100)]
    ds = ray.data.from_items(items, override_num_blocks=5).map_batches(fail_in_last_block, batch_format="numpy")
    with pytest.raises(Exception, match="boom in the last block"):
        ds.write_datasink(ShardedDatasink(path))

    assert sorted(p.name for p in path.iterdir()) == listing
    assert _stray_shards(path) == []
    after = mmap_ninja.open_existing(path)
    assert after.generation == before.generation
    _assert_items_equal(list(after), [np.arange(3), np.arange(4), np.ones((2, 2), dtype=np.int64)])
    with ShardedWriter(path):  # the failed write released the lock
        pass


def test_a_missing_column_fails_before_writing_anything(tmp_path: Path) -> None:
    with pytest.raises(Exception, match="no column 'item'"):
        ray.data.from_items([{"x": 1}, {"x": 2}]).write_datasink(ShardedDatasink(tmp_path / "s"))
    assert not (tmp_path / "s").exists() or list((tmp_path / "s").iterdir()) == []


def test_the_writer_stays_on_the_driver(tmp_path: Path) -> None:
    sink = ShardedDatasink(tmp_path / "s")
    sink.on_write_start(None)
    try:
        copy = pickle.loads(pickle.dumps(sink))  # the native writer cannot be pickled, so it must be left out
        assert copy._writer is None and copy.path == sink.path
        assert sink._writer is not None
    finally:
        sink.on_write_failed(RuntimeError("test"))
    assert sink._writer is None


def test_read_tasks_split_large_shards_into_blocks(tmp_path: Path) -> None:
    items = _ragged_items(30)
    from_partitions(tmp_path / "s", [items[:20], items[20:]])
    source = ShardedDatasource(tmp_path / "s")
    context = ray.data.DataContext.get_current().copy()
    context.target_max_block_size = 1  # one row per block
    tasks = source.get_read_tasks(8, data_context=context)
    assert len(tasks) == 2
    blocks = [block for task in tasks for block in task()]
    assert len(blocks) == 30
    got = [x for block in blocks for x in ray.data.block.BlockAccessor.for_block(block).to_numpy("item")]
    _assert_items_equal(got, items)


def test_reading_a_rewritten_store_raises(tmp_path: Path) -> None:
    from_partitions(tmp_path / "s", [[np.arange(3)]])
    source = ShardedDatasource(tmp_path / "s")
    from_partitions(tmp_path / "s", [[np.arange(5)]])
    with pytest.raises(mmap_ninja.StoreReplacedError):
        list(source.get_read_tasks(1)[0]())


def test_ragged_items_of_different_ndim_round_trip(tmp_path: Path) -> None:
    items = [np.arange(3, dtype=np.int32), np.ones((2, 2), dtype=np.int32), np.zeros((1, 2, 3), dtype=np.int32)]
    ray.data.from_items([{"item": x} for x in items], override_num_blocks=1).write_datasink(
        ShardedDatasink(tmp_path / "s")
    )
    _assert_items_equal(list(mmap_ninja.open_existing(tmp_path / "s")), items)
    with ordered():
        read = ray.data.read_datasource(ShardedDatasource(tmp_path / "s"))
    _assert_items_equal([row["item"] for row in read.take_all()], items)


def test_writing_an_empty_dataset_replaces_the_store_with_an_empty_one(tmp_path: Path) -> None:
    from_partitions(tmp_path / "s", [[np.arange(3)], [np.arange(2)]])
    ds = ray.data.from_items([{"item": np.arange(3)}] * 4).filter(lambda row: False)
    ds.write_datasink(ShardedDatasink(tmp_path / "s"))
    store = mmap_ninja.open_existing(tmp_path / "s")
    assert (len(store), store.shards) == (0, [])
    assert sorted(p.name for p in (tmp_path / "s").iterdir()) == ["shards.ninja"]
    assert ray.data.read_datasource(ShardedDatasource(tmp_path / "s")).count() == 0

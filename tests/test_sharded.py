"""Sharded stores: global indexing across shards, the manifest as the one commit point, the writer's lock and
clean-up, rewrites seen by old readers, pickling, hostile manifests, and shards the reference opens alone."""

from __future__ import annotations

import json
import os
import pickle
import shutil
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import mmap_ninja
from mmap_ninja import CorruptStoreError, ShardedMmap, StoreLockedError, StoreReplacedError
from mmap_ninja.info import check
from mmap_ninja.sharded import ShardedWriter, from_partitions, write_shard

from support import assert_item_equal, run_reference


def ragged_items(n: int, seed: int = 0) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [rng.integers(0, 255, size=(int(rng.integers(1, 6)), 3), dtype=np.uint8) for _ in range(n)]


def split(items: list, *sizes: int) -> list[list]:
    parts, at = [], 0
    for size in sizes:
        parts.append(items[at : at + size])
        at += size
    return parts


def shard_dirs(path: Path) -> list[str]:
    return sorted(p.name for p in path.iterdir() if p.name.startswith("shard-"))


def test_ragged_shards_read_as_one_dataset_with_global_indices(tmp_path: Path) -> None:
    items = ragged_items(60)
    store = from_partitions(tmp_path / "s", split(items, 25, 0, 1, 34))
    assert isinstance(mmap_ninja.open_existing(tmp_path / "s"), ShardedMmap)
    assert len(store) == 60 and [n for _, n in store.shards] == [25, 1, 34]  # the empty part has no shard
    assert len(shard_dirs(tmp_path / "s")) == 3
    for i in [0, 24, 25, 26, 59, -1, -60]:
        assert_item_equal(store[i], items[i])
    picks = [59, 0, 25, 24, 26, 0]
    for got, want in zip(store[picks], [items[i] for i in picks], strict=True):
        assert_item_equal(got, want)
    for got, want in zip(store[20:40:3], items[20:40:3], strict=True):
        assert_item_equal(got, want)
    mask = np.arange(60) % 7 == 0
    assert len(store[mask]) == mask.sum()
    assert [x.shape for x in store] == [x.shape for x in items]
    batch = store.__getitems__(picks)
    assert all(x.flags.writeable for x in batch)
    for got, want in zip(batch, [items[i] for i in picks], strict=True):
        assert_item_equal(got, want)
    for bad in (60, -61, 2**63, -(2**63) - 1, np.uint64(2**64 - 1)):
        with pytest.raises(IndexError):
            store[bad]
    for bad_type in (1.0, "a"):
        with pytest.raises(TypeError):
            store[bad_type]
    with pytest.raises(IndexError):
        store[[0, 60]]
    # torch's batches are checked like any other: never wrapped round or truncated into other items.
    for bad_batch in (np.array([2**64 - 1], np.uint64), [1.7], [True, False], [[1, 2]], [60]):
        with pytest.raises(IndexError):
            store.__getitems__(bad_batch)
    store.close()
    with pytest.raises(ValueError, match="closed"):
        store[0]


def test_dense_and_string_shards(tmp_path: Path) -> None:
    rows = np.arange(70 * 4, dtype=np.float32).reshape(70, 4)
    dense = from_partitions(tmp_path / "d", [rows[:30], rows[30:]], kind="numpy")
    assert dense.kind == "numpy" and len(dense) == 70
    np.testing.assert_array_equal(dense[[69, 0, 30, 29]], rows[[69, 0, 30, 29]])
    np.testing.assert_array_equal(dense[-1], rows[-1])
    assert all(r.flags.writeable for r in dense.__getitems__([1, 40]))
    with pytest.raises(ValueError, match="rows of shape"):
        from_partitions(tmp_path / "d2", [rows[:3], np.zeros((2, 5), np.float32)], kind="numpy")

    strings = [f"item {i} ü" * (i % 4) for i in range(50)]
    text = from_partitions(tmp_path / "t", split(strings, 10, 40), kind="string")
    assert list(text) == strings and text[[49, 0, 10]] == [strings[49], strings[0], strings[10]]


def test_shards_are_ordinary_stores_the_reference_opens(tmp_path: Path, reference_python: Path) -> None:
    items = ragged_items(20)
    store = from_partitions(tmp_path / "s", split(items, 12, 8))
    script = (
        "import sys, json\n"
        "from mmap_ninja.ragged import RaggedMmap\n"
        "print(json.dumps([[RaggedMmap(p)[i].tolist() for i in range(len(RaggedMmap(p)))] for p in sys.argv[1:]]))\n"
    )
    paths = [str(tmp_path / "s" / name) for name, _ in store.shards]
    result = run_reference(reference_python, "-c", script, *paths)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == [[x.tolist() for x in part] for part in split(items, 12, 8)]


def test_failed_write_leaves_the_store_and_no_shard_behind(tmp_path: Path) -> None:
    items = ragged_items(10)
    old = from_partitions(tmp_path / "s", [items])

    def broken():
        yield items[0]
        raise RuntimeError("decoder failed")

    with pytest.raises(RuntimeError, match="decoder failed"):
        from_partitions(tmp_path / "s", [items[:3], broken()])
    assert shard_dirs(tmp_path / "s") == [old.shards[0][0]]
    assert ShardedMmap(tmp_path / "s").generation == old.generation
    # A first write that fails leaves no directory at all.
    with pytest.raises(RuntimeError):
        from_partitions(tmp_path / "new", [broken()])
    assert not (tmp_path / "new").exists()


def test_writer_is_exclusive_and_refuses_directories_holding_other_things(tmp_path: Path) -> None:
    with ShardedWriter(tmp_path / "s") as writer:
        with pytest.raises(StoreLockedError):
            ShardedWriter(tmp_path / "s")
        shard = writer.write_shard(0, ragged_items(3))
        with pytest.raises(ValueError, match="kind"):
            writer.commit("sharded", [shard])
        with pytest.raises(ValueError, match="not a string"):
            writer.commit("string", [shard])
        with pytest.raises(ValueError, match="fewer"):
            writer.commit("ragged", [(shard[0], 4)])
        with pytest.raises(ValueError, match="invalid shard name"):
            writer.commit("ragged", [("../s", 1)])
        # Only shards write_shard named: a dropped one is then a leftover the next writer may remove, and none
        # can be taken for a temporary manifest (which closing removes).
        for name in ("mine", "shards.ninja.tmp-1"):
            mmap_ninja.RaggedMmap.from_lists(tmp_path / "s" / name, [[1]])
            with pytest.raises(ValueError, match="not named by shard_name"):
                writer.commit("ragged", [(name, 1)])
            shutil.rmtree(tmp_path / "s" / name)
        writer.commit("ragged", [shard])
    mmap_ninja.RaggedMmap.from_lists(tmp_path / "single", [[1, 2]])
    with pytest.raises(ValueError, match="not part of a sharded store"):
        ShardedWriter(tmp_path / "single")
    assert len(mmap_ninja.RaggedMmap(tmp_path / "single")) == 1


def test_single_store_readers_and_writers_refuse_a_sharded_store(tmp_path: Path) -> None:
    """A sharded store's directory has no type.ninja: single-store writers must not write into it (their
    files would be hidden by the manifest and block the next sharded writer), nor readers read it as empty."""
    items = ragged_items(4)
    from_partitions(tmp_path / "s", [items])
    before = sorted(p.name for p in (tmp_path / "s").iterdir())
    for refused in (
        lambda: mmap_ninja.RaggedMmap.from_lists(tmp_path / "s", [[1]]),
        lambda: mmap_ninja.RaggedMmap(tmp_path / "s"),
        lambda: mmap_ninja.np_from_ndarray(tmp_path / "s", np.zeros(3)),
        lambda: mmap_ninja.np_open_existing(tmp_path / "s"),
        lambda: mmap_ninja.np_extend_dir(tmp_path / "s", np.zeros(3)),
        lambda: mmap_ninja.StringsMmap.from_strings(tmp_path / "s", ["x"]),
        lambda: mmap_ninja.StringsMmap(tmp_path / "s"),
    ):
        with pytest.raises(ValueError, match="holds a sharded store"):
            refused()
    assert sorted(p.name for p in (tmp_path / "s").iterdir()) == before
    assert_item_equal(ShardedMmap(tmp_path / "s")[3], items[3])
    with ShardedWriter(tmp_path / "s") as writer:  # still the sharded writer's
        writer.commit("ragged", [writer.write_shard(0, items[:1])])


def test_a_shard_of_another_kind_than_the_manifest_says_is_corrupt(tmp_path: Path) -> None:
    from_partitions(tmp_path / "s", [ragged_items(3)])
    manifest = tmp_path / "s" / "shards.ninja"
    manifest.write_text(manifest.read_text().replace("kind ragged", "kind numpy"))
    with pytest.raises(CorruptStoreError, match="holds a ragged store; shards.ninja lists numpy"):
        ShardedMmap(tmp_path / "s")[0]
    assert any("holds a ragged store" in fault for fault in check(tmp_path / "s"))


def test_leftovers_of_a_killed_writer_are_invisible_and_removed_by_the_next_commit(tmp_path: Path) -> None:
    items = ragged_items(8)
    from_partitions(tmp_path / "s", [items])
    orphan = write_shard(tmp_path / "s", 7, items[:2])  # written, never committed: a killed run's shard
    assert orphan is not None and len(ShardedMmap(tmp_path / "s")) == 8
    from_partitions(tmp_path / "s", [items[:5]])
    assert orphan[0] not in shard_dirs(tmp_path / "s") and len(shard_dirs(tmp_path / "s")) == 1


def test_rewrite_is_seen_whole_and_old_readers_fail_loudly(tmp_path: Path) -> None:
    first, second = ragged_items(20, seed=1), ragged_items(30, seed=2)
    from_partitions(tmp_path / "s", split(first, 10, 10))
    old = ShardedMmap(tmp_path / "s")
    held = old[0]  # opens shard 0 only
    pickled = pickle.dumps(old)
    new = from_partitions(tmp_path / "s", split(second, 15, 15))
    assert new.generation != old.generation and len(shard_dirs(tmp_path / "s")) == 2
    assert_item_equal(held, first[0])  # a view of a removed shard stays valid (its mapping is kept)
    assert_item_equal(old[1], first[1])  # an opened shard keeps reading the old write
    with pytest.raises(StoreReplacedError):
        old[15]  # shard 1 of the old write is gone
    with pytest.raises(StoreReplacedError):
        pickle.loads(pickled)
    for i, want in enumerate(second):
        assert_item_equal(mmap_ninja.open_existing(tmp_path / "s")[i], want)


def test_pickles_small_and_reopens_in_a_forked_child(tmp_path: Path) -> None:
    items = ragged_items(40)
    store = ShardedMmap(from_partitions(tmp_path / "s", split(items, 20, 20)).out_dir, wrapper_fn=np.sum)
    data = pickle.dumps(store)
    assert len(data) < 1024
    again = pickle.loads(data)
    assert again[35] == items[35].sum() and len(again) == 40
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child reads every item through the pickled reader
        ok = all(pickle.loads(data)[i] == items[i].sum() for i in range(40))
        os.write(write, b"1" if ok else b"0")
        os._exit(0)
    os.waitpid(pid, 0)
    assert os.read(read, 1) == b"1"


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ("garbage", "not a sharded-store manifest"),
        ("mmap_ninja sharded 1\nkind ragged\ngeneration g\nshard ../../etc 1\n", "invalid shard name"),
        ("mmap_ninja sharded 1\nkind ragged\ngeneration g\nshard /tmp 1\n", "invalid shard name"),
        ("mmap_ninja sharded 1\nkind ragged\ngeneration g\nshard a 1\nshard a 1\n", "twice"),
        ("mmap_ninja sharded 1\nkind dense\ngeneration g\n", "unknown shard kind"),
        ("mmap_ninja sharded 1\nkind ragged\ngeneration g\nshard a 99999999999999999999\n", "shard NAME ITEMS"),
    ],
)
def test_hostile_manifests_raise_corrupt_store_error(tmp_path: Path, text: str, match: str) -> None:
    (tmp_path / "s").mkdir()
    (tmp_path / "s" / "shards.ninja").write_text(text)
    with pytest.raises(CorruptStoreError, match=match):
        mmap_ninja.open_existing(tmp_path / "s")


def test_missing_or_short_shards_raise_corrupt_store_error(tmp_path: Path) -> None:
    store = from_partitions(tmp_path / "s", split(ragged_items(10), 5, 5))
    manifest = tmp_path / "s" / "shards.ninja"
    manifest.write_text(manifest.read_text().replace(" 5\n", " 6\n", 1))
    with pytest.raises(CorruptStoreError, match="holds 5 items"):
        ShardedMmap(tmp_path / "s")[0]
    (tmp_path / "s" / store.shards[1][0]).rename(tmp_path / "elsewhere")
    with pytest.raises(CorruptStoreError, match="missing"):
        ShardedMmap(tmp_path / "s")[7]


def test_dense_edge_cases(tmp_path: Path) -> None:
    empty = from_partitions(tmp_path / "e", [np.zeros((0, 3))], kind="numpy")
    assert len(empty) == 0 and empty[[]] == [] and empty[:] == [] and list(empty) == []
    rows = np.arange(12, dtype=np.int16).reshape(6, 2)
    store = ShardedMmap(from_partitions(tmp_path / "d", [rows[:2], rows[2:]], kind="numpy").out_dir, wrapper_fn=np.sum)
    assert store[[-1, 0]] == [rows[-1].sum(), rows[0].sum()]
    # A manifest listing dense shards of different dtypes (not what a writer commits) is refused on read.
    from_partitions(tmp_path / "f", [np.zeros((2, 2), np.float64)], kind="numpy")
    (other,) = ShardedMmap(tmp_path / "f").shards
    (tmp_path / "f" / other[0]).rename(tmp_path / "d" / other[0])
    manifest = tmp_path / "d" / "shards.ninja"
    manifest.write_text(manifest.read_text() + f"shard {other[0]} 2\n")
    with pytest.raises(CorruptStoreError, match="float64 rows"):
        ShardedMmap(tmp_path / "d")[[0, 7]]


def test_a_shard_replaced_under_an_old_reader_raises_store_replaced(tmp_path: Path) -> None:
    items = ragged_items(20)
    from_partitions(tmp_path / "s", split(items, 10, 10))
    old = ShardedMmap(tmp_path / "s")
    second = old.shards[1][0]
    from_partitions(tmp_path / "s", [items[:5]])
    (tmp_path / "s" / second).mkdir()  # an empty directory where the old reader's shard was
    with pytest.raises(StoreReplacedError):
        old[15]


def test_ragged_batches_with_negative_indices(tmp_path: Path) -> None:
    items = ragged_items(30)
    store = from_partitions(tmp_path / "s", split(items, 7, 23))
    for got, want in zip(store[[-1, -30, -23, -24]], [items[-1], items[0], items[7], items[6]], strict=True):
        assert_item_equal(got, want)


def test_kill_during_writes_leaves_one_whole_generation(tmp_path: Path) -> None:
    """A writer rewriting the store in a loop, killed at random moments: the store always opens as one whole
    write (every item carries its write's number and its shape), or, when the writer was killed before its first
    commit, as the store the previous trial left; and the next writer commits and cleans up."""
    import random
    import signal
    import time

    root = tmp_path / "s"
    rng = random.Random(5)
    for trial in range(12):
        pid = os.fork()
        if pid == 0:
            try:
                for write in range(10**6):
                    parts = [[np.full((k % 4 + 1, 2), write, np.int32) for k in range(30)] for _ in range(3)]
                    from_partitions(root, parts)
            finally:
                os._exit(0)
        time.sleep(rng.uniform(0.02, 0.3))
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
        if (root / "shards.ninja").exists():
            items = [x.tolist() for x in ShardedMmap(root)]
            # Killed before its first commit, the writer left the previous trial's store (below) whole.
            previous = [[1 - trial, 1 - trial]]
            write = items[0][0][0] if items and isinstance(items[0][0], list) else None
            whole_write = [[[write, write]] * (k % 4 + 1) for k in range(30)] * 3
            assert items in (previous, whole_write), (trial, items)
        again = from_partitions(root, [[np.full(2, -trial, np.int32)]])
        assert shard_dirs(root) == [again.shards[0][0]] and again[0].tolist() == [-trial, -trial]


def test_a_fifo_planted_as_the_manifest_or_a_store_file_raises_instead_of_blocking(tmp_path: Path) -> None:
    (tmp_path / "s").mkdir()
    os.mkfifo(tmp_path / "s" / "shards.ninja")
    with pytest.raises(CorruptStoreError, match="not a regular file"):
        mmap_ninja.open_existing(tmp_path / "s")
    mmap_ninja.RaggedMmap.from_lists(tmp_path / "r", [[1, 2]])
    os.remove(tmp_path / "r" / "dtype.ninja")
    os.mkfifo(tmp_path / "r" / "dtype.ninja")
    with pytest.raises(CorruptStoreError, match="not a regular file"):
        mmap_ninja.RaggedMmap(tmp_path / "r")


@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    sizes=st.lists(st.integers(0, 6), min_size=1, max_size=6),
    picks=st.lists(st.integers(-40, 40), max_size=20),
    kind=st.sampled_from(["ragged", "numpy", "string"]),
)
def test_any_partitioning_reads_like_the_concatenated_list(
    tmp_path: Path, sizes: list[int], picks: list[int], kind: str
) -> None:
    """Model: a ShardedMmap of partitions reads exactly like the plain list of all their items."""
    total = sum(sizes)
    if kind == "numpy":
        items: list = list(np.arange(total * 2, dtype=np.int32).reshape(total, 2))
    elif kind == "string":
        items = [f"s{i}" * (i % 3) for i in range(total)]
    else:
        items = [np.full(i % 4, i, np.int16) for i in range(total)]
    parts = [items[sum(sizes[:k]) : sum(sizes[: k + 1])] for k in range(len(sizes))]
    if kind == "numpy":
        parts = [np.array(p, dtype=np.int32).reshape(len(p), 2) for p in parts]
    root = tmp_path / f"s{len(list(tmp_path.iterdir()))}"
    store = from_partitions(root, parts, kind=kind)
    assert len(store) == total
    valid = [i for i in picks if -total <= i < total]
    got = store[valid]
    for g, i in zip(got, valid, strict=True):
        if kind == "string":
            assert g == items[i]
        else:
            np.testing.assert_array_equal(g, items[i])
    if len(valid) < len(picks):
        with pytest.raises(IndexError):
            store[picks]

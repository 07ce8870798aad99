"""Worker results through shared memory (mmap_ninja._shipping): what arrives equals what was sent, writable and
in its memory order; small results, failures and abandoned results leave no file behind."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pytest

from mmap_ninja import _shipping
from mmap_ninja.parallel import _worker_range, collect_batches
from mmap_ninja.ragged import RaggedMmap

BIG = _shipping.MIN_SHIPPED_BYTES


def leftovers(shm_dir: Path = _shipping.SHM_DIR) -> list[str]:
    mine = _shipping._prefix(os.getpid())
    return [name for name in os.listdir(shm_dir) if name.startswith(mine)] if shm_dir.is_dir() else []


def test_large_results_travel_as_a_file_and_arrive_whole(tmp_path: Path) -> None:
    results = [
        np.arange(BIG // 8, dtype=np.int64),
        np.asfortranarray(np.arange(600 * 7, dtype=np.float32).reshape(600, 7)),
        "a string",
        np.arange(10, dtype=np.uint8)[::2],  # not contiguous: stays in the pickle
        {"nested": np.ones((3, 4), np.int16)},
    ]
    shipped = _shipping.ship(results, os.getpid(), tmp_path)
    assert isinstance(shipped, _shipping.Shipped)
    assert len(shipped.pickled) < 1000 and sum(n for _, n in shipped.spans) >= BIG
    assert os.listdir(tmp_path) == [Path(shipped.path).name]
    got = _shipping.receive(shipped)
    assert os.listdir(tmp_path) == []  # unlinked as soon as it is mapped
    assert np.array_equal(got[0], results[0]) and got[1].flags.f_contiguous
    assert np.array_equal(got[1], results[1]) and got[2] == "a string"
    assert got[3].tolist() == [0, 2, 4, 6, 8] and np.array_equal(got[4]["nested"], results[4]["nested"])
    got[0][0] = -1  # writable, privately: nothing else sees the change
    assert got[0][0] == -1 and results[0][0] == 0


def test_small_results_other_items_and_failures_take_the_pipe(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    small = [np.arange(10)]
    assert _shipping.ship(small, os.getpid(), tmp_path) is small
    not_arrays = [bytes(BIG), "x" * BIG]  # nothing to gain: not even pickled here
    assert _shipping.ship(not_arrays, os.getpid(), tmp_path) is not_arrays
    big = [np.zeros(BIG, np.uint8)]
    assert _shipping.ship(big, os.getpid(), tmp_path / "missing") is big
    assert _shipping.receive(small) is small
    with monkeypatch.context() as m:  # /dev/shm is shared: a task takes at most a share of its free space
        m.setattr(_shipping, "MAX_SHARE_OF_FREE", 0.0)
        assert _shipping.ship(big, os.getpid(), tmp_path) is big
    with monkeypatch.context() as m:  # a short write, then a full tmpfs: the file goes, the pipe takes over
        calls, pwrite = [], os.pwrite

        def short_then_full(fd: int, data: memoryview, offset: int) -> int:
            calls.append(offset)
            if len(calls) > 1:
                raise OSError(28, "No space left on device")
            return pwrite(fd, data[:100], offset)

        m.setattr(_shipping.os, "pwrite", short_then_full)
        assert _shipping.ship(big, os.getpid(), tmp_path) is big
        assert calls == [0, 100]
    assert os.listdir(tmp_path) == []


def test_arrays_arrive_aligned_after_odd_sized_ones(tmp_path: Path) -> None:
    results = [np.arange(3, dtype=np.uint8), np.arange(BIG // 8, dtype=np.float64), np.arange(5, dtype=np.uint8)]
    got = _shipping.receive(_shipping.ship(results, os.getpid(), tmp_path))
    assert all(x.flags.aligned for x in got) and got[1].ctypes.data % _shipping.ALIGN == 0
    assert all(np.array_equal(a, b) for a, b in zip(got, results, strict=True))


def test_a_worker_task_ships_large_items() -> None:
    def item(i: int) -> np.ndarray:
        return np.full((512, 512), i, np.uint8)

    import cloudpickle

    result = _worker_range("test-key", cloudpickle.dumps(item), 0, 8, os.getpid())
    assert isinstance(result, _shipping.Shipped)
    assert [int(x[0, 0]) for x in _shipping.receive(result)] == list(range(8))


def test_items_of_a_local_class_and_unpicklable_items(tmp_path: Path) -> None:
    class Label:  # defined here: only cloudpickle can pickle it (by value), as loky does
        def __init__(self, i: int) -> None:
            self.i = i

    shipped = _shipping.ship([np.full(BIG, 3, np.uint8), Label(3)], os.getpid(), tmp_path)
    assert isinstance(shipped, _shipping.Shipped)
    pixels, label = _shipping.receive(shipped)
    assert pixels[-1] == 3 and label.i == 3
    with_lock = [np.zeros(BIG, np.uint8), threading.Lock()]
    assert _shipping.ship(with_lock, os.getpid(), tmp_path) is with_lock  # left to loky, which reports it
    assert os.listdir(tmp_path) == []


def test_sweep_removes_only_the_files_of_dead_parents_of_this_namespace(tmp_path: Path) -> None:
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    dead_pid = int(dead.stdout)
    other_namespace = f"mmap_ninja_ship_1{_shipping._namespace()}_{dead_pid}_z"  # another container's
    kept = [_shipping._prefix(os.getpid()) + "y", other_namespace, "other_file"]
    for name in [_shipping._prefix(dead_pid) + "x", *kept]:
        (tmp_path / name).write_bytes(b"1")
    _shipping.sweep(tmp_path)
    assert sorted(os.listdir(tmp_path)) == sorted(kept)


@pytest.mark.skipif(not _shipping.SHM_DIR.is_dir(), reason="no /dev/shm")
def test_parallel_build_and_an_abandoned_collection_leave_no_file(tmp_path: Path) -> None:
    def item(i: int) -> np.ndarray:
        return np.full((1024 + i % 5, 1024), i % 251, np.uint8) if i < 90 else [][0]

    store = RaggedMmap.from_indexable(tmp_path / "r", item, 16, n_jobs=2)
    assert len(store) == 90 and all(store[i].shape[0] == 1024 + i % 5 and store[i][0, 0] == i % 251 for i in range(90))
    batches = collect_batches(item, 16, 2, False)
    first = next(batches)
    batches.close()  # the batch computing ahead was shipped and is never read
    assert len(first) == 16 and first[3][0, 0] == 3
    assert leftovers() == []

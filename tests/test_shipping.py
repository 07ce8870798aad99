"""Worker results through shared memory (mmap_ninja._shipping): what arrives equals what was sent, writable,
aligned and in its memory order; small arrays, other objects and failures take the pipe; failed, abandoned and
orphaned files do not stay behind."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from mmap_ninja import _shipping
from mmap_ninja.parallel import _worker_range, collect_batches, collect_chunks
from mmap_ninja.ragged import RaggedMmap

BIG = _shipping.MIN_SHIPPED_BYTES


def leftovers(shm_dir: Path = _shipping.SHM_DIR) -> list[str]:
    mine = _shipping._prefix(os.getpid())
    return [name for name in os.listdir(shm_dir) if name.startswith(mine)] if shm_dir.is_dir() else []


def packed(items: list[Any], shm_dir: Path) -> list[Any] | _shipping.Shipped:
    packer = _shipping.Packer(os.getpid(), "test-call", shm_dir)
    return packer.result([packer.pack(item) for item in items])


def test_large_arrays_travel_as_a_file_and_arrive_whole(tmp_path: Path) -> None:
    records = np.zeros(BIG // 12 + 1, dtype=[("id", "<i4"), ("score", "<f8")])
    records["id"] = np.arange(len(records))
    items = [
        np.arange(3, dtype=np.uint8),  # small: stays in the list
        np.arange(BIG // 8, dtype=np.int64),
        np.asfortranarray(np.arange(BIG, dtype=np.float32).reshape(-1, 8)),
        "a string",
        np.arange(BIG, dtype=np.uint8)[::2],  # not contiguous: stays
        np.array([None] * BIG, dtype=object),  # objects: stay
        (np.ones(BIG, np.int16), "label"),  # inside another object: stays whole
        records,  # 65,544 bytes: the next array starts at the next multiple of 64, not right after
        np.arange(BIG).astype("datetime64[s]"),
        np.memmap(tmp_path / "m.bin", np.uint8, "w+", shape=BIG),
    ]
    shipped = packed(items, tmp_path)
    assert isinstance(shipped, _shipping.Shipped)
    assert [type(x).__name__ for x in shipped.items].count("InFile") == 5
    assert sorted(os.listdir(tmp_path)) == sorted([Path(shipped.path).name, "m.bin"])
    got = _shipping.receive(shipped)
    assert os.listdir(tmp_path) == ["m.bin"]  # unlinked as soon as it is mapped
    for sent, arrived in zip(items, got, strict=True):
        if isinstance(sent, np.ndarray):
            assert arrived.dtype == sent.dtype and arrived.shape == sent.shape and arrived.flags.aligned
            assert np.array_equal(arrived, sent) if not sent.dtype.hasobject else arrived is sent
    assert got[2].flags.f_contiguous and got[3] == "a string" and got[6][1] == "label"
    assert got[7].dtype.names == ("id", "score") and got[7]["id"][-1] == len(records) - 1
    assert all(got[k].ctypes.data % _shipping.ALIGN == 0 for k in (1, 2, 7, 8))
    got[1][0] = -1  # writable, as an unpickled array is
    assert got[1][0] == -1


def test_small_arrays_and_failures_take_the_pipe(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    small = [np.arange(10), "x" * BIG, bytes(BIG)]
    assert packed(small, tmp_path) == small
    big = np.zeros(BIG, np.uint8)
    assert packed([big], tmp_path / "missing")[0] is big  # type: ignore[index]
    assert _shipping.receive(small) is small
    with monkeypatch.context() as m:  # /dev/shm is shared: a task takes at most a share of its free space
        m.setattr(_shipping, "MAX_SHARE_OF_FREE", 0.0)
        assert packed([big], tmp_path)[0] is big  # type: ignore[index]
    with monkeypatch.context() as m:  # a short write, then a full tmpfs: the next items take the pipe
        calls, pwrite = [], os.pwrite

        def third_write_fails(fd: int, data: Any, offset: int) -> int:
            calls.append(offset)
            if len(calls) == 3:
                raise OSError(28, "No space left on device")
            return pwrite(fd, data[:100] if len(calls) == 1 else data, offset)

        m.setattr(_shipping.os, "pwrite", third_write_fails)
        first, second = np.full(BIG, 1, np.uint8), np.full(BIG, 2, np.uint8)
        shipped = packed([first, second, big], tmp_path)
        assert calls == [0, 100, BIG]
    assert isinstance(shipped, _shipping.Shipped)
    got = _shipping.receive(shipped)
    assert got[0][-1] == 1 and got[1] is second and got[2] is big
    assert os.listdir(tmp_path) == []


@pytest.mark.skipif(not Path("/proc/self/ns/pid").exists(), reason="no PID namespaces")
def test_the_pid_namespace_is_looked_up_once_per_process(monkeypatch: pytest.MonkeyPatch) -> None:
    looked_up, stat = [], os.stat

    def counting_stat(path: Any, *args: Any, **kwargs: Any) -> Any:
        looked_up.append(path)
        return stat(path, *args, **kwargs)

    monkeypatch.setattr(_shipping, "_NAMESPACE", None)
    monkeypatch.setattr(_shipping.os, "stat", counting_stat)
    assert _shipping._prefix(1) == _shipping._prefix(1) == f"mmap_ninja_ship_{stat('/proc/self/ns/pid').st_ino}_1_"
    assert looked_up == ["/proc/self/ns/pid"]
    monkeypatch.setattr(_shipping, "_NAMESPACE", (-1, "another process's"))  # as inherited by a fork
    _shipping._namespace()
    assert len(looked_up) == 2


def item_or_fail(i: int) -> np.ndarray:
    if i == 3:
        raise RuntimeError("item 3 is broken")
    return np.full((512, 512), i, np.uint8)


def test_a_worker_task_ships_large_items_and_a_failed_one_leaves_no_file() -> None:
    import cloudpickle

    result = _worker_range("testkey", cloudpickle.dumps(item_or_fail), 0, 3, os.getpid())
    assert isinstance(result, _shipping.Shipped)
    assert [int(x[0, 0]) for x in _shipping.receive(result)] == [0, 1, 2]
    with pytest.raises(RuntimeError, match="broken"):
        _worker_range("testkey", cloudpickle.dumps(item_or_fail), 0, 8, os.getpid())
    assert leftovers() == []


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
    assert len(first) == 16 and first[3][0, 0] == 3 and first[3].flags.writeable
    assert leftovers() == []


class Interrupted(Exception):
    pass


def slow_big_item(i: int) -> np.ndarray:
    time.sleep(1.0 if i == 0 else 0.0)
    return np.full(BIG, i, np.uint8)


@pytest.mark.skipif(not _shipping.SHM_DIR.is_dir() or not hasattr(signal, "setitimer"), reason="no /dev/shm, timer")
def test_a_wait_interrupted_while_a_task_runs_waits_for_it_and_leaves_no_file() -> None:
    def interrupt(*_: Any) -> None:
        raise Interrupted

    list(collect_chunks(lambda i: np.zeros(1) if i < 4 else [][0], 2, 2, False))  # the pool is up
    chunks = collect_chunks(slow_big_item, 16, 2, False)
    previous = signal.signal(signal.SIGALRM, interrupt)
    try:
        signal.setitimer(signal.ITIMER_REAL, 0.3)  # (as Ctrl-C) while the first task still computes
        with pytest.raises(Interrupted):
            next(chunks)
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
    time.sleep(1.0)  # a task left running would ship its file by now
    assert leftovers() == []


@pytest.mark.skipif(not _shipping.SHM_DIR.is_dir(), reason="no /dev/shm")
def test_results_loky_cannot_send_and_dead_workers_leave_no_file_and_no_broken_pool() -> None:
    from concurrent.futures import BrokenExecutor

    def unpicklable_at_11(i: int) -> Any:
        big = np.full(BIG, i % 251, np.uint8)
        return (big, threading.Lock()) if i == 11 else big if i < 20 else [][0]

    def dies_at_5(i: int) -> np.ndarray:
        if i == 5:
            os._exit(3)  # a worker dies mid-task (as under the OOM killer)
        return np.full(BIG, i, np.uint8)

    # Batches of 16 run as tasks of 4 items: items 8-10 are in the file when loky fails to send item 11.
    with pytest.raises(TypeError, match="lock"):
        list(collect_batches(unpicklable_at_11, 16, 2, False))
    assert leftovers() == []
    with pytest.raises(BrokenExecutor):  # item 4 is in the file when its worker dies
        list(collect_batches(dies_at_5, 16, 2, False))
    assert leftovers() == []
    # The next call gets a new pool instead of the broken one.
    survivors = collect_batches(lambda i: dies_at_5(i + 6) if i < 8 else [][0], 4, 2, False)
    assert [int(x[0]) for batch in survivors for x in batch] == list(range(6, 14))

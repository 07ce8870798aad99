"""Worker processes writing items straight into the store's data file (mmap_ninja._placing): a parallel build
is byte for byte the serial one, whichever tasks were placed by workers and which written by the parent; a
worker places a task only when every task before it is placed, its items are arrays of the store's dtype and
the data file is still the parent's; nothing stays behind in /dev/shm."""

from __future__ import annotations

import contextlib
import errno
import os
import signal
import subprocess
import sys
import time
from collections.abc import Generator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from mmap_ninja import _placing, _shipping, parallel, ragged
from mmap_ninja.ragged import RaggedMmap

pytestmark = pytest.mark.skipif(not _shipping.SHM_DIR.is_dir(), reason="no /dev/shm")


def leftovers() -> list[str]:
    mine = _shipping._prefix(os.getpid())
    return [name for name in os.listdir(_shipping.SHM_DIR) if name.startswith(mine)]


def store_files(directory: Path) -> dict[str, bytes]:
    return {str(p.relative_to(directory)): p.read_bytes() for p in sorted(directory.rglob("*")) if p.is_file()}


def image(i: int) -> Any:
    rng = np.random.default_rng(i)
    return rng.integers(0, 60000, (int(rng.integers(1, 30)), int(rng.integers(1, 20))), dtype=np.uint16)


class Images:
    def __len__(self) -> int:
        return 150

    def __getitem__(self, i: int) -> Any:
        return image(i)


class Mixed(Images):
    """Mostly uint16 arrays; some items the parent must convert (lists, int64, 0-d, Fortran order)."""

    def __getitem__(self, i: int) -> Any:
        item = image(i)
        kinds = [item, item.tolist(), item.astype(np.int64), np.uint16(i), np.asfortranarray(item)]
        return kinds[i % 5] if i % 3 == 0 else item


@pytest.fixture
def counted(monkeypatch: pytest.MonkeyPatch) -> dict[str, int]:
    """Counts the tasks that reach the writer as placed notes and as lists of items."""
    counts = {"placed": 0, "lists": 0}
    write_chunks = ragged._write_chunks

    def counting(writer: Any, chunks: Generator[Any, None, None], *args: Any) -> None:
        def each() -> Generator[Any, None, None]:
            try:
                for chunk in chunks:
                    counts["placed" if isinstance(chunk, _placing.Placed) else "lists"] += 1
                    yield chunk
            finally:
                chunks.close()

        write_chunks(writer, each(), *args)

    monkeypatch.setattr(ragged, "_write_chunks", counting)
    return counts


@pytest.mark.parametrize(
    ("indexable", "kwargs"),
    [(Images(), {}), (Images(), {"dtype": np.uint16}), (Mixed(), {}), (Mixed(), {"dtype": np.int32})],
)
def test_a_parallel_build_is_byte_for_byte_the_serial_one(
    tmp_path: Path, counted: dict[str, int], indexable: Images, kwargs: dict[str, Any]
) -> None:
    serial = RaggedMmap.from_indexable(tmp_path / "serial", indexable, 40, **kwargs)
    counted.update(placed=0, lists=0)
    parallel = RaggedMmap.from_indexable(tmp_path / "parallel", indexable, 40, n_jobs=2, **kwargs)
    assert store_files(tmp_path / "parallel") == store_files(tmp_path / "serial")
    assert len(parallel) == len(serial) == 150
    parallel.verify()
    if isinstance(indexable, Mixed):
        assert counted["lists"] >= 1  # the tasks holding items to convert
    else:
        # Task 0 starts at byte 0, known from the start: it is always placed (it holds arrays of one dtype).
        assert counted["placed"] >= 1
    assert leftovers() == []


@pytest.mark.parametrize("obstacle", ["too many tasks", "no room for the slots"])
def test_without_slots_workers_ship_every_task(
    tmp_path: Path, counted: dict[str, int], monkeypatch: pytest.MonkeyPatch, obstacle: str
) -> None:
    if obstacle == "too many tasks":
        monkeypatch.setattr(_placing, "MAX_TASKS", 16)  # 150 items in spans of 40: up to 4 x 4 tasks + 1
    else:

        def full(*args: Any) -> None:
            raise OSError(errno.ENOSPC, "No space left on device")

        monkeypatch.setattr(os, "posix_fallocate", full)
    RaggedMmap.from_indexable(tmp_path / "serial", Images(), 40)
    counted.update(placed=0, lists=0)
    RaggedMmap.from_indexable(tmp_path / "parallel", Images(), 40, n_jobs=2)
    assert store_files(tmp_path / "parallel") == store_files(tmp_path / "serial")
    assert counted == {"placed": 0, "lists": 16}  # (nor is the first task split in two)
    assert leftovers() == []


class FirstItemInFortranOrder(Images):
    def __getitem__(self, i: int) -> Any:
        return np.asfortranarray(np.arange(12, dtype=np.uint16).reshape(3, 4)) if i == 0 else image(i)


def test_each_task_is_placed_once_the_task_before_it_is_written(
    tmp_path: Path, counted: dict[str, int], monkeypatch: pytest.MonkeyPatch
) -> None:
    # Task 0 holds an item in Fortran order, so the parent writes it (in C order); with time to wait, every
    # later task is placed, each once the one before it is written: by the parent (which sets the slot once
    # it wrote task 0) or by a worker.
    monkeypatch.setattr(_placing, "WAIT_SECONDS", 30.0)  # read by the parent, which hands it to the workers
    RaggedMmap.from_indexable(tmp_path / "serial", FirstItemInFortranOrder(), 40)
    counted.update(placed=0, lists=0)
    RaggedMmap.from_indexable(tmp_path / "parallel", FirstItemInFortranOrder(), 40, n_jobs=2)
    assert store_files(tmp_path / "parallel") == store_files(tmp_path / "serial")
    assert counted == {"placed": 16, "lists": 1}  # spans of 40, 40, 40, 30 in 5 + 4 + 4 + 4 tasks


def test_an_indexable_shorter_than_its_length_ends_as_in_a_serial_build(tmp_path: Path) -> None:
    class EndsAt130(Images):
        def __getitem__(self, i: int) -> Any:
            return image(i) if i < 130 else [][0]

    RaggedMmap.from_indexable(tmp_path / "serial", EndsAt130(), 40)
    parallel = RaggedMmap.from_indexable(tmp_path / "parallel", EndsAt130(), 40, n_jobs=2)
    assert len(parallel) == 130
    parallel.verify()
    # Tasks past the end may have placed items past the last committed one: the data file may be longer
    # than its shape says (as after an interrupted write), every committed file is the serial build's.
    serial_files, parallel_files = store_files(tmp_path / "serial"), store_files(tmp_path / "parallel")
    serial_data = serial_files.pop("data.ninja")
    assert parallel_files.pop("data.ninja")[: len(serial_data)] == serial_data
    assert parallel_files == serial_files
    assert leftovers() == []


def test_a_failing_item_stops_the_build_after_its_last_commit_and_leaves_nothing(tmp_path: Path) -> None:
    class FailsAt125(Images):
        def __getitem__(self, i: int) -> Any:
            if i == 125:
                raise ValueError("bad item 125")
            return image(i)

    with pytest.raises(ValueError, match="bad item 125"):
        RaggedMmap.from_indexable(tmp_path / "r", FailsAt125(), 40, n_jobs=2)
    store = RaggedMmap(tmp_path / "r")
    store.verify()
    assert len(store) == 120
    assert all(np.array_equal(store[i], image(i)) for i in range(120))
    assert leftovers() == []


class Interrupted(Exception):
    pass


@pytest.mark.skipif(not hasattr(signal, "setitimer"), reason="no interval timer")
def test_interrupted_twice_the_build_stops_its_workers_before_the_writer_closes(tmp_path: Path) -> None:
    class SlowTask0(Images):
        def __getitem__(self, i: int) -> Any:
            time.sleep(2.0 if i == 0 else 0.0)
            return image(i)

    raised = [0]

    def interrupt(*_: Any) -> None:
        if raised[0] < 2:  # (as Ctrl-C twice) while task 0 computes, then while the build waits for it
            raised[0] += 1
            raise Interrupted

    RaggedMmap.from_indexable(tmp_path / "warm", Images(), 40, n_jobs=2)  # the pool is up
    assert parallel._EXECUTOR is not None
    workers = list(parallel._EXECUTOR[1]._processes)
    previous = signal.signal(signal.SIGALRM, interrupt)
    try:
        signal.setitimer(signal.ITIMER_REAL, 0.3, 0.3)
        with pytest.raises(Interrupted):
            RaggedMmap.from_indexable(tmp_path / "r", SlowTask0(), 40, n_jobs=2)
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
    # The pool was stopped, not left to finish task 0 (whose worker would then place it or ship it).
    assert raised[0] == 2 and parallel._EXECUTOR is None
    assert workers and not any(_shipping._alive(pid) for pid in workers)
    time.sleep(2.5)
    assert leftovers() == [] and list((tmp_path / "r").glob("data.ninja*")) == []


def slots_for(tasks: int, start: int, dtype: Any = None) -> _placing.Slots:
    return _placing.Slots(os.getpid(), "test-call", tasks, start, dtype)


def target_for(data: Path, slots: _placing.Slots) -> _placing.Target:
    info = data.stat()
    return _placing.Target((str(data) + ".tmp", str(data)), (info.st_dev, info.st_ino), slots.path, 0.005)


def test_a_worker_places_its_task_once_the_task_before_it_ends(tmp_path: Path) -> None:
    data = tmp_path / "data.ninja"
    data.write_bytes(b"\xff" * 8)  # an item pushed by the parent
    slots = slots_for(4, start=8)
    target = target_for(data, slots)
    items = [np.arange(3, dtype=np.int16), np.arange(6, dtype=np.int16).reshape(2, 3)]
    try:
        assert _placing.place(target, 1, items) is None  # task 0 has not ended: task 1 cannot know its start
        assert slots.values[3] == 0 and data.stat().st_size == 8
        placed = _placing.place(target, 0, items)
        assert placed == _placing.Placed(8, "int16", [(3,), (2, 3)])
        assert slots.values[0] == _placing.dtype_code("int16")  # task 0 sets the store's dtype
        assert slots.values[2] == 8 + 18 + 1  # where task 1 starts, plus one
        assert data.read_bytes()[8:] == b"".join(item.tobytes() for item in items)
        # Task 1 of another dtype returns its items: the parent converts them.
        assert _placing.place(target, 1, [np.arange(3, dtype=np.int32)]) is None
        slots.wrote(1, 40, "int16")  # the parent wrote task 1 itself
        assert _placing.place(target, 2, [np.arange(2, dtype=np.int16)]) == _placing.Placed(40, "int16", [(2,)])
        assert data.read_bytes()[40:] == np.arange(2, dtype=np.int16).tobytes() and slots.values[4] == 44 + 1
    finally:
        slots.close()
    assert leftovers() == []


@pytest.mark.parametrize(
    "items",
    [
        [],
        [np.arange(4, dtype=np.int16), [1, 2]],  # a list
        [np.arange(4, dtype=np.int16), np.arange(4, dtype=np.int32)],  # two dtypes
        [np.int16(3)],  # a numpy scalar
        [np.array(3, dtype=np.int16)],  # 0-d
        [np.arange(8, dtype=np.int16)[::2]],  # not contiguous
        [np.arange(4, dtype=">i2")],  # big-endian
        [np.arange(4).astype("datetime64[s]")],  # times (numpy exports no buffer of them)
        [np.ma.masked_array(np.arange(4, dtype=np.int16))],  # a subclass
    ],
)
def test_items_the_writer_would_convert_are_never_placed(tmp_path: Path, items: list[Any]) -> None:
    data = tmp_path / "data.ninja"
    data.write_bytes(b"")
    slots = slots_for(2, start=0)
    try:
        assert _placing.place(target_for(data, slots), 0, items) is None
        assert slots.values[0] == slots.values[2] == 0 and data.stat().st_size == 0
    finally:
        slots.close()


def test_a_replaced_data_file_is_never_written(tmp_path: Path) -> None:
    data = tmp_path / "data.ninja"
    data.write_bytes(b"")
    slots = slots_for(2, start=0, dtype=np.int16)
    target = target_for(data, slots)
    data.rename(tmp_path / "old")  # kept, so that its inode number is not reused at once
    data.write_bytes(b"")  # another file now has the path
    try:
        assert _placing.place(target, 0, [np.arange(4, dtype=np.int16)]) is None
        assert slots.values[2] == 0 and data.stat().st_size == 0
    finally:
        slots.close()


def test_items_placed_at_the_start_before_a_first_commit_without_elements_survive_it(tmp_path: Path) -> None:
    """A first span of empty items commits while a worker has already placed the next span's items from the data
    file's first byte: the zero byte a file without elements holds (as mmap-ninja 0.9.0 writes it) is written
    when the file is made, never over what a worker placed."""
    from mmap_ninja import _native

    writer = _native.RaggedWriter(tmp_path / "s", replace=True)
    tmp = writer.data_file()
    info = os.stat(tmp)
    writer.adopt("uint8", 0, [(0,)])  # span 0: one empty item
    placed = [np.array([7, 8, 9], np.uint8)]  # span 1's first task, placed before span 0 commits
    slots = slots_for(2, start=0)  # what a worker checks the parent is still at work by
    try:
        _native.place("uint8", placed, 0, [tmp, tmp_path / "s" / "data.ninja"], (info.st_dev, info.st_ino), slots.path)
    finally:
        slots.close()
    writer.commit()
    writer.adopt("uint8", 0, [(3,)])
    writer.commit()
    writer.close()
    assert [x.tolist() for x in RaggedMmap(tmp_path / "s")] == [[], [7, 8, 9]]


def test_a_parent_gone_or_done_stops_its_workers_placing(tmp_path: Path) -> None:
    data = tmp_path / "data.ninja"
    data.write_bytes(b"")
    slots = slots_for(2, start=0, dtype=np.int16)
    target = target_for(data, slots)
    slots.let_go()  # as a killed parent's lock goes with its process
    try:
        assert _placing.place(target, 0, [np.arange(4, dtype=np.int16)]) is None
        assert slots.values[2] == 0 and data.stat().st_size == 0
    finally:
        slots.close()
    assert _placing.place(target, 0, [np.arange(4, dtype=np.int16)]) is None  # the call ended: its file is gone
    assert data.stat().st_size == 0


SLOW_BUILD = """
import sys, time
import numpy as np
from mmap_ninja.ragged import RaggedMmap

class Slow:
    def __len__(self):
        return 400

    def __getitem__(self, i):
        time.sleep(0.05)
        return np.full(1000, i, np.int32)

RaggedMmap.from_indexable(sys.argv[1], Slow(), batch_size=8, n_jobs=2)
"""


def children_of(pid: int) -> list[int]:
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            with contextlib.suppress(OSError), open(f"/proc/{entry}/stat") as stat:
                if int(stat.read().rsplit(")", 1)[1].split()[1]) == pid:
                    found.append(int(entry))
    return found


def test_workers_of_a_killed_build_never_write_over_what_the_next_writer_commits(tmp_path: Path) -> None:
    """A build killed past its first commit leaves its worker processes running: the tasks they hold must not
    land in the data file once the next writer has appended there (the store's lock is free at once)."""
    path = tmp_path / "s"
    build = subprocess.Popen([sys.executable, "-c", SLOW_BUILD, str(path)])
    workers: list[int] = []
    try:
        deadline = time.monotonic() + 120
        while len(RaggedMmap(path)) < 16:
            assert time.monotonic() < deadline and build.poll() is None, "the build never committed 16 items"
            time.sleep(0.02)
        workers = children_of(build.pid)
        build.kill()
        build.wait()
        store = RaggedMmap(path, mode="r+")
        committed = len(store)
        store.extend([np.full(1000, -7, np.int32)] * 40)
        time.sleep(2)  # long enough for the workers to place the tasks they held (about 0.4 s of work each)
        want = [np.full(1000, i if i < committed else -7, np.int32) for i in range(committed + 40)]
        assert [int(x[0]) for x in RaggedMmap(path)] == [int(x[0]) for x in want]
        assert all(np.array_equal(x, y) for x, y in zip(RaggedMmap(path), want, strict=True))
    finally:
        for pid in [*workers, build.pid]:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)

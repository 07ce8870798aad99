"""One writer at a time: a second writer gets ``StoreLockedError`` (after a 50 ms grace, or waits when asked)
and the store is unchanged; the lock goes with the writer, also when its input fails; a forked child cannot use
its parent's writer; ``durable`` writes read back the same."""

from __future__ import annotations

import fcntl
import multiprocessing
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from mmap_ninja import _native
from mmap_ninja import numpy as np_ninja
from mmap_ninja.errors import ForkedWriterError, MmapNinjaError, StoreLockedError
from mmap_ninja.ragged import RaggedMmap
from mmap_ninja.string import StringsMmap

FORK = multiprocessing.get_context("fork")


def _hold_lock(path: Path, kind: str, started: Any, release: Any) -> None:
    """Holds the store's lock until ``release``: a ragged build whose generator blocks, or, for the other kinds
    (whose builds lock batch by batch), the lock itself: an exclusive ``flock`` on the store's directory."""
    d = path / "store"
    if kind == "ragged":

        def items() -> Iterator[np.ndarray]:
            yield np.arange(3)
            started.set()
            release.wait(30)

        RaggedMmap.from_generator(d, items(), batch_size=1)
        return
    if kind == "strings":
        StringsMmap.from_strings(d, ["x"])
    else:
        np_ninja.from_ndarray(d, np.zeros((1, 3), dtype=np.int64))
    fd = os.open(d, os.O_RDONLY)
    fcntl.flock(fd, fcntl.LOCK_EX)
    started.set()
    release.wait(30)


WRITES: dict[str, Callable[[Path, bool | float], None]] = {
    "ragged": lambda d, wait: RaggedMmap(d, wait=wait).extend([np.arange(2)]),
    "strings": lambda d, wait: StringsMmap(d, wait=wait).extend(["y"]),
    "dense": lambda d, wait: np_ninja.extend_dir(d, np.zeros((1, 3), dtype=np.int64), wait=wait),
}


def _snapshot(d: Path) -> dict[str, bytes]:
    return {str(p.relative_to(d)): p.read_bytes() for p in sorted(d.rglob("*")) if p.is_file()}


@pytest.mark.parametrize("kind", sorted(WRITES))
def test_second_writer_is_refused_then_waits_when_asked(tmp_path: Path, kind: str) -> None:
    started, release = FORK.Event(), FORK.Event()
    holder = FORK.Process(target=_hold_lock, args=(tmp_path, kind, started, release))
    holder.start()
    try:
        assert started.wait(10)
        d = tmp_path / "store"
        before = _snapshot(d)
        with pytest.raises(StoreLockedError) as refused:  # the holder keeps the lock until released
            WRITES[kind](d, False)
        assert isinstance(refused.value, MmapNinjaError) and isinstance(refused.value, OSError)
        assert refused.value.filename == str(d)
        with pytest.raises(StoreLockedError):
            WRITES[kind](d, 0.2)
        assert _snapshot(d) == before
        release.set()
        WRITES[kind](d, True)  # waits for the holder to finish, then appends
    finally:
        release.set()
        holder.join(30)
    assert holder.exitcode == 0


def test_lock_is_released_when_the_input_fails(tmp_path: Path) -> None:
    def failing() -> Iterator[np.ndarray]:
        yield np.arange(3)
        raise RuntimeError("generator broke")

    with pytest.raises(RuntimeError):
        RaggedMmap.from_generator(tmp_path / "r", failing(), batch_size=10)
    RaggedMmap(tmp_path / "r").extend([np.arange(4)])  # not locked any more
    assert [len(x) for x in RaggedMmap(tmp_path / "r")] == [4]


def test_two_writers_in_one_process_exclude_each_other(tmp_path: Path) -> None:
    first = _native.RaggedWriter(tmp_path / "r")
    with pytest.raises(StoreLockedError):
        _native.RaggedWriter(tmp_path / "r")
    first.close()
    _native.RaggedWriter(tmp_path / "r").close()


def test_a_forked_child_cannot_use_its_parents_writer(tmp_path: Path) -> None:
    writer = _native.RaggedWriter(tmp_path / "r")
    writer.push("int64", [np.arange(3)])
    pid = os.fork()
    if pid == 0:
        code = 1
        try:
            writer.push("int64", [np.arange(2)])
        except ForkedWriterError:
            try:
                writer.commit()
            except ForkedWriterError:
                code = 0
        os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    writer.commit()
    writer.close()
    assert [x.tolist() for x in RaggedMmap(tmp_path / "r")] == [[0, 1, 2]]


def test_durable_writes_read_back(tmp_path: Path) -> None:
    items = [np.arange(k * 3).reshape(k, 3) for k in range(1, 5)]
    m = RaggedMmap.from_lists(tmp_path / "r", items[:2], durable=True)
    m.extend(items[2:])
    assert [x.tolist() for x in RaggedMmap(tmp_path / "r")] == [x.tolist() for x in items]
    s = StringsMmap.from_strings(tmp_path / "s", ["a", "bé"], durable=True)
    s.extend(["c"])
    assert list(StringsMmap(tmp_path / "s")) == ["a", "bé", "c"]
    np_ninja.from_ndarray(tmp_path / "d", np.ones((2, 2)), durable=True)
    np_ninja.extend_dir(tmp_path / "d", np.zeros((1, 2)), durable=True)
    assert np_ninja.open_existing(tmp_path / "d").sum() == 4


def test_negative_or_nan_wait_is_a_value_error(tmp_path: Path) -> None:
    for bad in (-1, float("nan")):
        with pytest.raises(ValueError):
            RaggedMmap.from_lists(tmp_path / "r", [np.arange(2)], wait=bad)


def test_a_child_forked_during_a_build_does_not_keep_the_store_locked(tmp_path: Path) -> None:
    children: list[int] = []

    def items() -> Iterator[np.ndarray]:
        yield np.arange(3)
        started, ready = os.pipe()
        pid = os.fork()
        if pid == 0:  # e.g. a worker pool started by the user's generator
            os.write(ready, b"x")  # after the fork hooks have run
            time.sleep(30)
            os._exit(0)
        children.append(pid)
        os.read(started, 1)
        yield np.arange(2)

    RaggedMmap.from_generator(tmp_path / "r", items(), batch_size=1)
    try:
        RaggedMmap(tmp_path / "r").extend([np.arange(1)])  # the child still lives
    finally:
        os.kill(children[0], signal.SIGKILL)
        os.waitpid(children[0], 0)
    assert [len(x) for x in RaggedMmap(tmp_path / "r")] == [3, 2, 1]


def test_a_forked_child_dropping_its_parents_writer_writes_nothing(tmp_path: Path) -> None:
    writer = _native.RaggedWriter(tmp_path / "r")
    writer.push("int64", [np.full(4, 7)])  # buffered, not yet written
    pid = os.fork()
    if pid == 0:
        writer.close()  # the child's copy of the buffer must be discarded, not flushed
        os._exit(0)
    os.waitpid(pid, 0)
    writer.push("int64", [np.full(2, 9)])
    writer.commit()
    writer.close()
    assert [x.tolist() for x in RaggedMmap(tmp_path / "r")] == [[7, 7, 7, 7], [9, 9]]


def test_a_child_holding_a_copy_of_a_released_lock_does_not_keep_the_store_locked(tmp_path: Path) -> None:
    """A child forked while another thread writes inherits the lock where no fork hook can close it (a writer in
    the middle of a call, or a lock taken for one call): the owner's release must free it all the same."""
    writer = _native.RaggedWriter(tmp_path / "r")  # not one the fork hooks know of
    writer.push("int64", [np.arange(3)])
    pid = os.fork()
    if pid == 0:
        time.sleep(30)
        os._exit(0)
    try:
        writer.commit()
        writer.close()
        RaggedMmap(tmp_path / "r").extend([np.arange(2)])  # the child, holding its copy, still lives
    finally:
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
    assert [len(x) for x in RaggedMmap(tmp_path / "r")] == [3, 2]


KILLED_BEFORE_COMMIT = """
import sys, time
import numpy as np
from mmap_ninja.ragged import RaggedMmap

def items():
    yield np.zeros(1 << 20, np.uint8)
    print("written", flush=True)
    time.sleep(60)

RaggedMmap.from_generator(sys.argv[1], items(), batch_size=100)
"""


def test_the_next_writer_removes_what_a_writer_killed_before_its_commit_left(tmp_path: Path) -> None:
    path = tmp_path / "r"
    RaggedMmap.from_lists(path, [np.arange(3)])
    build = subprocess.Popen([sys.executable, "-c", KILLED_BEFORE_COMMIT, str(path)], stdout=subprocess.PIPE)
    try:
        assert build.stdout is not None and build.stdout.readline() == b"written\n"
        # (The generator's first item is pushed, not yet flushed: the file is there, not all of its bytes.)
        assert [p.name for p in path.glob("*.tmp-*")] == [f"data.ninja.tmp-{build.pid}"]
    finally:
        build.kill()
        build.wait()
    RaggedMmap(path).extend([np.arange(2)])
    assert list(path.glob("*.tmp-*")) == [] and [len(x) for x in RaggedMmap(path)] == [3, 2]

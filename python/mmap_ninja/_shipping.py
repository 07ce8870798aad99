"""Worker results through shared memory instead of a pipe.

When a task's results hold large numpy arrays, the worker process pickles them with protocol 5, so the
arrays' bytes stay out of the pickle, and writes those bytes once into a file in ``/dev/shm``; only the small
pickle travels back through loky's pipe. The parent maps the file copy-on-write, unlinks it at once and
unpickles the items as arrays over that mapping (writable unless they were sent read-only, as with pickle).
Through the pipe the same bytes are copied into a pickle, through the kernel twice and out of the pickle.

Other results, and any failure to write the file (no ``/dev/shm``, too little free space, a short write), go
the usual way. A file is named after the parent's PID namespace and process id; one whose parent is gone
(killed between a worker's write and its own read) is removed by the next pool started in that namespace.
"""

from __future__ import annotations

import contextlib
import mmap
import os
import pickle
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

SHM_DIR = Path("/dev/shm")
# Tasks whose top-level arrays hold fewer bytes than this take the pipe (a file costs more than it saves).
MIN_SHIPPED_BYTES = 1 << 20
# A task may take at most this share of the free space in SHM_DIR: others use it too (torch's DataLoader).
MAX_SHARE_OF_FREE = 0.25
# Each buffer starts at a multiple of this, so arrays arrive aligned whatever precedes them.
ALIGN = 64
_PREFIX = "mmap_ninja_ship_"


def _namespace() -> str:
    """Our PID namespace: process ids of another container sharing /dev/shm mean nothing here."""
    try:
        return str(os.stat("/proc/self/ns/pid").st_ino)
    except OSError:
        return "0"


def _prefix(parent_pid: int) -> str:
    return f"{_PREFIX}{_namespace()}_{parent_pid}_"


@dataclass(frozen=True)
class Shipped:
    """A task's results: their pickle without the buffers, and where the file holds each buffer."""

    pickled: bytes
    path: str
    spans: tuple[tuple[int, int], ...]  # (offset, length) per buffer


def _array_bytes(results: list[Any]) -> int:
    return sum(item.nbytes for item in results if isinstance(item, np.ndarray))


def ship(results: list[Any], parent_pid: int, shm_dir: Path = SHM_DIR) -> list[Any] | Shipped:
    """In a worker: ``results`` as a ``Shipped`` when they hold large arrays, else unchanged."""
    if _array_bytes(results) < MIN_SHIPPED_BYTES:
        return results
    import cloudpickle  # as loky's own pickling: classes defined in the user's __main__ travel by value

    buffers: list[pickle.PickleBuffer] = []
    try:
        pickled = cloudpickle.dumps(results, protocol=5, buffer_callback=buffers.append)
        raws = [buffer.raw() for buffer in buffers]
    except Exception:  # noqa: BLE001 -- whatever cannot be shipped goes the usual way, which reports real errors
        return results
    spans, end = [], 0
    for raw in raws:
        start = -(-end // ALIGN) * ALIGN
        spans.append((start, raw.nbytes))
        end = start + raw.nbytes
    try:
        free = os.statvfs(shm_dir)
        if end > MAX_SHARE_OF_FREE * free.f_bavail * free.f_frsize:
            return results
        fd, path = tempfile.mkstemp(prefix=_prefix(parent_pid), dir=shm_dir)
    except OSError:
        return results
    try:
        # Written, not mapped: a full tmpfs fails the write with ENOSPC (a mapping would get SIGBUS).
        for raw, (start, _) in zip(raws, spans, strict=True):
            _write_all(fd, raw, start)
    except OSError:
        os.unlink(path)
        return results
    finally:
        os.close(fd)
    return Shipped(pickled, path, tuple(spans))


def _write_all(fd: int, data: memoryview, offset: int) -> None:
    while data.nbytes:
        written = os.pwrite(fd, data, offset)
        data, offset = data[written:], offset + written


def receive(result: list[Any] | Shipped) -> list[Any]:
    """In the parent: the items of a task's result, arrays over a private mapping of the shipped file."""
    if not isinstance(result, Shipped):
        return result
    size = max((start + length for start, length in result.spans), default=0)
    try:
        with open(result.path, "rb") as f:
            mapped = mmap.mmap(f.fileno(), size, access=mmap.ACCESS_COPY) if size else b""
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(result.path)
    view = memoryview(mapped)
    items: list[Any] = pickle.loads(result.pickled, buffers=[view[start : start + n] for start, n in result.spans])
    return items


def discard(result: Any) -> None:
    """In the parent: drops a result that will not be read (its file, if it has one)."""
    if isinstance(result, Shipped):
        with contextlib.suppress(FileNotFoundError):
            os.unlink(result.path)


def sweep(shm_dir: Path = SHM_DIR) -> None:
    """Removes the files of parents of this PID namespace that are gone."""
    mine = f"{_PREFIX}{_namespace()}_"
    try:
        names = os.listdir(shm_dir)
    except OSError:
        return
    for name in names:
        pid = name[len(mine) :].partition("_")[0] if name.startswith(mine) else ""
        if pid.isdigit() and not _alive(int(pid)):
            with contextlib.suppress(OSError):
                os.unlink(shm_dir / name)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True

"""Worker results through shared memory instead of a pipe.

A worker process writes each large numpy array it computes into a file in ``/dev/shm`` as soon as the item
function returns it, and keeps only a small ``InFile`` note (where, dtype, shape) in the task's results; the
array itself can then be freed, so the next item reuses its memory instead of faulting in fresh pages. Only
the notes and the other items travel back through loky's pipe. The parent maps the file copy-on-write,
unlinks it at once and turns each note into an array over that mapping (writable, as an unpickled array is).
Through the pipe the same bytes are copied into a pickle, through the kernel twice and out of the pickle.

Small arrays, other objects (kept whole, arrays inside them included) and anything that cannot be written
(no ``/dev/shm``, too little free space, a failed write) go the usual way. A file is named after the parent's
PID namespace, process id and call: when a call ends, the parent removes whatever its workers left that it
never read (a result loky failed to pickle, a worker that died mid-task), and files of a parent that is gone
(killed meanwhile) are removed by the next pool started in that namespace.
"""

from __future__ import annotations

import contextlib
import mmap
import os
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

SHM_DIR = Path("/dev/shm")
# Arrays smaller than this take the pipe (a write costs more than it saves).
MIN_SHIPPED_BYTES = 1 << 16
# A task may take at most this share of the free space in SHM_DIR: others use it too (torch's DataLoader).
MAX_SHARE_OF_FREE = 0.25
# Each array starts at a multiple of this, so arrays arrive aligned whatever precedes them.
ALIGN = 64
_PREFIX = "mmap_ninja_ship_"


# This process's PID namespace, looked up once per process (every task names its file after it).
_NAMESPACE: tuple[int, str] | None = None


def _namespace() -> str:
    """Our PID namespace: process ids of another container sharing /dev/shm mean nothing here."""
    global _NAMESPACE
    if _NAMESPACE is None or _NAMESPACE[0] != os.getpid():
        try:
            name = str(os.stat("/proc/self/ns/pid").st_ino)
        except OSError:
            name = "0"
        _NAMESPACE = (os.getpid(), name)
    return _NAMESPACE[1]


def _namespace_prefix() -> str:
    return f"{_PREFIX}{_namespace()}_"


def _prefix(parent_pid: int, call: str = "") -> str:
    return f"{_namespace_prefix()}{parent_pid}_{call}"


def call_prefix(parent_pid: int, call: str) -> str:
    """The name prefix of the files of call ``call`` (removed together once the call ends)."""
    return _prefix(parent_pid, f"{call}_")


@dataclass(frozen=True)
class InFile:
    """An array written to the task's file: its bytes at ``offset``, in memory order ``order``."""

    offset: int
    dtype: np.dtype[Any]
    shape: tuple[int, ...]
    order: str


@dataclass(frozen=True)
class Shipped:
    """A task's results, ``InFile`` notes in place of the arrays written to the file at ``path``."""

    items: list[Any]
    path: str
    size: int


class Packer:
    """In a worker: takes a task's items one by one, writing the large arrays to one file."""

    def __init__(self, parent_pid: int, call: str, shm_dir: Path = SHM_DIR) -> None:
        self.prefix, self.shm_dir = call_prefix(parent_pid, call), shm_dir
        self.fd: int | None = None
        self.path = ""
        self.end = 0
        self.room = 0
        self.failed = False

    def pack(self, item: Any) -> Any:
        """``item``, or an ``InFile`` note once its bytes are in the file."""
        plain = type(item) is np.ndarray or type(item) is np.memmap  # (subclasses with meaning take the pipe)
        if self.failed or not plain or item.nbytes < MIN_SHIPPED_BYTES or item.dtype.hasobject:
            return item
        order = "C" if item.flags.c_contiguous else "F" if item.flags.f_contiguous else ""
        if not order:
            return item
        start = -(-self.end // ALIGN) * ALIGN
        try:
            fd = self.fd if self.fd is not None else self._create()
            if start + item.nbytes > self.room:
                return item
            # Written, not mapped: a full tmpfs fails the write with ENOSPC (a mapping would get SIGBUS).
            # (As bytes in memory order: any dtype, datetimes and records too, and F order without a copy.)
            write_all(fd, item.ravel(order="K").view(np.uint8), start)
        except OSError:
            self.failed = True  # what is in the file stays valid; the rest takes the pipe
            return item
        self.end = start + item.nbytes
        return InFile(start, item.dtype, item.shape, order)

    def _create(self) -> int:
        free = os.statvfs(self.shm_dir)
        self.room = int(MAX_SHARE_OF_FREE * free.f_bavail * free.f_frsize)
        self.fd, self.path = tempfile.mkstemp(prefix=self.prefix, dir=self.shm_dir)
        return self.fd

    def result(self, items: list[Any]) -> list[Any] | Shipped:
        """The task's result: ``items`` (as returned by ``pack``) and the file, if one was written."""
        if self.fd is None:
            return items
        fd, self.fd = self.fd, None
        os.close(fd)
        if not self.end:
            os.unlink(self.path)
            return items
        return Shipped(items, self.path, self.end)

    def abandon(self) -> None:
        """The task failed: removes its file."""
        if self.fd is not None:
            fd, self.fd = self.fd, None
            os.close(fd)
            os.unlink(self.path)


def write_all(fd: int, data: np.ndarray, offset: int) -> None:
    """Writes the bytes of ``data`` (a 1-D uint8 array) at ``offset``, however many writes that takes."""
    while data.nbytes:
        written = os.pwrite(fd, data.data, offset)
        data, offset = data[written:], offset + written


def receive(result: list[Any] | Shipped) -> list[Any]:
    """In the parent: the items of a task's result, arrays over a private mapping of the shipped file."""
    if not isinstance(result, Shipped):
        return result
    try:
        with open(result.path, "rb") as f:
            mapped = mmap.mmap(f.fileno(), result.size, access=mmap.ACCESS_COPY)
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(result.path)
    return [_array(mapped, item) if isinstance(item, InFile) else item for item in result.items]


def _array(mapped: mmap.mmap, note: InFile) -> np.ndarray:
    count = int(np.prod(note.shape, dtype=np.int64))
    flat = np.frombuffer(mapped, note.dtype, count, note.offset)
    return flat.reshape(note.shape, order=note.order)  # type: ignore[call-overload,no-any-return]


def discard(result: Any) -> None:
    """In the parent: drops a result that will not be read (its file, if it has one)."""
    if isinstance(result, Shipped):
        with contextlib.suppress(FileNotFoundError):
            os.unlink(result.path)


def remove_call_files(parent_pid: int, call: str, shm_dir: Path = SHM_DIR) -> None:
    """In the parent, once no worker runs a task of ``call``: removes the files of that call still there."""
    _remove_matching(shm_dir, lambda name: name.startswith(call_prefix(parent_pid, call)))


def sweep(shm_dir: Path = SHM_DIR) -> None:
    """Removes the files of parents of this PID namespace that are gone."""
    mine = _namespace_prefix()

    def orphaned(name: str) -> bool:
        pid = name[len(mine) :].partition("_")[0] if name.startswith(mine) else ""
        return pid.isdigit() and not _alive(int(pid))

    _remove_matching(shm_dir, orphaned)


def _remove_matching(shm_dir: Path, matches: Callable[[str], bool]) -> None:
    try:
        names = os.listdir(shm_dir)
    except OSError:
        return
    for name in names:
        if matches(name):
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

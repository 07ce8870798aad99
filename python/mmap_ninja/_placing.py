"""Worker results written straight into the store's data file, instead of shipped to the parent to write.

A store keeps its items back to back in index order, so task t of a call (a contiguous index range) can be
written only once every task before it knows where it ends. The tasks of a call share a small file in
``/dev/shm`` of int64 slots: slot 0 holds the store's dtype (a code, 0 while unknown), slot 1 + t the byte
where task t starts, plus one (0 while unknown). A worker that has computed task t waits a few milliseconds
for slot 1 + t; if it is known, the items are all C-contiguous arrays of the store's dtype, and the data
file is the one the parent writes, it claims its bytes by setting slot 2 + t, writes the items there and
returns a ``Placed`` note. Otherwise it returns its items as usual (``_shipping``), and the parent, which
takes the tasks in order, writes them and sets the next slot itself. Each slot has one writer: the worker
that placed the task before it, or the parent. Both are single aligned 8-byte stores, so a reader sees a
slot either unknown or final; a dtype read as unknown makes a worker return its items, never misplace them.

Tasks mostly end in index order: the first task of a call is half the size of the others, so the workers
stay half a task apart.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
import time
from dataclasses import dataclass
from typing import Any

import numpy as np

from . import _shipping

# The dtypes a worker can place, by code (index + 1): the store dtypes, as the native writer names them.
DTYPES = (
    "bool",
    "int8",
    "uint8",
    "int16",
    "uint16",
    "int32",
    "uint32",
    "int64",
    "uint64",
    "float16",
    "float32",
    "float64",
    "complex64",
    "complex128",
)
# Calls with more tasks than this do not place items (their slots would take more than 8 MiB).
MAX_TASKS = 1 << 20
# How long a worker waits for the tasks before its own to be placed, before returning its items instead.
WAIT_SECONDS = 0.005
_POLL_SECONDS = 0.0002


def dtype_code(dtype: np.dtype[Any] | str | None) -> int:
    """The code of a store dtype (0: unknown, or not one a worker can place)."""
    if dtype is None:
        return 0
    name = np.dtype(dtype).name
    return DTYPES.index(name) + 1 if name in DTYPES else 0


@dataclass(frozen=True)
class Target:
    """Where the workers of one call place tasks: the data file (its paths before and after the first
    commit, and its identity) and the slots file."""

    paths: tuple[str, ...]
    identity: tuple[int, int]
    slots: str


@dataclass(frozen=True)
class Placed:
    """A task's items, written into the data file from byte ``start`` on."""

    start: int
    dtype: str
    shapes: list[tuple[int, ...]]


class Slots:
    """In the parent: the slots file of one call, removed by ``close`` (or with the call's shipped files)."""

    def __init__(self, parent_pid: int, call: str, tasks: int, start: int, dtype: np.dtype[Any] | None) -> None:
        prefix = _shipping.call_prefix(parent_pid, call)
        fd, self.path = tempfile.mkstemp(prefix=prefix, suffix="_slots", dir=_shipping.SHM_DIR)
        try:
            # Allocated now: writing to a page of a full tmpfs through a mapping would raise SIGBUS.
            os.posix_fallocate(fd, 0, 8 * (tasks + 2))
        except OSError:
            os.unlink(self.path)
            raise
        finally:
            os.close(fd)
        self.values = np.memmap(self.path, np.int64, "r+")
        self.values[0] = dtype_code(dtype)
        self.values[1] = start + 1

    def wrote(self, task: int, end: int, dtype: str | None) -> None:
        """The parent wrote task ``task``'s items itself, up to byte ``end``, in a store of ``dtype``."""
        if not self.values[0]:
            self.values[0] = dtype_code(dtype)
        self.values[task + 2] = end + 1

    def close(self) -> None:
        del self.values
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.path)


def place(target: Target, task: int, items: list[Any]) -> Placed | None:
    """In a worker: writes task ``task``'s ``items`` into the data file, or returns None when it cannot."""
    code = _common_code(items)
    if not code:
        return None
    slots = np.memmap(target.slots, np.int64, "r+")
    try:
        deadline = time.monotonic() + WAIT_SECONDS
        while not slots[task + 1] and time.monotonic() < deadline:
            time.sleep(_POLL_SECONDS)
        start = int(slots[task + 1]) - 1
        store_code = int(slots[0])
        if start < 0 or store_code not in (code, 0) or (store_code == 0 and task != 0):
            return None
        fd = _open_data(target)
        if fd is None:
            return None
        try:
            if store_code == 0:
                slots[0] = code  # task 0 sets the store's dtype (the first item's, as a serial build)
            slots[task + 2] = start + sum(item.nbytes for item in items) + 1
            offset = start
            for item in items:
                _shipping.write_all(fd, item.reshape(-1).view(np.uint8), offset)
                offset += item.nbytes
        finally:
            os.close(fd)
    finally:
        del slots
    return Placed(start, DTYPES[code - 1], [item.shape for item in items])


def _common_code(items: list[Any]) -> int:
    """The dtype code shared by ``items`` when each is an array the native writer takes as it is (exactly
    ``ndarray``, at least 1-D, C-contiguous, little-endian), else 0."""
    if not items:
        return 0
    first = items[0]
    if type(first) is not np.ndarray:
        return 0
    dtype = first.dtype
    code = dtype_code(dtype) if dtype.isnative or dtype.byteorder == "<" or dtype.itemsize == 1 else 0
    for item in items:
        if type(item) is not np.ndarray or item.dtype != dtype or not item.ndim or not item.flags.c_contiguous:
            return 0
    return code


def _open_data(target: Target) -> int | None:
    """The data file opened for writing, if it is still the parent's (by identity, whichever path it has)."""
    for path in target.paths:
        try:
            fd = os.open(path, os.O_WRONLY)
        except FileNotFoundError:
            continue  # renamed by the first commit meanwhile: the next path
        except OSError:
            return None
        info = os.fstat(fd)
        if (info.st_dev, info.st_ino) == target.identity:
            return fd
        os.close(fd)
    return None

"""Worker results written straight into the store's data file, instead of shipped to the parent to write.

A store keeps its items back to back in index order, so task t of a call (a contiguous index range) can be
written only once every task before it is written. The tasks of a call share a small file in ``/dev/shm`` of
int64 slots: slot 0 holds the store's dtype (a code, 0 while unknown), slot 1 + t the byte where task t
starts, plus one (0 while unknown). A worker that has computed task t waits a little for slot 1 + t; if it
is known, the items are all arrays the native writer takes as they are, of the store's dtype, and the data
file is the one the parent writes, the core writes them there (``_native.place``), the worker sets slot
2 + t and returns a ``Placed`` note, which the parent's writer adopts. Otherwise it returns its items as
usual (``_shipping``), and the parent, which takes the tasks in order, writes them and sets the next slot
itself. Each slot has one writer: the worker of the task before it, or the parent. Both are single aligned
8-byte stores, so a reader sees a slot either unknown or final; a dtype read as unknown makes a worker
return its items, never misplace them.

Tasks mostly end in index order: the first task of a call is half the size of the others, so the workers
stay half a task apart. A worker holds a task's items until they are placed (a serial build holds a span).
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import tempfile
import time
import weakref
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from . import _native, _shipping
from ._dtypes import ALLOWED, taken_as_is

# The store dtypes by code (index + 1).
DTYPES = tuple(sorted(ALLOWED))
# Calls with more tasks than this do not place items (their slots would take more than 8 MiB).
MAX_TASKS = 1 << 20
# How long a worker waits for the tasks before its own to be written, before returning its items instead.
WAIT_SECONDS = 0.005
_POLL_SECONDS = 0.0002


def dtype_code(dtype: np.dtype[Any] | str | None) -> int:
    """The code of a store dtype (0: unknown)."""
    return 0 if dtype is None else DTYPES.index(np.dtype(dtype).name) + 1


@dataclass(frozen=True)
class PlaceInto:
    """In the parent: a store being built from the items: its writer's data file (``data_file`` creates it
    and returns its path, which the first commit renames to ``final_path``), where the next item goes and the
    store's dtype (``position``, once the items handed on are written), and the dtype the caller set, if any."""

    data_file: Callable[[], str]
    final_path: str
    position: Callable[[], tuple[int, str | None]]
    dtype: np.dtype[Any] | None


@dataclass(frozen=True)
class Target:
    """Where the workers of one call place tasks: the data file (its absolute paths before and after the
    first commit, and its device and inode), the slots file, and how long a worker waits for its turn."""

    paths: tuple[str, ...]
    identity: tuple[int, int]
    slots: str
    wait: float


@dataclass(frozen=True)
class Placed:
    """A task's items, written into the data file from byte ``start`` on."""

    start: int
    dtype: str
    shapes: list[tuple[int, ...]]


class Slots:
    """In the parent: the slots file of one call, removed by ``close`` (or with the call's shipped files). The
    parent holds an exclusive ``flock`` on it until then: a worker places items only while it is held (see
    ``_native.place``), so the workers of a parent that was killed stop placing."""

    def __init__(self, parent_pid: int, call: str, tasks: int, start: int, dtype: np.dtype[Any] | None) -> None:
        prefix = _shipping.call_prefix(parent_pid, call)
        self.fd, self.path = tempfile.mkstemp(prefix=prefix, suffix="_slots", dir=_shipping.SHM_DIR)
        try:
            fcntl.flock(self.fd, fcntl.LOCK_EX)
            # Allocated now: writing to a page of a full tmpfs through a mapping would raise SIGBUS.
            os.posix_fallocate(self.fd, 0, 8 * (tasks + 2))
        except OSError:
            os.unlink(self.path)
            os.close(self.fd)
            raise
        _OPEN_SLOTS.add(self)
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
        self.let_go()

    def let_go(self) -> None:
        """Closes this process's descriptor of the file (the parent's lock goes with it, once no forked child
        holds a copy)."""
        _OPEN_SLOTS.discard(self)
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1


# Slots files open in this process. A forked child closes its copies of their descriptors at once: a copy
# would keep the parent's lock held after the parent died, and so its workers placing items.
_OPEN_SLOTS: weakref.WeakSet[Slots] = weakref.WeakSet()


def _let_go_inherited_slots() -> None:
    for slots in list(_OPEN_SLOTS):
        slots.let_go()


os.register_at_fork(after_in_child=_let_go_inherited_slots)


def place(target: Target, task: int, items: list[Any]) -> Placed | None:
    """In a worker: writes task ``task``'s ``items`` into the data file, or returns None when it cannot."""
    dtype = _common_dtype(items)
    if dtype is None:
        return None
    code = dtype_code(dtype)
    try:
        slots = np.memmap(target.slots, np.int64, "r+")
    except OSError:
        return None
    try:
        if int(slots[0]) not in (code, 0):
            return None  # the store has another dtype: the parent converts the items
        deadline = time.monotonic() + target.wait
        while not slots[task + 1] and time.monotonic() < deadline:
            time.sleep(_POLL_SECONDS)
        start = int(slots[task + 1]) - 1
        store_code = int(slots[0])
        # Only task 0 may set the dtype (as a serial build, the first item's), or a worker misread slot 0.
        if start < 0 or store_code not in (code, 0) or (store_code == 0 and task != 0):
            return None
        end = _native.place(dtype.name, items, start, target.paths, target.identity, target.slots)
        if end is None:
            return None  # the data file is not the parent's any more, or the parent is gone
        if store_code == 0:
            slots[0] = code
        slots[task + 2] = end + 1
    finally:
        del slots
    return Placed(start, dtype.name, [item.shape for item in items])


def _common_dtype(items: list[Any]) -> np.dtype[Any] | None:
    """The store dtype of ``items`` when the native writer takes each as it is into a store of that dtype
    (the first item's, if it is a little-endian store dtype), else None."""
    if not items or type(items[0]) is not np.ndarray:
        return None
    dtype: np.dtype[Any] = items[0].dtype
    if dtype.name not in ALLOWED or dtype != dtype.newbyteorder("<"):
        return None
    return dtype if all(taken_as_is(item, dtype) for item in items) else None

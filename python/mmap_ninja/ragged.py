"""``RaggedMmap``: a list of arrays of different shapes in one flat memory-mapped buffer. Items are numpy
views into the mapping (no copy); the native layer locates them."""

from __future__ import annotations

import contextlib
import operator
import os
import sys
from collections.abc import Callable, Generator, Iterable, Iterator, Sequence
from copy import copy
from itertools import islice
from pathlib import Path
from typing import Any

import numpy as np

from . import _native
from ._dtypes import exported, store_dtype, taken_as_is, to_store
from ._placing import Placed, PlaceInto
from .base import (
    Identity,
    Layout,
    PathLike,
    check_batch_size,
    normalize_indices,
    open_mode,
    out_of_range,
    progress,
    require_same_store,
    require_sound,
    wait_seconds,
)
from .parallel import check_backend, collect_chunks

_KEYS = {"starts_key": "starts", "ends_key": "ends", "shapes_key": "shapes", "flattened_shapes_key": "flattened_shapes"}


def _check_keys(**keys: str) -> None:
    for name, value in keys.items():
        if name not in _KEYS:
            raise TypeError(f"unexpected keyword argument {name!r}")
        if value != _KEYS[name]:
            raise ValueError(f"{name}={value!r} is not supported: stores use the standard directory names")


class _Batch:
    """Items as C-contiguous arrays of one little-endian dtype (the first item's when ``dtype`` is None),
    converted by ``to_store`` (exactly, or floats rounded); arrays that already qualify pass through untouched
    (no copy). 0-d items travel as 1-element arrays listed in ``scalars`` (numpy exports 0-d buffers without a
    shape). Errors number the items from ``first``, the number of items written before them."""

    def __init__(self, items: Iterable[Any], dtype: np.dtype[Any] | None, first: int = 0) -> None:
        self.arrays: list[np.ndarray] = []
        self.scalars: list[int] = []
        for k, item in enumerate(items):
            # (`dtype is not None` first: numpy compares a float64 dtype equal to None.)
            if dtype is not None and taken_as_is(item, dtype):
                self.arrays.append(item)
                continue
            arr = to_store(item, dtype, f"item {first + k}")
            dtype = arr.dtype if dtype is None else dtype
            if arr.ndim == 0:
                self.scalars.append(k)
                arr = arr.reshape(1)
            self.arrays.append(exported(arr))
        self.dtype: np.dtype[Any] = np.dtype(np.float64) if dtype is None else dtype


# Items are handed to the native writer in chunks of about this many bytes (at most _CHUNK_ITEMS items), so
# memory stays bounded and the allocator recycles the same warm pages instead of faulting in a fresh batch.
_CHUNK_BYTES = 8 << 20
_CHUNK_ITEMS = 4096


# Writers open in this process. A forked child closes its copies at once: the store's lock belongs to the
# open file, which the child shares. The parent's release frees it for both, but a child that kept it would
# keep the store locked if the parent died first. (The native writer also refuses to write from a child.)
_OPEN_WRITERS: set[_native.RaggedWriter] = set()


def _close_inherited_writers() -> None:
    for writer in _OPEN_WRITERS:
        # A writer forked in the middle of a call (made by another thread) is busy in the child for good: it
        # is left alone, which is safe, since its owner releases the lock for every copy.
        with contextlib.suppress(RuntimeError):
            writer.close()
    _OPEN_WRITERS.clear()


os.register_at_fork(after_in_child=_close_inherited_writers)


def _write(
    out_dir: PathLike,
    items: Iterable[Any] | _IndexableItems,
    batch_size: int,
    dtype: np.dtype[Any] | None,
    replace: bool,
    wait: bool | float,
    durable: bool,
) -> None:
    """Streams ``items`` into the store in ``out_dir``, committing every ``batch_size`` items and at the end.
    The store's lock is held throughout and released on return, also when ``items`` raises."""
    writer = _native.RaggedWriter(Path(out_dir), replace=replace, wait=wait_seconds(wait), durable=durable)
    _OPEN_WRITERS.add(writer)
    try:
        if dtype is None and writer.dtype is not None:
            dtype = store_dtype(writer.dtype)
        if isinstance(items, _IndexableItems):
            _write_chunks(writer, items.chunks(writer, Path(out_dir), dtype), batch_size, dtype)
        else:
            _write_items(writer, items, batch_size, dtype)
        writer.commit()
    finally:
        _OPEN_WRITERS.discard(writer)
        writer.close()


class _Pusher:
    """Pushes items to a writer in chunks of about ``_CHUNK_BYTES``, so that conversions stay bounded."""

    def __init__(self, writer: _native.RaggedWriter, dtype: np.dtype[Any] | None) -> None:
        self.writer, self.dtype = writer, dtype
        self.written = 0  # items written so far (pushed, or placed by workers), to number them in errors
        self.take = 1  # items per chunk: grows (at most 8x a chunk) towards _CHUNK_BYTES worth of items

    def push(self, items: Iterator[Any], count: int) -> int:
        """Pushes up to ``count`` items of ``items``; returns how many there were."""
        pushed = 0
        while chunk := list(islice(items, min(self.take, count - pushed))):
            self.dtype, nbytes = _push(self.writer, chunk, self.dtype, self.written)
            pushed += len(chunk)
            self.written += len(chunk)
            fit = _CHUNK_BYTES * len(chunk) // nbytes if nbytes else _CHUNK_ITEMS
            self.take = max(1, min(self.take * 8, fit, _CHUNK_ITEMS))
            del chunk  # before the next chunk is generated: one chunk alive at a time
        return pushed


def _write_items(
    writer: _native.RaggedWriter, items: Iterable[Any], batch_size: int, dtype: np.dtype[Any] | None
) -> None:
    pusher, it = _Pusher(writer, dtype), iter(items)
    while pusher.push(it, batch_size) == batch_size:
        writer.commit()


def _write_chunks(
    writer: _native.RaggedWriter, chunks: Generator[Any, None, None], batch_size: int, dtype: np.dtype[Any] | None
) -> None:
    """Writes the chunks of ``collect_chunks`` (never across a span of ``batch_size`` items): lists of items,
    or notes of items a worker placed in the data file, which the writer adopts."""
    pusher, since_commit = _Pusher(writer, dtype), 0
    try:
        for chunk in chunks:
            if isinstance(chunk, Placed):
                writer.adopt(chunk.dtype, chunk.start, chunk.shapes)
                pusher.dtype = store_dtype(chunk.dtype) if pusher.dtype is None else pusher.dtype
                since_commit += len(chunk.shapes)
                pusher.written += len(chunk.shapes)
            else:
                since_commit += pusher.push(iter(chunk), len(chunk))
            del chunk  # before the next one arrives
            if since_commit >= batch_size:
                writer.commit()
                since_commit = 0
    finally:
        chunks.close()  # stops the workers before the writer closes


class _IndexableItems:
    """The items of ``from_indexable``, computed once the writer exists, so that worker processes can write
    them into the writer's data file themselves (see ``_placing``)."""

    def __init__(self, indexable: Any, batch_size: int, n_jobs: int | None, verbose: bool, backend: str) -> None:
        self.indexable, self.batch_size, self.n_jobs = indexable, batch_size, n_jobs
        self.verbose, self.backend = verbose, backend

    def chunks(
        self, writer: _native.RaggedWriter, out_dir: Path, dtype: np.dtype[Any] | None
    ) -> Generator[Any, None, None]:
        place_into = PlaceInto(
            data_file=lambda: os.fspath(writer.data_file()),
            final_path=str(out_dir / "data.ninja"),
            position=lambda: (writer.position, writer.dtype),
            dtype=dtype,
        )
        return collect_chunks(self.indexable, self.batch_size, self.n_jobs, self.verbose, self.backend, place_into)


def _push(
    writer: _native.RaggedWriter, chunk: list[Any], dtype: np.dtype[Any] | None, first: int
) -> tuple[np.dtype[Any], int]:
    """Writes ``chunk`` (whose first item is item ``first`` of the input): its leading C-contiguous arrays of the
    store's dtype straight from their memory, the rest (other dtypes, lists, scalars, ...) converted first by
    ``to_store``. Returns the dtype and the bytes written."""
    done, nbytes = (0, 0) if dtype is None else writer.push_arrays(dtype.name, chunk)
    if dtype is not None and done == len(chunk):
        return dtype, nbytes
    batch = _Batch(chunk[done:], dtype, first + done)
    writer.push(batch.dtype.name, batch.arrays, batch.scalars)
    return batch.dtype, nbytes + sum(arr.nbytes for arr in batch.arrays)


class _GatherBuffers:
    """Output buffers of ``gather``, reused once no view of them is alive. Writing into fresh memory costs a
    page fault per 4 KiB (about 1 ms per MB on small VMs), writing into reused memory only the copy."""

    KEEP = 4
    # The reuse test counts references; from CPython 3.14 on, borrowed stack references make that count
    # unreliable, so there every batch gets a new buffer.
    ENABLED = sys.version_info < (3, 14)

    def __init__(self) -> None:
        self._buffers: list[np.ndarray] = []

    def take(self, nbytes: int) -> np.ndarray:
        if not self.ENABLED:
            return np.empty(nbytes, np.uint8)
        for buf in self._buffers:
            # Referenced only by this list, the loop variable and getrefcount's argument: no view is alive.
            if buf.nbytes >= nbytes and sys.getrefcount(buf) <= 3:
                return buf
        # Headroom, so the next batches of similar size fit too.
        buf = np.empty(max(nbytes + nbytes // 4, 1 << 16), np.uint8)
        if len(self._buffers) >= self.KEEP:
            self._buffers.pop(0)
        self._buffers.append(buf)
        return buf


def _reopen(out_dir: str, length: int, identity: Identity | None, options: dict[str, Any]) -> RaggedMmap:
    """Unpickles a RaggedMmap: the same store reopened, limited to the items the pickled reader saw."""
    reader = RaggedMmap.__new__(RaggedMmap)
    reader._setup(Path(out_dir), **options)
    reader._reload(length)
    require_same_store(reader.out_dir, identity, length, reader._identity, len(reader))
    return reader


class RaggedMmap(Layout):
    """A list of numpy arrays of different shapes, stored in ``out_dir``. A missing or empty directory is an
    empty map; ``append``/``extend`` create it. ``mode`` is numpy's: ``"r"`` gives read-only items, ``"r+"``
    writable ones whose writes reach the file, ``"c"`` (copy-on-write) writable ones whose writes stay private
    to this reader until it maps the store anew (``refresh``, ``extend``, ``append``), which drops them.

    A reader is a snapshot: its length changes only through its own writes or ``refresh()``. Writes (``extend``,
    ``append``) lock the store for their duration; ``wait`` says how long they wait for another writer (False:
    raise ``StoreLockedError`` after 50 ms; True: until it is done; a number: that many seconds). ``durable``
    flushes every commit to disk (fsync), so it survives a power loss, not only a crash of the process.
    Pickling stores the path, options and snapshot only (a few hundred bytes, whatever the store's size); a
    reader refreshed or unpickled after the store was replaced raises ``StoreReplacedError``."""

    def __init__(
        self,
        out_dir: PathLike,
        wrapper_fn: Callable[[Any], Any] | None = None,
        mode: str = "r",
        starts_key: str = "starts",
        ends_key: str = "ends",
        shapes_key: str = "shapes",
        flattened_shapes_key: str = "flattened_shapes",
        copy_before_wrapper_fn: bool = True,
        *,
        wait: bool | float = False,
        durable: bool = False,
    ) -> None:
        _check_keys(
            starts_key=starts_key, ends_key=ends_key, shapes_key=shapes_key, flattened_shapes_key=flattened_shapes_key
        )
        open_mode(mode)
        self._setup(Path(out_dir), wrapper_fn, mode, copy_before_wrapper_fn, wait, durable)
        self._reload()

    def _setup(
        self,
        out_dir: Path,
        wrapper_fn: Callable[[Any], Any] | None,
        mode: str,
        copy_before_wrapper_fn: bool,
        wait: bool | float,
        durable: bool,
    ) -> None:
        self.out_dir = out_dir.absolute()  # the same store after an os.chdir
        self.wrapper_fn = wrapper_fn
        self.mode = mode
        self.copy_before_wrapper_fn = copy_before_wrapper_fn
        self.wait = wait
        self.durable = durable
        self._closed = False
        self._store: _native.RaggedStore | None = None
        self._identity: Identity | None = None
        self._gather_buffers = _GatherBuffers()

    def __reduce__(self) -> tuple[Any, ...]:
        options = {
            "wrapper_fn": self.wrapper_fn,
            "mode": self.mode,
            "copy_before_wrapper_fn": self.copy_before_wrapper_fn,
            "wait": self.wait,
            "durable": self.durable,
        }
        return (_reopen, (str(self.out_dir), len(self), self._identity, options))

    def _reload(self, limit: int | None = None) -> None:
        self._use(self._open(limit))

    def _open(self, limit: int | None = None) -> _native.RaggedStore | None:
        """The store as committed now (None when empty or missing: a missing directory is an empty map)."""
        try:
            return _native.RaggedStore.open(self.out_dir, open_mode(self.mode), limit)
        except FileNotFoundError:
            if self.out_dir.exists():
                raise
            return None

    def _use(self, store: _native.RaggedStore | None) -> None:
        self._store = store
        self._identity = None if store is None else store.identity
        self._columns = {}

    def _opened(self) -> _native.RaggedStore | None:
        if self._closed:
            raise ValueError("this RaggedMmap is closed")
        return self._store

    def refresh(self) -> int:
        """Picks up the items committed since this reader opened (or last refreshed) and returns the new length.
        Raises ``StoreReplacedError`` (keeping the snapshot) if the store was replaced meanwhile. The store is
        mapped anew, so a mode ``"c"`` reader's private writes are dropped."""
        store = self._open()
        new = (None, 0) if store is None else (store.identity, len(store))
        require_same_store(self.out_dir, self._identity, len(self), *new)
        self._use(store)
        return len(self)

    def verify(self) -> None:
        """Checks every item's offsets and shape against the files (opening checks only what is O(1)); raises
        ``CorruptStoreError`` naming the faults."""
        store = self._opened()
        require_sound(self.out_dir, [] if store is None else store.verify())

    def close(self) -> None:
        """Releases this reader's mapping; later reads raise ValueError. Arrays it handed out stay valid."""
        self._use(None)
        self._closed = True

    def __enter__(self) -> RaggedMmap:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def dtype(self) -> np.dtype[Any] | None:
        """Element dtype, None while empty."""
        return None if self._store is None else store_dtype(self._store.dtype)

    # More of mmap-ninja 0.9.0's reader attributes (see ``Layout``).
    shapes_key, flattened_shapes_key = _KEYS["shapes_key"], _KEYS["flattened_shapes_key"]

    @property
    def shapes(self) -> np.ndarray | RaggedMmap | None:
        """Each item's shape: when every item is 1-D or 0-d (``shapes_are_flat``), an int64 array shaped (n, 1)
        whose 0-d items have 0; else a read-only RaggedMmap of the shapes (a 0-d item's is ``[0]``)."""
        store = self._opened()
        if store is None:
            return None
        if "shapes" not in self._columns:
            shapes = store.shapes
            self._columns["shapes"] = _Shapes(self, shapes) if isinstance(shapes, _native.RaggedStore) else shapes
        result: np.ndarray | RaggedMmap = self._columns["shapes"]
        return result

    @property
    def flattened_shapes(self) -> np.ndarray | None:
        """Each item's element count (int64; computed from ``starts`` and ``ends``, which it always equals)."""
        starts, ends = self.starts, self.ends
        if starts is None or ends is None:
            return None
        if "flattened_shapes" not in self._columns:
            counts = ends - starts
            counts.flags.writeable = False
            self._columns["flattened_shapes"] = counts
        result: np.ndarray = self._columns["flattened_shapes"]
        return result

    @property
    def shapes_are_flat(self) -> bool | None:
        """True when every item is 1-D or 0-d (``shapes`` is then one array)."""
        store = self._opened()
        return None if store is None else store.is_flat

    @property
    def memmap(self) -> np.ndarray | None:
        """Every item's elements back to back (zero-copy; writable when opened ``mode='r+'`` or ``'c'``)."""
        store = self._opened()
        return None if store is None else store.flat

    @property
    def n(self) -> int:
        """The number of items (``len``)."""
        return len(self)

    def __len__(self) -> int:
        store = self._opened()
        return 0 if store is None else len(store)

    def _wrap(self, res: Any) -> Any:
        if self.copy_before_wrapper_fn:
            res = copy(res)
        return self.wrapper_fn(res)  # type: ignore[misc]

    def get_single(self, item: Any) -> Any:
        store = self._opened()
        if store is None:
            raise IndexError("RaggedMmap is empty!")
        try:
            res = store.get(operator.index(item))
        except OverflowError:
            raise out_of_range(item, len(self)) from None
        return res if self.wrapper_fn is None else self._wrap(res)

    def get_multiple(self, item: Any) -> list[Any]:
        indices = normalize_indices(item, len(self))
        if self._store is None:
            if len(indices):
                raise IndexError("RaggedMmap is empty!")
            return []
        items = self._store.get_many(indices)
        return items if self.wrapper_fn is None else [self._wrap(res) for res in items]

    def gather(self, indices: Any, out: Any = None) -> list[Any]:
        """Copies the selected items into ONE contiguous writable buffer, in parallel and with the GIL released,
        and returns writable views into it (0-d items as 0-d arrays). The buffer is private to the returned
        views: without ``out``, it is a new one or one whose earlier views are all gone. ``out`` (a writable
        C-contiguous buffer, e.g. pinned memory) is filled instead when given."""
        idx = normalize_indices(indices, len(self))
        if self._store is None:
            if len(idx):
                raise IndexError("RaggedMmap is empty!")
            return []
        if isinstance(out, np.ndarray):
            out = exported(out)  # (an array of times exports no buffer; its int64 view does)
        items = self._store.gather(idx, out, self._gather_buffers.take)
        return items if self.wrapper_fn is None else [self.wrapper_fn(x) for x in items]

    def __getitems__(self, indices: Sequence[int]) -> list[Any]:
        """A batch for torch's DataLoader: ``gather`` (writable private copies, one native call)."""
        return self.gather(indices)

    def __getitem__(self, item: Any) -> Any:
        if type(item) is int and self.wrapper_fn is None and (store := self._store) is not None:
            try:
                return store.get(item)
            except OverflowError:
                pass  # an int beyond int64, which get_single reports as out of range
        if np.isscalar(item):
            return self.get_single(item)
        return self.get_multiple(item)

    def __iter__(self) -> Iterator[Any]:
        """The items in order (views, as ``m[i]``), up to the length when iteration started."""
        for i in range(len(self)):
            yield self.get_single(i)

    def _replacement(self, idx: Any, value: Any) -> tuple[np.ndarray, slice, np.ndarray]:
        """The flat buffer, where item ``idx`` lies in it, and ``value`` checked and converted to replace it: the
        item's elements in order (any shape of the same size), or one value that fills the item, as numpy's
        assignment broadcasts a scalar."""
        store = self._opened()
        if store is None:
            raise IndexError("RaggedMmap is empty!")
        start, end, _ = store.locate(operator.index(idx))
        flat = store.flat
        if not flat.flags.writeable:
            raise ValueError("this RaggedMmap was opened read-only; open it with mode='r+' (or 'c') to assign items")
        data = to_store(value, flat.dtype, "value").reshape(-1)
        if data.size == 1:
            data = np.broadcast_to(data, end - start)
        elif data.size != end - start:
            raise ValueError(
                f"item {idx} has {end - start} elements; a replacement must have the same size (or be one value"
                f" that fills it), not {data.size}"
            )
        return flat, slice(start, end), data

    def set_single(self, idx: Any, value: Any) -> None:
        flat, where, data = self._replacement(idx, value)
        flat[where] = data

    def set_multiple(self, item: Any, value: Sequence[Any]) -> None:
        """Replaces the selected items; every value is checked before any is written."""
        indices = normalize_indices(item, len(self))
        if len(value) != len(indices):
            raise ValueError(f"{len(indices)} items selected but {len(value)} values given")
        replacements = [self._replacement(idx, value[i]) for i, idx in enumerate(indices.tolist())]
        for flat, where, data in replacements:
            flat[where] = data

    def __setitem__(self, key: Any, value: Any) -> None:
        if np.isscalar(key):
            self.set_single(key, value)
        else:
            self.set_multiple(key, value)

    def append(self, array: Any) -> None:
        self.extend([array])

    def extend(self, arrays: Iterable[Any]) -> None:
        """Appends items; they become visible together, in one atomic step, to readers that open or refresh."""
        self._opened()
        _write(self.out_dir, arrays, sys.maxsize, self.dtype, False, self.wait, self.durable)
        self._reload()

    def __repr__(self) -> str:
        return f"{super().__repr__()} {'(closed)' if self._closed else f'of length: {len(self)}'}"

    @classmethod
    def from_lists(
        cls,
        out_dir: PathLike,
        lists: Sequence[Any],
        dtype: Any = None,
        mode: str = "r+",
        wrapper_fn: Callable[[Any], Any] | None = None,
        starts_key: str = "starts",
        ends_key: str = "ends",
        shapes_key: str = "shapes",
        flattened_shapes_key: str = "flattened_shapes",
        *,
        wait: bool | float = False,
        durable: bool = False,
    ) -> RaggedMmap:
        """Writes ``lists`` as a new store (replacing any in ``out_dir``, creating parents) and opens it."""
        _check_keys(
            starts_key=starts_key, ends_key=ends_key, shapes_key=shapes_key, flattened_shapes_key=flattened_shapes_key
        )
        _write(out_dir, lists, sys.maxsize, None if dtype is None else store_dtype(dtype), True, wait, durable)
        return cls(out_dir, wrapper_fn=wrapper_fn, mode=mode, wait=wait, durable=durable)

    @classmethod
    def from_generator(
        cls,
        out_dir: PathLike,
        sample_generator: Iterable[Any],
        batch_size: int,
        verbose: bool = False,
        dtype: Any = None,
        mode: str = "r+",
        wrapper_fn: Callable[[Any], Any] | None = None,
        *,
        wait: bool | float = False,
        durable: bool = False,
        **keys: str,
    ) -> RaggedMmap:
        """Builds a new store from a generator. Items stream to disk as they come (memory stays bounded
        whatever ``batch_size``); every ``batch_size`` items are committed, so readers see them."""
        _check_keys(**keys)
        size = check_batch_size(batch_size)
        items = progress(sample_generator, verbose)
        _write(out_dir, items, size, None if dtype is None else store_dtype(dtype), True, wait, durable)
        return cls(out_dir, wrapper_fn=wrapper_fn, mode=mode, wait=wait, durable=durable)

    @classmethod
    def from_indexable(
        cls,
        out_dir: PathLike,
        indexable: Any,
        batch_size: int,
        n_jobs: int | None = None,
        verbose: bool = False,
        *,
        backend: str = "processes",
        dtype: Any = None,
        mode: str = "r+",
        wrapper_fn: Callable[[Any], Any] | None = None,
        wait: bool | float = False,
        durable: bool = False,
        **keys: str,
    ) -> RaggedMmap:
        """Builds a store from ``indexable[i]`` (or ``indexable(i)``) for i = 0, 1, ... until ``len(indexable)``
        or an IndexError/KeyError, as ``from_generator`` (its other arguments); ``n_jobs`` computes items in
        parallel: in worker processes (joblib's loky, as mmap-ninja 0.9.0), which write them straight into
        the store when they can, or with ``backend="threads"`` in threads, which pickle nothing and pay off
        when the item function releases the GIL (image decoding with Pillow or OpenCV, zlib, numpy)."""
        _check_keys(**keys)
        size = check_batch_size(batch_size)
        check_backend(backend)
        source = _IndexableItems(indexable, size, n_jobs, verbose, backend)
        _write(out_dir, source, size, None if dtype is None else store_dtype(dtype), True, wait, durable)
        return cls(out_dir, wrapper_fn=wrapper_fn, mode=mode, wait=wait, durable=durable)


class _Shapes(RaggedMmap):
    """``m.shapes`` of a RaggedMmap whose items are not all 1-D: its items' shapes, read-only and part of that
    reader's snapshot. Shapes are written with their items (``m.extend``), and a nested store read on its own
    could list shapes of items never committed, so it is neither written, refreshed nor pickled by itself."""

    def __init__(self, items: RaggedMmap, store: _native.RaggedStore) -> None:
        self._setup(items.out_dir / items.shapes_key, None, "r", True, False, False)
        self._use(store)
        self._items = items

    def __reduce__(self) -> tuple[Any, ...]:
        return (getattr, (self._items, "shapes"))

    def _refused(self, action: str) -> ValueError:
        return ValueError(f"the shapes of a RaggedMmap cannot be {action} by themselves: use the RaggedMmap")

    def refresh(self) -> int:
        raise self._refused("refreshed")

    def extend(self, arrays: Iterable[Any]) -> None:
        raise self._refused("extended")

    def _replacement(self, idx: Any, value: Any) -> tuple[np.ndarray, slice, np.ndarray]:
        raise self._refused("assigned")

"""Dense stores (the reference's ``numpy`` directories): one array of fixed-shape rows, opened as an
``np.memmap`` that views the mapping the native layer exports (no copy)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any, cast

import numpy as np

from . import _native
from ._dtypes import exported, store_dtype, to_store
from .base import Identity, Mode, PathLike, from_generator_base, open_mode, require_same_store, wait_seconds

_VIEW_ATTRIBUTES = frozenset({"filename", "offset", "mode"})


class _NinjaMemmap(np.memmap):
    """An ``np.memmap`` over the native mapping whose indexing is plain ndarray indexing: np.memmap runs Python
    hooks on every view (about 1 us per row); this costs what an ndarray does. Views find ``filename``,
    ``offset`` and ``mode`` on the store's array instead of copying them (``__getattr__``). Results of ufuncs
    and reductions are plain ndarrays and scalars, and in-place operations keep the array, as with np.memmap."""

    # (path, mode, rows, data file identity) of the whole store, set by `_memmap`; views do not carry it.
    _ninja_store: tuple[str, Mode, int | None, Identity]

    __getitem__ = np.ndarray.__getitem__
    # numpy < 2.5's stubs type ndarray's hook (a no-op taking any object) more narrowly than memmap's.
    __array_finalize__ = np.ndarray.__array_finalize__  # type: ignore[assignment, unused-ignore]

    def __getattr__(self, name: str) -> Any:
        # Only reached for attributes a view lacks: those np.memmap copies to every view sharing its memory.
        if name in _VIEW_ATTRIBUTES and isinstance(self.base, _NinjaMemmap):
            return getattr(self.base, name)
        raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")

    def __array_wrap__(self, arr: Any, context: Any = None, return_scalar: bool = False) -> Any:
        if arr is self:  # the output of an in-place operation (`a += 1`): the same array, still a store's
            return self
        arr = np.asarray(arr).view(np.ndarray)
        return arr[()] if return_scalar else arr

    def __getitems__(self, indices: Sequence[int]) -> list[np.ndarray]:
        """A batch for torch's DataLoader: the rows of one copy, so they are writable (torch warns on read-only
        arrays), gathered by numpy in one call. ``np.take`` copies whole rows where fancy indexing copies them
        element by element: a batch of 256 rows of 64 float32 takes about half the time."""
        return list(np.take(self.view(np.ndarray), np.asarray(indices, dtype=np.intp), axis=0))

    def flush(self) -> None:
        """Writes what was written through a store opened in mode "r+" to disk (msync), as np.memmap's does; in
        mode "c" writes stay private and there is nothing to write."""
        base = self.base
        while isinstance(base, np.ndarray):
            base = base.base
        if isinstance(base, _native.MappedBuffer):
            base.flush()

    def __reduce__(self) -> str | tuple[Any, ...]:
        # The whole store pickles as its path, mode and row count; views of it (which do not carry
        # `_ninja_store`) pickle their data as plain arrays.
        reopen = self.__dict__.get("_ninja_store")
        if reopen is None:
            return np.asarray(self).view(np.ndarray).__reduce__()
        return (_reopen, reopen)

    def __reduce_ex__(self, protocol: Any) -> str | tuple[Any, ...]:
        return self.__reduce__()


def _reopen(out_dir: str, mode: Mode, rows: int | None, identity: Identity | None) -> np.memmap:
    """Unpickles a dense store (or opens a shard): the same store reopened, limited to the rows the pickled
    array had (``identity`` None: whatever store is there now)."""
    store = _native.DenseStore(Path(out_dir), mode=mode)
    shape = tuple(store.shape)
    require_same_store(Path(out_dir), identity, rows or 0, store.identity, shape[0] if shape else 0)
    arr = _memmap(store, Path(out_dir), mode)
    if rows is None or arr.shape[0] <= rows:
        return arr
    limited = cast(_NinjaMemmap, arr[:rows])  # only a _NinjaMemmap pickles through here; slicing keeps the type
    limited.__dict__.update(arr.__dict__)
    limited._ninja_store = (out_dir, mode, rows, store.identity)
    return limited


def _memmap(store: _native.DenseStore, out_dir: Path, mode: Mode) -> np.memmap:
    dtype = store_dtype(store.dtype)
    shape = tuple(store.shape)
    data_file = str((out_dir / "data.ninja").absolute())
    # numpy < 2.5's stubs accept any buffer in frombuffer only on Python >= 3.12.
    flat: np.ndarray = np.frombuffer(store.buffer(), dtype=dtype)  # type: ignore[call-overload, unused-ignore]
    arr = flat.reshape(shape, order=store.order).view(_NinjaMemmap)
    # numpy >= 2.5's stubs make these Final (memmap.__new__ sets them); this view is not made by __new__.
    arr.filename, arr.offset, arr.mode = data_file, 0, mode  # type: ignore[misc, assignment, unused-ignore]
    arr._ninja_store = (str(out_dir), mode, shape[0] if shape else None, store.identity)
    return arr


def open_existing(out_dir: PathLike, mode: str = "r") -> np.memmap:
    """Opens a dense store. ``mode`` "r" gives read-only views, "r+" writable ones, "c" copy-on-write. The
    array pickles as its path, mode and length (a few hundred bytes); views of it pickle their data."""
    native = open_mode(mode, " ('w+' would erase the store: use from_ndarray)")
    out_dir = Path(out_dir).absolute()  # pickles as the same store after an os.chdir
    store = _native.DenseStore(out_dir, mode=native)
    return _memmap(store, out_dir, native)


def from_ndarray(out_dir: PathLike, arr: Any, *, wait: bool | float = False, durable: bool = False) -> np.memmap:
    """Writes ``arr`` as a new dense store (creating parent directories) and opens it writable. The store is
    locked meanwhile (``wait``: see ``RaggedMmap``); ``durable`` fsyncs the commit."""
    data = to_store(arr, None, "array")
    flat, shape = data.reshape(-1), list(data.shape)
    _native.DenseStore.create(Path(out_dir), data.dtype.name, exported(flat), shape, wait_seconds(wait), durable)
    return open_existing(out_dir, mode="r+")


def _empty(out_dir: PathLike, dtype: Any, shape: tuple[int, ...], order: str) -> np.memmap:
    """A zero-filled store of ``shape``, opened writable (``order`` is accepted for compatibility; stores are C)."""
    return from_ndarray(out_dir, np.zeros(shape, dtype=store_dtype(dtype)))


def extend_dir(out_dir: PathLike, arr: Any, *, wait: bool | float = False, durable: bool = False) -> None:
    """Appends the rows of ``arr`` to the store in ``out_dir``; they become visible in one atomic step."""
    out_dir = Path(out_dir)
    store = _native.DenseStore(out_dir)
    shape: Sequence[int] = tuple(store.shape)
    arr = np.asarray(arr)
    if len(shape) == 0 or arr.shape[1:] != shape[1:]:
        raise ValueError(f"Trying to append samples with incorrect shape: {arr.shape[1:]}, expected: {shape[1:]}")
    data = to_store(arr, store_dtype(store.dtype), "array")
    # (An F-order store, written by mmap-ninja 0.9.0, is rewritten in C order under the lock by the core.)
    _native.DenseStore.extend(out_dir, data.dtype.name, exported(data), wait_seconds(wait), durable)


def extend(np_mmap: np.memmap, arr: Any, *, wait: bool | float = False, durable: bool = False) -> None:
    """Appends rows to the store that ``np_mmap`` was opened from."""
    filename = getattr(np_mmap, "filename", None)
    if filename is None:
        raise TypeError("extend needs an np.memmap opened by mmap_ninja (use extend_dir with a directory)")
    extend_dir(Path(filename).parent, arr, wait=wait, durable=durable)


def append(np_mmap: np.memmap, arr: Any, *, wait: bool | float = False, durable: bool = False) -> None:
    """Appends one row."""
    extend(np_mmap, np.expand_dims(np.asarray(arr), axis=0), wait=wait, durable=durable)


def from_generator(
    out_dir: PathLike,
    sample_generator: Iterable[Any],
    batch_size: int,
    verbose: bool = False,
    *,
    wait: bool | float = False,
    durable: bool = False,
) -> np.memmap:
    """Builds a dense store from rows, writing every ``batch_size`` rows; returns the whole array."""
    options: dict[str, Any] = {"wait": wait, "durable": durable}
    from_generator_base(
        out_dir,
        sample_generator,
        batch_size,
        lambda out, batch: from_ndarray(out, batch, **options),
        extend_fn=lambda arr, batch: extend(arr, batch, **options),
        verbose=verbose,
    )
    return open_existing(out_dir, mode="r+")

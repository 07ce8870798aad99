"""Shared pieces: the reference's small file helpers, ``Wrapped``, batched building from generators and
indexables, and index normalisation for slices, lists, integer arrays and boolean masks."""

from __future__ import annotations

import operator
import struct
from collections.abc import Callable, Iterable, Iterator, Sequence
from copy import copy
from pathlib import Path
from typing import Any, Literal, TypeVar

import numpy as np

T = TypeVar("T")
PathLike = str | Path


def _bytes_to_int(inp: bytes, fmt: str = "<i") -> int:
    value: int = struct.unpack(fmt, inp)[0]
    return value


def _int_to_bytes(inp: int, fmt: str = "<i") -> bytes:
    return struct.pack(fmt, inp)


def _bytes_to_str(inp: bytes, encoding: str = "utf-8") -> str:
    return inp.decode(encoding)


def _str_to_bytes(inp: str, encoding: str = "utf-8") -> bytes:
    return inp.encode(encoding)


def _int_to_file(inp: int, file: PathLike, fmt: str = "<i") -> None:
    Path(file).write_bytes(_int_to_bytes(inp, fmt))


def _file_to_int(file: PathLike, fmt: str = "<i") -> int:
    return _bytes_to_int(Path(file).read_bytes(), fmt)


def _str_to_file(inp: str, file: PathLike, encoding: str = "utf-8") -> None:
    Path(file).write_bytes(_str_to_bytes(inp, encoding))


def _file_to_str(file: PathLike, encoding: str = "utf-8") -> str:
    return _bytes_to_str(Path(file).read_bytes(), encoding)


def _shape_to_bytes(shape: Sequence[int], fmt: str = "<Q") -> bytes:
    return b"".join(_int_to_bytes(axis, fmt) for axis in shape)


def _bytes_to_shape(inp: bytes, step: int = 8, fmt: str = "<Q") -> tuple[int, ...]:
    return tuple(_bytes_to_int(inp[i : i + step], fmt) for i in range(0, len(inp) - 1, step))


def _shape_to_file(shape: Sequence[int], file: PathLike) -> None:
    Path(file).write_bytes(_shape_to_bytes(shape))


def _file_to_shape(file: PathLike) -> tuple[int, ...]:
    return _bytes_to_shape(Path(file).read_bytes())


class Wrapped:
    """A lazy map: ``Wrapped(data, fn)[i] == fn(copy(data[i]))``."""

    def __init__(self, data: Any, wrapper_fn: Callable[[Any], Any], copy_before_wrapper_fn: bool = True) -> None:
        self.data = data
        self.wrapper_fn = wrapper_fn
        self.copy_before_wrapper_fn = copy_before_wrapper_fn

    def __getitem__(self, item: Any) -> Any:
        sample = self.data[item]
        if self.copy_before_wrapper_fn:
            sample = copy(sample)
        return self.wrapper_fn(sample)

    def __len__(self) -> int:
        return len(self.data)


Identity = tuple[int, int]


class Layout:
    """mmap-ninja 0.9.0's reader attributes that ``RaggedMmap`` and ``StringsMmap`` share, for code that reads
    the layout itself. Columns are read-only int64 arrays over the mapped files (zero-copy, made on first use
    and kept in ``_columns``, which the reader empties for each snapshot), limited to the reader's snapshot;
    None while the store is empty."""

    out_dir: Path
    _columns: dict[str, Any]
    starts_key, ends_key = "starts", "ends"

    def _opened(self) -> Any:
        """The reader's native store (None while empty); raises ValueError once it is closed."""
        raise NotImplementedError

    def _column(self, name: str) -> np.ndarray | None:
        store = self._opened()
        if store is None:
            return None
        if name not in self._columns:
            self._columns[name] = getattr(store, name)
        column: np.ndarray = self._columns[name]
        return column

    @property
    def starts(self) -> np.ndarray | None:
        """Where each item starts in ``data_file`` (a ragged store counts elements, a string store bytes)."""
        return self._column("starts")

    @property
    def ends(self) -> np.ndarray | None:
        """Where each item ends in ``data_file``."""
        return self._column("ends")

    @property
    def range(self) -> np.ndarray:
        """``np.arange(len(self))``."""
        store = self._opened()
        return np.arange(0 if store is None else len(store), dtype=np.int64)

    @property
    def data_file(self) -> Path:
        """The file holding the items back to back."""
        return self.out_dir / "data.ninja"


# numpy's memmap modes, by their short and long names, to the short names the native layer takes: "r" maps a
# store read-only, "r+" writable (writes reach the file), "c" copy-on-write (writable; writes stay private to
# the process and are lost when the reader closes or refreshes).
Mode = Literal["r", "r+", "c"]
MODES: dict[str, Mode] = {
    "r": "r",
    "readonly": "r",
    "r+": "r+",
    "readwrite": "r+",
    "c": "c",
    "copyonwrite": "c",
}


def open_mode(mode: str, hint: str = "") -> Mode:
    """The native name of ``mode`` (any of ``MODES``); ValueError, followed by ``hint``, for any other."""
    try:
        return MODES[mode]
    except (KeyError, TypeError):
        raise ValueError(f"mode must be one of {sorted(MODES)}, not {mode!r}{hint}") from None


def require_same_store(path: Path, old: Identity | None, old_len: int, new: Identity | None, new_len: int) -> None:
    """Raises ``StoreReplacedError`` unless the store found now (``new``: the device and inode of its data file,
    None when empty) is the one a snapshot of ``old_len`` items was taken of, extended or not. A snapshot of an
    empty store matches any store."""
    if old is not None and (new != old or new_len < old_len):
        from .errors import StoreReplacedError

        raise StoreReplacedError(f"{path} was replaced since this reader opened it; open it again")


def require_sound(path: Path, faults: list[str]) -> None:
    """Raises ``CorruptStoreError`` naming the faults a store's ``verify`` found, if any."""
    if faults:
        from .errors import CorruptStoreError

        raise CorruptStoreError(f"{len(faults)} fault(s), first: {faults[0]}", str(path))


def wait_seconds(wait: bool | float) -> float:
    """A write's ``wait`` option in seconds: False fails when another writer holds the store's lock (after
    50 ms: a child process being started holds a released lock for a moment), True waits until it is free, a
    number waits at most that many seconds."""
    if isinstance(wait, bool):
        return float("inf") if wait else 0.0
    return float(wait)


def check_batch_size(batch_size: int) -> int:
    size = operator.index(batch_size)
    if size < 1:
        raise ValueError(f"batch_size must be a positive integer, not {batch_size!r}")
    return size


def progress(iterable: Iterable[T], verbose: bool, total: int | None = None) -> Iterable[T]:
    """``iterable`` behind a tqdm bar on stderr when ``verbose``."""
    if not verbose:
        return iterable
    from tqdm.auto import tqdm

    return tqdm(iterable, total=total)


def batched(samples: Iterable[T], batch_size: int) -> Iterator[list[T]]:
    batch: list[T] = []
    for sample in samples:
        batch.append(sample)
        if len(batch) == batch_size:
            yield batch
            batch = []
    if batch:
        yield batch


def from_generator_base(
    out_dir: PathLike,
    sample_generator: Iterable[Any],
    batch_size: int,
    batch_ctor: Callable[..., T],
    extend_fn: Callable[[T, list[Any]], None] | None = None,
    verbose: bool = False,
    **kwargs: Any,
) -> T:
    """Builds a store from ``sample_generator``, writing every ``batch_size`` samples; holds one batch at a time.
    The first batch creates the store with ``batch_ctor(out_dir, batch, **kwargs)``; an empty generator
    creates an empty store."""
    size = check_batch_size(batch_size)
    memmap: T | None = None
    for batch in batched(progress(sample_generator, verbose), size):
        if memmap is None:
            memmap = batch_ctor(out_dir, batch, **kwargs)
        elif extend_fn is not None:
            extend_fn(memmap, batch)
        else:
            memmap.extend(batch)  # type: ignore[attr-defined]
        # Drop the written batch now: the loop variable would otherwise keep it alive while the next one
        # is generated, holding two batches at the peak.
        del batch
    if memmap is None:
        memmap = batch_ctor(out_dir, [], **kwargs)
    return memmap


def from_indexable_base(
    out_dir: PathLike,
    indexable: Any,
    batch_size: int,
    batch_ctor: Callable[..., T],
    extend_fn: Callable[[T, list[Any]], None] | None = None,
    n_jobs: int | None = None,
    verbose: bool = False,
    **kwargs: Any,
) -> T:
    """Builds a store from ``indexable[i]`` (or ``indexable(i)``) for i = 0, 1, ... until ``len(indexable)`` or
    an IndexError/KeyError; ``n_jobs`` > 1 computes each batch's items in parallel with joblib."""
    from .parallel import collect_chunks

    size = check_batch_size(batch_size)
    chunks = collect_chunks(indexable, size, n_jobs, verbose)
    return from_generator_base(out_dir, (s for c in chunks for s in c), size, batch_ctor, extend_fn, **kwargs)


def out_of_range(index: int, n: int) -> IndexError:
    """The IndexError for ``index`` in a store of ``n`` items, worded as the native layer words it."""
    return IndexError(f"index {index} is out of range for a store of {n} items")


def normalize_indices(item: Any, n: int) -> np.ndarray:
    """Indices selected by a slice, a sequence of ints, an int array or a boolean mask, as a C-contiguous int64
    array (the native layer checks the range)."""
    if isinstance(item, slice):
        return np.arange(*item.indices(n), dtype=np.int64)
    arr = np.asarray(item)
    if arr.dtype == np.bool_:
        if arr.shape != (n,):
            raise IndexError(f"boolean index of shape {arr.shape} does not match {n} items")
        return np.flatnonzero(arr).astype(np.int64)
    if arr.size == 0:
        return np.empty(0, dtype=np.int64)
    if arr.dtype.kind not in "iu" or arr.ndim != 1:
        raise IndexError(f"only integers, slices, 1-D integer arrays and boolean masks are valid indices, not {item!r}")
    if arr.dtype == np.uint64 and int(arr.max()) >= 2**63:
        raise out_of_range(int(arr.max()), n)
    return np.ascontiguousarray(arr, dtype=np.int64)

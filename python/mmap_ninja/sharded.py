"""Sharded stores: a directory of ordinary stores (shards) of one kind, read as one dataset with global indices.

``shards.ninja``, the manifest, lists the shards in order and is replaced in one rename when a write commits,
so readers see all of a write or none of it. Any process may write a shard (``write_shard``); the store's one
``ShardedWriter`` (which holds its lock) commits them. ``mmap_ninja.dask`` and ``mmap_ninja.ray`` build on this.
Each shard is an ordinary store that mmap-ninja 0.9.0 opens on its own."""

from __future__ import annotations

import contextlib
import operator
import os
import weakref
from collections.abc import Callable, Iterable, Iterator, Sequence
from copy import copy
from itertools import chain
from pathlib import Path
from typing import Any

import numpy as np

from . import _native
from . import numpy as np_ninja
from . import ragged as ragged_ninja
from . import string as string_ninja
from .base import PathLike, check_batch_size, normalize_indices, out_of_range, wait_seconds
from .errors import CorruptStoreError, MmapNinjaError, StoreReplacedError

KINDS = ("ragged", "numpy", "string")
Shard = tuple[str, int]

# Writers open in this process; a forked child lets go of its copies without cleaning up the parent's shards.
_OPEN_WRITERS: weakref.WeakSet[_native.ShardedWriter] = weakref.WeakSet()


def _forget_inherited_writers() -> None:
    for writer in _OPEN_WRITERS:
        # (One forked in the middle of a call is busy in the child for good: see ragged's hook.)
        with contextlib.suppress(RuntimeError):
            writer.forget()
    _OPEN_WRITERS.clear()


os.register_at_fork(after_in_child=_forget_inherited_writers)


def _check_kind(kind: str) -> str:
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {KINDS}, not {kind!r}")
    return kind


def write_shard(
    out_dir: PathLike,
    part: int,
    items: Iterable[Any],
    kind: str = "ragged",
    batch_size: int = 1024,
    durable: bool = False,
) -> Shard | None:
    """Writes ``items`` as a new shard inside the sharded store ``out_dir`` and returns its ``(name, items)``
    for ``ShardedWriter.commit``, or None when there are no items. Runs anywhere (a Dask or Ray worker): the
    shard stays invisible until a commit lists it. ``kind`` "ragged" takes arrays of any shapes, "numpy" an
    array (or rows of one shape), "string" strings."""
    _check_kind(kind)
    batch_size = check_batch_size(batch_size)
    it = iter(items)
    first = next(it, _END)
    if first is _END:
        return None
    path = Path(out_dir) / _native.shard_name(part)
    rows = chain([first], it)
    if kind == "ragged":
        stored: Any = ragged_ninja.RaggedMmap.from_generator(path, rows, batch_size, durable=durable)
    elif kind == "string":
        stored = string_ninja.StringsMmap.from_generator(path, rows, batch_size, durable=durable)
    else:
        block = items if isinstance(items, np.ndarray) else list(rows)  # (a list: its times are checked one by one)
        stored = np_ninja.from_ndarray(path, block, durable=durable)
    return path.name, len(stored)


_END = object()


class ShardedWriter:
    """The one writer of the sharded store in ``out_dir`` (empty, new, or sharded): holds its lock until closed
    (``wait`` as for other stores). Shards written into it meanwhile (``write_shard``, from any process) become
    the store's content in one step with ``commit``; closing removes those no commit listed. A commit replaces
    the whole store: readers that opened the old one keep the shards they mapped, and get
    ``StoreReplacedError`` for shards they open later."""

    def __init__(self, out_dir: PathLike, *, wait: bool | float = False, durable: bool = False) -> None:
        self.out_dir = Path(out_dir).absolute()
        self.durable = durable
        self._writer = _native.ShardedWriter(self.out_dir, wait=wait_seconds(wait), durable=durable)
        _OPEN_WRITERS.add(self._writer)

    def write_shard(
        self, part: int, items: Iterable[Any], kind: str = "ragged", *, batch_size: int = 1024
    ) -> Shard | None:
        """``write_shard`` into this store, in this process."""
        return write_shard(self.out_dir, part, items, kind, batch_size=batch_size, durable=self.durable)

    def commit(self, kind: str, shards: Iterable[Shard | None]) -> str:
        """Makes ``shards`` (``(name, items)`` pairs in order; None entries, empty parts, are skipped) the store's
        content, replacing what it held, and removes the shards it no longer lists. Returns the new generation."""
        listed = [(name, int(items)) for name, items in filter(None, shards)]
        return self._writer.commit(_check_kind(kind), listed)

    def close(self) -> None:
        """Removes the shards written since the last commit, then releases the lock."""
        _OPEN_WRITERS.discard(self._writer)
        self._writer.close()

    def __enter__(self) -> ShardedWriter:
        return self

    def __exit__(self, exc_type: object, *exc: object) -> None:
        try:
            self.close()
        except Exception:
            if exc_type is None:  # never hide the error that ended the write
                raise


def from_partitions(
    out_dir: PathLike,
    partitions: Iterable[Iterable[Any]],
    kind: str = "ragged",
    *,
    batch_size: int = 1024,
    wait: bool | float = False,
    durable: bool = False,
) -> ShardedMmap:
    """Writes each partition as a shard, in this process, and commits them: the serial counterpart of
    ``mmap_ninja.dask.to_ragged``. Replaces whatever sharded store ``out_dir`` held."""
    with ShardedWriter(out_dir, wait=wait, durable=durable) as writer:
        shards = [writer.write_shard(k, part, kind, batch_size=batch_size) for k, part in enumerate(partitions)]
        writer.commit(kind, shards)
    return ShardedMmap(out_dir)


def _reopen(out_dir: str, generation: str | None, options: dict[str, Any]) -> ShardedMmap:
    """Unpickles a ShardedMmap: the same write of the store, or ``StoreReplacedError``."""
    return ShardedMmap(out_dir, _generation=generation, **options)


class ShardedMmap:
    """The sharded store in ``out_dir`` as one sequence: ``len`` is the sum of the shards', indices are global,
    and batches (lists, slices, arrays, masks, ``__getitems__``) may span shards. Items are what the shards'
    own classes return: arrays for ragged and dense shards (a dense batch is one array), str for string ones.

    Shards are opened on first use, so opening costs one small file whatever the store's size. Pickling keeps
    the path and the manifest's generation (a few hundred bytes); unpickling after the store was rewritten
    raises ``StoreReplacedError``, as does reading a shard not yet opened when the store was rewritten."""

    def __init__(
        self,
        out_dir: PathLike,
        wrapper_fn: Callable[[Any], Any] | None = None,
        copy_before_wrapper_fn: bool = True,
        *,
        _generation: str | None = None,
    ) -> None:
        self.out_dir = Path(out_dir).absolute()
        self.wrapper_fn = wrapper_fn
        self.copy_before_wrapper_fn = copy_before_wrapper_fn
        self._manifest = _native.ShardedStore.open(self.out_dir)
        if _generation is not None and self._manifest.generation != _generation:
            raise StoreReplacedError(f"{self.out_dir} was rewritten since this reader opened it; open it again")
        self._listed = self._manifest.shards
        self._shards: list[Any] = [None] * len(self._listed)
        self._closed = False

    def __reduce__(self) -> tuple[Any, ...]:
        options = {"wrapper_fn": self.wrapper_fn, "copy_before_wrapper_fn": self.copy_before_wrapper_fn}
        return (_reopen, (str(self.out_dir), self.generation, options))

    @property
    def kind(self) -> str:
        """ "ragged", "numpy" or "string": the kind of every shard."""
        return self._manifest.kind

    @property
    def generation(self) -> str:
        """Names the write that produced this store; a rewrite has a new one."""
        return self._manifest.generation

    @property
    def shards(self) -> list[Shard]:
        """``(name, items)`` of each shard, in order."""
        return list(self._listed)

    def __len__(self) -> int:
        return len(self._manifest)

    def shard(self, k: int) -> Any:
        """Shard ``k`` (opened on first use, limited to the items the manifest lists): a ``RaggedMmap``, a
        ``StringsMmap`` or an ``np.memmap``."""
        if self._closed:
            raise ValueError("this ShardedMmap is closed")
        opened = self._shards[k]
        if opened is None:
            opened = self._shards[k] = self._open_shard(k)
        return opened

    def _open_shard(self, k: int) -> Any:
        """Shard ``k`` checked against the manifest. A shard that is gone or changed because the store was
        rewritten since this reader opened raises ``StoreReplacedError``; otherwise ``CorruptStoreError``."""
        name, items = self._listed[k]
        path = self.out_dir / name
        try:
            if not path.is_dir():
                raise CorruptStoreError(f"shard {name!r} listed in shards.ninja is missing", str(path))
            try:
                kind = _native.store_kind(path)
            except FileNotFoundError:
                raise CorruptStoreError(f"shard {name!r} has no type.ninja", str(path)) from None
            if kind != self.kind:
                raise CorruptStoreError(
                    f"shard {name!r} holds a {kind} store; shards.ninja lists {self.kind} shards", str(path)
                )
            opened = self._open_kind(path, items)
            if self.kind == "numpy" and k:
                self._require_rows_like_first(name, opened)
            if len(opened) < items:
                raise CorruptStoreError(
                    f"shard {name!r} holds {len(opened)} items; shards.ninja lists {items}", str(path)
                )
        except (OSError, MmapNinjaError, ValueError) as exc:
            try:
                rewritten = _native.ShardedStore.open(self.out_dir).generation != self.generation
            except (OSError, MmapNinjaError):
                rewritten = True
            if rewritten:
                raise StoreReplacedError(
                    f"{self.out_dir} was rewritten since this reader opened it; open it again"
                ) from exc
            raise
        return opened

    def _open_kind(self, path: Path, items: int) -> Any:
        if self.kind == "ragged":
            return ragged_ninja._reopen(str(path), items, None, {**_RAGGED_OPTIONS})
        if self.kind == "string":
            return string_ninja._reopen(str(path), items, None, {"mode": "rb", "wait": False, "durable": False})
        rows = np_ninja._reopen(str(path), "r", items, None)
        if rows.ndim == 0:
            raise CorruptStoreError("a dense shard must have rows, not be 0-d", str(path))
        return rows

    def _require_rows_like_first(self, name: str, rows: np.ndarray) -> None:
        first = self.shard(0)
        if (rows.dtype, rows.shape[1:]) != (first.dtype, first.shape[1:]):
            raise CorruptStoreError(
                f"shard {name!r} holds {rows.dtype} rows of shape {rows.shape[1:]}; the first shard's are "
                f"{first.dtype} rows of shape {first.shape[1:]}",
                str(self.out_dir / name),
            )

    def _wrap(self, item: Any) -> Any:
        if self.wrapper_fn is None:
            return item
        return self.wrapper_fn(copy(item) if self.copy_before_wrapper_fn else item)

    def __getitem__(self, item: Any) -> Any:
        if np.isscalar(item):
            return self._get_single(item)
        return self._batch(normalize_indices(item, len(self)), copies=False)

    def _get_single(self, item: Any) -> Any:
        index = operator.index(item)  # TypeError for a float or a str, as RaggedMmap
        if not -(2**63) <= index < 2**63:
            raise out_of_range(index, len(self))
        k, local = self._manifest.locate(index)
        return self._wrap(self.shard(k)[local])

    def __getitems__(self, indices: Sequence[int]) -> list[Any]:
        """A batch for torch's DataLoader, located in one native call: writable copies for array shards (each
        shard's part gathered at once), str for string shards."""
        return list(self._batch(normalize_indices(indices, len(self)), copies=True))

    def _batch(self, indices: np.ndarray, copies: bool) -> Any:
        groups = self._manifest.group(indices)
        if self.kind == "numpy" and self.wrapper_fn is None and self._listed:
            # Every shard's rows share shard 0's dtype and shape (checked when each is opened).
            first = self.shard(0)
            rows: np.ndarray = np.empty((len(indices), *first.shape[1:]), dtype=first.dtype)
            for k, local, positions in groups:
                rows[positions] = self.shard(k)[local]
            return rows
        out: list[Any] = [None] * len(indices)
        for k, local, positions in groups:
            shard = self.shard(k)
            part = shard.__getitems__(local) if copies and self.kind == "ragged" else shard[local]
            for position, item in zip(positions, part, strict=True):
                out[position] = self._wrap(item)
        return out

    def __iter__(self) -> Iterator[Any]:
        for k, (_, items) in enumerate(self._listed):
            shard = self.shard(k)
            for local in range(items):
                yield self._wrap(shard[local])

    def close(self) -> None:
        """Closes the shards opened so far (views already handed out stay valid); later reads raise ValueError."""
        for shard in self._shards:
            if shard is not None and hasattr(shard, "close"):
                shard.close()
        self._shards = [None] * len(self._shards)
        self._closed = True

    def __enter__(self) -> ShardedMmap:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"ShardedMmap({str(self.out_dir)!r}, kind={self.kind!r}, shards={len(self._listed)}, items={len(self)})"


_RAGGED_OPTIONS: dict[str, Any] = {
    "wrapper_fn": None,
    "mode": "r",
    "copy_before_wrapper_fn": True,
    "wait": False,
    "durable": False,
}

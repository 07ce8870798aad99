"""``StringsMmap``: a list of str stored as UTF-8 (optionally one zstd frame per item), decoded natively."""

from __future__ import annotations

import operator
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from . import _native
from .base import (
    Identity,
    Layout,
    PathLike,
    from_generator_base,
    normalize_indices,
    out_of_range,
    progress,
    require_same_store,
    require_sound,
    wait_seconds,
)

_WRITABLE = {"rb": False, "r": False, "r+b": True, "r+": True}


def _checked(strings: Iterable[Any], verbose: bool) -> list[str]:
    items = list(progress(strings, verbose))
    for k, s in enumerate(items):
        if not isinstance(s, str):
            raise TypeError(f"StringsMmap stores str; item {k} is {type(s).__name__}")
    return items


def _reopen(out_dir: str, length: int, identity: Identity | None, options: dict[str, Any]) -> StringsMmap:
    """Unpickles a StringsMmap: the same store reopened, limited to the strings the pickled reader saw."""
    strings = StringsMmap.__new__(StringsMmap)
    strings._setup(Path(out_dir), **options)
    strings._reload(length)
    require_same_store(strings.out_dir, identity, length, strings._identity, len(strings))
    return strings


class StringsMmap(Layout):
    """A list of strings stored in ``out_dir``. A missing or empty directory is an empty list.

    Like ``RaggedMmap``: a reader is a snapshot (``refresh()`` picks up appended strings), writes lock the
    store (``wait``), ``durable`` fsyncs every commit, and pickling stores only the path and options."""

    def __init__(
        self,
        out_dir: PathLike,
        mode: str = "r+b",
        starts_key: str = "starts",
        ends_key: str = "ends",
        *,
        wait: bool | float = False,
        durable: bool = False,
    ) -> None:
        if (starts_key, ends_key) != ("starts", "ends"):
            raise ValueError("custom starts_key/ends_key are not supported: stores use the standard directory names")
        if mode not in _WRITABLE:
            raise ValueError(f"mode must be one of {sorted(_WRITABLE)}, not {mode!r}")
        self._setup(Path(out_dir), mode, wait, durable)
        self._reload()

    def _setup(self, out_dir: Path, mode: str, wait: bool | float, durable: bool) -> None:
        self.out_dir = out_dir.absolute()  # the same store after an os.chdir
        self.mode = mode
        self.wait = wait
        self.durable = durable
        self._closed = False
        self._store: _native.StringStore | None = None
        self._identity: Identity | None = None

    def __reduce__(self) -> tuple[Any, ...]:
        options = {"mode": self.mode, "wait": self.wait, "durable": self.durable}
        return (_reopen, (str(self.out_dir), len(self), self._identity, options))

    def _reload(self, limit: int | None = None) -> None:
        self._use(_native.StringStore.open(self.out_dir, limit) if self.out_dir.exists() else None)

    def _use(self, store: _native.StringStore | None) -> None:
        self._store = store
        self._identity = None if store is None else store.identity
        self._columns = {}

    def refresh(self) -> int:
        """Picks up the strings committed since this reader opened (or last refreshed) and returns the new
        length. Raises ``StoreReplacedError`` (keeping the snapshot) if the store was replaced meanwhile."""
        store = _native.StringStore.open(self.out_dir) if self.out_dir.exists() else None
        new = (None, 0) if store is None else (store.identity, len(store))
        require_same_store(self.out_dir, self._identity, len(self), *new)
        self._use(store)
        return len(self)

    def verify(self) -> None:
        """Decodes every string (offsets, zstd frames, UTF-8); raises ``CorruptStoreError`` naming the faults."""
        store = self._opened()
        require_sound(self.out_dir, [] if store is None else store.verify())

    def _opened(self) -> _native.StringStore | None:
        if self._closed:
            raise ValueError("StringsMmap is closed")
        return self._store

    def __len__(self) -> int:
        store = self._opened()
        return 0 if store is None else len(store)

    def get_single(self, item: Any) -> str:
        store = self._opened()
        if store is None:
            raise IndexError("StringsMmap is empty!")
        try:
            return store.get(operator.index(item))
        except OverflowError:
            raise out_of_range(item, len(store)) from None

    def get_multiple(self, item: Any) -> list[str]:
        store = self._opened()
        indices = normalize_indices(item, 0 if store is None else len(store))
        if store is None:
            if len(indices):
                raise IndexError("StringsMmap is empty!")
            return []
        return store.get_many(indices)

    def __getitems__(self, indices: Sequence[int]) -> list[str]:
        """A batch for torch's DataLoader, decoded in one native call."""
        return self.get_multiple(indices)

    def __getitem__(self, item: Any) -> Any:
        if type(item) is int and (store := self._store) is not None:
            try:
                return store.get(item)
            except OverflowError:
                pass  # an int beyond int64, which get_single reports as out of range
        if np.isscalar(item):
            return self.get_single(item)
        return self.get_multiple(item)

    def __iter__(self) -> Iterator[str]:
        """The strings in order, up to the length when iteration started."""
        for i in range(len(self)):
            yield self.get_single(i)

    def _set(self, indices: list[int], values: list[str]) -> None:
        """Writes ``values`` over the strings at ``indices``, all checked first, under one hold of the lock."""
        store = self._opened()
        if store is None:
            raise IndexError("StringsMmap is empty!")
        if not _WRITABLE[self.mode]:
            raise ValueError("this StringsMmap was opened read-only (mode='rb')")
        store.set(indices, values, wait=wait_seconds(self.wait))

    def set_single(self, idx: Any, new_value: str) -> None:
        self._set([operator.index(idx)], [new_value])

    def set_multiple(self, key: Any, value: Sequence[str]) -> None:
        """Every replacement is checked before any is written, then all are written under one lock."""
        indices = normalize_indices(key, len(self)).tolist()
        if len(value) != len(indices):
            raise ValueError(f"{len(indices)} items selected but {len(value)} values given")
        if indices:
            self._set(indices, list(value))

    def __setitem__(self, key: Any, value: Any) -> None:
        if np.isscalar(key):
            self.set_single(key, value)
        else:
            self.set_multiple(key, value)

    def extend(self, list_of_strings: Iterable[str], verbose: bool = False) -> None:
        """Appends strings; they become visible together, in one atomic step."""
        self._opened()
        strings = _checked(list_of_strings, verbose)
        _native.StringStore.extend(self.out_dir, strings, wait_seconds(self.wait), self.durable)
        self._reload()

    def append(self, string: str) -> None:
        self.extend([string])

    def close(self) -> None:
        """Releases the mapping; later reads raise ValueError."""
        self._use(None)
        self._closed = True

    def __repr__(self) -> str:
        return f"{super().__repr__()} of length: {0 if self._store is None else len(self._store)}"

    @classmethod
    def from_strings(
        cls,
        out_dir: PathLike,
        strings: Sequence[str],
        mode: str = "r+b",
        starts_key: str = "starts",
        ends_key: str = "ends",
        verbose: bool = False,
        zstd_level: int | None = None,
        zstd_train_dictionary_size: int | None = None,
        *,
        wait: bool | float = False,
        durable: bool = False,
    ) -> StringsMmap:
        """Writes ``strings`` as a new store (replacing any in ``out_dir``, creating parents). With
        ``zstd_level`` every string is one zstd frame, optionally with a dictionary trained on the strings."""
        items = _checked(strings, verbose)
        level, size = zstd_level, zstd_train_dictionary_size
        _native.StringStore.create(Path(out_dir), items, level, size, wait_seconds(wait), durable)
        return cls(out_dir, mode=mode, starts_key=starts_key, ends_key=ends_key, wait=wait, durable=durable)

    @classmethod
    def from_generator(
        cls, out_dir: PathLike, sample_generator: Iterable[str], batch_size: int, verbose: bool = False, **kwargs: Any
    ) -> StringsMmap:
        """Builds a store from a generator of strings, writing every ``batch_size`` items."""
        strings: StringsMmap = from_generator_base(
            out_dir, sample_generator, batch_size, cls.from_strings, verbose=verbose, **kwargs
        )
        return strings

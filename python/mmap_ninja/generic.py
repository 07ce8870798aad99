"""``open_existing``: opens any store by the kind written in its ``type.ninja``, or a sharded store."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from . import _native
from . import numpy as np_ninja
from .base import PathLike, Wrapped
from .ragged import RaggedMmap
from .sharded import ShardedMmap
from .string import StringsMmap


def open_existing(out_dir: PathLike, wrapper_fn: Callable[[Any], Any] | None = None, mode: str = "r+b") -> Any:
    """Opens the store in ``out_dir``: an ``np.memmap`` (numpy), a ``RaggedMmap``, a ``StringsMmap`` or, for a
    sharded store, a ``ShardedMmap``. A missing directory raises FileNotFoundError; an unknown type a
    ValueError (CorruptStoreError)."""
    out_dir = Path(out_dir)
    kind = _native.store_kind(out_dir)
    if kind == "sharded":
        return ShardedMmap(out_dir, wrapper_fn=wrapper_fn)
    if kind == "ragged":
        return RaggedMmap(out_dir, wrapper_fn=wrapper_fn)
    data: Any = np_ninja.open_existing(out_dir) if kind == "numpy" else StringsMmap(out_dir, mode=mode)
    return data if wrapper_fn is None else Wrapped(data, wrapper_fn)

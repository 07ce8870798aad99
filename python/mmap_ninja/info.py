"""What the ``info`` and ``check`` commands report about a store directory."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from . import _native
from . import numpy as np_ninja
from .errors import MmapNinjaError
from .ragged import RaggedMmap
from .sharded import ShardedMmap
from .string import StringsMmap


def disk_bytes(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def _shape_summary(shapes: list[tuple[int, ...]]) -> str:
    if not shapes:
        return "-"
    by_ndim: dict[int, list[tuple[int, ...]]] = {}
    for s in shapes:
        by_ndim.setdefault(len(s), []).append(s)
    parts = []
    for ndim, group in sorted(by_ndim.items()):
        axes = np.array(group, dtype=np.int64).reshape(len(group), ndim)
        dims = ", ".join(
            f"{lo}..{hi}" if lo != hi else f"{lo}" for lo, hi in zip(axes.min(0), axes.max(0), strict=True)
        )
        parts.append(f"{len(group)} x ({dims})")
    return "; ".join(parts)


def describe(path: Path) -> dict[str, Any]:
    """Type, item count, dtype, per-axis min..max of the item shapes, and bytes on disk."""
    kind = _native.store_kind(path)
    info: dict[str, Any] = {"type": kind}
    if kind == "sharded":
        sharded = ShardedMmap(path)
        info.update({"shard type": sharded.kind, "shards": len(sharded.shards), "items": len(sharded)})
    elif kind == "numpy":
        arr = np_ninja.open_existing(path)
        info.update(items=arr.shape[0] if arr.ndim else 1, dtype=arr.dtype.name, shape=tuple(arr.shape))
    elif kind == "ragged":
        ragged = RaggedMmap(path)
        shapes = [np.shape(item) for item in ragged[:]]
        info.update(items=len(ragged), dtype=getattr(ragged.dtype, "name", "-"), shapes=_shape_summary(shapes))
    else:
        strings = StringsMmap(path, mode="rb")
        info.update(items=len(strings), compressed=(path / "zstd_level.ninja").exists())
    info["bytes on disk"] = disk_bytes(path)
    return info


def check(path: Path, max_faults: int = 100) -> list[str]:
    """Up to ``max_faults`` faults found by opening the store and checking every item (offsets, shapes, zstd
    frames, UTF-8), one line each; empty when sound."""
    try:
        kind = _native.store_kind(path)
        if kind == "sharded":
            return _check_shards(ShardedMmap(path), max_faults)
        if kind == "numpy":
            _native.DenseStore(path)  # opening validates dtype, shape and the data file's size
            return []
        store: Any = _native.RaggedStore.open(path) if kind == "ragged" else _native.StringStore.open(path)
    except (OSError, ValueError, TypeError) as exc:
        return [str(exc)]
    return [] if store is None else list(store.verify(max_faults))


def _check_shards(store: ShardedMmap, max_faults: int) -> list[str]:
    """Each shard opened as the manifest lists it, then checked like a store of its own."""
    faults: list[str] = []
    for k, (name, _) in enumerate(store.shards):
        try:
            store.shard(k)
        except (OSError, ValueError, MmapNinjaError) as exc:  # (StoreReplacedError: rewritten meanwhile)
            faults.append(str(exc))
            continue
        faults += [f"{name}: {fault}" for fault in check(store.out_dir / name, max_faults)]
    return faults[:max_faults]

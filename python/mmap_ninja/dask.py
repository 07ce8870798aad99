"""Dask: sharded stores written in parallel on Dask's workers and read back as bags and arrays
(``pip install 'mmap_ninja[dask]'``).

Each partition of a bag (chunk of an array, along axis 0) is written as one shard by the worker that computes
it; the calling process holds the store's lock and commits the manifest once every shard is written, so a
failed task leaves nothing visible and re-running a write replaces the store in one step. Any scheduler
works: threads, processes, or a ``dask.distributed`` cluster whose workers see ``out_dir`` (local or shared
storage). Extra keyword arguments go to ``dask.compute`` (e.g. ``scheduler="processes"``)."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

import dask.array as da
import dask.bag as db
from dask.base import compute
from dask.delayed import Delayed, delayed

from .base import PathLike
from .sharded import ShardedMmap, ShardedWriter, write_shard


def _write(
    out_dir: PathLike,
    kind: str,
    parts: Iterable[Delayed],
    batch_size: int,
    wait: bool | float,
    durable: bool,
    compute_kwargs: dict[str, Any],
) -> ShardedMmap:
    with ShardedWriter(out_dir, wait=wait, durable=durable) as writer:
        root = str(writer.out_dir)
        write = delayed(write_shard, pure=False)
        tasks = [write(root, k, part, kind, batch_size=batch_size, durable=durable) for k, part in enumerate(parts)]
        writer.commit(kind, compute(*tasks, **compute_kwargs))
    return ShardedMmap(out_dir)


def to_ragged(
    bag: db.Bag,
    out_dir: PathLike,
    *,
    batch_size: int = 1024,
    wait: bool | float = False,
    durable: bool = False,
    **compute_kwargs: Any,
) -> ShardedMmap:
    """Writes the items of ``bag`` (arrays of any shapes, or lists) as a sharded ragged store, one shard per
    non-empty partition, in order; returns it opened. ``wait``/``durable`` as for other stores."""
    return _write(out_dir, "ragged", bag.to_delayed(), batch_size, wait, durable, compute_kwargs)


def to_dense(
    array: da.Array, out_dir: PathLike, *, wait: bool | float = False, durable: bool = False, **compute_kwargs: Any
) -> ShardedMmap:
    """Writes ``array`` as a sharded dense store, one shard per chunk along axis 0 (other axes are joined into
    whole rows first); returns it opened."""
    if array.ndim == 0:
        raise ValueError("a 0-d array has no rows to shard")
    whole_rows = array.rechunk({axis: -1 for axis in range(1, array.ndim)})
    blocks = whole_rows.to_delayed().ravel()
    return _write(out_dir, "numpy", blocks, 1, wait, durable, compute_kwargs)


def _shard(out_dir: str, generation: str, k: int) -> Any:
    """Shard ``k`` of the store, as the write ``generation`` left it (a zero-copy reader that pickles small)."""
    return ShardedMmap(out_dir, _generation=generation).shard(k)


def _opened(out_dir: PathLike, kind: str) -> ShardedMmap:
    store = ShardedMmap(Path(out_dir).absolute())
    if store.kind != kind:
        raise ValueError(f"{out_dir} holds {store.kind} shards, not {kind} ones")
    return store


def from_ragged(out_dir: PathLike) -> db.Bag:
    """The sharded ragged (or string) store in ``out_dir`` as a bag with one partition per shard. Partitions
    are the shards themselves (``RaggedMmap``/``StringsMmap``): zero-copy, and a few hundred bytes when
    shipped to another process."""
    store = ShardedMmap(Path(out_dir).absolute())
    if store.kind == "numpy":
        raise ValueError(f"{out_dir} holds dense shards: use from_dense")
    if not store.shards:
        return db.from_sequence([], npartitions=1)
    shard = delayed(_shard, pure=True)
    return db.from_delayed([shard(str(store.out_dir), store.generation, k) for k in range(len(store.shards))])


def from_dense(out_dir: PathLike) -> da.Array:
    """The sharded dense store in ``out_dir`` as a dask array with one chunk per shard along axis 0. Chunks
    are the shards' memory maps (zero-copy, small when shipped to another process)."""
    store = _opened(out_dir, "numpy")
    if not store.shards:
        raise ValueError(f"{out_dir} has no shards, so no dtype or row shape to build an array from")
    first = store.shard(0)
    shard = delayed(_shard, pure=True)
    chunks = [
        da.from_delayed(
            shard(str(store.out_dir), store.generation, k), shape=(items, *first.shape[1:]), dtype=first.dtype
        )
        for k, (_, items) in enumerate(store.shards)
    ]
    return da.concatenate(chunks, axis=0)

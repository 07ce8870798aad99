"""Dask: sharded stores written in parallel on Dask's workers and read back as bags and arrays
(``pip install 'mmap_ninja[dask]'``).

Each partition of a bag is written as one shard by the task that computes it (Dask fuses the two, so no item
leaves the worker that made it); each chunk of an array, along axis 0, by a ``map_blocks`` task over it. The
calling process holds the store's lock and commits the manifest once every shard is written, so a failed task
leaves nothing visible and re-running a write replaces the store in one step. Any scheduler works: threads,
processes, or a ``dask.distributed`` cluster whose workers see ``out_dir`` (local or shared storage). Extra
keyword arguments go to ``compute`` (e.g. ``scheduler="processes"``; with it, ``chunksize`` defaults to 1)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import dask.array as da
import dask.bag as db
import numpy as np
from dask.base import tokenize
from dask.delayed import delayed
from dask.highlevelgraph import HighLevelGraph

from .base import PathLike
from .sharded import ShardedMmap, ShardedWriter, write_shard


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
    with ShardedWriter(out_dir, wait=wait, durable=durable) as writer:
        root = str(writer.out_dir)
        # Partition k's shard is written by a task that depends on partition k alone, so Dask fuses it with the
        # tasks computing the partition: no item travels between processes.
        name = "mmap-ninja-to-ragged-" + tokenize(bag.name, root, batch_size, durable)
        tasks: dict[Any, Any] = {
            (name, k): (_write_partition, (bag.name, k), k, root, batch_size, durable) for k in range(bag.npartitions)
        }
        graph = HighLevelGraph.from_collections(name, tasks, dependencies=[bag])  # type: ignore[list-item]
        written = db.Bag(graph, name, bag.npartitions)
        writer.commit("ragged", written.compute(**_one_task_at_a_time(compute_kwargs)))
    return ShardedMmap(out_dir)


def _one_task_at_a_time(compute_kwargs: dict[str, Any]) -> dict[str, Any]:
    """``compute`` options: Dask's local processes scheduler hands its workers 6 ready tasks at a time by
    default, so 6 partitions or fewer would all go to one worker; a write task is a whole partition, so it
    hands out one at a time unless told otherwise."""
    if compute_kwargs.get("scheduler") in ("processes", "multiprocessing"):
        return {"chunksize": 1, **compute_kwargs}
    return compute_kwargs


def _write_partition(items: Iterable[Any], k: int, out_dir: str, batch_size: int, durable: bool) -> list[Any]:
    """Partition ``k`` written as a shard; a bag partition (a list) holding its ``(name, items)`` or None."""
    return [write_shard(out_dir, k, items, "ragged", batch_size, durable)]


def to_dense(
    array: da.Array, out_dir: PathLike, *, wait: bool | float = False, durable: bool = False, **compute_kwargs: Any
) -> ShardedMmap:
    """Writes ``array`` as a sharded dense store, one shard per chunk along axis 0 (other axes are joined into
    whole rows first), each written by the task that computes it; returns it opened."""
    if array.ndim == 0:
        raise ValueError("a 0-d array has no rows to shard")
    whole_rows = array.rechunk({axis: -1 for axis in range(1, array.ndim)})
    with ShardedWriter(out_dir, wait=wait, durable=durable) as writer:
        written = whole_rows.map_blocks(
            _write_block,
            str(writer.out_dir),
            durable,
            chunks=((1,) * whole_rows.numblocks[0],),
            drop_axis=list(range(1, array.ndim)),
            dtype=object,
            meta=np.empty(0, dtype=object),
        )
        writer.commit("numpy", list(written.compute(**_one_task_at_a_time(compute_kwargs))))
    return ShardedMmap(out_dir)


def _write_block(
    block: np.ndarray, out_dir: str, durable: bool, block_info: dict[Any, Any] | None = None
) -> np.ndarray:
    """Writes one chunk as shard k (its position along axis 0); the shard's ``(name, rows)`` in a 1-element
    object array, the chunk ``map_blocks`` expects."""
    part = 0 if block_info is None else block_info[0]["chunk-location"][0]
    shard = np.empty(1, dtype=object)
    shard[0] = write_shard(out_dir, part, block, "numpy", durable=durable)
    return shard


def _shard(out_dir: str, generation: str, k: int) -> Any:
    """Shard ``k`` of the store, as the write ``generation`` left it (a zero-copy reader that pickles small)."""
    return ShardedMmap(out_dir, _generation=generation).shard(k)


def _opened(out_dir: PathLike, kinds: tuple[str, ...], other: str) -> ShardedMmap:
    """The sharded store in ``out_dir``, whose shards must be of one of ``kinds`` (``other`` says what to use
    instead)."""
    store = ShardedMmap(out_dir)
    if store.kind not in kinds:
        held = "dense" if store.kind == "numpy" else store.kind
        raise ValueError(f"{out_dir} holds {held} shards: use {other}")
    return store


def from_ragged(out_dir: PathLike) -> db.Bag:
    """The sharded ragged (or string) store in ``out_dir`` as a bag with one partition per shard. Partitions
    are the shards themselves (``RaggedMmap``/``StringsMmap``): zero-copy, and a few hundred bytes when
    shipped to another process."""
    store = _opened(out_dir, ("ragged", "string"), "from_dense")
    if not store.shards:
        return db.from_sequence([], npartitions=1)
    shard = delayed(_shard, pure=True)
    return db.from_delayed([shard(str(store.out_dir), store.generation, k) for k in range(len(store.shards))])


def from_dense(out_dir: PathLike) -> da.Array:
    """The sharded dense store in ``out_dir`` as a dask array with one chunk per shard along axis 0. Chunks
    are the shards' memory maps (zero-copy, small when shipped to another process)."""
    store = _opened(out_dir, ("numpy",), "from_ragged")
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

"""Ray Data: sharded stores written by Ray's write tasks and read back with one read task per shard
(``pip install 'mmap_ninja[ray]'``).

``ds.write_datasink(ShardedDatasink(path))`` writes each block of ``ds`` as one shard, on the worker that
writes it; the driver holds the store's lock from the first block on and commits the manifest, in block
order, once every write task has succeeded, so a failed write leaves the previous store as it was and
re-running one replaces the store in one step. ``ray.data.read_datasource(ShardedDatasource(path))`` reads a
sharded store back: one read task per shard, rows with one column (``"item"``). Workers must see ``path``
(local disk on one machine, or shared storage).

Rows are committed in the order of Ray's write tasks, which is the dataset's order when its execution keeps
order (every stage fused into the write, or ``DataContext.execution_options.preserve_order = True``)."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import numpy as np
import pyarrow as pa
from ray.data import DataContext, Datasink, Datasource, ReadTask
from ray.data.block import Block, BlockAccessor, BlockMetadata
from ray.data.datasource import WriteResult
from ray.data.extensions import ArrowVariableShapedTensorArray

from .base import PathLike, check_batch_size
from .sharded import KINDS, Shard, ShardedMmap, ShardedWriter, write_shard

if TYPE_CHECKING:
    from ray.data._internal.execution.interfaces import TaskContext

# What one write task returns: its index (the order of its blocks in the dataset) and its blocks' shards.
_WriteReturn = tuple[int, list[Shard | None]]


class ShardedDatasink(Datasink[_WriteReturn]):  # type: ignore[misc, unused-ignore]
    """Writes a dataset as the sharded store in ``path`` (empty, new, or sharded; replaced on success), one
    shard per non-empty block, from the values of ``column``. ``kind`` "ragged" takes arrays of any shapes
    (a tensor column, fixed or variable-shaped), "numpy" rows of one shape and dtype, "string" strings.
    ``batch_size`` (items per append), ``wait`` (for another writer's lock) and ``durable`` as for other
    stores. The lock is taken on the driver when the first block arrives and never leaves it."""

    def __init__(
        self,
        path: PathLike,
        *,
        kind: str = "ragged",
        column: str = "item",
        batch_size: int = 1024,
        wait: bool | float = False,
        durable: bool = False,
    ) -> None:
        if kind not in KINDS:
            raise ValueError(f"kind must be one of {KINDS}, not {kind!r}")
        self.path = Path(path).absolute()
        self.kind = kind
        self.column = column
        self.batch_size = check_batch_size(batch_size)
        self.wait = wait
        self.durable = durable
        self._writer: ShardedWriter | None = None

    def __getstate__(self) -> dict[str, Any]:
        # Write tasks get the settings only: the writer (the lock) belongs to the driver's process.
        return {**self.__dict__, "_writer": None}

    def on_write_start(self, schema: Any = None) -> None:
        names = getattr(schema, "names", None)
        if names is not None and self.column not in names:
            raise ValueError(f"the dataset has no column {self.column!r} (its columns: {list(names)})")
        self._writer = ShardedWriter(self.path, wait=self.wait, durable=self.durable)

    def write(self, blocks: Iterable[Block], ctx: TaskContext) -> _WriteReturn:
        shards = [
            write_shard(self.path, ctx.task_idx, items, self.kind, batch_size=self.batch_size, durable=self.durable)
            for items in map(self._items, blocks)
        ]
        return ctx.task_idx, shards

    def _items(self, block: Block) -> Any:
        accessor = BlockAccessor.for_block(block)
        if accessor.num_rows() == 0:
            return []
        values = cast(np.ndarray, accessor.to_numpy(self.column))  # one column: an array, not a dict
        if self.kind == "numpy" and values.dtype == object:  # a variable-shaped column whose rows agree
            return np.stack(list(values))
        if self.kind == "string":
            return values.tolist()
        return values

    def on_write_complete(self, write_result: WriteResult[_WriteReturn]) -> None:
        writer, self._writer = self._writer, None
        if writer is None:  # no block at all (an empty dataset): on_write_start never ran, yet the store is replaced
            writer = ShardedWriter(self.path, wait=self.wait, durable=self.durable)
        try:
            tasks = sorted(write_result.write_returns, key=lambda task: task[0])
            writer.commit(self.kind, [shard for _, shards in tasks for shard in shards])
        finally:
            writer.close()

    def on_write_failed(self, error: Exception) -> None:
        # Removes the shards the failed write left (those of tasks still running when Ray gave up may appear
        # later: unlisted, never read, and removed by the store's next writer).
        writer, self._writer = self._writer, None
        if writer is not None:
            writer.close()


class ShardedDatasource(Datasource):  # type: ignore[misc, unused-ignore]
    """The sharded store in ``path``, as the write that produced it when this was created: one read task per
    shard, yielding blocks (of about ``DataContext.target_max_block_size``) with one ``column``: tensors,
    variable-shaped for ragged stores, rows of one shape for dense ones, strings for string ones. Reading
    after the store was rewritten raises ``StoreReplacedError``."""

    def __init__(self, path: PathLike, *, column: str = "item") -> None:
        super().__init__()  # type: ignore[no-untyped-call, unused-ignore]
        self.path = Path(path).absolute()
        self.column = column
        store = ShardedMmap(self.path)
        self.kind = store.kind
        self.generation = store.generation
        self.shards = store.shards
        self._sizes = [_disk_size(self.path / name) for name, _ in self.shards]

    def estimate_inmemory_data_size(self) -> int | None:
        return sum(self._sizes)

    def get_read_tasks(
        self, parallelism: int, per_task_row_limit: int | None = None, data_context: DataContext | None = None
    ) -> list[ReadTask]:
        """One task per shard, whatever ``parallelism`` asks."""
        target = (data_context or DataContext.get_current()).target_max_block_size
        tasks = []
        for k, ((name, items), size) in enumerate(zip(self.shards, self._sizes, strict=True)):
            rows = items if not target or not size else max(1, target * items // size)
            read = partial(_read_shard, str(self.path), self.generation, k, self.kind, self.column, rows)
            meta = BlockMetadata(num_rows=items, size_bytes=size, input_files=(str(self.path / name),), exec_stats=None)
            tasks.append(ReadTask(read, meta, per_task_row_limit=per_task_row_limit))
        return tasks


def _disk_size(shard: Path) -> int:
    return sum(entry.stat().st_size for entry in shard.iterdir() if entry.is_file())


def _read_shard(out_dir: str, generation: str, k: int, kind: str, column: str, rows: int) -> Iterator[Block]:
    """Shard ``k`` of the write ``generation``, as blocks of ``rows`` rows."""
    store = ShardedMmap(out_dir, _generation=generation)
    shard = store.shard(k)
    items = store.shards[k][1]
    for start in range(0, items, rows):
        yield _block(kind, column, shard[start : start + rows])


def _block(kind: str, column: str, items: Any) -> Block:
    if kind == "numpy":
        return BlockAccessor.batch_to_block({column: np.asarray(items)})
    if kind == "string":
        return pa.table({column: pa.array(items, type=pa.string())})
    try:
        # Variable-shaped even when a block's items agree, so every block has the same column type.
        return pa.table({column: ArrowVariableShapedTensorArray.from_numpy(items)})
    except (ValueError, TypeError, pa.ArrowException):
        # Items of different ndim (or a dtype Arrow lacks): Ray's own conversion (pickled objects if need be).
        return BlockAccessor.batch_to_block({column: items})

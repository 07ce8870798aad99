"""The stores are map-style torch datasets: ``DataLoader(num_workers=2)`` under fork, spawn and forkserver
returns exactly the stored items, and the batched path (``__getitems__``) hands torch writable arrays, so it
warns about nothing. Skipped when torch is not installed (CI does not download it)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from mmap_ninja import numpy as np_ninja
from mmap_ninja.ragged import RaggedMmap
from mmap_ninja.string import StringsMmap

from support import strict_warnings

torch = pytest.importorskip("torch")
from torch.utils.data import DataLoader  # noqa: E402

METHODS = ["fork", "spawn", "forkserver"]


def _load(dataset: Any, method: str, **kwargs: Any) -> list[Any]:
    loader = DataLoader(
        dataset,
        batch_size=4,
        num_workers=2,
        multiprocessing_context=method,
        worker_init_fn=strict_warnings,
        **kwargs,
    )
    return [item for batch in loader for item in batch]


@pytest.mark.parametrize("method", METHODS)
def test_images_of_one_shape_collate_into_tensors(tmp_path: Path, method: str) -> None:
    images = [np.full((4, 5, 3), i, dtype=np.uint8) for i in range(10)]
    store = RaggedMmap.from_lists(tmp_path / "r", images, mode="r")
    got = _load(store, method)
    assert all(isinstance(x, torch.Tensor) for x in got)
    assert [x.numpy().tolist() for x in got] == [x.tolist() for x in images]


@pytest.mark.parametrize("method", METHODS)
def test_ragged_tokens_strings_and_dense_rows(tmp_path: Path, method: str) -> None:
    tokens = [np.arange(i % 5 + 1, dtype=np.int64) + i for i in range(11)]
    ragged = RaggedMmap.from_lists(tmp_path / "t", tokens, mode="r")
    assert [x.tolist() for x in _load(ragged, method, collate_fn=list)] == [x.tolist() for x in tokens]
    strings = [f"item {i} é" for i in range(9)]
    assert _load(StringsMmap.from_strings(tmp_path / "s", strings, mode="rb"), method) == strings
    np_ninja.from_ndarray(tmp_path / "d", np.arange(30, dtype=np.float32).reshape(10, 3))
    dense = np_ninja.open_existing(tmp_path / "d", mode="r")
    assert [x.numpy().tolist() for x in _load(dense, method)] == np.asarray(dense).tolist()


@pytest.mark.parametrize("method", ["fork", "spawn"])
def test_distributed_sampler_over_a_sharded_store_gives_ranks_disjoint_items(tmp_path: Path, method: str) -> None:
    from torch.utils.data.distributed import DistributedSampler

    from mmap_ninja.sharded import from_partitions

    items = [np.full((i % 3 + 1, 2), i, dtype=np.int64) for i in range(48)]
    store = from_partitions(tmp_path / "s", [items[:20], items[20:30], items[30:]])
    seen: list[set[int]] = []
    for rank in range(4):  # what each of 4 ranks (nodes or GPUs) reads in epoch 1
        sampler = DistributedSampler(store, num_replicas=4, rank=rank, shuffle=True, seed=7)
        sampler.set_epoch(1)
        got = _load(store, method, sampler=sampler, collate_fn=list)
        assert all(x.shape == items[int(x[0, 0])].shape for x in got)
        seen.append({int(x[0, 0]) for x in got})
        assert len(seen[-1]) == 12
    assert set().union(*seen) == set(range(48)) and sum(map(len, seen)) == 48

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

"""Stores pickle as their path and options (under 1 KiB whatever their size) and reopen in the child as the
snapshot the parent had; worker processes started by fork, spawn or forkserver read exactly the stored items."""

from __future__ import annotations

import multiprocessing
import pickle
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from mmap_ninja import StoreReplacedError
from mmap_ninja import numpy as np_ninja
from mmap_ninja.ragged import RaggedMmap
from mmap_ninja.string import StringsMmap


def _images(n: int) -> list[np.ndarray]:
    rng = np.random.default_rng(0)
    return [rng.integers(0, 255, size=(100 + i % 7, 130, 3), dtype=np.uint8) for i in range(n)]


@pytest.fixture
def stores(tmp_path: Path) -> dict[str, Any]:
    """A 39 MB ragged store, a string store and a 39 MB dense store."""
    ragged = RaggedMmap.from_lists(tmp_path / "ragged", _images(1000))
    strings = StringsMmap.from_strings(tmp_path / "strings", [f"s{i}é" * (i % 5) for i in range(5000)])
    dense = np_ninja.from_ndarray(tmp_path / "dense", np.arange(39 * 2**20 // 8, dtype=np.int64).reshape(-1, 64))
    return {"ragged": ragged, "strings": strings, "dense": dense}


def _same(got: Any, want: Any) -> bool:
    if isinstance(want, np.ndarray):
        return isinstance(got, np.ndarray) and got.shape == want.shape and bool((got == want).all())
    return bool(got == want)


def test_pickles_are_small_and_reopen_the_same_items(stores: dict[str, Any]) -> None:
    assert sum(x.nbytes for x in stores["ragged"]) > 39e6 and stores["dense"].nbytes >= 39 * 2**20
    for kind, store in stores.items():
        blob = pickle.dumps(store)
        assert len(blob) < 1024, (kind, len(blob))
        back = pickle.loads(blob)
        assert len(back) == len(store)
        for i in (0, 1, len(store) // 2, -1):
            assert _same(back[i], store[i]), (kind, i)


def test_unpickled_readers_keep_the_parents_snapshot(tmp_path: Path) -> None:
    reader = RaggedMmap.from_lists(tmp_path / "r", [np.arange(3), np.arange(4)])
    strings = StringsMmap.from_strings(tmp_path / "s", ["a", "b"])
    dense = np_ninja.from_ndarray(tmp_path / "d", np.ones((2, 3)))
    blobs = [pickle.dumps(x) for x in (reader, strings, dense)]
    RaggedMmap(tmp_path / "r").extend([np.arange(5)])
    StringsMmap(tmp_path / "s").extend(["c"])
    np_ninja.extend_dir(tmp_path / "d", np.zeros((1, 3)))
    assert [len(pickle.loads(b)) for b in blobs] == [2, 2, 2]
    assert len(pickle.loads(pickle.dumps(RaggedMmap(tmp_path / "r")))) == 3
    # Replaced stores are not the snapshot any more, even with as many items.
    RaggedMmap.from_lists(tmp_path / "r", [np.arange(9)] * 3)
    StringsMmap.from_strings(tmp_path / "s", ["x"] * 3)
    np_ninja.from_ndarray(tmp_path / "d", np.ones((3, 3)))
    for blob in blobs:
        with pytest.raises(StoreReplacedError):
            pickle.loads(blob)


def test_views_of_a_dense_store_pickle_their_data(tmp_path: Path) -> None:
    dense = np_ninja.from_ndarray(tmp_path / "d", np.arange(12).reshape(4, 3))
    row = pickle.loads(pickle.dumps(dense[1:3]))
    assert type(row) is np.ndarray and row.tolist() == [[3, 4, 5], [6, 7, 8]]


def test_wrapper_fn_and_mode_survive_pickling(tmp_path: Path) -> None:
    m = RaggedMmap.from_lists(tmp_path / "r", [np.arange(3)], wrapper_fn=np.flip, mode="r", wait=2.5, durable=True)
    back = pickle.loads(pickle.dumps(m))
    assert (back.mode, back.wait, back.durable, back[0].tolist()) == ("r", 2.5, True, [2, 1, 0])


def test_stores_opened_by_a_relative_path_stay_the_same_after_a_chdir(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    ragged = RaggedMmap.from_lists("r", [np.arange(3)])
    strings = StringsMmap.from_strings("s", ["a"])
    dense = np_ninja.from_ndarray("d", np.arange(6).reshape(3, 2))
    (tmp_path / "elsewhere").mkdir()
    monkeypatch.chdir(tmp_path / "elsewhere")
    ragged.append(np.arange(2))
    strings.append("b")
    assert len(RaggedMmap(tmp_path / "r")) == 2 and StringsMmap(tmp_path / "s")[:] == ["a", "b"]
    assert not list((tmp_path / "elsewhere").iterdir())  # nothing written relative to the new directory
    assert pickle.loads(pickle.dumps(ragged))[1].tolist() == [0, 1]
    assert pickle.loads(pickle.dumps(strings))[:] == ["a", "b"]
    assert pickle.loads(pickle.dumps(dense)).tolist() == [[0, 1], [2, 3], [4, 5]]


def _read(store: Any, indices: list[int]) -> list[Any]:
    out = []
    for i in indices:
        item = store[i]
        out.append(item.tolist() if isinstance(item, np.ndarray) else item)
    if isinstance(store, RaggedMmap):
        out.extend(x.tolist() for x in store.__getitems__(indices))
    return out


@pytest.mark.parametrize("method", ["fork", "spawn", "forkserver"])
def test_worker_processes_read_exactly_the_stored_items(stores: dict[str, Any], method: str) -> None:
    context = multiprocessing.get_context(method)
    with context.Pool(2) as pool:
        for kind, store in stores.items():
            chunks = [[0, 5, -1], [len(store) // 2, 3]]
            results = pool.starmap(_read, [(store, chunk) for chunk in chunks])
            assert results == [_read(store, chunk) for chunk in chunks], kind

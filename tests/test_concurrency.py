"""Readers that (re)open while a writer extends or replaces a store see no errors and no wrong bytes."""

from __future__ import annotations

import multiprocessing
import time
from pathlib import Path

import numpy as np

from mmap_ninja import numpy as np_ninja
from mmap_ninja.ragged import RaggedMmap
from mmap_ninja.string import StringsMmap

SECONDS = 1.5


def item(i: int) -> np.ndarray:
    return np.full((i % 5 + 1, 2), i, dtype=np.int32)


def _extend_ragged(path: Path, stop: multiprocessing.synchronize.Event) -> None:
    store = RaggedMmap(path, mode="r+")
    n = len(store)
    while not stop.is_set():
        store.extend([item(n), item(n + 1), item(n + 2)])
        n += 3


def _extend_strings(path: Path, stop: multiprocessing.synchronize.Event) -> None:
    store = StringsMmap(path)
    n = len(store)
    while not stop.is_set():
        store.extend([f"s{n}", f"s{n + 1}"])
        n += 2


# Two strings of the same UTF-8 length (4 MiB), one of 2-byte characters: a read torn between them is not UTF-8.
_WIDE, _NARROW = "é" * (1 << 21), "a" * (1 << 22)


def _set_strings_in_place(path: Path, stop: multiprocessing.synchronize.Event) -> None:
    store = StringsMmap(path)
    k = 0
    while not stop.is_set():
        k += 1
        store[0] = _WIDE if k % 2 else _NARROW


def _replace_dense(path: Path, stop: multiprocessing.synchronize.Event) -> None:
    k = 0
    while not stop.is_set():
        k += 1
        np_ninja.from_ndarray(path, np.full((k % 7 + 1, 3), k, dtype=np.int64))


def _race(target: object, path: Path, check: object) -> tuple[int, list[str]]:
    context = multiprocessing.get_context("fork")
    stop = context.Event()
    writer = context.Process(target=target, args=(path, stop))
    writer.start()
    reads, errors = 0, []
    deadline = time.monotonic() + SECONDS
    try:
        while time.monotonic() < deadline:
            try:
                check()  # type: ignore[operator]
                reads += 1
            except FileNotFoundError:
                reads += 1  # a dense store being replaced is briefly absent: an honest answer, not wrong bytes
            except Exception as exc:  # noqa: BLE001 - every other failure is what this test counts
                errors.append(f"{type(exc).__name__}: {exc}")
    finally:
        stop.set()
        writer.join(10)
    return reads, errors


def test_readers_reopening_during_ragged_extends(tmp_path: Path) -> None:
    path = tmp_path / "r"
    RaggedMmap.from_lists(path, [item(0)])

    def check() -> None:
        store = RaggedMmap(path)
        for i in (0, len(store) // 2, len(store) - 1):
            assert np.array_equal(store[i], item(i)), i

    reads, errors = _race(_extend_ragged, path, check)
    assert errors == []
    assert reads > 20


def test_readers_reopening_during_string_extends(tmp_path: Path) -> None:
    path = tmp_path / "s"
    StringsMmap.from_strings(path, ["s0"])

    def check() -> None:
        store = StringsMmap(path, mode="rb")
        for i in (0, len(store) // 2, len(store) - 1):
            assert store[i] == f"s{i}", i

    reads, errors = _race(_extend_strings, path, check)
    assert errors == []
    assert reads > 20


def test_readers_never_see_a_half_replaced_dense_store(tmp_path: Path) -> None:
    path = tmp_path / "d"
    np_ninja.from_ndarray(path, np.full((1, 3), 0, dtype=np.int64))

    def check() -> None:
        arr = np.asarray(np_ninja.open_existing(path))
        assert arr.shape[1] == 3 and len(np.unique(arr)) == 1, arr
        assert arr.shape[0] == arr[0, 0] % 7 + 1 or arr[0, 0] == 0, arr

    reads, errors = _race(_replace_dense, path, check)
    assert errors == []
    assert reads > 20


def _convert_flat_stores(path: Path, stop: multiprocessing.synchronize.Event) -> None:
    """Makes flat stores path/0, path/1, ... and turns each n-d (which swaps its shapes/ directory), pointing
    ``path/current`` at the store being converted."""
    k = 0
    while not stop.is_set():
        RaggedMmap.from_lists(path / str(k), [np.arange(3), np.arange(2)])
        (path / "current.tmp").write_text(str(k))
        (path / "current.tmp").rename(path / "current")
        RaggedMmap(path / str(k), mode="r+").extend([np.ones((2, 2), np.int64)])
        k += 1


def test_readers_opening_while_a_flat_store_turns_n_dimensional(tmp_path: Path) -> None:
    path = tmp_path / "many"
    path.mkdir()
    (path / "current").write_text("-1")

    def check() -> None:
        k = (path / "current").read_text()
        if k == "-1":
            return
        store = RaggedMmap(path / k)
        assert [x.tolist() for x in store[:2]] == [[0, 1, 2], [0, 1]]
        assert len(store) == 2 or store[2].tolist() == [[1, 1], [1, 1]]

    reads, errors = _race(_convert_flat_stores, path, check)
    assert errors == []
    assert reads > 20


def test_reading_a_string_another_process_sets_in_place_never_crashes(tmp_path: Path) -> None:
    # An in-place write races the copy a reader makes: the reader may get either string, a mix of both that is
    # valid UTF-8, or CorruptStoreError for a mix that is not; never a crash (the bytes were once handed to
    # CPython as already-checked UTF-8, which changed under it: a PanicException, which _race lets through).
    strings = StringsMmap.from_strings(tmp_path / "s", [_NARROW, "tail"])
    reads, errors = _race(_set_strings_in_place, tmp_path / "s", lambda: len(strings[0]) in (1 << 21, 1 << 22))
    assert reads > 0
    assert all(e.startswith("CorruptStoreError") and "UTF-8" in e for e in errors), errors[:3]

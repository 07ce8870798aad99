"""RaggedMmap: zero-copy items of any shape, every indexing form, writes, and the reference's faults fixed."""

from __future__ import annotations

import contextlib
import gc
import os
import pickle
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mmap_ninja import CorruptStoreError, StoreReplacedError, np_extend_dir, np_from_ndarray, ragged
from mmap_ninja import numpy as np_ninja
from mmap_ninja.parallel import collect_chunks, make_indexable
from mmap_ninja.ragged import RaggedMmap

from support import SMAPS, assert_item_equal, mapped_kb

ITEMS = [
    np.arange(6, dtype=np.int16).reshape(2, 3),
    np.array([7, 8], dtype=np.int16),
    np.int16(9),
    np.zeros((0, 2), np.int16),
]


@pytest.fixture
def store(tmp_path: Path) -> RaggedMmap:
    RaggedMmap.from_lists(tmp_path / "r", ITEMS)
    return RaggedMmap(tmp_path / "r")


def test_items_round_trip_with_shapes_scalars_and_empty_items(store: RaggedMmap) -> None:
    assert len(store) == 4
    assert_item_equal(store[0], ITEMS[0])
    assert_item_equal(store[1], ITEMS[1])
    assert store[2] == 9 and isinstance(store[2], int)
    assert store[3].shape == (0, 2)
    assert store[0].dtype == np.int16


@pytest.mark.parametrize(
    "index, expected",
    [
        (-1, 3),
        (np.int64(1), 1),
        (slice(1, None, 2), [1, 3]),
        ([3, 0, 0], [3, 0, 0]),
        (np.array([1, -1]), [1, 3]),
        (np.array([True, False, False, True]), [0, 3]),
        ([], []),
    ],
)
def test_every_index_form(store: RaggedMmap, index: object, expected: object) -> None:
    got = store[index]
    if isinstance(expected, int):
        assert_item_equal(store[expected], ITEMS[expected] if expected != 2 else 9)
        assert np.array_equal(got, store[expected])
    else:
        assert isinstance(got, list) and len(got) == len(expected)
        for g, e in zip(got, expected, strict=True):
            assert np.array_equal(g, store[e])


@pytest.mark.parametrize("index", [4, -5, [0, 4], np.array([True, False]), 2**70, np.uint64(2**63), [2**63]])
def test_out_of_range_raises_index_error(store: RaggedMmap, index: object) -> None:
    with pytest.raises(IndexError):
        store[index]


def test_item_views_keep_the_mapping_alive_and_are_writable_only_in_writable_modes(tmp_path: Path) -> None:
    """Items are made directly over the mapping (not sliced from ``memmap``): each must hold the mapping, carry the
    store's writability, start at its own offset and take any number of dimensions."""
    path = tmp_path / "r"
    items = [
        np.arange(24, dtype=np.int32).reshape(2, 3, 4),
        np.full((1,) * 32, 7, np.int32),
        np.zeros((3, 0, 2), np.int32),
    ]
    RaggedMmap.from_lists(path, [*items, np.arange(5, dtype=np.int32)])
    reader = RaggedMmap(path)
    views = [reader[k] for k in range(4)]
    for view, item in zip(views, items, strict=False):
        assert_item_equal(view, item)
    assert views[3].tolist() == [0, 1, 2, 3, 4]
    with pytest.raises(ValueError):
        views[0].setflags(write=True)
    assert RaggedMmap(path, mode="c")[0].flags.writeable
    writer = RaggedMmap(path, mode="r+")
    written = writer[0]
    assert written.flags.writeable and written.flags.c_contiguous and written.flags.aligned
    written[1, 2, 3] = -1
    del reader, writer
    gc.collect()
    assert int(views[0][1, 2, 3]) == -1 and int(written[1, 2].sum()) == 20 + 21 + 22 - 1
    assert int(RaggedMmap(path)[0][1, 2, 3]) == -1


def test_getting_items_leaks_no_reference_to_the_mapping_or_the_dtype(store: RaggedMmap) -> None:
    base, dtype = store[0].base, store[0].dtype
    before = sys.getrefcount(base), sys.getrefcount(dtype)
    for _ in range(10_000):
        store[0], store[1], store[3], store[[0, 1, 3]]
    assert (sys.getrefcount(base), sys.getrefcount(dtype)) == before


def test_items_are_read_only_views_of_the_mapping(store: RaggedMmap) -> None:
    item = store[0]
    assert not item.flags.writeable
    assert np.shares_memory(item, store.memmap)
    with pytest.raises(ValueError):
        item[0, 0] = 1
    with pytest.raises(ValueError, match="read-only"):
        store[0] = np.zeros(6, np.int16)


@pytest.mark.skipif(not SMAPS.exists(), reason="needs Linux's /proc/self/smaps")
@pytest.mark.parametrize("nd", [False, True])
@pytest.mark.parametrize("how", ["read", "r+", "c", "unpickled", "shapes"])
def test_an_open_touches_no_mapped_page(tmp_path: Path, nd: bool, how: str) -> None:
    """An open (read-only, writable, copy-on-write, limited to a pickled snapshot, or of the nested shapes) reads
    metadata files only: it maps the data files but faults in none of their pages (the first fault in a 2 MiB
    range of addresses may cost a page table). Reading an item touches its pages; ``memmap`` finds the
    snapshot's end."""
    path = tmp_path / "m"
    RaggedMmap.from_lists(path, [np.arange(6).reshape(2, 3) if nd else np.arange(6), np.arange(4)])
    mapped = sorted(path.rglob("data.ninja"))  # (flattened_shapes/ is written for 0.9.0, never mapped)

    def rss() -> int:
        return sum(mapped_kb(p, "Rss") for p in mapped)

    pickled = pickle.dumps(RaggedMmap(path)) if how == "unpickled" else b""
    m = pickle.loads(pickled) if pickled else RaggedMmap(path, mode=how if how in ("r+", "c") else "r")
    if how == "shapes":
        shapes = m.shapes
        assert (len(shapes), isinstance(shapes, RaggedMmap)) == (2, nd)
    maps = SMAPS.read_text()
    assert all(f" {path / name}" in maps for name in ("data.ninja", "starts/data.ninja", "ends/data.ninja"))
    assert rss() == 0
    assert m[1].tolist() == [0, 1, 2, 3] and rss() > 0
    assert m.memmap.tolist() == [*range(6), *range(4)]


def test_views_survive_close_and_later_extends(tmp_path: Path) -> None:
    store = RaggedMmap.from_lists(tmp_path / "r", [np.arange(1000)])
    view = store[0]
    writer = RaggedMmap(tmp_path / "r", mode="r+")
    writer.extend([np.arange(5)] * 100)
    del store, writer
    assert np.array_equal(view, np.arange(1000))
    assert len(RaggedMmap(tmp_path / "r")) == 101


def test_mode_r_plus_writes_through_to_the_file(tmp_path: Path) -> None:
    store = RaggedMmap.from_lists(tmp_path / "r", [np.arange(3), np.arange(4)])
    store[1] = [9, 9, 9, 9]
    store[0][...] = 5
    assert RaggedMmap(tmp_path / "r")[1].tolist() == [9, 9, 9, 9]
    assert RaggedMmap(tmp_path / "r")[0].tolist() == [5, 5, 5]
    with pytest.raises(ValueError, match="same size"):
        store[0] = [1, 2]
    # Every value of a multiple assignment is checked before any is written.
    with pytest.raises(ValueError, match="same size"):
        store[[0, 1]] = [[7, 7, 7], [7, 7]]
    assert store[0].tolist() == [5, 5, 5]
    store[[0, 1]] = [[7, 7, 7], [8, 8, 8, 8]]
    assert RaggedMmap(tmp_path / "r")[0].tolist() == [7, 7, 7] and store[1].tolist() == [8] * 4
    # One value fills an item, as numpy's assignment (and 0.9.0's) broadcasts it.
    store[1] = 0
    store[[0]] = [np.array([6])]
    assert RaggedMmap(tmp_path / "r")[1].tolist() == [0] * 4 and store[0].tolist() == [6, 6, 6]
    store.close()
    assert repr(store).endswith(" (closed)")


@pytest.mark.parametrize("mode", ["c", "copyonwrite"])
def test_mode_c_gives_writable_items_whose_writes_stay_private(tmp_path: Path, mode: str) -> None:
    """0.9.0's copy-on-write mode: items, ``memmap`` and item assignment are writable, and what is written stays
    in this reader (private pages): the file, other readers and a pickled copy see the stored items."""
    path = tmp_path / "r"
    RaggedMmap.from_lists(path, [np.arange(3), np.arange(6).reshape(2, 3)])
    files = {p: p.read_bytes() for p in sorted(path.rglob("*.ninja"))}
    cow = RaggedMmap(path, mode=mode)
    item = cow[1]
    assert item.flags.writeable and cow.memmap.flags.writeable
    item[0] = -1
    cow[0] = [7, 8, 9]
    cow[[0, 1]] = [[1, 1, 1], np.full((2, 3), 2)]
    cow[0][1] = 5
    assert cow[0].tolist() == [1, 5, 1] and cow[1].tolist() == [[2, 2, 2], [2, 2, 2]]
    assert cow.memmap[:3].tolist() == [1, 5, 1] and cow.gather([0])[0].tolist() == [1, 5, 1]
    assert not cow.starts.flags.writeable  # the columns stay read-only, as in every mode
    assert {p: p.read_bytes() for p in files} == files
    other = RaggedMmap(path)
    assert other[0].tolist() == [0, 1, 2] and other[1].tolist() == [[0, 1, 2], [3, 4, 5]]
    copy = pickle.loads(pickle.dumps(cow))
    assert copy.mode == mode and copy[0].tolist() == [0, 1, 2] and copy[0].flags.writeable
    # A write through another reader does not show in the pages this reader wrote; a refresh maps the file anew.
    RaggedMmap(path, mode="r+")[1] = np.full((2, 3), 3)
    assert cow[1].tolist() == [[2, 2, 2], [2, 2, 2]]
    cow.refresh()
    assert cow[0].tolist() == [0, 1, 2] and cow[1].tolist() == [[3, 3, 3], [3, 3, 3]]
    cow[0] = 4
    cow.extend([np.arange(2)])  # maps the store anew
    assert cow[0].tolist() == [0, 1, 2] and len(cow) == 3
    with pytest.raises(ValueError, match="'c'"):
        RaggedMmap(path)[0] = [1, 2, 3]
    with pytest.raises(ValueError, match="mode must be one of"):
        RaggedMmap(path, mode="w+")


def test_mode_c_needs_no_write_access(tmp_path: Path) -> None:
    """Copy-on-write maps a file opened read-only: immutable data files (which not even root may open for
    writing) open in mode "c", and not in mode "r+"."""
    from mmap_ninja import numpy as np_ninja

    RaggedMmap.from_lists(tmp_path / "r", [np.arange(3)])
    np_ninja.from_ndarray(tmp_path / "d", np.arange(3))
    files = [str(tmp_path / name / "data.ninja") for name in ("r", "d")]
    if not shutil.which("chattr") or subprocess.run(["chattr", "+i", *files], capture_output=True).returncode:
        pytest.skip("needs chattr +i (root, on a file system with immutable files)")
    try:
        ragged_cow, dense_cow = RaggedMmap(tmp_path / "r", mode="c"), np_ninja.open_existing(tmp_path / "d", "c")
        ragged_cow[0][0] = 7
        dense_cow[0] = 7
        assert ragged_cow[0].tolist() == dense_cow.tolist() == [7, 1, 2]
        with pytest.raises(PermissionError):
            RaggedMmap(tmp_path / "r", mode="r+")
        with pytest.raises(PermissionError):
            np_ninja.open_existing(tmp_path / "d", "r+")
    finally:
        subprocess.run(["chattr", "-i", *files], check=True)
    assert RaggedMmap(tmp_path / "r")[0].tolist() == np_ninja.open_existing(tmp_path / "d").tolist() == [0, 1, 2]


def test_empty_store_from_lists_and_from_generator(tmp_path: Path) -> None:
    empty = RaggedMmap.from_lists(tmp_path / "a" / "b" / "c", [])
    assert len(empty) == 0
    with pytest.raises(IndexError):
        empty[0]
    empty.append(np.ones((2, 2)))
    assert RaggedMmap(tmp_path / "a" / "b" / "c")[0].shape == (2, 2)
    assert len(RaggedMmap.from_generator(tmp_path / "g", iter([]), batch_size=4)) == 0


def test_missing_parent_directories_are_created(tmp_path: Path) -> None:
    store = RaggedMmap.from_lists(tmp_path / "x" / "y" / "z", [np.arange(2)])
    assert store[0].tolist() == [0, 1]


def test_flat_store_grows_n_dimensional_items(tmp_path: Path) -> None:
    store = RaggedMmap.from_generator(tmp_path / "r", [np.arange(3), 4, np.ones((2, 2), int), np.arange(1)], 2)
    assert store[0].tolist() == [0, 1, 2] and store[1] == 4
    assert store[2].shape == (2, 2) and store[3].tolist() == [0]


def test_big_endian_input_round_trips(tmp_path: Path) -> None:
    items = [np.arange(5, dtype=">i4"), np.array([[1.5, -2.0]], dtype=">f8")]
    store = RaggedMmap.from_lists(tmp_path / "r", items[:1])
    store.extend([np.array([70000], dtype=">i4")])
    assert store[0].tolist() == [0, 1, 2, 3, 4] and store[1].tolist() == [70000]
    other = RaggedMmap.from_lists(tmp_path / "f", items[1:])
    assert other[0].tolist() == [[1.5, -2.0]]


@pytest.mark.parametrize(
    "bad",
    [
        np.array(["a", "b"]),
        np.array([b"x"]),
        np.array([object()]),
        np.zeros(2, dtype=[("a", "i4")]),
        np.array(["2020-01-01"], dtype="M8[5D]"),  # a unit with a multiple
    ],
)
def test_unsupported_dtypes_are_refused_at_write_time(tmp_path: Path, bad: np.ndarray) -> None:
    with pytest.raises(TypeError):
        RaggedMmap.from_lists(tmp_path / "r", [bad])
    assert not (tmp_path / "r").exists()


def test_values_the_store_cannot_hold_raise_instead_of_being_cast(tmp_path: Path) -> None:
    store = RaggedMmap.from_lists(tmp_path / "r", [np.array([1, 2], dtype=np.uint8)])
    with pytest.raises(ValueError, match="exactly"):
        store.extend([np.array([300])])
    with pytest.raises(ValueError, match="exactly"):
        store.append(np.array([1.5]))
    store.append(np.array([255.0, 0.0]))  # exactly representable: accepted
    assert len(store) == 2 and store[1].tolist() == [255, 0] and store[1].dtype == np.uint8
    with pytest.raises(ValueError):
        RaggedMmap.from_lists(tmp_path / "m", [[1, 2], [0.5]])
    # Errors name the item's place in the input, across the chunks items are converted in.
    with pytest.raises(ValueError, match="^item 20 has float64"):
        RaggedMmap.from_lists(tmp_path / "m", [[1, 2]] * 20 + [[1.5]])
    with pytest.raises(ValueError, match="^item 1 has int64"):
        RaggedMmap.from_lists(tmp_path / "m", [[1, 2], [300]], dtype=np.uint8)


@pytest.mark.parametrize(
    ("store_dtype", "value"),
    [
        (np.uint8, np.array([-1], np.int8)),  # same width, other sign: the round trip alone would pass it
        (np.int64, np.array([2**63], np.uint64)),
        (np.uint64, [-1]),
        (np.int64, [2**63]),
        (np.float64, [2**53 + 1]),  # numpy calls int64 into float64 safe, but it rounds to 2**53
        (np.float64, np.array([2**64 - 1], np.uint64)),
        (np.complex128, [2**53 + 1]),
    ],
)
def test_integers_of_another_sign_or_too_many_digits_raise(tmp_path: Path, store_dtype: Any, value: Any) -> None:
    store = RaggedMmap.from_lists(tmp_path / "r", [np.zeros(1, store_dtype)], mode="r+")
    with pytest.raises(ValueError, match="exactly"):
        store.append(value)
    with pytest.raises(ValueError, match="exactly"):
        store[0] = value
    np_from_ndarray(tmp_path / "d", np.zeros(1, store_dtype))
    with pytest.raises(ValueError, match="exactly"):
        np_extend_dir(tmp_path / "d", np.asarray(value))
    assert store[0].tolist() == [0] and np_ninja.open_existing(tmp_path / "d").tolist() == [0]
    # What fits goes in: the edges of each range, and integers with no more digits than the float holds.
    fits = {np.uint8: [255], np.int64: [2**63 - 1], np.uint64: [2**64 - 1]}.get(store_dtype, [2**53, -(2**53)])
    store.append(fits)
    assert store[-1].tolist() == fits


def test_floats_are_rounded_into_a_narrower_float_store_but_never_overflow(tmp_path: Path) -> None:
    # float64 features stored as float32, as the reference and numpy's astype do it.
    store = RaggedMmap.from_lists(tmp_path / "f", [[0.1, 0.2]], dtype=np.float32)
    assert store.dtype == np.float32 and store[0].tolist() == np.array([0.1, 0.2], np.float32).tolist()
    store.append(np.array([1 / 3, np.nan, -np.inf]))
    assert store[1][0] == np.float32(1 / 3) and np.isnan(store[1][1]) and store[1][2] == -np.inf
    store.append(np.array([1.5 + 0j]))  # a complex with no imaginary part is still exact
    with pytest.raises(ValueError, match="too large"):
        store.append(np.array([1.0, 1e39]))
    with pytest.raises(ValueError, match="exactly"):
        store.append(np.array([1.0 + 2j]))
    assert len(store) == 3
    with pytest.raises(ValueError, match="float32 values too large for float16"):
        RaggedMmap.from_lists(tmp_path / "h", [np.array([1e-3, 70000.0], np.float32)], dtype=np.float16)


def test_the_first_item_sets_the_dtype_even_when_it_is_float64(tmp_path: Path) -> None:
    m = RaggedMmap.from_lists(tmp_path / "r", [np.array([1.5]), [1, 2]])
    assert m.dtype == np.float64 and m[1].tolist() == [1.0, 2.0]


def test_explicit_dtype_in_from_lists(tmp_path: Path) -> None:
    store = RaggedMmap.from_lists(tmp_path / "r", [[1, 2], [3]], dtype=np.float32)
    assert store[0].dtype == np.float32


@pytest.mark.parametrize("backend", ["processes", "threads"])
def test_from_indexable_in_parallel_keeps_order(tmp_path: Path, backend: str) -> None:
    def item(i: int) -> np.ndarray:
        return np.full(i % 3 + 1, i) if i < 25 else [][0]

    store = RaggedMmap.from_indexable(tmp_path / "r", item, 4, n_jobs=2, backend=backend)
    assert len(store) == 25
    assert all(store[i].tolist() == [i] * (i % 3 + 1) for i in range(25))


def test_threads_backend_runs_items_concurrently_without_pickling(tmp_path: Path) -> None:
    lock = threading.Lock()  # unpicklable: processes could not receive this item function
    running, peak = [0], [0]

    def item(i: int) -> np.ndarray:
        with lock:
            running[0] += 1
            peak[0] = max(peak[0], running[0])
        threading.Event().wait(0.01)  # releases the GIL, as a decoder does
        with lock:
            running[0] -= 1
        return np.arange(i % 4 + 1)

    store = RaggedMmap.from_indexable(tmp_path / "r", make_indexable(item, 40), 8, n_jobs=2, backend="threads")
    assert [x.tolist() for x in store] == [list(range(i % 4 + 1)) for i in range(40)]
    assert peak[0] == 2
    with pytest.raises(ValueError, match="backend"):
        RaggedMmap.from_indexable(tmp_path / "x", item, 8, n_jobs=2, backend="dask")


def test_parallel_items_reach_the_writer_task_by_task_not_span_by_span(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Items 8.. wait for the writer to have item 0: if a span's items were handed on only once all its tasks
    # were done, item 0 would reach the writer only after those waits time out.
    wrote_first = threading.Event()
    waited_in_vain: list[int] = []
    push = ragged._push

    def recording_push(*args: Any) -> Any:
        written = push(*args)
        wrote_first.set()
        return written

    monkeypatch.setattr(ragged, "_push", recording_push)

    def item(i: int) -> np.ndarray:
        if i >= 8 and not wrote_first.wait(10):
            waited_in_vain.append(i)
            wrote_first.set()  # fail once, not once per item
        return np.full(2, i)

    store = RaggedMmap.from_indexable(tmp_path / "r", make_indexable(item, 16), 16, n_jobs=2, backend="threads")
    assert [x.tolist() for x in store] == [[i, i] for i in range(16)]  # tasks of 4 items
    assert waited_in_vain == []


def _malloc_env(i: int) -> list[str | None] | None:
    names = ("MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_")
    return [os.environ.get(name) for name in names] if i < 4 else [][0]


@pytest.mark.parametrize(
    ("own", "expected"),
    [
        ({}, [str(32 << 20), str(64 << 20)]),
        ({"MALLOC_TRIM_THRESHOLD_": "0"}, [None, "0"]),  # the user tunes malloc: nothing of ours is added
        ({"GLIBC_TUNABLES": "glibc.malloc.trim_threshold=0"}, [None, None]),
    ],
)
def test_worker_processes_keep_freed_memory_unless_the_user_tunes_malloc(
    monkeypatch: pytest.MonkeyPatch, own: dict[str, str], expected: list[str | None]
) -> None:
    from mmap_ninja import parallel

    for name in ("MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_", "GLIBC_TUNABLES"):
        monkeypatch.delenv(name, raising=False)
    for name, value in own.items():
        monkeypatch.setenv(name, value)
    parallel._shutdown_executor()  # workers get their environment when the pool starts
    try:
        seen = [item for chunk in collect_chunks(_malloc_env, 4, 2, False) for item in chunk]
    finally:
        parallel._shutdown_executor()  # the next test starts a pool with the default environment
    assert seen == [expected] * 4


def test_parallel_spans_split_into_two_tasks_per_worker() -> None:
    # A span of 16 on 2 workers is 4 tasks of 4 items (the tasks' lists reach the caller as they are).
    chunks = collect_chunks(make_indexable(lambda i: i, 40), 16, 2, False, backend="threads")
    assert [len(chunk) for chunk in chunks] == [4] * 8 + [2] * 4  # the last span, of 8, too


def test_bad_batch_size_and_keys(tmp_path: Path) -> None:
    with pytest.raises(ValueError):
        RaggedMmap.from_generator(tmp_path / "r", [np.arange(2)], batch_size=0)
    with pytest.raises(ValueError):
        RaggedMmap(tmp_path / "r", starts_key="begin")


def test_tampered_offsets_raise_corrupt_store_error(tmp_path: Path) -> None:
    RaggedMmap.from_lists(tmp_path / "r", [np.arange(3), np.arange(4)])
    ends = np.fromfile(tmp_path / "r" / "ends" / "data.ninja", dtype="<i8")
    ends[1] = 10**12
    ends.tofile(tmp_path / "r" / "ends" / "data.ninja")
    store = RaggedMmap(tmp_path / "r")
    assert store[0].tolist() == [0, 1, 2]
    with pytest.raises(CorruptStoreError) as err:
        store[1]
    assert isinstance(err.value, ValueError) and "starts" in str(err.value)


def test_object_dtype_file_is_refused_on_open(tmp_path: Path) -> None:
    RaggedMmap.from_lists(tmp_path / "r", [np.arange(3)])
    (tmp_path / "r" / "dtype.ninja").write_text("object")
    with pytest.raises(CorruptStoreError, match="dtype.ninja"):
        RaggedMmap(tmp_path / "r")


def test_wrapper_fn_gets_a_private_copy(tmp_path: Path) -> None:
    RaggedMmap.from_lists(tmp_path / "r", [np.arange(3)])
    store = RaggedMmap(tmp_path / "r", wrapper_fn=lambda a: a)
    assert store[0].flags.writeable and not np.shares_memory(store[0], store.memmap)


@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    batches=st.lists(
        st.lists(
            st.lists(st.integers(-(2**31), 2**31 - 1), max_size=6).map(lambda v: np.array(v, np.int64)), max_size=4
        ),
        min_size=1,
        max_size=4,
    ),
    two_d=st.booleans(),
)
def test_extend_matches_a_list_model(tmp_path_factory: pytest.TempPathFactory, batches: list, two_d: bool) -> None:
    path = tmp_path_factory.mktemp("model") / "r"
    model: list[np.ndarray] = []
    store = RaggedMmap(path, mode="r+")
    for batch in batches:
        if two_d:
            batch = [b.reshape(1, -1) for b in batch]
        store.extend(batch)
        model.extend(batch)
        reopened = RaggedMmap(path)
        assert len(reopened) == len(model)
        for i, want in enumerate(model):
            assert np.array_equal(reopened[i], want) and reopened[i].shape == want.shape
        assert len(reopened[::-1]) == len(model)


def test_gather_copies_into_one_writable_buffer(store: RaggedMmap) -> None:
    views = store.gather([0, 2, 1, 0])
    assert [v.shape for v in views] == [(2, 3), (), (2,), (2, 3)]
    assert all(v.flags.writeable and not np.shares_memory(v, store.memmap) for v in views)
    base = views[0].base
    assert all(v.base is base for v in views)
    assert_item_equal(views[0], ITEMS[0])
    assert int(views[1]) == 9
    views[0][...] = -1
    assert store[0].tolist() == ITEMS[0].tolist()
    assert [v.tolist() for v in store.__getitems__([1, 3])] == [[7, 8], []]


def test_gather_into_a_reused_out_buffer(store: RaggedMmap) -> None:
    out = np.empty(64, np.uint8)
    views = store.gather(np.array([1, 0]), out=out)
    assert all(np.shares_memory(v, out) for v in views)
    assert views[0].tolist() == [7, 8] and views[1].tolist() == ITEMS[0].tolist()
    with pytest.raises(ValueError, match="needs"):
        store.gather([0, 0, 0, 0, 0, 0], out=out)
    with pytest.raises(BufferError):
        store.gather([0], out=np.zeros(64, np.uint8)[::2])
    frozen = np.zeros(64, np.uint8)
    frozen.flags.writeable = False
    with pytest.raises(BufferError):
        store.gather([0], out=frozen)
    with pytest.raises(IndexError):
        store.gather([4])


def test_a_batch_beyond_the_caches_is_copied_whole_at_every_alignment(tmp_path: Path) -> None:
    # Over 16 MiB, so the copy streams (non-temporal stores) on x86-64; odd lengths put every item at another
    # alignment in the store and in the output, and the output itself starts off alignment.
    # Items under 64 KiB are copied with memcpy even then: a few are mixed in.
    rng = np.random.default_rng(3)
    items = [rng.integers(0, 256, 65_536 + 17 * k, dtype=np.uint8) for k in range(40)]
    items += [rng.integers(0, 256, 1 + 997 * k, dtype=np.uint8) for k in range(10)]
    store = RaggedMmap.from_lists(tmp_path / "r", items)
    indices = rng.permutation(np.repeat(np.arange(len(items)), 8))  # 400 items, about 22 MiB
    assert sum(items[i].nbytes for i in indices) > 16 << 20
    out = np.zeros((23 << 20) + 3, np.uint8)[3:]
    for views in (store.gather(indices), store.gather(indices, out=out)):
        assert len(views) == len(indices)
        for view, i in zip(views, indices, strict=True):
            assert np.array_equal(view, items[i])
    assert not out[sum(items[i].nbytes for i in indices) :].any()


def _cached(path: Path, offset: int) -> bool:
    """Whether the byte at ``offset`` of ``path`` is in the page cache (a read that may not wait for the disk);
    skips the test where the file system cannot tell."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.preadv(fd, [bytearray(1)], offset, os.RWF_NOWAIT)
        return True
    except BlockingIOError:
        return False
    except OSError as exc:
        pytest.skip(f"no RWF_NOWAIT reads here: {exc}")
    finally:
        os.close(fd)


@contextlib.contextmanager
def _evicted_store(name: str, items: list[np.ndarray]) -> Iterator[Path]:
    """A store of ``items`` under target/ (on a disk: pytest's tmp_path may be a tmpfs, which keeps its pages),
    its data file evicted from the page cache (the caller checks that it was), removed afterwards; skips where
    target/ cannot be written."""
    store_dir = Path(__file__).resolve().parent.parent / "target" / f"{name}-{os.getpid()}"
    try:
        store_dir.parent.mkdir(exist_ok=True)
    except OSError:
        pytest.skip("target/ cannot be written (a read-only checkout)")
    try:
        RaggedMmap.from_lists(store_dir, items)
        fd = os.open(store_dir / "data.ninja", os.O_RDONLY)
        os.fsync(fd)
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        os.close(fd)
        yield store_dir
    finally:
        shutil.rmtree(store_dir, ignore_errors=True)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="page cache probes need Linux")
def test_a_gather_from_a_store_out_of_the_page_cache_reads_every_item() -> None:
    # Items of 64 KiB or more are prefetched when cold: this checks that what such a gather returns is right
    # (that the prefetch happens is src/readahead.rs's test); it skips when eviction does not work.
    rng = np.random.default_rng(4)
    items = [rng.integers(0, 256, (64 + k, 1024 + 3 * k), dtype=np.uint8) for k in range(24)]
    with _evicted_store("cold-gather", items) as store_dir:
        data = store_dir / "data.ninja"
        if _cached(data, 0) or _cached(data, os.path.getsize(data) - 1):
            pytest.skip("the page cache of the store cannot be dropped here")
        store = RaggedMmap(store_dir)
        order = rng.permutation(len(items))
        for view, i in zip(store.gather(order), order, strict=True):
            assert np.array_equal(view, items[i])


def _cached_bytes(path: Path) -> int:
    """Bytes of ``path`` in the page cache, by util-linux's ``fincore`` (which, unlike a read, starts no
    read-ahead); skips the test without it."""
    fincore = shutil.which("fincore")
    if fincore is None:
        pytest.skip("no fincore here")
    import subprocess

    out = subprocess.run([fincore, "--bytes", "--noheadings", "--output", "RES", str(path)], capture_output=True)
    if out.returncode != 0:
        pytest.skip(f"fincore failed: {out.stderr!r}")
    return int(out.stdout)


@pytest.fixture
def cold_store() -> Any:
    """A store of 600 items of 64 KiB (the smallest read ahead) out of the page cache (``_evicted_store``):
    ``(store_dir, data file, item bytes)``; skips where that cannot be."""
    if not sys.platform.startswith("linux"):
        pytest.skip("page cache probes need Linux")
    with _evicted_store("cold-views", [np.full((256, 256), k % 256, np.uint8) for k in range(600)]) as store_dir:
        data = store_dir / "data.ninja"
        if _cached_bytes(data) != 0:
            pytest.skip("the page cache of the store cannot be dropped here")
        _cached(data, os.path.getsize(data) - 1)  # skips without RWF_NOWAIT (the probe reads the last page)
        yield store_dir, data, 64 << 10


def test_a_view_of_a_cold_item_is_read_ahead_whole(cold_store: Any) -> None:
    # Touched page by page, a cold view would be read one read-ahead window per fault, each waited for.
    store_dir, data, item_bytes = cold_store
    store = RaggedMmap(store_dir)
    view = store[5]
    deadline = time.monotonic() + 60  # returns once read: a shared disk under load can be slow
    while (cached := _cached_bytes(data)) < item_bytes and time.monotonic() < deadline:
        time.sleep(0.01)
    assert cached >= item_bytes
    assert (view == 5).all()


def test_a_scan_of_shapes_does_not_read_the_items(cold_store: Any) -> None:
    # Views nobody reads: those handed out before the first is judged unread (128 of them) are asked for, the
    # rest are not. (The probes read a little too, more in a sequential scan, which the kernel reads ahead.)
    store_dir, data, item_bytes = cold_store
    store = RaggedMmap(store_dir)
    assert [store[i].shape for i in range(len(store))] == [(256, 256)] * 600
    time.sleep(0.1)
    assert _cached_bytes(data) < 300 * item_bytes


def test_gather_releases_the_gil(tmp_path: Path) -> None:
    store = RaggedMmap.from_lists(tmp_path / "r", [np.full((1024, 1024), i, np.uint8) for i in range(32)])
    indices = list(range(32)) * 8  # 256 MiB per gather
    ticks: list[float] = []
    stop = threading.Event()

    def spin() -> None:
        while not stop.is_set():
            ticks.append(time.perf_counter())

    interval = sys.getswitchinterval()
    sys.setswitchinterval(0.0005)
    spinner = threading.Thread(target=spin)
    spinner.start()
    durations = []
    try:
        for _ in range(3):
            start = time.perf_counter()
            store.gather(indices)
            durations.append(time.perf_counter() - start)
    finally:
        stop.set()
        spinner.join()
        sys.setswitchinterval(interval)
    longest_gap = max(b - a for a, b in zip(ticks, ticks[1:], strict=False))
    # Holding the GIL through the copy would stall the other thread for (nearly) a whole gather.
    assert longest_gap < max(durations) / 2, (longest_gap, durations)


def test_native_layer_refuses_buffers_of_another_dtype_or_byte_order(tmp_path: Path) -> None:
    from mmap_ninja import _native

    writer = _native.RaggedWriter(tmp_path / "r", replace=True)
    for bad in (np.arange(3, dtype=">i4"), np.arange(3, dtype=np.int64), np.arange(6, dtype=np.int32)[::2]):
        with pytest.raises((ValueError, BufferError)):
            writer.push("int32", [bad])
    assert writer.pending == 0
    writer.close()  # the lock (and the directory it created) lives as long as the writer
    assert not (tmp_path / "r").exists()


def test_bad_input_never_costs_the_existing_store(tmp_path: Path) -> None:
    RaggedMmap.from_lists(tmp_path / "r", [np.arange(3)])
    with pytest.raises(TypeError):
        RaggedMmap.from_lists(tmp_path / "r", [np.arange(2), np.array(["text"])])
    with pytest.raises(ValueError):
        RaggedMmap(tmp_path / "r", mode="r+").extend([np.arange(2), np.array([0.5])])
    store = RaggedMmap(tmp_path / "r")
    assert len(store) == 1 and store[0].tolist() == [0, 1, 2]
    assert sorted(p.name for p in (tmp_path / "r").iterdir() if ".tmp" in p.name) == []


def test_from_generator_commits_every_batch_while_streaming(tmp_path: Path) -> None:
    seen: list[int] = []

    def items():
        for i in range(10):
            if i in (4, 8):
                seen.append(len(RaggedMmap(tmp_path / "g")))
            yield np.full(i + 1, i)

    store = RaggedMmap.from_generator(tmp_path / "g", items(), batch_size=4)
    assert seen == [4, 8] and len(store) == 10 and store[9].tolist() == [9] * 10


def test_gather_reuses_a_buffer_only_when_no_view_of_it_is_alive(store: RaggedMmap) -> None:
    first = store.gather([0, 1])
    second = store.gather([0, 1])
    assert not np.shares_memory(first[0], second[0])
    base_id = id(first[0].base)  # an id, not a reference: holding the buffer would keep it in use
    first[0][...] = 42
    del first
    third = store.gather([1, 0])
    assert id(third[0].base) == base_id  # first's buffer, free again
    assert third[0].tolist() == [7, 8] and third[1].tolist() == ITEMS[0].tolist()
    assert not np.shares_memory(third[0], second[0])


def test_gather_refuses_an_out_overlapping_the_store(tmp_path: Path) -> None:
    RaggedMmap.from_lists(tmp_path / "r", [np.arange(8, dtype=np.uint8), np.arange(8, dtype=np.uint8)])
    writable = RaggedMmap(tmp_path / "r", mode="r+")
    with pytest.raises(ValueError, match="overlap"):
        writable.gather([1], out=writable.memmap)


def test_opening_another_kind_of_store_is_refused(tmp_path: Path) -> None:
    from mmap_ninja.string import StringsMmap

    StringsMmap.from_strings(tmp_path / "s", ["abc"])
    with pytest.raises(ValueError, match="string store"):
        RaggedMmap(tmp_path / "s")
    RaggedMmap.from_lists(tmp_path / "r", [np.arange(3)])
    with pytest.raises(ValueError, match="ragged store"):
        StringsMmap(tmp_path / "r")[0]


def test_readers_are_snapshots_that_refresh_only_within_the_same_store(tmp_path: Path) -> None:
    writer = RaggedMmap.from_lists(tmp_path / "r", [np.arange(2)])
    reader = RaggedMmap(tmp_path / "r")
    view = reader[0]
    writer.extend([np.arange(3), np.arange(4)])
    assert len(writer) == 3 and len(reader) == 1  # the reader's length does not change under it
    assert reader.refresh() == 3 and reader[2].tolist() == [0, 1, 2, 3]
    RaggedMmap.from_lists(tmp_path / "r", [np.arange(9)] * 5)  # replaced by another store, even a longer one
    with pytest.raises(StoreReplacedError):
        reader.refresh()
    assert len(reader) == 3 and reader[1].tolist() == [0, 1, 2]  # the snapshot is kept
    reader.close()
    with pytest.raises(ValueError, match="closed"):
        len(reader)
    assert view.tolist() == [0, 1]


def test_verify_reports_what_open_does_not_check(tmp_path: Path) -> None:
    RaggedMmap.from_lists(tmp_path / "r", [np.arange(3), np.arange(4), np.arange(5)])
    RaggedMmap(tmp_path / "r").verify()
    shapes = np.fromfile(tmp_path / "r" / "shapes" / "data.ninja", dtype="<i8")
    shapes[2] = 6
    shapes.tofile(tmp_path / "r" / "shapes" / "data.ninja")
    with pytest.raises(CorruptStoreError, match="item 2"):
        RaggedMmap(tmp_path / "r").verify()


@pytest.mark.parametrize("n_jobs", [None, 2])
@pytest.mark.parametrize("backend", ["processes", "threads"])
def test_from_indexable_stops_at_the_first_gap_like_the_serial_path(
    tmp_path: Path, n_jobs: int | None, backend: str
) -> None:
    items = {i: np.arange(i + 1) for i in range(40) if i != 9}  # 9 is missing: a KeyError ends the dataset
    store = RaggedMmap.from_indexable(tmp_path / "r", items.__getitem__, 16, n_jobs=n_jobs, backend=backend)
    assert [x.tolist() for x in store] == [list(range(i + 1)) for i in range(9)]


@pytest.mark.parametrize("nd", [False, True])
def test_reader_attributes_follow_the_snapshot_and_outlive_it(tmp_path: Path, nd: bool) -> None:
    items = [np.arange(6).reshape(2, 3) if nd else np.arange(3), np.arange(4), np.array(9)]
    empty = RaggedMmap(tmp_path / "m")
    assert (empty.starts, empty.ends, empty.shapes, empty.flattened_shapes, empty.memmap) == (None,) * 5
    assert empty.shapes_are_flat is None and empty.n == 0 and empty.range.tolist() == []
    RaggedMmap.from_lists(tmp_path / "m", items)
    m = RaggedMmap(tmp_path / "m")
    RaggedMmap(tmp_path / "m").extend([np.ones((2, 2)) if nd else np.ones(5)])  # another reader's write
    assert m.starts.tolist() == [0, 6 if nd else 3, 10 if nd else 7]
    assert m.ends.tolist() == m.starts.tolist()[1:] + [11 if nd else 8]
    assert m.flattened_shapes.tolist() == [6 if nd else 3, 4, 1]
    shapes = [list(s) for s in m.shapes] if nd else m.shapes.tolist()
    assert shapes == ([[2, 3], [4], [0]] if nd else [[3], [4], [0]])  # a 0-d item's shape is stored as (0,)
    assert m.shapes_are_flat is not nd and len(m.shapes) == 3
    assert m.starts is m.starts  # made once per snapshot
    unpickled = pickle.loads(pickle.dumps(m))  # opens the store of 4 items, limited to the 3 pickled
    assert len(unpickled.shapes) == len(unpickled.starts) == 3
    assert unpickled.memmap.tolist() == m.memmap.tolist() and len(m.memmap) == m.ends[-1]
    if nd:  # the nested shapes are part of the reader: never written, refreshed or pickled by themselves
        for refused in (
            lambda: m.shapes.extend([[1]]),
            lambda: m.shapes.refresh(),
            lambda: m.shapes.__setitem__(0, [3, 2]),
        ):
            with pytest.raises(ValueError, match="shapes of a RaggedMmap"):
                refused()
        assert [list(s) for s in pickle.loads(pickle.dumps(unpickled.shapes))] == shapes
    old_starts = m.starts
    assert m.refresh() == 4
    assert len(m.starts) == len(m.ends) == len(m.shapes) == len(m.flattened_shapes) == m.n == 4
    m.close()
    with pytest.raises(ValueError, match="closed"):
        _ = m.starts
    assert old_starts.tolist() == [0, 6 if nd else 3, 10 if nd else 7]  # arrays handed out stay valid

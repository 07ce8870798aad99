"""Dense stores: np.memmap views of the native mapping, extends, and the reference's faults fixed."""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import pytest

from mmap_ninja import CorruptStoreError, np_append, np_extend, np_extend_dir, np_from_generator, np_from_ndarray
from mmap_ninja import numpy as np_ninja
from mmap_ninja.base import _shape_to_file, _str_to_file

from support import SMAPS, mapped_kb


def test_round_trip_is_a_memmap_sharing_the_mapping(tmp_path: Path) -> None:
    arr = np.random.default_rng(0).standard_normal((50, 4)).astype(np.float32)
    written = np_from_ndarray(tmp_path / "d", arr)
    assert isinstance(written, np.memmap) and written.flags.writeable
    opened = np_ninja.open_existing(tmp_path / "d")
    assert isinstance(opened, np.memmap) and not opened.flags.writeable
    np.testing.assert_array_equal(opened, arr)
    assert opened.dtype == np.float32 and opened.shape == (50, 4)
    row = opened[3]
    written[3] = -1.0  # through the other (writable) mapping of the same file
    assert row.tolist() == [-1.0] * 4  # the read-only view is the file itself, not a copy


def test_r_plus_writes_persist(tmp_path: Path) -> None:
    np_from_ndarray(tmp_path / "d", np.zeros((3, 2)))
    rw = np_ninja.open_existing(tmp_path / "d", mode="r+")
    rw[1] = [4, 5]
    assert np_ninja.open_existing(tmp_path / "d")[1].tolist() == [4, 5]


def _dirty_kb(path: Path) -> int:
    return mapped_kb(path, "Shared_Dirty", "Private_Dirty")


@pytest.mark.skipif(not SMAPS.exists(), reason="needs Linux's /proc/self/smaps")
def test_in_place_maths_views_and_flush_behave_as_np_memmap(tmp_path: Path) -> None:
    a = np_from_ndarray(tmp_path / "d", np.arange(6.0).reshape(3, 2))
    store = a
    a += 1
    np.sqrt(a, out=a)
    assert a is store and a.filename == str((tmp_path / "d" / "data.ninja").absolute())
    # Views share the store's filename and mode; copies have none.
    assert (a[1:].filename, a[0].mode, a[1:][1:].offset) == (a.filename, "r+", 0)
    assert getattr(a[[0, 1]], "filename", None) is None and type(a + 1) is np.ndarray
    np_extend(a[1:], np.zeros((1, 2)))
    assert np_ninja.open_existing(tmp_path / "d").shape == (4, 2)
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        a[0].nope  # noqa: B018
    # flush writes the dirty pages back (the file system then marks the mapping clean; tmpfs never does).
    a[:] = 7.0
    if _dirty_kb(Path(a.filename)) == 0:
        pytest.skip("writes through this mapping are not tracked as dirty (tmpfs?)")
    a[1:].flush()
    assert _dirty_kb(Path(a.filename)) == 0
    assert np_ninja.open_existing(tmp_path / "d").flush() is None  # read-only: nothing to write


def test_extend_append_and_view_survival(tmp_path: Path) -> None:
    first = np_from_ndarray(tmp_path / "d", np.arange(6).reshape(3, 2))
    view = np_ninja.open_existing(tmp_path / "d")
    np_extend(first, np.array([[6, 7]]))
    np_append(first, np.array([8, 9]))
    np_extend_dir(tmp_path / "d", np.empty((0, 2), dtype=np.int64))
    assert np_ninja.open_existing(tmp_path / "d").tolist() == np.arange(10).reshape(5, 2).tolist()
    assert view.shape == (3, 2) and view.tolist() == [[0, 1], [2, 3], [4, 5]]


def test_extend_rejects_wrong_row_shape_and_inexact_values(tmp_path: Path) -> None:
    np_from_ndarray(tmp_path / "d", np.zeros((2, 3), dtype=np.int8))
    with pytest.raises(ValueError, match="incorrect shape"):
        np_extend_dir(tmp_path / "d", np.zeros((1, 4), dtype=np.int8))
    with pytest.raises(ValueError, match="exactly"):
        np_extend_dir(tmp_path / "d", np.full((1, 3), 1000))
    np_extend_dir(tmp_path / "d", np.full((1, 3), 100))
    assert np_ninja.open_existing(tmp_path / "d").tolist() == [[0] * 3, [0] * 3, [100] * 3]


def test_big_endian_and_fortran_input_round_trip(tmp_path: Path) -> None:
    big = np.arange(12, dtype=">i4").reshape(3, 4)
    np_from_ndarray(tmp_path / "b", big)
    assert np_ninja.open_existing(tmp_path / "b").tolist() == big.tolist()
    fortran = np.asfortranarray(np.arange(12.0).reshape(3, 4))
    np_from_ndarray(tmp_path / "f", fortran)
    np_extend_dir(tmp_path / "f", np.asfortranarray(np.arange(12.0, 20.0).reshape(2, 4)))
    assert np_ninja.open_existing(tmp_path / "f").tolist() == np.arange(20.0).reshape(5, 4).tolist()


def test_legacy_fortran_store_extends_without_scrambling(tmp_path: Path) -> None:
    # The layout mmap-ninja 0.9.0 writes for an F-order array.
    d = tmp_path / "legacy"
    d.mkdir()
    arr = np.arange(6, dtype=np.int64).reshape(2, 3)
    (d / "data.ninja").write_bytes(arr.tobytes(order="F"))
    _str_to_file("int64", d / "dtype.ninja")
    _shape_to_file((2, 3), d / "shape.ninja")
    _str_to_file("F", d / "order.ninja")
    _str_to_file("numpy", d / "type.ninja")
    assert np_ninja.open_existing(d).tolist() == arr.tolist()
    np_extend_dir(d, np.array([[6, 7, 8]]))
    assert np_ninja.open_existing(d).tolist() == np.arange(9).reshape(3, 3).tolist()


def test_from_generator_returns_the_whole_array(tmp_path: Path) -> None:
    result = np_from_generator(tmp_path / "g", (np.full(2, i) for i in range(11)), batch_size=4)
    assert result.shape == (11, 2) and result[-1].tolist() == [10, 10]


@pytest.mark.parametrize(
    "bad",
    [np.array(["ab"]), np.array([object()]), np.zeros(1, dtype=[("a", "i4")]), np.zeros(1, "datetime64[5s]")],
)
def test_unsupported_dtypes_raise_type_error(tmp_path: Path, bad: np.ndarray) -> None:
    with pytest.raises(TypeError):
        np_from_ndarray(tmp_path / "d", bad)


def test_missing_store_and_bad_mode(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        np_ninja.open_existing(tmp_path / "nope")
    np_from_ndarray(tmp_path / "d", np.arange(3))
    with pytest.raises(ValueError, match="erase"):
        np_ninja.open_existing(tmp_path / "d", mode="w+")


@pytest.mark.parametrize("mode", ["c", "copyonwrite"])
def test_copy_on_write_mode_does_not_touch_the_file(tmp_path: Path, mode: str) -> None:
    """Mode "c" maps the store privately: writable, flushable, never written back; it pickles as its path (a
    few hundred bytes, like the other modes), so a pickled copy sees the file, not this process's writes."""
    np_from_ndarray(tmp_path / "d", np.arange(30_000))
    before = (tmp_path / "d" / "data.ninja").read_bytes()
    cow = np_ninja.open_existing(tmp_path / "d", mode=mode)
    assert cow.mode == "c" and cow.flags.writeable
    cow[0] = 42
    cow[1:3] += 1
    cow.flush()
    assert cow[:4].tolist() == [42, 2, 3, 3]
    assert np_ninja.open_existing(tmp_path / "d")[0] == 0
    assert (tmp_path / "d" / "data.ninja").read_bytes() == before
    pickled = pickle.dumps(cow)
    copy = pickle.loads(pickled)
    assert len(pickled) < 1000 and copy.mode == "c" and copy[:2].tolist() == [0, 1]


@pytest.mark.parametrize(
    "tamper",
    [
        lambda d: (d / "data.ninja").write_bytes(b"\0" * 7),
        lambda d: (d / "dtype.ninja").write_text("object"),
        lambda d: (d / "shape.ninja").write_bytes(b"\xff" * 16),
        lambda d: (d / "shape.ninja").write_bytes(b"\x01" * 5),
        lambda d: (d / "order.ninja").write_text("X"),
    ],
)
def test_inconsistent_files_raise_corrupt_store_error(tmp_path: Path, tamper: object) -> None:
    # 2-D, so order.ninja matters (for 1-D arrays it cannot change a byte and is not read).
    np_from_ndarray(tmp_path / "d", np.arange(6).reshape(2, 3))
    tamper(tmp_path / "d")  # type: ignore[operator]
    with pytest.raises(CorruptStoreError):
        np_ninja.open_existing(tmp_path / "d")


def test_zero_rows_and_0d_arrays(tmp_path: Path) -> None:
    assert np_from_ndarray(tmp_path / "z", np.zeros((0, 5), np.float32)).shape == (0, 5)
    np_extend_dir(tmp_path / "z", np.ones((2, 5)))
    assert np_ninja.open_existing(tmp_path / "z").shape == (2, 5)
    assert np_from_ndarray(tmp_path / "s", np.float64(2.5)).shape == ()


def test_getitems_gives_writable_private_rows_like_fancy_indexing(tmp_path: Path) -> None:
    data = np.arange(40, dtype=np.float32).reshape(10, 4)
    np_from_ndarray(tmp_path / "d", data)
    store = np_ninja.open_existing(tmp_path / "d", mode="r")
    picks = [3, -1, 3, 0]
    rows = store.__getitems__(picks)
    assert [type(r) for r in rows] == [np.ndarray] * len(picks)
    assert [r.tolist() for r in rows] == data[picks].tolist()
    assert all(r.flags.writeable and not np.shares_memory(r, store) for r in rows)
    rows[0][:] = -1  # a private copy: neither the store nor the other row of the same index changes
    assert store[3].tolist() == rows[2].tolist() == data[3].tolist()
    assert store.__getitems__([]) == []
    for bad in ([10], [-11]):
        with pytest.raises(IndexError):
            store.__getitems__(bad)

"""Element types besides plain numbers, which mmap-ninja 0.9.0 stores too: datetime64 and timedelta64 in each of
numpy's units (int64 counts, written through their int64 view since numpy exports no buffer of them) and
float128 (numpy's 16-byte long double). The golden stores in ``test_compat`` cover the bytes 0.9.0 writes."""

from __future__ import annotations

import datetime
import pickle
from pathlib import Path

import numpy as np
import pytest

from mmap_ninja import numpy as np_ninja
from mmap_ninja.ragged import RaggedMmap

from support import assert_item_equal

UNITS = ["Y", "M", "W", "D", "h", "m", "s", "ms", "us", "ns", "ps", "fs", "as"]


@pytest.mark.parametrize("kind", ["datetime64", "timedelta64"])
@pytest.mark.parametrize("unit", UNITS)
def test_times_of_every_unit_round_trip_with_nat(tmp_path: Path, kind: str, unit: str) -> None:
    dtype = np.dtype(f"{kind}[{unit}]")
    values = np.array([0, 1, -1, 2**40, np.iinfo(np.int64).min], dtype=np.int64).view(dtype)  # the last is NaT
    dense = np_ninja.from_ndarray(tmp_path / "d", values.reshape(5, 1))
    np_ninja.extend_dir(tmp_path / "d", values[:2].reshape(2, 1))
    ragged = RaggedMmap.from_lists(tmp_path / "r", [values, values[:0], values[1:3].reshape(1, 2)])
    ragged.extend([values[4:]])
    assert dense.dtype == ragged.dtype == dtype
    assert_item_equal(np_ninja.open_existing(tmp_path / "d")[:, 0], np.concatenate([values, values[:2]]))
    reader = pickle.loads(pickle.dumps(RaggedMmap(tmp_path / "r")))
    for got, want in zip(reader, [values, values[:0], values[1:3].reshape(1, 2), values[4:]], strict=True):
        assert_item_equal(got, want)
    assert np.isnat(reader[0][-1]) and np.isnat(reader.gather([3])[0][0])
    reader = RaggedMmap(tmp_path / "r", mode="r+")
    reader[2] = values[3:5].reshape(2)
    assert_item_equal(RaggedMmap(tmp_path / "r")[2], values[3:5].reshape(1, 2))


def test_times_are_converted_exactly_or_refused(tmp_path: Path) -> None:
    minutes = np.array(["2021-02-03T04:05", "NaT"], dtype="datetime64[m]")
    store = RaggedMmap.from_lists(tmp_path / "r", [minutes])
    store.extend([minutes.astype("datetime64[s]"), np.array(["2021-02-03"], dtype="datetime64[D]")])  # exact
    assert store[1].dtype == store.dtype == np.dtype("datetime64[m]")
    assert_item_equal(store[1], minutes)
    assert_item_equal(store[2], np.array(["2021-02-03T00:00"], dtype="datetime64[m]"))
    with pytest.raises(ValueError, match="cannot hold exactly"):
        store.append(np.array(["2021-02-03T04:05:06"], dtype="datetime64[s]"))  # a fraction of a minute
    with pytest.raises(ValueError, match="cannot hold exactly"):  # numpy calls this cast safe, but it overflows
        RaggedMmap.from_lists(tmp_path / "ns", [np.array(["3000-01-01"], dtype="datetime64[s]")], dtype="M8[ns]")
    with pytest.raises(TypeError, match="does not take"):
        store.append(np.array([1], dtype=np.int64))  # a count without a unit
    with pytest.raises(TypeError, match="does not take"):
        store.append(np.array([1], dtype="timedelta64[m]"))  # a duration is not a date
    with pytest.raises(TypeError, match="does not take"):
        RaggedMmap.from_lists(tmp_path / "i", [np.arange(2)]).append(minutes)  # a date is not a count
    np_ninja.from_ndarray(tmp_path / "d", minutes)
    with pytest.raises(TypeError, match="does not take"):
        np_ninja.extend_dir(tmp_path / "d", np.zeros(1))
    with pytest.raises(TypeError, match="does not take"):  # a count without a unit, spelt as a duration
        RaggedMmap.from_lists(tmp_path / "td", [np.array([1], dtype="timedelta64[D]")]).append(np.array([5], "m8"))
    generic = RaggedMmap.from_lists(tmp_path / "g", [np.array(["NaT"], dtype="datetime64")])
    with pytest.raises(ValueError, match="cannot hold exactly"):  # a unitless store holds no dates
        generic.append(minutes)
    store.append(np.array(["NaT"], dtype="datetime64"))  # NaT has no unit to lose
    assert len(store) == 4 and len(generic) == 1 and len(np_ninja.open_existing(tmp_path / "d")) == 2


def test_python_dates_datetimes_and_timedeltas_are_stored_as_the_times_they_are(tmp_path: Path) -> None:
    # A 0-d time item reads back as a Python object (as in 0.9.0), which must go back in.
    store = RaggedMmap.from_lists(tmp_path / "r", [np.datetime64("2020-01-01T10:00:00", "s")])
    assert store[0] == datetime.datetime(2020, 1, 1, 10)
    store.append(store[0])
    store.extend([[datetime.datetime(2022, 1, 1, 5), datetime.date(2023, 2, 3)], datetime.date(2024, 1, 1)])
    assert store[1] == store[0] and store[3] == datetime.datetime(2024, 1, 1)
    assert_item_equal(store[2], np.array(["2022-01-01T05", "2023-02-03"], dtype="datetime64[s]"))
    with pytest.raises(ValueError, match="cannot hold exactly"):  # a fraction of a second
        store.append(datetime.datetime(2022, 1, 1, 0, 0, 0, 500))
    with pytest.raises(TypeError, match="does not take"):
        store.append(datetime.timedelta(seconds=1))
    with pytest.raises(TypeError, match="cannot store dtype"):  # other objects (strings too) are refused
        store.append([datetime.date(2022, 1, 1), "2022-01-02"])
    dense = np_ninja.from_ndarray(tmp_path / "d", np.array([1, 2], dtype="timedelta64[ms]"))
    np_ninja.append(dense, datetime.timedelta(seconds=3))
    np_ninja.extend_dir(tmp_path / "d", [datetime.timedelta(milliseconds=4)])
    assert np_ninja.open_existing(tmp_path / "d").astype(np.int64).tolist() == [1, 2, 3000, 4]
    assert len(store) == 4


def test_times_of_several_units_in_one_list_are_checked_one_by_one(tmp_path: Path) -> None:
    """numpy gives a list of times the finest of their units and wraps around those it cannot hold there (the
    year 3000 in nanoseconds is 1830): such lists raise, whichever way the package batches them."""
    from mmap_ninja.sharded import from_partitions

    rows = [np.datetime64("3000-01-01", "D"), np.datetime64(1, "ns")]
    with pytest.raises(ValueError, match="cannot hold exactly"):
        np_ninja.from_generator(tmp_path / "g", iter(rows), batch_size=2)
    with pytest.raises(ValueError, match="cannot hold exactly"):
        RaggedMmap.from_lists(tmp_path / "r", [rows])
    with pytest.raises(ValueError, match="cannot hold exactly"):
        from_partitions(tmp_path / "s", [rows], kind="numpy")
    with pytest.raises(TypeError, match="does not take"):
        RaggedMmap.from_lists(tmp_path / "t", [[np.timedelta64(2, "h"), 5]])  # a count among durations
    fine = RaggedMmap.from_lists(tmp_path / "f", [[np.timedelta64(2, "h"), np.timedelta64(3, "m")]])
    assert fine[0].tolist() == [np.timedelta64(120, "m").item(), np.timedelta64(3, "m").item()]


def test_time_items_gather_into_a_time_buffer_and_take_one_value(tmp_path: Path) -> None:
    days = [np.array(["2020-01-01", "NaT"], dtype="datetime64[D]"), np.array([], dtype="datetime64[D]")]
    store = RaggedMmap.from_lists(tmp_path / "r", [*days, days[0][:1]], mode="r+")
    out = np.empty(3, dtype="datetime64[D]")
    got = store.gather([0, 2], out=out)
    assert_item_equal(got[0], days[0]) and np.shares_memory(got[1], out)
    assert_item_equal(got[1], days[0][:1])
    store[0] = np.datetime64("1999-12-31")  # one value fills the item
    store[1] = np.datetime64("NaT")  # ... and an empty one
    assert_item_equal(store[0], np.array(["1999-12-31"] * 2, dtype="datetime64[D]"))
    assert store[1].size == 0


def test_float128_and_complex256_round_trip_every_bit_of_their_values(tmp_path: Path) -> None:
    values = np.arange(1, 7, dtype=np.longdouble) / 3  # thirds: more digits than a float64 holds
    if values.dtype.itemsize != 16:
        pytest.skip("numpy's long double is not 16 bytes here")
    pairs = values * (1 + 1j)
    assert pairs.dtype == np.dtype("complex256")
    assert np.array_equal(np_ninja.from_ndarray(tmp_path / "c", pairs), pairs)
    assert_item_equal(RaggedMmap.from_lists(tmp_path / "rc", [pairs[:1], pairs])[1], pairs)
    dense = np_ninja.from_ndarray(tmp_path / "d", values)
    ragged = RaggedMmap.from_lists(tmp_path / "r", [values[:2], values[2:].reshape(2, 2)])
    ragged.append(np.float64(0.5))
    assert dense.dtype == ragged.dtype == np.dtype("float128")
    assert np.array_equal(np_ninja.open_existing(tmp_path / "d"), values)
    assert_item_equal(ragged[1], values[2:].reshape(2, 2))
    assert ragged[0][0] != np.float64(values[0])  # the extra precision is kept
    assert ragged[2] == 0.5


def _day(i: int) -> np.ndarray:
    return np.arange(i % 3 + 1).astype("datetime64[D]") + i


@pytest.mark.parametrize("backend", ["processes", "threads"])
def test_times_built_in_parallel(tmp_path: Path, backend: str) -> None:
    """Workers return times, which are never placed into the file by the workers (no buffer): the parent
    writes them."""
    items = [_day(i) for i in range(24)]
    store = RaggedMmap.from_indexable(tmp_path / "r", items, batch_size=4, n_jobs=2, backend=backend)
    assert store.dtype == np.dtype("datetime64[D]")
    for got, want in zip(store, items, strict=True):
        assert_item_equal(got, want)

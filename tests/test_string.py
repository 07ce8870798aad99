"""StringsMmap: UTF-8 decoded natively, zstd frames and dictionaries, in-place edits, and the faults fixed."""

from __future__ import annotations

from pathlib import Path

import pytest

from mmap_ninja import CorruptStoreError, generic
from mmap_ninja.string import StringsMmap

STRINGS = ["Torba", "", "日本語", "emoji 🥷", "ascii"]


@pytest.mark.parametrize("zstd", [None, (3, None), (5, 256)])
def test_round_trip_and_extend(tmp_path: Path, zstd: tuple[int, int | None] | None) -> None:
    strings = [f"{s} sample {i}" for i in range(40) for s in STRINGS]
    level, dict_size = zstd or (None, None)
    store = StringsMmap.from_strings(tmp_path / "s", strings, zstd_level=level, zstd_train_dictionary_size=dict_size)
    store.extend(["more", ""])
    reopened = StringsMmap(tmp_path / "s")
    assert reopened[:] == strings + ["more", ""]
    assert reopened[-1] == "" and reopened[np_int(2)] == strings[2]
    assert reopened[[0, -1]] == [strings[0], ""]
    assert (tmp_path / "s" / "zstd_level.ninja").exists() == (zstd is not None)


def np_int(i: int) -> object:
    import numpy as np

    return np.int32(i)


def test_empty_and_all_empty_stores_open(tmp_path: Path) -> None:
    empty = StringsMmap.from_strings(tmp_path / "e" / "deep", [])
    assert len(empty) == 0 and empty[:] == []
    assert len(generic.open_existing(tmp_path / "e" / "deep")) == 0
    blanks = StringsMmap.from_strings(tmp_path / "b", ["", "", ""])
    assert StringsMmap(tmp_path / "b")[:] == ["", "", ""]
    blanks.append("x")
    assert StringsMmap(tmp_path / "b")[:] == ["", "", "", "x"]


def test_in_place_edit_same_byte_length_only(tmp_path: Path) -> None:
    store = StringsMmap.from_strings(tmp_path / "s", STRINGS)
    store[0] = "Korba"
    store[[2]] = ["語本日"]
    assert StringsMmap(tmp_path / "s")[:3] == ["Korba", "", "語本日"]
    with pytest.raises(ValueError, match="same length"):
        store[0] = "Torbas"
    with pytest.raises(ValueError, match="read-only"):
        StringsMmap(tmp_path / "s", mode="rb")[0] = "Zorba"


def test_compressed_store_refuses_in_place_edit(tmp_path: Path) -> None:
    store = StringsMmap.from_strings(tmp_path / "s", ["hello", "world"], zstd_level=3)
    with pytest.raises(ValueError):
        store[0] = "other"


def test_non_strings_are_refused(tmp_path: Path) -> None:
    with pytest.raises(TypeError):
        StringsMmap.from_strings(tmp_path / "s", ["a", b"b"])  # type: ignore[list-item]
    store = StringsMmap.from_strings(tmp_path / "t", ["a"])
    with pytest.raises(TypeError):
        store.append(3)  # type: ignore[arg-type]
    assert store[:] == ["a"]


def test_index_errors_and_close(tmp_path: Path) -> None:
    store = StringsMmap.from_strings(tmp_path / "s", ["a", "b"])
    with pytest.raises(IndexError):
        StringsMmap(tmp_path / "missing")[0]
    with pytest.raises(IndexError):
        StringsMmap(tmp_path / "missing")[[0]]
    for bad in (2, -3, 2**70, -(2**70)):  # one message, whether the index fits in int64 or not
        with pytest.raises(IndexError, match=rf"^index {bad} is out of range for a store of 2 items$"):
            store[bad]
    store.close()
    with pytest.raises(ValueError, match="closed"):
        store[0]


def test_invalid_utf8_and_bad_offsets_raise_corrupt_store_error(tmp_path: Path) -> None:
    StringsMmap.from_strings(tmp_path / "s", ["ab", "cd"])
    (tmp_path / "s" / "data.ninja").write_bytes(b"\xff\xfecd")
    store = StringsMmap(tmp_path / "s")
    assert store[1] == "cd"
    with pytest.raises(CorruptStoreError, match="UTF-8"):
        store[0]
    (tmp_path / "s" / "data.ninja").write_bytes(b"ab")
    with pytest.raises(CorruptStoreError):
        StringsMmap(tmp_path / "s")[1]


def test_corrupt_zstd_frame_raises(tmp_path: Path) -> None:
    StringsMmap.from_strings(tmp_path / "s", ["hello world"] * 3, zstd_level=3)
    data = bytearray((tmp_path / "s" / "data.ninja").read_bytes())
    data[:8] = b"\x00" * 8
    (tmp_path / "s" / "data.ninja").write_bytes(bytes(data))
    with pytest.raises(CorruptStoreError, match="zstd"):
        StringsMmap(tmp_path / "s")[0]


def test_readers_are_snapshots_that_refresh_and_verify_decodes_every_string(tmp_path: Path) -> None:
    writer = StringsMmap.from_strings(tmp_path / "s", ["a", "bé"])
    reader = StringsMmap(tmp_path / "s", mode="rb")
    writer.extend(["c"])
    assert (len(writer), len(reader), reader.refresh(), reader[2]) == (3, 2, 3, "c")
    reader.verify()
    data = tmp_path / "s" / "data.ninja"
    data.write_bytes(data.read_bytes().replace("é".encode(), b"\xff\xfe"))
    with pytest.raises(CorruptStoreError, match="UTF-8"):
        StringsMmap(tmp_path / "s").verify()


def test_setitem_takes_the_lock_and_refuses_a_replaced_store(tmp_path: Path) -> None:
    import fcntl
    import os

    from mmap_ninja import StoreLockedError, StoreReplacedError

    strings = StringsMmap.from_strings(tmp_path / "s", ["alpha", "beta"])
    reader = StringsMmap(tmp_path / "s")
    fd = os.open(tmp_path / "s", os.O_RDONLY)
    fcntl.flock(fd, fcntl.LOCK_EX)  # another writer at work
    with pytest.raises(StoreLockedError):
        strings[0] = "ALPHA"
    os.close(fd)
    strings[0] = "ALPHA"
    assert reader[0] == "ALPHA"
    StringsMmap.from_strings(tmp_path / "s", ["gamma", "delta"])  # replaced: "ALPHA"'s offsets mean nothing now
    with pytest.raises(StoreReplacedError):
        strings[1] = "BETA"
    assert list(StringsMmap(tmp_path / "s")) == ["gamma", "delta"]


def test_setitem_of_many_checks_every_value_before_writing_any(tmp_path: Path) -> None:
    strings = StringsMmap.from_strings(tmp_path / "s", ["one", "two", "three"])
    with pytest.raises(ValueError, match="same length"):
        strings[[0, 1, 2]] = ["ONE", "TWO!", "THREE"]  # the second does not fit: nothing is written
    assert list(StringsMmap(tmp_path / "s")) == ["one", "two", "three"]
    strings[[2, 0]] = ["THREE", "ONE"]
    assert list(StringsMmap(tmp_path / "s")) == ["ONE", "two", "THREE"]
    with pytest.raises(ValueError, match="2 items selected but 1"):
        strings[[0, 1]] = ["uno"]


def test_reader_attributes_follow_the_snapshot(tmp_path: Path) -> None:
    assert StringsMmap(tmp_path / "s").starts is None
    StringsMmap.from_strings(tmp_path / "s", ["ab", "", "日本"])
    s = StringsMmap(tmp_path / "s")
    StringsMmap(tmp_path / "s").append("more")
    assert (s.starts.tolist(), s.ends.tolist(), s.range.tolist()) == ([0, 2, 2], [2, 2, 8], [0, 1, 2])
    assert s.refresh() == 4 and s.ends.tolist() == [2, 2, 8, 12]
    s.close()
    with pytest.raises(ValueError, match="closed"):
        _ = s.ends

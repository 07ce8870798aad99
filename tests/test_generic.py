"""generic.open_existing dispatches on type.ninja and reports bad directories clearly."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from mmap_ninja import CorruptStoreError, MmapNinjaError, Wrapped, generic, np_from_ndarray
from mmap_ninja.ragged import RaggedMmap
from mmap_ninja.string import StringsMmap


def test_dispatch_on_type(tmp_path: Path) -> None:
    np_from_ndarray(tmp_path / "n", np.arange(3))
    RaggedMmap.from_lists(tmp_path / "r", [np.arange(2)])
    StringsMmap.from_strings(tmp_path / "s", ["x"])
    assert isinstance(generic.open_existing(tmp_path / "n"), np.memmap)
    assert isinstance(generic.open_existing(tmp_path / "r"), RaggedMmap)
    assert isinstance(generic.open_existing(tmp_path / "s"), StringsMmap)
    wrapped = generic.open_existing(tmp_path / "s", wrapper_fn=str.upper)
    assert isinstance(wrapped, Wrapped) and wrapped[0] == "X"
    assert generic.open_existing(tmp_path / "r", wrapper_fn=lambda a: a * 2)[0].tolist() == [0, 2]


def test_missing_directory_is_file_not_found(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError) as err:
        generic.open_existing(tmp_path / "nope")
    assert "type.ninja" in str(err.value.filename)


def test_unknown_type_is_a_value_error_in_the_package_hierarchy(tmp_path: Path) -> None:
    (tmp_path / "type.ninja").write_text("asd")
    with pytest.raises(CorruptStoreError) as err:
        generic.open_existing(tmp_path)
    assert isinstance(err.value, ValueError) and isinstance(err.value, MmapNinjaError)
    assert err.value.path is not None and err.value.path.endswith("type.ninja")


def test_oversized_metadata_is_refused_before_reading_it_all(tmp_path: Path) -> None:
    (tmp_path / "type.ninja").write_bytes(b"numpy" + b" " * 100_000)
    with pytest.raises(CorruptStoreError, match="limit"):
        generic.open_existing(tmp_path)

"""Same bytes on disk as mmap-ninja 0.9.0, both ways: golden stores written by the reference open and extend
in ours; stores written by ours are byte-identical to the reference's and the reference reads and extends them."""

from __future__ import annotations

import filecmp
import shutil
from pathlib import Path

import numpy as np
import pytest

from mmap_ninja import generic, np_extend_dir, np_from_ndarray, np_open_existing
from mmap_ninja.ragged import RaggedMmap
from mmap_ninja.string import StringsMmap

import golden_cases as gc
import write_with_reference
from support import GOLDEN, assert_item_equal, run_reference

CASE_NAMES = sorted(gc.CASES)
UNCOMPRESSED = [c for c in CASE_NAMES if c not in gc.ZSTD_CASES]


def read_all(path: Path) -> list:
    store = generic.open_existing(path)
    return [store[i] for i in range(len(store))]


def expected(case: str) -> list:
    kind, make = gc.CASES[case]
    want = make()
    return list(want) if kind == "numpy" else want


def assert_store_holds(path: Path, want: list) -> None:
    got = read_all(path)
    assert len(got) == len(want)
    for g, w in zip(got, want, strict=True):
        assert_item_equal(g, w)


@pytest.mark.parametrize("case", CASE_NAMES)
def test_golden_store_written_by_reference_reads_in_ours(case: str) -> None:
    assert_store_holds(GOLDEN / case, expected(case))


@pytest.mark.parametrize("case", CASE_NAMES)
def test_golden_store_extends_in_ours(case: str, tmp_path: Path) -> None:
    path = tmp_path / case
    shutil.copytree(GOLDEN / case, path)
    kind, _ = gc.CASES[case]
    want = expected(case)
    if kind == "numpy":
        extra = list(np.asarray(want[:2]))
        np_extend_dir(path, np.asarray(extra))
    elif kind == "ragged":
        extra = [want[-1], want[0]]
        RaggedMmap(path).extend(extra)
    else:
        extra = ["extra", "", "ünï 🥷"]
        StringsMmap(path).extend(extra)
    assert_store_holds(path, want + extra)


@pytest.mark.parametrize("case", UNCOMPRESSED)
def test_ours_writes_the_same_bytes_as_the_reference(case: str, tmp_path: Path) -> None:
    write_with_reference.write_case(case, tmp_path / case)
    comparison = filecmp.dircmp(GOLDEN / case, tmp_path / case)

    def differences(cmp: filecmp.dircmp) -> list[str]:
        found = cmp.left_only + cmp.right_only + cmp.diff_files
        for sub in cmp.subdirs.values():
            found += differences(sub)
        return found

    # dircmp compares by stat first; force a byte comparison of every common file.
    mismatched = [
        str(p.relative_to(GOLDEN / case))
        for p in (GOLDEN / case).rglob("*")
        if p.is_file() and not filecmp.cmp(p, tmp_path / case / p.relative_to(GOLDEN / case), shallow=False)
    ]
    assert differences(comparison) == [] and mismatched == []


def test_reference_reads_and_extends_stores_written_by_ours(tmp_path: Path, reference_python: Path) -> None:
    write_with_reference.write_all(tmp_path)
    result = run_reference(
        reference_python,
        str(Path(write_with_reference.__file__).with_name("check_ours.py")),
        str(tmp_path),
        "--in-place",
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert sorted(line.split()[1] for line in result.stdout.splitlines() if line.startswith("ok ")) == CASE_NAMES
    # The reference appended to every store; ours still reads them, old items first.
    for case in CASE_NAMES:
        got = read_all(tmp_path / case)
        want = expected(case)
        assert len(got) > len(want)
        for g, w in zip(got, want, strict=False):
            assert_item_equal(g, w)


_WRITE_EMPTY = """
import sys
from pathlib import Path
import numpy as np
from mmap_ninja import numpy as np_ninja
from mmap_ninja.ragged import RaggedMmap
out = Path(sys.argv[1])
np_ninja.from_ndarray(out / "d", np.zeros((0, 4)))
RaggedMmap.from_lists(out / "r", [np.array([]), np.array([])])
"""

_READ_EMPTY = """
import sys
from pathlib import Path
from mmap_ninja import numpy as np_ninja
from mmap_ninja.ragged import RaggedMmap
from mmap_ninja.string import StringsMmap
out = Path(sys.argv[1])
dense, ragged, strings = np_ninja.open_existing(out / "d"), RaggedMmap(out / "r"), StringsMmap(out / "s")
print(dense.shape, [x.tolist() for x in ragged], list(strings))
"""


def test_stores_without_elements_are_written_as_the_reference_writes_them(
    tmp_path: Path, reference_python: Path
) -> None:
    """0.9.0 maps data files with numpy's memmap, which cannot map an empty file, and writes one zero byte
    instead: so do we, so that 0.9.0 opens such stores (ours then writes its next items over that byte)."""
    np_from_ndarray(tmp_path / "ours" / "d", np.zeros((0, 4)))
    RaggedMmap.from_lists(tmp_path / "ours" / "r", [np.array([]), np.array([])])
    StringsMmap.from_strings(tmp_path / "ours" / "s", ["", ""])
    written = run_reference(reference_python, "-c", _WRITE_EMPTY, str(tmp_path / "ref"))
    assert written.returncode == 0, written.stderr
    for store in ("d", "r"):
        assert (tmp_path / "ours" / store / "data.ninja").read_bytes() == b"\0"
        assert (tmp_path / "ref" / store / "data.ninja").read_bytes() == b"\0"
    read = run_reference(reference_python, "-c", _READ_EMPTY, str(tmp_path / "ours"))
    assert (read.returncode, read.stdout.strip()) == (0, "(0, 4) [[], []] ['', '']"), read.stderr
    np_extend_dir(tmp_path / "ours" / "d", np.ones((1, 4)))
    RaggedMmap(tmp_path / "ours" / "r").extend([np.array([2.0])])
    StringsMmap(tmp_path / "ours" / "s").extend(["ab"])
    assert np_open_existing(tmp_path / "ours" / "d").tolist() == [[1.0] * 4]
    assert [x.tolist() for x in RaggedMmap(tmp_path / "ours" / "r")] == [[], [], [2.0]]
    assert list(StringsMmap(tmp_path / "ours" / "s")) == ["", "", "ab"]


def test_reference_test_suite_is_vendored_unchanged() -> None:
    names = sorted(p.name for p in (Path(__file__).parent / "reference").glob("test_*.py"))
    assert names == ["test_base.py", "test_generic.py", "test_numpy.py", "test_ragged.py", "test_string.py"]


def _column(path: Path) -> np.ndarray:
    """What mmap-ninja 0.9.0's reader holds for a column: the dense store in ``path``, opened."""
    return np.asarray(np_open_existing(path))


@pytest.mark.parametrize("case", [c for c in CASE_NAMES if gc.CASES[c][0] == "ragged"])
def test_ragged_reader_attributes_hold_the_references_layout(case: str) -> None:
    path = GOLDEN / case
    m = RaggedMmap(path)
    flat = bool(int.from_bytes((path / "shapes_are_flat.ninja").read_bytes(), "little"))
    assert m.shapes_are_flat is flat
    for name in ("starts", "ends", "flattened_shapes"):
        got = getattr(m, name)
        np.testing.assert_array_equal(got, _column(path / name), err_msg=name)
        assert got.dtype == np.int64 and not got.flags.writeable, name
    assert not m.starts.flags.owndata and not m.ends.flags.owndata  # zero-copy views of the mapping
    if flat:
        np.testing.assert_array_equal(m.shapes, _column(path / "shapes"))
        assert m.shapes.shape == (len(m), 1)
    else:
        assert isinstance(m.shapes, RaggedMmap)
        want = RaggedMmap(path / "shapes")
        assert len(m.shapes) == len(m)
        for got, expected_shape in zip(m.shapes, want, strict=True):
            np.testing.assert_array_equal(got, expected_shape)
    np.testing.assert_array_equal(m.memmap, _column(path))
    assert m.n == len(m) and m.range.tolist() == list(range(len(m)))
    assert m.data_file == path.absolute() / "data.ninja"  # (mmap-ninja 0.9.0 says "data", which it never writes)
    assert (m.starts_key, m.ends_key, m.shapes_key, m.flattened_shapes_key) == (
        "starts",
        "ends",
        "shapes",
        "flattened_shapes",
    )


@pytest.mark.parametrize("case", [c for c in CASE_NAMES if gc.CASES[c][0] == "string"])
def test_strings_reader_attributes_hold_the_references_layout(case: str) -> None:
    path = GOLDEN / case
    s = StringsMmap(path, mode="rb")
    for name in ("starts", "ends"):
        got = getattr(s, name)
        np.testing.assert_array_equal(got, _column(path / name), err_msg=name)
        assert got.dtype == np.int64 and not got.flags.writeable and not got.flags.owndata, name
    assert s.range.tolist() == list(range(len(s)))
    assert s.data_file == path.absolute() / "data.ninja"
    if case not in gc.ZSTD_CASES:
        data = s.data_file.read_bytes()
        assert [data[a:b].decode() for a, b in zip(s.starts, s.ends, strict=True)] == expected(case)


_LONG_DOUBLES = """
import sys
from pathlib import Path
import numpy as np
from mmap_ninja import numpy as np_ninja
from mmap_ninja.ragged import RaggedMmap
out, write = Path(sys.argv[1]), sys.argv[2] == "write"
thirds = np.arange(1, 7, dtype=np.longdouble) / 3
if write:
    np_ninja.from_ndarray(out / "d", thirds.reshape(3, 2))
    RaggedMmap.from_lists(out / "r", [thirds[:1] * 1j, thirds * (1 + 1j)])
else:
    assert np.array_equal(np_ninja.open_existing(out / "d"), thirds.reshape(3, 2))
    r = RaggedMmap(out / "r")
    assert np.array_equal(r[0], thirds[:1] * 1j) and np.array_equal(r[1], thirds * (1 + 1j)), (r[0], r[1])
    print("ok")
"""


def test_long_double_stores_travel_both_ways(tmp_path: Path, reference_python: Path) -> None:
    """float128 and complex256, which mmap-ninja 0.9.0 writes: each library reads the other's stores exactly
    (not golden files: numpy leaves the padding bytes of an x86-64 long double as it finds them)."""
    if np.dtype(np.longdouble).itemsize != 16:
        pytest.skip("numpy's long double is not 16 bytes here")
    script = tmp_path / "long_doubles.py"
    script.write_text(_LONG_DOUBLES)
    written = run_reference(reference_python, str(script), str(tmp_path / "theirs"), "write")
    assert written.returncode == 0, written.stderr
    thirds = np.arange(1, 7, dtype=np.longdouble) / 3
    assert np.array_equal(np_open_existing(tmp_path / "theirs" / "d"), thirds.reshape(3, 2))
    theirs = RaggedMmap(tmp_path / "theirs" / "r")
    assert theirs.dtype == np.dtype("complex256") and np.array_equal(theirs[1], thirds * (1 + 1j))
    np_from_ndarray(tmp_path / "ours" / "d", thirds.reshape(3, 2))
    RaggedMmap.from_lists(tmp_path / "ours" / "r", [thirds[:1] * 1j, thirds * (1 + 1j)])
    read = run_reference(reference_python, str(script), str(tmp_path / "ours"), "read")
    assert (read.returncode, read.stdout.strip()) == (0, "ok"), read.stderr

"""base: the reference's helpers, Wrapped, index normalisation, progress bars; and no pickle/eval on any read
path."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest

import mmap_ninja
from mmap_ninja import numpy as np_ninja
from mmap_ninja.base import Wrapped, normalize_indices
from mmap_ninja.ragged import RaggedMmap
from mmap_ninja.string import StringsMmap


def test_wrapped_copies_before_calling() -> None:
    data = np.arange(3)
    seen = Wrapped(data, lambda x: x)[0:2]  # a slice is a view: only Wrapped's copy protects data
    seen[0] = 99
    assert data[0] == 0
    shared = Wrapped(data, lambda x: x, copy_before_wrapper_fn=False)[0:2]
    assert np.shares_memory(shared, data)
    assert len(Wrapped(data, abs)) == 3


@pytest.mark.parametrize(
    "item, expected",
    [
        (slice(None), [0, 1, 2, 3]),
        (slice(-1, None, -2), [3, 1]),
        ([1, -1], [1, -1]),
        (np.array([True, False, True, False]), [0, 2]),
        ((), []),
    ],
)
def test_normalize_indices(item: object, expected: list[int]) -> None:
    assert normalize_indices(item, 4).tolist() == expected


@pytest.mark.parametrize("bad", [[0.5], "ab", [[0, 1]], np.array([True])])
def test_normalize_indices_rejects_non_indices(bad: object) -> None:
    with pytest.raises(IndexError):
        normalize_indices(bad, 4)


def test_no_pickle_or_eval_on_any_read_path() -> None:
    # When building, parallel.py ships the user's indexable to worker processes and _shipping.py brings their
    # results back (as joblib does); nothing that opens or reads a store may unpickle or evaluate anything.
    # (Stores themselves pickle as their path, through __reduce__, which needs no pickle module.)
    package = Path(mmap_ninja.__file__).parent
    pattern = re.compile(r"import (c|cloud)?pickle|pickle\.|allow_pickle\s*=\s*True|\beval\(|\bexec\(")
    building = {"parallel.py", "_shipping.py"}
    offenders = [p.name for p in package.glob("*.py") if p.name not in building and pattern.search(p.read_text())]
    assert offenders == []


def test_reference_parallel_helpers() -> None:
    from mmap_ninja.parallel import ParallelBatchCollector, make_indexable

    squares = make_indexable(lambda i: i * i, length=5)
    assert len(squares) == 5 and squares[3] == 9
    assert list(ParallelBatchCollector(squares, 2).batches()) == [[0, 1], [4, 9], [16]]
    endless = make_indexable(lambda i: i if i < 3 else [][i])
    assert list(ParallelBatchCollector(endless, 2).batches()) == [[0, 1], [2]]


def test_progress_bars_go_to_stderr_and_nothing_prints_otherwise(
    tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    items = [np.arange(i + 1) for i in range(5)]
    builds = {
        "ragged": lambda d, v: RaggedMmap.from_generator(d, iter(items), batch_size=2, verbose=v),
        "indexable": lambda d, v: RaggedMmap.from_indexable(d, items, batch_size=2, verbose=v),
        "strings": lambda d, v: StringsMmap.from_generator(d, iter(["a", "b", "c"]), batch_size=2, verbose=v),
        "dense": lambda d, v: np_ninja.from_generator(d, iter(items[:1] * 3), batch_size=2, verbose=v),
    }
    for name, build in builds.items():
        build(tmp_path / f"{name}-quiet", False)
        assert capfd.readouterr() == ("", ""), name
        build(tmp_path / f"{name}-verbose", True)
        out, err = capfd.readouterr()
        assert out == "" and ("it/s" in err or "s/it" in err), (name, out, err)

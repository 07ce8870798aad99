"""Check that the reference (mmap-ninja 0.9.0) reads and extends stores written by someone else (ours).

Run with the reference venv's python: ``python tests/compat/check_ours.py DIR_ROOT [--in-place]``.
Every ``DIR_ROOT/<case>`` named like a key of ``golden_cases.CASES`` is opened with ``generic.open_existing`` and
with its own class, compared item by item with the expected values, then extended with the reference's API and
reopened to compare old + new items. Extension happens on a temporary copy unless ``--in-place`` is given (then
the stores are left extended, e.g. for ours to read back). Prints ``ok <case>`` per passing case; exits non-zero
with the list of failures.
"""

import argparse
import logging
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from mmap_ninja import generic, np_extend_dir, np_open_existing
from mmap_ninja.ragged import RaggedMmap
from mmap_ninja.string import StringsMmap

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "fixtures"))
import golden_cases as gc

LOG = logging.getLogger("check_ours")
EXTRA_STRINGS = ["extra", "", "エクストラ 🥷"]


def check_item(label: str, got: Any, want: Any) -> None:
    """Raise AssertionError unless ``got`` equals ``want`` (values and shape; Python scalars stay scalars)."""
    if isinstance(want, str):
        assert isinstance(got, str), f"{label}: got {type(got).__name__}, want str"
        assert got == want, f"{label}: {got!r} != {want!r}"
    elif isinstance(want, int):
        assert isinstance(got, int), f"{label}: got {type(got).__name__}, want a Python int"
        assert got == want, f"{label}: {got!r} != {want!r}"
    else:
        want = np.asarray(want)
        assert isinstance(got, np.ndarray), f"{label}: got {type(got).__name__}, want ndarray"
        assert np.array_equal(got, want, equal_nan=want.dtype.kind in "fcmM"), f"{label}: {got!r} != {want!r}"


def check_store(label: str, store: Any, want: list | np.ndarray) -> None:
    """Compare a whole opened store with the expected items, by single, negative and slice indexing."""
    assert len(store) == len(want), f"{label}: len {len(store)} != {len(want)}"
    for i, item in enumerate(want):
        got = store[i]
        if isinstance(store, np.ndarray):
            assert got.dtype == np.asarray(want).dtype, f"{label}[{i}]: dtype {got.dtype} != {np.asarray(want).dtype}"
            got = np.asarray(got)
        check_item(f"{label}[{i}]", got, item)
    if len(want):
        check_item(f"{label}[-1]", np.asarray(store[-1]) if isinstance(store, np.ndarray) else store[-1], want[-1])
    if not isinstance(store, np.ndarray):
        sliced = store[:]
        assert len(sliced) == len(want), f"{label}[:]: len {len(sliced)} != {len(want)}"
        for i, item in enumerate(want):
            check_item(f"{label}[:][{i}]", sliced[i], item)


def open_specific(kind: str, path: Path) -> Any:
    """Open ``path`` with the reference's class for ``kind``."""
    if kind == "numpy":
        return np_open_existing(path)
    if kind == "ragged":
        return RaggedMmap(path)
    return StringsMmap(path)


def close(store: Any) -> None:
    if isinstance(store, StringsMmap):
        store.close()


def check_all_opens(kind: str, path: Path, want: list | np.ndarray) -> None:
    for how, opener in (("generic", generic.open_existing), ("specific", lambda p: open_specific(kind, p))):
        store = opener(path)
        check_store(f"{how}", store, want)
        close(store)


def extend(kind: str, path: Path, want: list | np.ndarray) -> list | np.ndarray:
    """Extend the store at ``path`` with the reference; return the expected items afterwards."""
    if kind == "numpy":
        extra = np.asarray(want)[:2][::-1]
        np_extend_dir(path, extra)
        return np.concatenate([want, extra])
    if kind == "ragged":
        extra = [want[-1], want[0]]
        RaggedMmap(path).extend(extra)
        return [*want, *extra]
    store = StringsMmap(path)
    store.extend(EXTRA_STRINGS)
    store.close()
    return [*want, *EXTRA_STRINGS]


def check_case(name: str, path: Path, *, in_place: bool) -> None:
    kind, make = gc.CASES[name]
    want = make()
    check_all_opens(kind, path, want)
    with tempfile.TemporaryDirectory() as tmp:
        target = path if in_place else Path(shutil.copytree(path, Path(tmp) / name))
        want = extend(kind, target, want)
        check_all_opens(kind, target, want)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("dir_root", type=Path)
    parser.add_argument("--in-place", action="store_true", help="extend the stores under DIR_ROOT themselves")
    args = parser.parse_args()
    names = sorted(p.name for p in args.dir_root.iterdir() if p.is_dir() and p.name in gc.CASES)
    if not names:
        print(f"no case directories under {args.dir_root}", file=sys.stderr)
        return 2
    failures = []
    for name in names:
        try:
            check_case(name, args.dir_root / name, in_place=args.in_place)
        except Exception:
            failures.append(name)
            LOG.exception("FAIL %s", name)
        else:
            print(f"ok {name}")
    if failures:
        print(f"{len(failures)} failed: {' '.join(failures)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())

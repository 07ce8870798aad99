"""Batches of ``indexable[i]`` computed serially or in parallel with joblib (``n_jobs``), in index order."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from enum import Enum
from typing import Any

from .base import progress


class _Exhausted(Enum):
    """Marks the end of an indexable; an Enum member keeps its identity through joblib's pickling."""

    exhausted = "EXHAUSTED"


EXHAUSTED = _Exhausted.exhausted


def _getter(indexable: Any) -> Callable[[int], Any]:
    if hasattr(indexable, "__getitem__"):
        return indexable.__getitem__  # type: ignore[no-any-return]
    if callable(indexable):
        return indexable  # type: ignore[no-any-return]
    raise TypeError("indexable must implement __getitem__ or be callable and take one integer argument.")


def _get(get: Callable[[int], Any], i: int) -> Any:
    try:
        return get(i)
    except (IndexError, KeyError):
        return EXHAUSTED


def _length(indexable: Any) -> int | None:
    try:
        return len(indexable)
    except TypeError:
        return None


def collect_batches(indexable: Any, batch_size: int, n_jobs: int | None, verbose: bool) -> Iterator[list[Any]]:
    """Yields lists of up to ``batch_size`` items until ``len(indexable)`` or the first IndexError/KeyError."""
    get = _getter(indexable)
    length = _length(indexable)
    parallel = None
    if n_jobs not in (None, 1):
        try:
            from joblib import Parallel, delayed
        except ImportError as exc:
            raise ImportError("n_jobs needs joblib: pip install 'mmap_ninja[parallel]' (or use n_jobs=None)") from exc
        parallel = Parallel(n_jobs=n_jobs)
    bar = progress(iter(()), verbose, total=length)
    try:
        if parallel is not None:
            parallel.__enter__()
        start = 0
        while length is None or start < length:
            stop = start + batch_size if length is None else min(start + batch_size, length)
            if parallel is None:
                results = [_get(get, i) for i in range(start, stop)]
            else:
                results = parallel(delayed(_get)(get, i) for i in range(start, stop))
            done = any(r is EXHAUSTED for r in results)
            if done:
                results = results[: next(k for k, r in enumerate(results) if r is EXHAUSTED)]
            if hasattr(bar, "update"):
                bar.update(len(results))
            if results:
                yield results
            if done:
                return
            start = stop
    finally:
        if parallel is not None:
            parallel.__exit__(None, None, None)
        if hasattr(bar, "close"):
            bar.close()

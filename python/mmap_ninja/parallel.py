"""Batches of ``indexable[i]`` computed serially or in parallel (``n_jobs``, joblib's loky processes), in
index order, until ``len(indexable)`` or the first IndexError/KeyError.

In parallel the indexable is sent to each worker once (the executor's initializer), tasks are contiguous
index ranges, and the next batch is computed while the current one is written. mmap-ninja 0.9.0 sent the
indexable with every item, which made its parallel path slower than its serial one.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from concurrent.futures import Future
from enum import Enum
from typing import Any

from .base import progress


class _Exhausted(Enum):
    """Marks the end of an indexable; an Enum member keeps its identity through pickling."""

    exhausted = "EXHAUSTED"


EXHAUSTED = _Exhausted.exhausted
_WORKER_GET: Callable[[int], Any] | None = None


def _getter(indexable: Any) -> Callable[[int], Any]:
    if hasattr(indexable, "__getitem__"):
        return indexable.__getitem__  # type: ignore[no-any-return]
    if callable(indexable):
        return indexable  # type: ignore[no-any-return]
    raise TypeError("indexable must implement __getitem__ or be callable and take one integer argument.")


def _length(indexable: Any) -> int | None:
    try:
        return len(indexable)
    except TypeError:
        return None


def _get_range(get: Callable[[int], Any], start: int, stop: int) -> list[Any]:
    """Items ``start..stop``, ending with EXHAUSTED at the first missing one."""
    results = []
    for i in range(start, stop):
        try:
            results.append(get(i))
        except (IndexError, KeyError):
            results.append(EXHAUSTED)
            break
    return results


def _init_worker(get: Callable[[int], Any]) -> None:
    global _WORKER_GET
    _WORKER_GET = get


def _worker_range(start: int, stop: int) -> list[Any]:
    assert _WORKER_GET is not None
    return _get_range(_WORKER_GET, start, stop)


class _Pool:
    """A loky process pool whose workers each hold the indexable."""

    def __init__(self, get: Callable[[int], Any], n_jobs: int) -> None:
        try:
            from joblib import effective_n_jobs
            from joblib.externals.loky import get_reusable_executor
        except ImportError as exc:
            raise ImportError("n_jobs needs joblib: pip install 'mmap_ninja[parallel]' (or use n_jobs=None)") from exc
        self.workers = effective_n_jobs(n_jobs)
        self.executor = get_reusable_executor(
            max_workers=self.workers, initializer=_init_worker, initargs=(get,), reuse=False
        )

    def _submit(self, start: int, stop: int) -> list[Future[list[Any]]]:
        chunk = max(1, -(-(stop - start) // (4 * self.workers)))
        return [self.executor.submit(_worker_range, i, min(i + chunk, stop)) for i in range(start, stop, chunk)]

    def map(self, spans: Iterator[tuple[int, int]]) -> Iterator[list[Any]]:
        """Results of each span in order, the next span already computing while one is consumed."""
        pending = None
        for span in spans:
            submitted = self._submit(*span)
            if pending is not None:
                yield [item for future in pending for item in future.result()]
            pending = submitted
        if pending is not None:
            yield [item for future in pending for item in future.result()]

    def close(self) -> None:
        self.executor.shutdown(wait=True)


def _spans(length: int | None, batch_size: int) -> Iterator[tuple[int, int]]:
    start = 0
    while length is None or start < length:
        stop = start + batch_size if length is None else min(start + batch_size, length)
        yield start, stop
        start = stop


def collect_batches(indexable: Any, batch_size: int, n_jobs: int | None, verbose: bool) -> Iterator[list[Any]]:
    """Yields lists of up to ``batch_size`` items in index order."""
    get = _getter(indexable)
    length = _length(indexable)
    spans = _spans(length, batch_size)
    pool = None if n_jobs in (None, 1) else _Pool(get, n_jobs)  # type: ignore[arg-type]
    batches = (_get_range(get, *span) for span in spans) if pool is None else pool.map(spans)
    bar = progress(iter(()), verbose, total=length)
    try:
        for results in batches:
            items = [r for r in results if r is not EXHAUSTED]
            if hasattr(bar, "update"):
                bar.update(len(items))
            if items:
                yield items
            if len(items) < len(results):
                return
    finally:
        if pool is not None:
            pool.close()
        if hasattr(bar, "close"):
            bar.close()

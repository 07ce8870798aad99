"""Batches of ``indexable[i]`` computed serially or in parallel (``n_jobs``: joblib's loky worker processes, or
threads with ``backend="threads"``), in index order, until ``len(indexable)`` or the first IndexError/KeyError.

In parallel the indexable is pickled once per call and each worker unpickles it once (small ones travel with
the tasks, large ones through a temporary file); tasks are contiguous index ranges whose items are handed on
as soon as they and the tasks before them are done, the next span's tasks are queued while the current one's
are handed on, and the worker processes are reused across calls. mmap-ninja 0.9.0 sent
the indexable with every item, which made its parallel path slower than its serial one. Large results come
back through shared memory rather than loky's pipe (see ``_shipping``); when the caller builds a store
(``PlaceInto``), workers write a task's items straight into its data file instead (see ``_placing``).
"""

from __future__ import annotations

import atexit
import os
import tempfile
import uuid
from collections import deque
from collections.abc import Callable, Generator, Iterator
from concurrent.futures import BrokenExecutor, Future, ThreadPoolExecutor
from enum import Enum
from typing import Any

from . import _placing, _shipping
from .base import progress

# Indexables pickled larger than this go to workers through a temporary file instead of with every task.
_INLINE_BYTES = 1 << 20
# Tasks per worker and span (a span is one batch_size of items): more balance the load better at the end of
# a call, fewer cost less (each is a loky round trip and a shipped file: with 4, a build of 200 decoded PNGs
# took about 5% longer).
_TASKS_PER_WORKER = 2
# Seconds an idle worker process waits for the next call before exiting.
_IDLE_TIMEOUT = 60
# glibc malloc settings of the worker processes: from the start, the largest mmap threshold (32 MiB) that
# glibc's own tuning reaches as memory is freed, and twice it as trim threshold, so that an item's temporaries
# reuse the memory of the previous item's. Left to the tuning, a worker could fault in fresh pages for every
# item: zlib's output buffer of a 200 KB PNG did so in workers (61 faults a decode, 14% more decode CPU), which
# cost from_indexable(n_jobs=2) a tenth of its speed-up. Other C libraries ignore these variables.
_WORKER_MALLOC_ENV = {"MALLOC_MMAP_THRESHOLD_": str(32 << 20), "MALLOC_TRIM_THRESHOLD_": str(64 << 20)}


class _Exhausted(Enum):
    """Marks the end of an indexable; an Enum member keeps its identity through pickling."""

    exhausted = "EXHAUSTED"


EXHAUSTED = _Exhausted.exhausted

# In the parent: our own loky executor (not joblib's shared one) and its worker count, kept across calls.
_EXECUTOR: tuple[int, Any] | None = None


def _shutdown_executor() -> None:
    """Stops the worker processes at exit (left to the garbage collector, loky reports errors at shutdown)."""
    global _EXECUTOR
    if _EXECUTOR is not None:
        _EXECUTOR[1].shutdown(wait=False)
        _EXECUTOR = None


atexit.register(_shutdown_executor)

# In a worker: the unpickled item getter of the current call, by key.
_WORKER_CACHE: dict[str, Callable[[int], Any]] = {}


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


def _get_range(
    get: Callable[[int], Any], start: int, stop: int, pack: Callable[[Any], Any] = lambda item: item
) -> list[Any]:
    """Items ``start..stop`` (each passed through ``pack`` as it comes), ending with EXHAUSTED at the first
    missing one."""
    results = []
    for i in range(start, stop):
        try:
            results.append(pack(get(i)))
        except (IndexError, KeyError):
            results.append(EXHAUSTED)
            break
    return results


def _worker_range(
    key: str,
    payload: bytes | str,
    start: int,
    stop: int,
    parent_pid: int,
    place: tuple[_placing.Target, int] | None = None,
) -> list[Any] | _shipping.Shipped | _placing.Placed:
    get = _WORKER_CACHE.get(key)
    if get is None:
        import cloudpickle

        if isinstance(payload, str):
            with open(payload, "rb") as f:
                payload = f.read()
        _WORKER_CACHE.clear()
        get = _WORKER_CACHE[key] = cloudpickle.loads(payload)
    packer = _shipping.Packer(parent_pid, key)
    try:
        if place is None:
            return packer.result(_get_range(get, start, stop, packer.pack))
        # The task's items stay in memory until they are placed (a serial build holds a whole span).
        items = _get_range(get, start, stop)
        placed = _placing.place(*place, items) if items and items[-1] is not EXHAUSTED else None
        return placed if placed is not None else packer.result([packer.pack(item) for item in items])
    except BaseException:
        packer.abandon()
        raise


class _Pool:
    """Loky worker processes (kept across calls, idle ones exit after a minute), fed one call's item getter;
    with ``place_into`` (and a known ``length``), they place the items in the store themselves when they can."""

    # Tasks submitted and handed on so far. `placing`: the store and a bound on the call's task count, when
    # workers may place items; `place_into`, `target` and `slots` are set once the call starts placing them
    # (None: the workers ship every item).
    submitted = handed_on = 0
    placing: tuple[_placing.PlaceInto, int] | None = None
    place_into: _placing.PlaceInto | None = None
    target: _placing.Target | None = None
    slots: _placing.Slots | None = None

    def __init__(
        self,
        get: Callable[[int], Any],
        n_jobs: int,
        length: int | None = None,
        batch_size: int = 1,
        place_into: _placing.PlaceInto | None = None,
    ) -> None:
        try:
            import cloudpickle
            from joblib import effective_n_jobs
            from joblib.externals.loky import ProcessPoolExecutor
        except ImportError as exc:
            raise ImportError("n_jobs needs joblib: pip install 'mmap_ninja[parallel]' (or use n_jobs=None)") from exc
        global _EXECUTOR
        self.workers = effective_n_jobs(n_jobs)
        if _EXECUTOR is None or _EXECUTOR[0] != self.workers:
            _shipping.sweep()
            if _EXECUTOR is not None:
                _EXECUTOR[1].shutdown(wait=False)
            executor = ProcessPoolExecutor(max_workers=self.workers, timeout=_IDLE_TIMEOUT, env=_worker_env())
            _EXECUTOR = (self.workers, executor)
        self.executor = _EXECUTOR[1]
        self.key = uuid.uuid4().hex
        pickled = cloudpickle.dumps(get)
        self.file: str | None = None
        self.payload: bytes | str = pickled
        if len(pickled) > _INLINE_BYTES:
            fd, self.file = tempfile.mkstemp(prefix="mmap_ninja_indexable_")
            with os.fdopen(fd, "wb") as f:
                f.write(pickled)
            self.payload = self.file
        if place_into is not None and length is not None:
            # At most this many tasks per span, plus the first one split in two.
            tasks = -(-length // batch_size) * min(batch_size, _TASKS_PER_WORKER * self.workers) + 1
            self.placing = (place_into, tasks)

    def _place(self, place_into: _placing.PlaceInto, tasks: int) -> None:
        """Lets the workers place items in ``place_into`` (unless too many tasks or no room for the slots)."""
        if tasks > _placing.MAX_TASKS or not _shipping.SHM_DIR.is_dir():
            return
        path = os.path.abspath(place_into.data_file())
        info = os.stat(path)
        start, _ = place_into.position()
        try:
            self.slots = _placing.Slots(os.getpid(), self.key, tasks, start, place_into.dtype)
        except OSError:
            return  # a full /dev/shm: the workers ship their items
        self.place_into = place_into
        paths = (path, os.path.abspath(place_into.final_path))
        self.target = _placing.Target(paths, (info.st_dev, info.st_ino), self.slots.path, _placing.WAIT_SECONDS)

    def _submit(self, start: int, stop: int, into: list[Future[Any]]) -> None:
        """Adds the span to ``into`` as about ``_TASKS_PER_WORKER`` tasks per worker, each a contiguous index range
        (one by one, so that the tasks submitted before a failure are still waited for and cleaned up). When
        workers place items, the call's first task is half the size of the others, so that the workers stay
        half a task apart and finish their tasks in index order."""
        chunk = max(1, -(-(stop - start) // (_TASKS_PER_WORKER * self.workers)))
        bounds = list(range(start, stop, chunk))
        if self.target is not None and self.submitted == 0 and chunk > 1:
            bounds.insert(1, start + chunk // 2)
        for i, j in zip(bounds, [*bounds[1:], stop], strict=True):
            into.append(self._task(i, j))

    def _task(self, start: int, stop: int) -> Future[Any]:
        place = None if self.target is None else (self.target, self.submitted)
        self.submitted += 1
        task: Future[Any] = self.executor.submit(_worker_range, self.key, self.payload, start, stop, os.getpid(), place)
        return task

    def map(self, spans: Iterator[tuple[int, int]]) -> Generator[list[Any], None, None]:
        """The results of each task in index order, each as soon as it and the tasks before it are done (the
        writer streams them to disk while the workers compute), the next span already queued meanwhile."""
        pending: deque[Future[Any]] = deque()
        submitted: list[Future[Any]] = []
        try:
            if self.placing is not None:
                self._place(*self.placing)  # here, so that the finally below removes the slots
            for span in spans:
                self._submit(*span, into=submitted)
                while pending:
                    yield from self._hand_on(pending)
                pending.extend(submitted)
                submitted.clear()
            while pending:
                yield from self._hand_on(pending)
        finally:
            # Stopped early (an error, the consumer gone): cancel what has not started, including the span
            # queued ahead, and wait for what has, before the payload file goes away.
            unfinished = [*pending, *submitted]
            for future in unfinished:
                future.cancel()
            try:
                for future in unfinished:
                    if not future.cancelled() and future.exception() is None:
                        _shipping.discard(future.result())
            except BaseException:
                # Interrupted again while waiting: no worker may outlive the call (one could write into the
                # store after its writer is gone), so the pool's processes are stopped at once.
                self._retire(kill_workers=True)
                raise
            finally:
                self.close()

    def _hand_on(self, pending: deque[Future[Any]]) -> Generator[Any, None, None]:
        """Hands on the first pending task's result; once the caller has written items it got (not placed),
        tells the workers where the next task starts."""
        result = _next(pending)
        task = self.handed_on
        self.handed_on += 1
        yield result
        if self.slots is not None and self.place_into is not None and not isinstance(result, _placing.Placed):
            self.slots.wrote(task, *self.place_into.position())

    def _retire(self, kill_workers: bool = False) -> None:
        """Stops this call's executor and waits for its processes; the next call starts a new one."""
        global _EXECUTOR
        if _EXECUTOR is not None and _EXECUTOR[1] is self.executor:
            _EXECUTOR = None
        self.executor.shutdown(wait=True, kill_workers=kill_workers)

    def close(self) -> None:
        """No task of this call runs any more: removes what it left (the payload file, results never read)
        and retires an executor that a dead worker broke, so that the next call starts a new one."""
        if _EXECUTOR is not None and _EXECUTOR[1] is self.executor and _broken(self.executor):
            self._retire()  # its other workers may be writing files until they are stopped
        if self.slots is not None:
            self.slots.close()
        _shipping.remove_call_files(os.getpid(), self.key)
        if self.file is not None:
            os.unlink(self.file)


def _worker_env() -> dict[str, str]:
    """Environment variables the worker processes get on top of ours: our malloc settings, unless the user
    tunes malloc already (then theirs apply, unchanged)."""
    if "glibc.malloc." in os.environ.get("GLIBC_TUNABLES", "") or any(n in os.environ for n in _WORKER_MALLOC_ENV):
        return {}
    return dict(_WORKER_MALLOC_ENV)


def _next(pending: deque[Future[Any]]) -> list[Any] | _placing.Placed:
    """The items of the first pending task, in order (arrays a worker shipped are mapped from its file), or
    the note of the items it placed. The task stays pending until they are received, so that an interrupted
    wait still cleans up after it."""
    result = pending[0].result()
    items = result if isinstance(result, _placing.Placed) else _shipping.receive(result)
    pending.popleft()
    return items


def _broken(executor: Any) -> bool:
    """True when a worker died and loky will accept no more tasks (submitting is how to ask)."""
    try:
        executor.submit(int).cancel()
    except BrokenExecutor:
        return True
    return False


class _Threads(_Pool):
    """Threads of this process, for one call: nothing is pickled, neither the indexable nor the items. Faster
    than processes when the item function spends its time outside the GIL (Pillow, OpenCV, zlib, numpy). The
    indexable is shared by the threads, so it must be thread-safe (one open file handle that seeks, then reads
    is not)."""

    def __init__(self, get: Callable[[int], Any], n_jobs: int) -> None:
        if n_jobs == 0:
            raise ValueError("n_jobs == 0 has no meaning (joblib's convention): use None, 1, 2, ... or -1")
        self.workers = n_jobs if n_jobs > 0 else max(1, (os.cpu_count() or 1) + 1 + n_jobs)
        self.executor = ThreadPoolExecutor(self.workers, thread_name_prefix="mmap_ninja")
        self.get = get
        self.file = None

    def _task(self, start: int, stop: int) -> Future[Any]:
        task: Future[Any] = self.executor.submit(_get_range, self.get, start, stop)
        return task

    def _retire(self, kill_workers: bool = False) -> None:
        self.executor.shutdown(wait=False, cancel_futures=True)  # threads cannot be stopped; they place nothing

    def close(self) -> None:
        self.executor.shutdown(wait=True, cancel_futures=True)


def _spans(length: int | None, batch_size: int) -> Iterator[tuple[int, int]]:
    start = 0
    while length is None or start < length:
        stop = start + batch_size if length is None else min(start + batch_size, length)
        yield start, stop
        start = stop


BACKENDS = ("processes", "threads")


def check_backend(backend: str) -> None:
    """Refuses a backend that is not one of ``BACKENDS``."""
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {BACKENDS}, not {backend!r}")


def collect_chunks(
    indexable: Any,
    batch_size: int,
    n_jobs: int | None,
    verbose: bool,
    backend: str = "processes",
    place_into: _placing.PlaceInto | None = None,
) -> Generator[Any, None, None]:
    """Yields the items in index order, in lists as they are ready: whole spans of ``batch_size`` serially,
    each task's items in parallel. With ``place_into``, worker processes may place a task's items in the
    store themselves: its list is then a ``Placed`` note, which the caller must adopt."""
    check_backend(backend)
    get = _getter(indexable)
    length = _length(indexable)
    spans = _spans(length, batch_size)
    if n_jobs in (None, 1):
        chunks: Generator[Any, None, None] = (_get_range(get, *span) for span in spans)
    elif backend == "threads":
        chunks = _Threads(get, n_jobs).map(spans)
    else:
        chunks = _Pool(get, n_jobs, length, batch_size, place_into).map(spans)
    bar = progress(iter(()), verbose, total=length)
    try:
        for results in chunks:
            if isinstance(results, _placing.Placed):
                if hasattr(bar, "update"):
                    bar.update(len(results.shapes))
                yield results
                continue
            # Up to the first missing index: in parallel, chunks after it may have found items past a gap,
            # which the serial path never reaches.
            end = next((k for k, r in enumerate(results) if r is EXHAUSTED), len(results))  # `is`: items may be arrays
            items = results[:end]
            if hasattr(bar, "update"):
                bar.update(len(items))
            if items:
                yield items
            if len(items) < len(results):
                return
    finally:
        chunks.close()
        if hasattr(bar, "close"):
            bar.close()


def collect_batches(
    indexable: Any, batch_size: int, n_jobs: int | None, verbose: bool, backend: str = "processes"
) -> Iterator[list[Any]]:
    """Yields lists of ``batch_size`` items in index order, the last one possibly shorter."""
    chunks = collect_chunks(indexable, batch_size, n_jobs, verbose, backend)
    batch: list[Any] = []
    try:
        for chunk in chunks:
            batch.extend(chunk)
            while len(batch) >= batch_size:
                yield batch[:batch_size]
                batch = batch[batch_size:]
        if batch:
            yield batch
    finally:
        chunks.close()


class _IndexableWrap:
    """A function of the index, indexable like a sequence (the reference's ``parallel._IndexableWrap``)."""

    def __init__(self, func: Callable[[int], Any]) -> None:
        self._func = func

    def __getitem__(self, item: int) -> Any:
        return self._func(item)

    @property
    def wrapped(self) -> Callable[[int], Any]:
        return self._func


class _IndexableLengthWrap(_IndexableWrap):
    def __init__(self, func: Callable[[int], Any], length: int) -> None:
        super().__init__(func)
        self.length = length

    def __len__(self) -> int:
        return self.length


def make_indexable(func: Callable[[int], Any], length: int | None = None) -> _IndexableWrap:
    """Wraps ``func(i)`` as an indexable (with ``len`` when ``length`` is given), as mmap-ninja 0.9.0 does."""
    return _IndexableWrap(func) if length is None else _IndexableLengthWrap(func, length)


class ParallelBatchCollector:
    """The reference's batch collector: ``batches()`` yields lists of up to ``batch_size`` items."""

    def __init__(self, indexable: Any, batch_size: int, n_jobs: int | None = None, verbose: bool = False) -> None:
        self.indexable, self.batch_size, self.n_jobs, self.verbose = indexable, batch_size, n_jobs, verbose

    def batches(self) -> Iterator[list[Any]]:
        return collect_batches(self.indexable, self.batch_size, self.n_jobs, self.verbose)

"""kill -9 during extend: a writer killed at any moment leaves a store that opens without error, holds every
item the writer saw committed (and at most the one batch in flight, whole), and that the next writer extends
cleanly past whatever the dead one left behind. Readers that keep reopening the store while writers are
killed and restarted never see an error, a wrong item or a store that shrinks.

Writers, readers and checkers run in forked children, so a crash or a hang in any of them is counted rather
than taking the test run down. Items are determined by their index, so every check knows what each item must
be. ``MMAP_NINJA_CRASH_TRIALS`` sets the number of ragged trials (string and dense trials are a quarter of it,
at least 50), ``MMAP_NINJA_CRASH_SEED`` the seed.
"""

from __future__ import annotations

import json
import os
import random
import select
import shutil
import signal
import time
import traceback
import warnings
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from mmap_ninja import np_extend
from mmap_ninja import numpy as np_ninja
from mmap_ninja.ragged import RaggedMmap
from mmap_ninja.string import StringsMmap

TRIALS = int(os.environ.get("MMAP_NINJA_CRASH_TRIALS", "200"))
SMALL_TRIALS = max(50, TRIALS // 4)
SEED = int(os.environ.get("MMAP_NINJA_CRASH_SEED", "4242"))
MAX_KILL_DELAY = 0.08  # seconds: kills land from before the first write to well into the writing
ROW = 16384  # float32 elements per dense row: 64 KiB


# Items determined by their index -----------------------------------------------------------------------------


def ragged_item(i: int, nd_from: int) -> Any:
    """Item i: some 0-d or empty, most small, every 8th of 256 KiB to 1 MiB; n-d ones only from ``nd_from`` on
    (so that a store turns from flat to n-d in the middle of the trial, or never)."""
    rng = random.Random(i)
    if i % 11 == 3:
        return np.int32(i)
    size = rng.randrange(1 << 16, 1 << 18) if i % 8 == 5 else rng.randrange(0, 40)
    if i >= nd_from and rng.random() < 0.5:
        shape: tuple[int, ...] = (size // 6, 2, 3) if rng.random() < 0.5 else (size // 3, 3)
    else:
        shape = (size,)
    return (np.arange(np.prod(shape), dtype=np.int32) + i).reshape(shape)


def string_item(i: int) -> str:
    """String i: some empty, non-ASCII, every 8th of about 1 MB."""
    unit = f"<{i}>" + "日本語é" * (i % 4) + "x" * (i % 7)
    return unit * (random.Random(i).randrange(20_000, 60_000) if i % 8 == 5 else i % 5)


def dense_rows(first: int, count: int) -> np.ndarray:
    """Rows first .. first + count of the dense store: row i holds i, i + 1, ..., i + ROW - 1."""
    return (np.arange(first, first + count, dtype=np.float32)[:, None] + np.arange(ROW, dtype=np.float32)).copy()


def same_item(got: Any, want: Any) -> bool:
    got, want = np.asarray(got), np.asarray(want)
    return got.shape == want.shape and (got.ndim == 0 or got.dtype == want.dtype) and np.array_equal(got, want)


# Forked children ---------------------------------------------------------------------------------------------


@dataclass
class Child:
    """A forked child that runs ``fn(send, *args)``; ``send`` reports a JSON value to the parent."""

    pid: int
    fd: int

    @classmethod
    def fork(cls, fn: Callable[..., None], *args: Any) -> Child:
        read_end, write_end = os.pipe()
        pid = os.fork()
        if pid == 0:
            code = 0
            try:
                os.close(read_end)
                warnings.simplefilter("ignore")
                fn(lambda value: os.write(write_end, json.dumps(value).encode() + b"\n"), *args)
            except BaseException:  # noqa: B036 - everything the child meets is reported to the parent
                code = 1
                os.write(write_end, json.dumps({"error": traceback.format_exc(limit=-4)}).encode() + b"\n")
            finally:
                os._exit(code)
        os.close(write_end)
        return cls(pid, read_end)

    def finish(self, kill_after: float | None = None, timeout: float = 60.0) -> tuple[str, list[Any]]:
        """Collects the reports until the child ends, SIGKILLing it after ``kill_after`` seconds. Returns how it
        ended ("ok", "killed", "signal SIGSEGV", "error: <traceback>", "hang") and what it reported."""
        started, chunks, killed = time.monotonic(), [], False
        limit = timeout if kill_after is None else kill_after
        while True:
            left = limit - (time.monotonic() - started)
            if not killed and left <= 0:
                os.kill(self.pid, signal.SIGKILL)
                killed = True
            # Once killed, wait for the end of the pipe: the kill closes it.
            if select.select([self.fd], [], [], None if killed else left)[0]:
                chunk = os.read(self.fd, 1 << 16)
                if not chunk:
                    break
                chunks.append(chunk)
        _, status = os.waitpid(self.pid, 0)
        os.close(self.fd)
        lines = b"".join(chunks).split(b"\n")[:-1]  # a line cut by the kill is dropped
        reports = [json.loads(line) for line in lines]
        code = os.waitstatus_to_exitcode(status)
        errors = [r["error"] for r in reports if isinstance(r, dict) and "error" in r]
        if code == -signal.SIGKILL and killed:
            return ("killed" if kill_after is not None else "hang"), reports
        if code < 0:
            return f"signal {signal.Signals(-code).name}", reports
        if code:
            return f"error: {errors[-1] if errors else code}", reports
        return "ok", reports


def checked_in_child(check: Callable[..., list[str]], *args: Any) -> list[str]:
    """Runs ``check(*args)`` (which returns the problems it found) in a forked child: a crash is a problem too."""
    end, reports = Child.fork(lambda send: send(check(*args))).finish(timeout=60)
    return reports[-1] if end == "ok" else [f"checking the store: {end}"]


# Writers and checkers ----------------------------------------------------------------------------------------


def extend_ragged(send: Callable[[Any], None], path: Path, nd_from: int, batches: list[int]) -> None:
    """A writer: reports the length it finds, then extends the store by each batch in turn, reporting the
    committed length after each."""
    store = RaggedMmap(path, mode="r+")
    n = len(store)
    send(n)
    for size in batches:
        store.extend([ragged_item(i, nd_from) for i in range(n, n + size)])
        n += size
        send(n)


def extend_strings(send: Callable[[Any], None], path: Path, batches: list[int]) -> None:
    store = StringsMmap(path)
    n = len(store)
    send(n)
    for size in batches:
        store.extend([string_item(i) for i in range(n, n + size)])
        n += size
        send(n)


def extend_dense(send: Callable[[Any], None], path: Path, batches: list[int]) -> None:
    store = np_ninja.open_existing(path)
    n = len(store)
    send(n)
    for size in batches:
        np_extend(store, dense_rows(n, size))
        n += size
        send(n)


def length_problems(n: int, low: int, high: int) -> list[str]:
    """The length must be a commit boundary: ``low`` (the last one reported) or ``high`` (the batch in flight)."""
    return [] if n in (low, high) else [f"length {n}, expected {low}" + (f" or {high}" if high != low else "")]


def check_ragged(path: Path, nd_from: int, low: int, high: int) -> list[str]:
    """The store opens, its length is ``low`` or ``high``, and every item is the one written at its index."""
    store = RaggedMmap(path)
    problems = length_problems(len(store), low, high)
    problems += [f"item {i} is wrong" for i in range(len(store)) if not same_item(store[i], ragged_item(i, nd_from))]
    if len(store[:]) != len(store):
        problems.append(f"m[:] has {len(store[:])} items, len() says {len(store)}")
    return problems


def check_strings(path: Path, low: int, high: int) -> list[str]:
    store = StringsMmap(path, mode="rb")
    problems = length_problems(len(store), low, high)
    return problems + [f"string {i} is wrong" for i in range(len(store)) if store[i] != string_item(i)]


def check_dense(path: Path, low: int, high: int) -> list[str]:
    array = np.asarray(np_ninja.open_existing(path))
    problems = length_problems(len(array), low, high)
    wrong = np.flatnonzero((array != dense_rows(0, len(array))).any(axis=1))
    return problems + [f"row {i} is wrong" for i in wrong[:10]]


def committed_range(reported: list[int], batches: list[int], before: tuple[int, int]) -> tuple[int, int]:
    """The lengths a killed writer may have left: the last it reported, or that plus the batch in flight. The
    writer first reports the length it found, then the length after each batch; ``before`` is the range
    known before it ran (unchanged when it was killed before reporting anything)."""
    if not reported:
        return before
    done = len(reported) - 1
    return reported[-1], reported[-1] + (batches[done] if done < len(batches) else 0)


# Trials ------------------------------------------------------------------------------------------------------


@dataclass
class Trial:
    """One kill: a writer extends a store holding items ``0 .. start`` by ``batches`` until it is killed after
    ``delay`` seconds; the store is checked, extended by a next writer, and checked again."""

    number: int
    start: int
    batches: list[int]
    delay: float
    nd_from: int  # ragged: the first index that may hold an n-d item
    zstd: bool  # strings: frames compressed at level 3

    @classmethod
    def draw(cls, number: int, min_start: int = 0) -> Trial:
        rng = random.Random(SEED * 1_000_003 + number)
        return cls(
            number=number,
            start=max(min_start, rng.choice([0, 0, 1, 2, 5, 9])),
            batches=[rng.choice([1, 1, 2, 3, 5, 8]) for _ in range(1000)],
            delay=rng.uniform(0, MAX_KILL_DELAY),
            nd_from=rng.choice([0, 3, 12, 10**9]),
            zstd=rng.random() < 0.5,
        )

    def run(self, writer: Callable[..., None], check: Callable[..., list[str]], path: Path, *args: Any) -> list[str]:
        """Kills ``writer(send, path, *args, batches)``, checks the store with ``check(path, *args, low, high)``,
        extends it with a next writer and checks again. Returns what went wrong."""
        end, reported = Child.fork(writer, path, *args, self.batches).finish(kill_after=self.delay)
        if end not in ("killed", "ok"):
            return [f"killed writer: {end}"]
        low, high = committed_range(reported, self.batches, (self.start, self.start))
        problems = checked_in_child(check, path, *args, low, high)
        if reported and reported[0] != self.start:
            problems.append(f"the writer found {reported[0]} items, not {self.start}")
        if problems:
            return [f"after the kill (writer reported {reported}): {p}" for p in problems]
        end, reported = Child.fork(writer, path, *args, [2, 1]).finish(timeout=60)
        if end != "ok":
            return [f"next writer: {end}"]
        problems = checked_in_child(check, path, *args, reported[-1], reported[-1])
        if reported[0] not in (low, high):
            problems.append(f"the next writer found {reported[0]} items, not {low} or {high}")
        return [f"after the next writer (reported {reported}): {p}" for p in problems]

    def describe(self, kind: str) -> str:
        setting = {"ragged": f"nd_from={self.nd_from}, ", "strings": f"zstd={self.zstd}, "}.get(kind, "")
        return f"{kind} trial {self.number} ({setting}start={self.start}, killed after {self.delay * 1000:.1f} ms)"


def run_trials(kind: str, trials: list[Trial], attempt: Callable[[Trial, Path], list[str]], workdir: Path) -> None:
    """Runs every trial in a fresh directory and fails listing every problem found."""
    failures = []
    for trial in trials:
        path = workdir / f"{kind}{trial.number}"
        failures += [f"{trial.describe(kind)}: {p}" for p in attempt(trial, path)]
        shutil.rmtree(path, ignore_errors=True)
    header = f"{len(failures)} problems in {len(trials)} trials (MMAP_NINJA_CRASH_SEED={SEED}):\n"
    assert not failures, header + "\n".join(failures[:50])


def test_ragged_store_survives_kill_during_extend(tmp_path: Path) -> None:
    """After a crash the store opens, every reported item is there and right, a batch is there whole or not at
    all, and extending it again just works: with 0-d, empty, n-d and 1 MiB items, and flat stores turning n-d."""

    def attempt(trial: Trial, path: Path) -> list[str]:
        if trial.start:
            RaggedMmap.from_lists(path, [ragged_item(i, trial.nd_from) for i in range(trial.start)])
        return trial.run(extend_ragged, check_ragged, path, trial.nd_from)

    run_trials("ragged", [Trial.draw(n) for n in range(TRIALS)], attempt, tmp_path)


def test_string_store_survives_kill_during_extend(tmp_path: Path) -> None:
    """The same for strings, plain UTF-8 and zstd frames."""

    def attempt(trial: Trial, path: Path) -> list[str]:
        if trial.start or trial.zstd:
            items = [string_item(i) for i in range(trial.start)]
            StringsMmap.from_strings(path, items, zstd_level=3 if trial.zstd else None)
        return trial.run(extend_strings, check_strings, path)

    run_trials("strings", [Trial.draw(TRIALS + n) for n in range(SMALL_TRIALS)], attempt, tmp_path)


def test_dense_store_survives_kill_during_np_extend(tmp_path: Path) -> None:
    """The same for a dense store grown with np_extend, rows of 64 KiB."""

    def attempt(trial: Trial, path: Path) -> list[str]:
        np_ninja.from_ndarray(path, dense_rows(0, trial.start))
        return trial.run(extend_dense, check_dense, path)

    trials = [Trial.draw(TRIALS + SMALL_TRIALS + n, min_start=1) for n in range(SMALL_TRIALS)]
    run_trials("dense", trials, attempt, tmp_path)


# Readers during kills ----------------------------------------------------------------------------------------


def read_randomly(send: Callable[[Any], None], path: Path, nd_from: int, deadline: float, seed: int) -> None:
    """A reader: reopens the store again and again until ``deadline``, checking a few random items each time.
    Reports how often it read and each distinct problem with how often it occurred."""
    rng = random.Random(seed)
    reads, longest, problems = 0, 0, Counter[str]()
    while time.monotonic() < deadline:
        try:
            store = RaggedMmap(path)
            if len(store) < longest:
                problems[f"length went back from {longest} to {len(store)}"] += 1
            longest = max(longest, len(store))
            for i in rng.sample(range(len(store)), min(len(store), 3)):
                if not same_item(store[i], ragged_item(i, nd_from)):
                    problems[f"item {i} of {len(store)} is wrong"] += 1
            reads += 1
        except Exception as exc:  # noqa: BLE001 - every failure is a problem to report
            problems[f"{type(exc).__name__}: {exc}"] += 1
    send({"reads": reads, "problems": [f"{p} ({n} times)" for p, n in problems.most_common(10)]})


def test_readers_see_whole_commits_while_writers_are_killed_and_restarted(tmp_path: Path) -> None:
    """Three readers keep reopening the store and checking random items while a writer is killed and restarted
    eight times: no error, no wrong item, a length that never goes back, and a sound store at the end."""
    path, nd_from, rng = tmp_path / "r", 12, random.Random(SEED)
    RaggedMmap.from_lists(path, [ragged_item(i, nd_from) for i in range(2)])
    delays = [rng.uniform(0.05, 0.3) for _ in range(8)]
    deadline = time.monotonic() + sum(delays) + 1.0
    readers = [Child.fork(read_randomly, path, nd_from, deadline, k) for k in range(3)]
    problems, committed = [], (2, 2)
    for delay in delays:
        batches = [rng.choice([1, 2, 3, 5]) for _ in range(10_000)]
        end, reported = Child.fork(extend_ragged, path, nd_from, batches).finish(kill_after=delay)
        if end not in ("killed", "ok"):
            problems.append(f"writer: {end}")
        if reported and reported[0] not in committed:
            problems.append(f"a writer found {reported[0]} items, not one of {committed}")
        committed = committed_range(reported, batches, committed)
    for k, reader in enumerate(readers):
        end, reports = reader.finish(timeout=60)
        if end != "ok":
            problems.append(f"reader {k}: {end}")
            continue
        summary = reports[-1]
        problems += [f"reader {k}: {p}" for p in summary["problems"]]
        if summary["reads"] < 10:
            problems.append(f"reader {k} only read {summary['reads']} times")
    problems += checked_in_child(check_ragged, path, nd_from, *committed)
    assert not problems, f"MMAP_NINJA_CRASH_SEED={SEED}:\n" + "\n".join(problems)


def gather_then_fork(send: Callable[[Any], None], path: Path) -> None:
    """Gathers a big batch (copied by a thread pool), then reports what a child forked from here gathers."""
    store = RaggedMmap(path)
    store.gather(range(8))
    send(Child.fork(lambda child_send: child_send([int(v[0]) for v in store.gather(range(8))])).finish(timeout=60))


def test_gather_works_in_a_child_forked_after_a_parallel_gather(tmp_path: Path) -> None:
    """torch's DataLoader forks its workers from a process that may have gathered big batches already: a
    worker's own big gathers must work, not wait forever for pool threads that were not forked. (The first
    gather runs in a child, to leave this test process as it found it.)"""
    RaggedMmap.from_lists(tmp_path / "r", [np.full(1 << 20, i, np.uint8) for i in range(8)])
    end, reports = Child.fork(gather_then_fork, tmp_path / "r").finish(timeout=120)
    assert (end, reports) == ("ok", [["ok", [list(range(8))]]])

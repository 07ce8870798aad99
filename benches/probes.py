"""Reliability probes, run under EITHER implementation (ours or the reference, mmap-ninja 0.9.0).

Driven by ``benches/reliability.py``. Only the reference's public API is used (``RaggedMmap``,
``StringsMmap``, ``mmap_ninja.numpy``), so the same code measures both:

    python benches/probes.py NAME [--quick] [--seed N] [--tmp-dir DIR]     # NAME: one of PROBES
    python benches/probes.py mutated_stores --case K [--keep]              # replay one mutated store

A run prints ONE JSON line on stdout: ``{"probe": NAME, "rows": {label: text}, "details": {...}}`` or
``{"probe": NAME, "error": msg}``; progress goes to stderr. Whatever may crash (reading a damaged store,
reopening after a kill) runs in a forked child, so a segfault or a hang is counted, not fatal.

Items are determined by their index: item i is ``np.full(shape_of(i), i % 251, np.uint8)``, 2-D, small or (every
``LARGE_EVERY``-th, in ``kill9_extend``) 1-4 MB, so a reader can check any item it gets without shared state.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import pickle
import random
import resource
import select
import shutil
import signal
import struct
import sys
import tempfile
import time
import traceback
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, fields, replace
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np

# What a damaged store may raise under ours; any other exception type is counted as a "wrong type".
EXPECTED_ERRORS = (ValueError, OSError, IndexError, KeyError, TypeError)
LARGE_EVERY = 8  # kill9_extend: every 8th item is 1-4 MB, so an extend takes a while
CHILD_MEMORY_LIMIT = 4 << 30  # address space of a child reading a mutated store (a huge allocation fails)


@dataclass(frozen=True)
class Config:
    seed: int = 0
    kill9_trials: int = 30
    kill9_max_delay_s: float = 0.6  # the writer is killed after uniform(0.05, this) seconds
    kill9_max_items: int = 4000  # the writer stops there (bounds disk use; reported if reached)
    reads: int = 300_000  # readers_during_writes: total over all readers
    readers: int = 3
    reads_per_open: int = 10
    stores: int = 400
    hang_timeout_s: float = 10.0
    pickle_mb: int = 39
    pickle_strings: int = 100_000


QUICK = Config(kill9_trials=5, reads=15_000, stores=60, pickle_mb=2, pickle_strings=1_000)


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def exc_name(exc: BaseException) -> str:
    """``ValueError``, or ``struct.error`` for a class outside builtins."""
    cls = type(exc)
    return cls.__qualname__ if cls.__module__ == "builtins" else f"{cls.__module__}.{cls.__qualname__}"


def counts(counter: Counter[str] | dict[str, int]) -> str:
    """``{"a": 2, "b": 1}`` -> ``"a 2, b 1"`` (``"-"`` when empty)."""
    return ", ".join(f"{k} {v:,}" for k, v in sorted(counter.items(), key=lambda kv: (-kv[1], kv[0]))) or "-"


# ----------------------------------------------------------------------------------------------- items


def shape_of(i: int, large_every: int = 0) -> tuple[int, int]:
    h = (i * 2654435761) % 2**32
    if large_every and i % large_every == large_every - 1:
        return (1024 + h % 3072, 1024)
    return (1 + h % 31, 1 + (h >> 8) % 61)


def make_items(start: int, stop: int, large_every: int = 0) -> list[np.ndarray]:
    return [np.full(shape_of(i, large_every), i % 251, np.uint8) for i in range(start, stop)]


def item_ok(got: Any, i: int, large_every: int = 0) -> bool:
    arr = np.asarray(got)
    return arr.dtype == np.uint8 and arr.shape == shape_of(i, large_every) and bool((arr == i % 251).all())


def read_back(path: Path, large_every: int) -> dict[str, Any]:
    """Opens the ragged store and checks every item (runs in a child)."""
    from mmap_ninja.ragged import RaggedMmap

    m = RaggedMmap(path)
    wrong: list[int] = []
    errors: Counter[str] = Counter()
    for i in range(len(m)):
        try:
            if not item_ok(m[i], i, large_every):
                wrong.append(i)
        except Exception as exc:
            errors[exc_name(exc)] += 1
    return {"len": len(m), "n_wrong": len(wrong), "first_wrong": wrong[:5], "errors": dict(errors)}


def extend_again(path: Path, large_every: int) -> bool:
    """After a kill: can a new writer extend the store by one item that then reads back (runs in a child)?"""
    from mmap_ninja.ragged import RaggedMmap

    n = len(RaggedMmap(path))
    RaggedMmap(path).extend(make_items(n, n + 1, large_every))
    m = RaggedMmap(path)
    return len(m) == n + 1 and item_ok(m[n], n, large_every)


# ----------------------------------------------------------------------------------------------- children


@dataclass
class Outcome:
    kind: str  # "ok", "exception", "signal", "hang" or "exit"
    value: Any = None  # the function's result, or the exception type, signal name or exit code
    expected: bool = True  # for "exception": an instance of EXPECTED_ERRORS
    message: str = ""


class Child:
    """``fn()`` in a forked child; its JSON-able result comes back through a pipe. ``wait`` turns a signal, a
    timeout or an exception in the child into an ``Outcome``."""

    def __init__(self, fn: Callable[[], Any], memory_limit: int | None = None) -> None:
        read_fd, write_fd = os.pipe()
        sys.stdout.flush()
        sys.stderr.flush()
        self.pid = os.fork()
        if self.pid == 0:
            os.close(read_fd)
            try:
                if memory_limit:
                    resource.setrlimit(resource.RLIMIT_AS, (memory_limit, memory_limit))
                payload: dict[str, Any] = {"kind": "ok", "value": fn()}
            except BaseException as exc:
                payload = {
                    "kind": "exception",
                    "value": exc_name(exc),
                    "expected": isinstance(exc, EXPECTED_ERRORS),
                    "message": str(exc)[:200],
                }
            try:
                with os.fdopen(write_fd, "wb") as f:
                    f.write(json.dumps(payload).encode())
            finally:
                os._exit(0)
        os.close(write_fd)
        self.fd = read_fd

    def wait(self, timeout: float) -> Outcome:
        deadline = time.monotonic() + timeout
        data = b""
        while True:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([self.fd], [], [], left)[0]:
                os.kill(self.pid, signal.SIGKILL)
                os.waitpid(self.pid, 0)
                os.close(self.fd)
                return Outcome("hang")
            chunk = os.read(self.fd, 1 << 16)
            if not chunk:
                break
            data += chunk
        os.close(self.fd)
        _, status = os.waitpid(self.pid, 0)
        if os.WIFSIGNALED(status):
            return Outcome("signal", signal.Signals(os.WTERMSIG(status)).name)
        if not data:
            return Outcome("exit", os.waitstatus_to_exitcode(status))
        return Outcome(**json.loads(data))


# ----------------------------------------------------------------------------------------------- kill9_extend


def extend_forever(path: Path, report_fd: int, max_items: int) -> None:
    """The writer: extends by 1-4 items at a time; after each ``extend`` returns, reports the count."""
    from mmap_ninja.ragged import RaggedMmap

    m = RaggedMmap(path)
    n = len(m)
    k = 0
    while n < max_items:
        size = 1 + k % 4
        m.extend(make_items(n, n + size, LARGE_EVERY))
        n, k = n + size, k + 1
        os.write(report_fd, struct.pack("<q", n))


def run_and_kill(path: Path, delay: float, max_items: int) -> tuple[int, int, str]:
    """Starts the writer, SIGKILLs it after ``delay`` s; returns (last reported count, extends, writer fate)."""
    read_fd, write_fd = os.pipe()
    sys.stdout.flush()
    sys.stderr.flush()
    pid = os.fork()
    if pid == 0:
        os.close(read_fd)
        code = 0
        try:
            extend_forever(path, write_fd, max_items)
        except BaseException:
            traceback.print_exc()
            code = 3
        os._exit(code)
    os.close(write_fd)
    time.sleep(delay)
    os.kill(pid, signal.SIGKILL)
    _, status = os.waitpid(pid, 0)
    data = b""
    while chunk := os.read(read_fd, 1 << 16):
        data += chunk
    os.close(read_fd)
    reports = len(data) // 8
    last = struct.unpack_from("<q", data, 8 * (reports - 1))[0] if reports else -1
    fate = "killed" if os.WIFSIGNALED(status) else ("finished" if os.WEXITSTATUS(status) == 0 else "raised")
    return last, reports, fate


def kill9_verdict(out: Outcome, last: int) -> str:
    if out.kind == "exception":
        return f"open_error ({out.value})"
    if out.kind != "ok":
        return {"signal": "crash", "hang": "hang"}.get(out.kind, "exit")
    if out.value["len"] < last:
        return "short"
    if out.value["errors"]:
        return "read_error"
    return "wrong_items" if out.value["n_wrong"] else "ok"


def probe_kill9_extend(cfg: Config, root: Path) -> tuple[dict[str, str], dict[str, Any]]:
    from mmap_ninja.ragged import RaggedMmap

    rng = random.Random(cfg.seed)
    base = 8
    trials = []
    for t in range(cfg.kill9_trials):
        path = root / f"kill9_{t}"
        RaggedMmap.from_lists(path, make_items(0, base, LARGE_EVERY))
        delay = rng.uniform(0.05, cfg.kill9_max_delay_s)
        last, extends, fate = run_and_kill(path, delay, cfg.kill9_max_items)
        last = max(last, base)
        out = Child(partial(read_back, path, LARGE_EVERY)).wait(300)
        verdict = kill9_verdict(out, last)
        again = Child(partial(extend_again, path, LARGE_EVERY)).wait(60)
        again_text = "ok" if again.value is True else f"{again.kind} {again.value}"
        trials.append(
            {"delay_s": round(delay, 3), "extends": extends, "last_reported": last, "writer": fate}
            | {"verdict": verdict, "outcome": out.kind, "read": out.value, "message": out.message}
            | {"extend_again": again_text, "extend_again_message": again.message}
        )
        log(f"  trial {t}: {verdict} (delay {delay:.2f} s, {extends} extends, writer {fate}, read {out.value})")
        shutil.rmtree(path, ignore_errors=True)
    verdicts = Counter(t["verdict"] for t in trials)
    broken = sum(v for k, v in verdicts.items() if k != "ok")
    writers = Counter(t["writer"] for t in trials)
    rows = {
        "broken trials": f"{broken}/{len(trials)}",
        "how they broke": counts({k: v for k, v in verdicts.items() if k != "ok"}),
        "writer not killed (finished/raised)": f"{writers['finished']}/{writers['raised']}",
        "extend after the kill (not in 'broken')": counts(Counter(t["extend_again"] for t in trials)),
    }
    return rows, {"trials": trials}


# ----------------------------------------------------------------------------------------------- readers_during_writes


def write_until(path: Path, stop: Path, max_items: int) -> dict[str, int]:
    """The writer: extends by 1-16 small items at a time until ``stop`` exists."""
    from mmap_ninja.ragged import RaggedMmap

    m = RaggedMmap(path)
    n, extends = len(m), 0
    while not stop.exists():
        if n >= max_items:
            time.sleep(0.01)
            continue
        size = 1 + extends % 16
        m.extend(make_items(n, n + size))
        n, extends = n + size, extends + 1
    return {"items": n, "extends": extends}


def read_random(path: Path, reads: int, reads_per_open: int, seed: int) -> dict[str, Any]:
    """A reader: reopens the store every ``reads_per_open`` reads (and after an error), reads random items and
    checks them. A failed open counts as one failed read."""
    from mmap_ninja.ragged import RaggedMmap

    rng = random.Random(seed)
    errors: Counter[str] = Counter()
    wrong = opens = 0
    m = None
    for done in range(reads):
        try:
            if m is None or done % reads_per_open == 0:
                m = None
                m = RaggedMmap(path)
                opens += 1
            n = len(m)
            if n == 0:
                errors["len() == 0"] += 1
                continue
            i = rng.randrange(n)
            if not item_ok(m[i], i):
                wrong += 1
        except Exception as exc:
            errors[exc_name(exc)] += 1
            m = None
    return {"reads": reads, "errors": sum(errors.values()), "wrong": wrong, "opens": opens, "kinds": dict(errors)}


def probe_readers_during_writes(cfg: Config, root: Path) -> tuple[dict[str, str], dict[str, Any]]:
    from mmap_ninja.ragged import RaggedMmap

    path, stop = root / "store", root / "stop"
    RaggedMmap.from_lists(path, make_items(0, 64))
    writer = Child(partial(write_until, path, stop, 2_000_000))
    per_reader = cfg.reads // cfg.readers
    readers = [
        Child(partial(read_random, path, per_reader, cfg.reads_per_open, cfg.seed * 1000 + r))
        for r in range(cfg.readers)
    ]
    start = time.monotonic()
    outs = [c.wait(3600) for c in readers]
    seconds = time.monotonic() - start
    stop.touch()
    w = writer.wait(120)
    totals: Counter[str] = Counter()
    reads = errors = wrong = 0
    crashed: Counter[str] = Counter()
    for out in outs:
        if out.kind == "ok":
            reads, errors, wrong = reads + out.value["reads"], errors + out.value["errors"], wrong + out.value["wrong"]
            totals.update(out.value["kinds"])
        else:
            crashed[f"{out.kind} {out.value}"] += 1
    writer_text = ""
    if w.kind == "ok":
        writer_text = f"{w.value['items']:,} items, {w.value['extends']:,} extends; reads took {seconds:.1f} s"
    rows = {
        "errors / wrong items / reads": f"{errors:,} / {wrong:,} / {reads:,}",
        "error kinds": counts(totals),
        "readers that died": counts(crashed),
        "writer": writer_text or f"{w.kind} {w.value} {w.message}".strip(),
    }
    details = {"seconds": round(seconds, 2), "readers": [o.__dict__ for o in outs], "writer": w.__dict__}
    return rows, details


# ----------------------------------------------------------------------------------------------- mutated_stores

KINDS = ("ragged_flat", "ragged_nd", "strings", "dense")
MUTATIONS = ("bitflip", "truncate", "boundary", "dtype", "delete")
BOUNDARY_INTS = (0, -1, 1, 2**31, 2**32, 2**63 - 1, -(2**63))
JUNK_DTYPES = ("object", "O", "<U8", "S4", "V8", "", "float96", "datetime64[5s]", "int33", "[('a', '<i4')]")
JUNK_DTYPES += ("uint8\x00", "float64", "int8", "bool", "complex128")


class Digest:
    """A hash of everything read; ``add`` touches every byte (summing them, or encoding a string)."""

    def __init__(self) -> None:
        self.h = hashlib.sha256()

    def add(self, value: Any) -> None:
        if isinstance(value, str):
            self.h.update(value.encode("utf-8", "surrogatepass") + b"\0")
            return
        arr = np.asarray(value)
        np.ascontiguousarray(arr).view(np.uint8).sum()  # (any dtype: times and long doubles have no sum of their own)
        self.h.update(f"{arr.dtype.str}{arr.shape}".encode())
        self.h.update(arr.tobytes())

    def hexdigest(self) -> str:
        return self.h.hexdigest()


def build_store(kind: str, path: Path, rng: random.Random) -> str:
    """A small valid store of ``kind``, written with the public API; returns the digest of what was written."""
    from mmap_ninja import numpy as np_ninja
    from mmap_ninja.ragged import RaggedMmap
    from mmap_ninja.string import StringsMmap

    n = rng.randint(1, 12)
    values: list[Any]
    if kind == "ragged_flat":
        values = [np.array([rng.randrange(-999, 999) for _ in range(rng.randint(1, 9))], np.int32) for _ in range(n)]
        RaggedMmap.from_lists(path, values)
    elif kind == "ragged_nd":
        shapes = [(rng.randint(1, 5), rng.randint(1, 5), 3)[: rng.randint(2, 3)] for _ in range(n)]
        values = [np.full(shape, rng.random(), np.float32) for shape in shapes]
        RaggedMmap.from_lists(path, values)
    elif kind == "strings":
        values = ["".join(rng.choice("abcxyz é日本") for _ in range(rng.randint(1, 20))) for _ in range(n)]
        StringsMmap.from_strings(path, values, zstd_level=3 if rng.random() < 0.3 else None)
    else:
        dtype = rng.choice((np.float64, np.int16, np.uint8))
        values = [np.arange(n * 4).reshape(n, 4).astype(dtype)]
        np_ninja.from_ndarray(path, values[0])
    digest = Digest()
    for value in values:
        digest.add(value)
    return digest.hexdigest()


def read_all(kind: str, path: Path) -> str:
    """Opens the store as a user would and reads every item, touching every byte (runs in a child)."""
    from mmap_ninja import numpy as np_ninja
    from mmap_ninja.ragged import RaggedMmap
    from mmap_ninja.string import StringsMmap

    digest = Digest()
    if kind == "dense":
        digest.add(np_ninja.open_existing(path))
        return digest.hexdigest()
    m = StringsMmap(path) if kind == "strings" else RaggedMmap(path)
    for i in range(len(m)):
        digest.add(m[i])
    return digest.hexdigest()


def mutate(path: Path, rng: random.Random) -> str:
    """Applies one random mutation to one file of the store; returns what it did."""
    files = sorted(p for p in path.rglob("*") if p.is_file())
    what = rng.choice(MUTATIONS)
    if what == "boundary":
        files = [p for p in files if p.name == "shape.ninja" or (p.name == "data.ninja" and p.parent != path)]
    elif what == "dtype":
        files = [p for p in files if p.name == "dtype.ninja"]
    target = rng.choice(files)
    rel = target.relative_to(path)
    data = bytearray(target.read_bytes())
    if what == "delete":
        target.unlink()
        return f"delete {rel}"
    if what == "bitflip" and data:
        bits = sorted(rng.randrange(len(data) * 8) for _ in range(rng.randint(1, 3)))
        for bit in bits:
            data[bit // 8] ^= 1 << (bit % 8)
        desc = f"flip bits {bits} of {rel} ({len(data)} bytes)"
    elif what == "bitflip":
        data = bytearray(b"\xff")
        desc = f"write one 0xff byte into the empty {rel}"
    elif what == "truncate":
        size = rng.randrange(len(data)) if data else 0
        desc = f"truncate {rel} from {len(data)} to {size} bytes"
        data = data[:size]
    elif what == "boundary":
        value, pos = rng.choice(BOUNDARY_INTS), 8 * rng.randrange(max(len(data) // 8, 1))
        data[pos : pos + 8] = struct.pack("<q", value)
        desc = f"write int64 {value} at byte {pos} of {rel}"
    else:
        junk = rng.choice(JUNK_DTYPES)
        data = bytearray(junk.encode())
        desc = f"write {junk!r} into {rel}"
    target.write_bytes(bytes(data))
    return desc


def mutated_verdict(out: Outcome, expected: str) -> str:
    if out.kind == "ok":
        return "ok" if out.value == expected else "ok_changed"
    if out.kind == "exception":
        return "error" if out.expected else f"wrong_type {out.value}"
    return f"{out.kind} {out.value}" if out.value is not None else out.kind


def mutated_case(cfg: Config, root: Path, i: int) -> dict[str, Any]:
    rng = random.Random(f"{cfg.seed}:{i}")
    kind = KINDS[i % len(KINDS)]
    path = root / f"store_{i}"
    expected = build_store(kind, path, rng)
    mutation = mutate(path, rng)
    out = Child(partial(read_all, kind, path), CHILD_MEMORY_LIMIT).wait(cfg.hang_timeout_s)
    verdict = mutated_verdict(out, expected)
    case = {"case": i, "kind": kind, "mutation": mutation, "verdict": verdict, "path": str(path)}
    return case | ({"exception": f"{out.value}: {out.message}"} if out.kind == "exception" else {})


def probe_mutated_stores(cfg: Config, root: Path) -> tuple[dict[str, str], dict[str, Any]]:
    cases = []
    for i in range(cfg.stores):
        case = mutated_case(cfg, root, i)
        if case["verdict"] not in ("ok", "ok_changed", "error"):
            log(f"  case {i}: {case}")
        cases.append(case)
        shutil.rmtree(case.pop("path"), ignore_errors=True)
    verdicts = Counter(c["verdict"] for c in cases)
    n = len(cases)

    def total(prefix: str) -> int:
        return sum(v for k, v in verdicts.items() if k.startswith(prefix))

    rows = {
        "signal deaths": f"{total('signal')}/{n}",
        f"hangs (> {cfg.hang_timeout_s:g} s)": f"{total('hang')}/{n}",
        "wrong-type exceptions": f"{total('wrong_type')}/{n}",
        "outcomes": counts(verdicts),
    }
    return rows, {"cases": cases, "expected_errors": [e.__name__ for e in EXPECTED_ERRORS]}


# ----------------------------------------------------------------------------------------------- pickle_size


def pickled_size(obj: Any, same: Callable[[Any], bool]) -> str:
    """Pickled size, plus whether ``pickle.loads`` gives back an equal store."""
    try:
        data = pickle.dumps(obj)
    except Exception as exc:
        return f"fails: {exc_name(exc)}"
    try:
        back = "" if same(pickle.loads(data)) else "; loads gives a different store"
    except Exception as exc:
        back = f"; loads fails: {exc_name(exc)}"
    return f"{len(data):,} B{back}"


def probe_pickle_size(cfg: Config, root: Path) -> tuple[dict[str, str], dict[str, Any]]:
    from mmap_ninja import numpy as np_ninja
    from mmap_ninja.ragged import RaggedMmap
    from mmap_ninja.string import StringsMmap

    mb = cfg.pickle_mb
    RaggedMmap.from_lists(root / "ragged", [np.full((1000, 1000), i % 251, np.uint8) for i in range(mb)])
    ragged = RaggedMmap(root / "ragged")
    strings = [f"string {i} é日本" for i in range(cfg.pickle_strings)]
    StringsMmap.from_strings(root / "strings", strings)
    texts = StringsMmap(root / "strings")
    np_ninja.from_ndarray(root / "dense", np.full((mb * 1000, 1000), 7, np.uint8))
    dense = np_ninja.open_existing(root / "dense")
    rows = {
        f"RaggedMmap, {mb} MB of data": pickled_size(
            ragged, lambda m: len(m) == mb and item_eq(m[mb - 1], ragged[mb - 1])
        ),
        f"StringsMmap, {len(strings):,} strings": pickled_size(
            texts, lambda s: len(s) == len(strings) and s[len(strings) - 1] == strings[-1]
        ),
        f"dense np_open_existing, {mb} MB": pickled_size(dense, lambda d: item_eq(d, dense)),
    }
    sizes = {p.name: sum(f.stat().st_size for f in p.rglob("*") if f.is_file()) for p in root.iterdir()}
    return rows, {"store_bytes": sizes}


def item_eq(a: Any, b: Any) -> bool:
    return bool(np.array_equal(np.asarray(a), np.asarray(b)))


# ----------------------------------------------------------------------------------------------- main

PROBES: dict[str, Callable[[Config, Path], tuple[dict[str, str], dict[str, Any]]]] = {
    "kill9_extend": probe_kill9_extend,
    "readers_during_writes": probe_readers_during_writes,
    "mutated_stores": probe_mutated_stores,
    "pickle_size": probe_pickle_size,
}


def run(name: str, cfg: Config, tmp_dir: Path | None, keep: bool) -> dict[str, Any]:
    root = Path(tempfile.mkdtemp(prefix=f"mmap_ninja_{name}_", dir=tmp_dir))
    start = time.perf_counter()
    try:
        rows, details = PROBES[name](cfg, root)
        out: dict[str, Any] = {"probe": name, "rows": rows, "details": details}
    except Exception as exc:
        log(traceback.format_exc())
        out = {"probe": name, "error": f"{type(exc).__name__}: {exc}".splitlines()[0][:300]}
    finally:
        if keep:
            log(f"kept {root}")
        else:
            shutil.rmtree(root, ignore_errors=True)
    return out | {"wall_s": round(time.perf_counter() - start, 2), "config": cfg.__dict__}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("probe", choices=list(PROBES))
    parser.add_argument("--quick", action="store_true", help="tiny counts (a smoke run)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--tmp-dir", type=Path, help="where stores are written (default: the system's temp dir)")
    parser.add_argument("--case", type=int, help="mutated_stores: replay only this case and print it")
    parser.add_argument("--keep", action="store_true", help="keep the stores (with --case: the mutated store)")
    for f in fields(Config):
        if f.name != "seed":
            parser.add_argument(f"--{f.name.replace('_', '-')}", type=type(f.default), help=f"(default {f.default})")
    args = parser.parse_args(argv)
    cfg = replace(QUICK if args.quick else Config(), seed=args.seed)
    cfg = replace(cfg, **{f.name: getattr(args, f.name) for f in fields(Config) if getattr(args, f.name) is not None})
    if args.case is not None:
        root = Path(tempfile.mkdtemp(prefix="mmap_ninja_case_", dir=args.tmp_dir))
        case = mutated_case(cfg, root, args.case)
        if not args.keep:
            shutil.rmtree(root, ignore_errors=True)
        print(json.dumps(case), flush=True)
        return 0
    print(json.dumps(run(args.probe, cfg, args.tmp_dir, args.keep)), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())

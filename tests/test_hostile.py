"""Damaged or hostile store files: reading them raises an exception of the package's hierarchy (ValueError,
OSError, IndexError, KeyError, TypeError; CorruptStoreError for files that disagree with the format), never a
segfault, an abort, a hang or a foreign exception, and never returns an item read from another item's bytes.

Every case builds a small valid store with the public API, applies ONE seeded mutation to its files (a bit
flip, a truncation, a boundary integer in an offset or shape slot, junk metadata text, a missing, extra or
grown file) and reads the whole store in its own forked child, so that a crash or a hang is counted instead
of taking the test run down. ``MMAP_NINJA_FUZZ_STORES`` sets the number of cases, ``MMAP_NINJA_FUZZ_SEED`` the
seed; a failure lists each bad case with its template, its mutation and where the child was when it died.
"""

from __future__ import annotations

import faulthandler
import json
import math
import os
import random
import select
import shutil
import signal
import time
import warnings
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import mmap_ninja
from mmap_ninja import CorruptStoreError
from mmap_ninja import numpy as np_ninja
from mmap_ninja.ragged import RaggedMmap
from mmap_ninja.string import StringsMmap

STORES = int(os.environ.get("MMAP_NINJA_FUZZ_STORES", "2400"))
SEED = int(os.environ.get("MMAP_NINJA_FUZZ_SEED", "1337"))
TIMEOUT = 30.0  # seconds a child may take to open and read one tiny store (a shared, loaded machine stalls)
JOBS = min(8, 2 * (os.cpu_count() or 1))  # children running at once
HIERARCHY = (ValueError, OSError, IndexError, KeyError, TypeError)
INDEX_DIRS = ("starts", "ends", "shapes", "flattened_shapes")


# Valid stores to damage --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Template:
    """A small valid store: how to build it, and each item's own bytes, to spot reads of another item's."""

    name: str
    kind: str  # "ragged", "string" or "numpy"
    build: Callable[[Path], Any]
    spans: tuple[tuple[int, int], ...] = ()  # ragged: each item's element range; values equal their offsets
    strings: tuple[str, ...] = ()  # string: each item


def offset_valued(shapes: list[tuple[int, ...]], dtype: type) -> list[np.ndarray]:
    """Items of ``shapes`` whose elements hold their own offset in the flat buffer: a read shows where it came
    from."""
    items, at = [], 0
    for shape in shapes:
        size = math.prod(shape)
        items.append(np.arange(at, at + size, dtype=dtype).reshape(shape))
        at += size
    return items


def ragged_template(name: str, shapes: list[tuple[int, ...]], dtype: type) -> Template:
    items = offset_valued(shapes, dtype)
    ends = np.cumsum([item.size for item in items]).tolist()
    spans = tuple(zip([0, *ends[:-1]], ends, strict=True))
    return Template(name, "ragged", lambda path: RaggedMmap.from_lists(path, items), spans=spans)


def strings_template(name: str, items: list[str], **zstd: int) -> Template:
    return Template(name, "string", lambda path: StringsMmap.from_strings(path, items, **zstd), strings=tuple(items))


def dense_template(name: str, array: np.ndarray) -> Template:
    return Template(name, "numpy", lambda path: np_ninja.from_ndarray(path, array))


# Distinct characters per item, so bytes read from a neighbour never pass for part of the item itself.
TEXTS = ["", "abc", "日本語", "defghijklmnopqrstuvwxyz", "é", "🎉!"]
TEMPLATES = [
    ragged_template("ragged_1d", [(0,), (3,), (1,), (4,), (0,), (2,)], np.int64),
    ragged_template("ragged_nd", [(2, 3), (0, 2), (1,), (2, 2, 2), (3, 1), ()], np.float64),
    ragged_template("ragged_0d", [(), (), (2,), (0,), ()], np.int32),
    strings_template("strings", TEXTS),
    strings_template("strings_zstd", TEXTS, zstd_level=3),
    strings_template(
        "strings_zstd_dict",
        [f"item {i} 日本 {i * i}" for i in range(64)],
        zstd_level=3,
        zstd_train_dictionary_size=1024,
    ),
    dense_template("dense_1d", np.arange(10, dtype=np.int32)),
    dense_template("dense_2d", np.arange(12, dtype=np.float32).reshape(4, 3)),
]


def snapshot(root: Path) -> dict[str, bytes]:
    """Every file under ``root`` by relative path."""
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def materialize(files: dict[str, bytes], root: Path) -> None:
    for rel, data in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_bytes(data)


# Mutations: each damages one file (or adds/removes one) and describes what it did ------------------------------

BOUNDARY_INTS = [0, -1, 1, 2, 2**31 - 1, 2**31, 2**32, 2**32 + 1, 2**53 + 1, 2**62, 2**63 - 1, -(2**63), 2**64 - 1]
JUNK_TEXTS = [
    b"",
    b"object",
    b"<U8",
    b"O",
    b"(1, 2",
    b"99999999999999999999",
    b"float32; import os",
    b"\xff\xfe\x80\x00",
    b"A" * (1 << 20),
    b" uint8",
    b"int64\n",
    b"uint8",
    b"float64",
    b"bool",
    b"float16",
    b"complex128",
    b">i8",
    b"V16",
    b"M8[ns]",
    b"numpy",
    b"ragged",
    b"string",
    b"C",
    b"F",
    b"c",
    b"-1",
    b"22",
    b"\x00" * 8,
    b"\xff" * 8,
    b"\x01\x00\x00\x00",
    b"\x02\x00\x00\x00",
]
EXTRA_FILES = [
    ("zstd_level.ninja", b"3"),
    ("zstd_level.ninja", b"-131072"),
    ("zstd_dict.ninja", b"\x37\xa4\x30\xec" + bytes(range(256))),
    ("shapes_are_flat.ninja", b"\x01\x00\x00\x00"),
    ("shapes_are_flat.ninja", b"\x00\x00\x00\x00"),
    ("order.ninja", b"F"),
    ("data.ninja.tmp-4242", b"\xff" * 64),
    ("starts/shape.ninja.tmp-4242", b"\x07" + b"\x00" * 7),
    ("shapes.flat-old/type.ninja", b"numpy"),
    ("shapes.nested-tmp/type.ninja", b"ragged"),
    ("starts/starts/type.ninja", b"ragged"),
    ("notes.txt", b"not part of the store"),
]


def int_slots(files: dict[str, bytes]) -> list[tuple[str, int]]:
    """Files of integers, with the width of one value: offset and shape columns, shape files, the flat flag."""
    slots = []
    for rel in files:
        parts = rel.split("/")
        if parts[-1] == "data.ninja" and len(parts) > 1 and parts[-2] in INDEX_DIRS:
            slots.append((rel, 8))
        elif parts[-1] == "shape.ninja":
            slots.append((rel, 8))
        elif parts[-1] == "shapes_are_flat.ninja":
            slots.append((rel, 4))
    return [(rel, width) for rel, width in slots if len(files[rel]) >= width]


def flip_bit(rng: random.Random, root: Path, files: dict[str, bytes]) -> tuple[str, str]:
    rel = rng.choice([rel for rel, data in files.items() if data])
    bit = rng.randrange(len(files[rel]) * 8)
    data = bytearray(files[rel])
    data[bit // 8] ^= 1 << (bit % 8)
    (root / rel).write_bytes(data)
    return rel, f"flip bit {bit % 8} of byte {bit // 8} of {rel}"


def truncate(rng: random.Random, root: Path, files: dict[str, bytes]) -> tuple[str, str]:
    rel = rng.choice([rel for rel, data in files.items() if data])
    size = 0 if rng.random() < 0.25 else rng.randrange(len(files[rel]))
    os.truncate(root / rel, size)
    return rel, f"truncate {rel} to {size} bytes (of {len(files[rel])})"


def grow(rng: random.Random, root: Path, files: dict[str, bytes]) -> tuple[str, str]:
    rel = rng.choice(list(files))
    tail = rng.randbytes(rng.choice([1, 4, 7, 8, 16]))
    with open(root / rel, "ab") as f:
        f.write(tail)
    return rel, f"append {tail!r} to {rel}"


def overwrite_int(rng: random.Random, root: Path, files: dict[str, bytes]) -> tuple[str, str]:
    rel, width = rng.choice(int_slots(files))
    slot = rng.randrange(len(files[rel]) // width)
    at = slot * width
    old = int.from_bytes(files[rel][at : at + width], "little", signed=True)
    value = rng.choice([*BOUNDARY_INTS, old - 1, old + 1])
    raw = (value % 2 ** (8 * width)).to_bytes(width, "little")
    with open(root / rel, "r+b") as f:
        f.seek(at)
        f.write(raw)
    return rel, f"write {value} over int{8 * width} slot {slot} (was {old}) of {rel}"


def nudge_offset(rng: random.Random, root: Path, files: dict[str, bytes]) -> tuple[str, str]:
    """Off by one or two: the subtle damage, which moves an item's bounds into its neighbour's bytes (dense
    stores, which have no offsets, get their shape nudged)."""
    slots = [rel for rel, width in int_slots(files) if width == 8]
    rel = rng.choice([rel for rel in slots if rel.endswith("data.ninja")] or slots)
    slot = rng.randrange(len(files[rel]) // 8)
    old = int.from_bytes(files[rel][slot * 8 : slot * 8 + 8], "little", signed=True)
    value = old + rng.choice([-2, -1, 1, 2])
    with open(root / rel, "r+b") as f:
        f.seek(slot * 8)
        f.write(value.to_bytes(8, "little", signed=True))
    return rel, f"write {value} over int64 slot {slot} (was {old}) of {rel}"


def junk_text(rng: random.Random, root: Path, files: dict[str, bytes]) -> tuple[str, str]:
    names = ("shape.ninja", "dtype.ninja", "type.ninja", "order.ninja", "zstd_level.ninja", "shapes_are_flat.ninja")
    rel = rng.choice([rel for rel in files if rel.split("/")[-1] in names])
    junk = rng.choice(JUNK_TEXTS)
    (root / rel).write_bytes(junk)
    shown = junk if len(junk) < 40 else junk[:8] + b"... (%d bytes)" % len(junk)
    return rel, f"write {shown!r} into {rel}"


def remove(rng: random.Random, root: Path, files: dict[str, bytes]) -> tuple[str, str]:
    dirs = sorted({str(Path(rel).parent) for rel in files} - {"."})
    rel = rng.choice([*files, *dirs])
    if rng.random() < 0.2 and rel in files:
        (root / rel).unlink()
        (root / rel).mkdir()
        return rel, f"replace file {rel} by an empty directory"
    if (root / rel).is_dir():
        shutil.rmtree(root / rel)
    else:
        (root / rel).unlink()
    return rel, f"remove {rel}"


def add_extra(rng: random.Random, root: Path, files: dict[str, bytes]) -> tuple[str, str]:
    rel, data = rng.choice([(rel, data) for rel, data in EXTRA_FILES if rel not in files])
    (root / rel).parent.mkdir(parents=True, exist_ok=True)
    (root / rel).write_bytes(data)
    return rel, f"add {rel} holding {data[:16]!r}"


MUTATIONS: list[tuple[Callable[[random.Random, Path, dict[str, bytes]], tuple[str, str]], int]] = [
    (flip_bit, 25),
    (truncate, 15),
    (overwrite_int, 15),
    (nudge_offset, 10),
    (junk_text, 15),
    (remove, 8),
    (add_extra, 7),
    (grow, 5),
]


# Reading everything, in a child ------------------------------------------------------------------------------


def touch(value: Any) -> None:
    """Reads every byte of an item."""
    if isinstance(value, str):
        len(value)
    else:
        np.asarray(value).sum()


def read_list(store: RaggedMmap | StringsMmap, progress: Callable[[str], None]) -> None:
    """Reads every item of a ragged or string store one by one, as a slice, as a list, and gathered."""
    n = len(store)
    progress("items")
    for i in range(n):
        touch(store[i])
    progress("m[:]")
    for item in store[:]:
        touch(item)
    progress("m[[0, -1]]")
    for item in store[[0, -1]] if n else []:
        touch(item)
    if isinstance(store, RaggedMmap):
        progress("gather")
        for item in store.gather(np.arange(n)):
            touch(item)


def read_dense(array: np.ndarray, progress: Callable[[str], None]) -> None:
    progress("sum")
    np.asarray(array).sum()
    if array.ndim:
        progress("a[:]")
        array[:].sum()
        if len(array):
            progress("a[[0, -1]]")
            array[[0, -1]].sum()


def read_any(store: Any, progress: Callable[[str], None]) -> None:
    if isinstance(store, RaggedMmap | StringsMmap):
        read_list(store, progress)
    else:
        read_dense(store, progress)


OPENERS: dict[str, list[tuple[str, Callable[[Path], Any]]]] = {
    "ragged": [
        ("RaggedMmap(p)", RaggedMmap),
        ("RaggedMmap(p, mode='c')", lambda p: RaggedMmap(p, mode="c")),
        ("open_existing(p)", mmap_ninja.open_existing),
    ],
    "string": [
        ("StringsMmap(p, mode='rb')", lambda p: StringsMmap(p, mode="rb")),
        ("open_existing(p, mode='rb')", lambda p: mmap_ninja.open_existing(p, mode="rb")),
    ],
    "numpy": [
        ("np_open_existing(p)", np_ninja.open_existing),
        ("np_open_existing(p, mode='c')", lambda p: np_ninja.open_existing(p, mode="c")),
        ("open_existing(p)", mmap_ninja.open_existing),
    ],
}


def stray_reads(template: Template, path: Path) -> list[str]:
    """Items that hold bytes from outside their own item (read from a store whose data file is intact)."""
    found = []
    if template.kind == "ragged":
        store = RaggedMmap(path)
        for i in range(len(store)):
            values = np.ravel(store[i])
            start, end = template.spans[i] if i < len(template.spans) else (0, 0)
            if values.size and not (start <= values.min() and values.max() < end):
                found.append(f"item {i} holds elements {values[:8].tolist()} from outside its own [{start}, {end})")
    elif template.kind == "string":
        store = StringsMmap(path, mode="rb")
        for i in range(len(store)):
            own = template.strings[i] if i < len(template.strings) else ""
            if store[i] not in own:
                found.append(f"item {i} reads {store[i][:40]!r}, not part of its own {own[:40]!r}")
    return found[:3]


def read_with(name: str, opener: Callable[[Path], Any], path: Path, send: Callable[..., None]) -> None:
    """Opens and reads the store with one opener, reporting its outcome (and each step before taking it)."""
    step = "open"

    def progress(where: str) -> None:
        nonlocal step
        step = where
        send(step=f"{name}: {where}")

    try:
        progress("open")
        read_any(opener(path), progress)
        send(opener=name, status="ok")
    except HIERARCHY as exc:
        raised = {"type": type(exc).__name__, "corrupt": isinstance(exc, CorruptStoreError), "message": str(exc)[:200]}
        send(opener=name, status="raised", **raised)
    except BaseException as exc:  # noqa: B036 - a foreign exception is what this test looks for
        send(opener=name, status="foreign", step=step, error=f"{type(exc).__module__}.{type(exc).__name__}: {exc}")


def child_main(template: Template, path: Path, index_only: bool, out: int) -> None:
    """Runs in the forked child: reads the store with every opener, reporting as JSON lines on ``out``."""
    warnings.simplefilter("ignore")

    def send(**record: Any) -> None:
        os.write(out, json.dumps(record).encode()[:3000] + b"\n")

    for name, opener in OPENERS[template.kind]:
        read_with(name, opener, path, send)
    if index_only and template.kind in ("ragged", "string"):
        try:
            for found in stray_reads(template, path):
                send(stray_read=found)
        except BaseException:  # noqa: B036 - a store that does not open cannot lie; crashes were counted above
            pass


# Running the cases -------------------------------------------------------------------------------------------


@dataclass
class Case:
    number: int
    template: Template
    damage: str  # the name of the mutation function
    mutation: str
    touched: str  # the file or directory the mutation damaged, relative to the store
    root: Path  # holds the store and the child's stderr

    @property
    def index_only(self) -> bool:
        """Only offset or shape files are damaged: the data file is intact."""
        return self.touched.split("/")[0] in INDEX_DIRS

    @property
    def store(self) -> Path:
        return self.root / "store"

    def describe(self) -> str:
        return f"case {self.number}: {self.template.name} + {self.mutation}"


@dataclass
class Outcome:
    case: Case
    status: str  # ok, raised, foreign, lost, signal, hang
    detail: str = ""
    raised: list[tuple[str, bool, str]] = field(default_factory=list)  # type, is CorruptStoreError, message
    stray_reads: list[str] = field(default_factory=list)
    opened: set[str] = field(default_factory=set)  # the openers that read the whole store without an exception


SEVERITY = ["ok", "raised", "lost", "foreign", "hang", "signal"]


class Workspace:
    """Undamaged copies of the templates, reused: a case damages one, its child reads it, then the damaged
    top-level entry is restored from the template's files (far cheaper than a fresh copy per case)."""

    def __init__(self, root: Path, files: dict[str, dict[str, bytes]]) -> None:
        self.root, self.files = root, files
        self.free: dict[str, list[Path]] = {name: [] for name in files}
        self.made = 0

    def take(self, name: str) -> Path:
        if self.free[name]:
            return self.free[name].pop()
        self.made += 1
        root = self.root / f"{name}-{self.made}"
        materialize(self.files[name], root / "store")
        return root

    def give_back(self, name: str, root: Path, touched: str) -> None:
        top = touched.split("/")[0]
        target = root / "store" / top
        if target.is_dir():
            shutil.rmtree(target)
        elif target.exists():
            target.unlink()
        materialize({rel: data for rel, data in self.files[name].items() if rel.split("/")[0] == top}, root / "store")
        self.free[name].append(root)

    def pristine(self) -> bool:
        return all(snapshot(root / "store") == self.files[name] for name, roots in self.free.items() for root in roots)


def make_cases(workspace: Workspace) -> Iterator[Case]:
    """Damages the stores one by one, as the runner asks for them."""
    kinds, weights = zip(*MUTATIONS, strict=True)
    for number in range(STORES):
        rng = random.Random(SEED * 1_000_003 + number)
        template = TEMPLATES[number % len(TEMPLATES)]
        root = workspace.take(template.name)
        mutate = rng.choices(kinds, weights)[0]
        touched, mutation = mutate(rng, root / "store", workspace.files[template.name])
        yield Case(number, template, mutate.__name__, mutation, touched, root)


def fork_reader(case: Case) -> tuple[int, int]:
    """Forks a child that reads the case's store; returns its pid and the read end of its report pipe."""
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:
        code = 70
        try:
            os.close(read_end)
            stderr = os.open(case.root / "stderr", os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
            os.dup2(stderr, 2)
            faulthandler.enable(file=2)
            child_main(case.template, case.store, case.index_only, write_end)
            code = 0
        finally:
            os._exit(code)
    os.close(write_end)
    return pid, read_end


def judge(case: Case, exit_code: int | None, report: bytes) -> Outcome:
    records = [json.loads(line) for line in report.decode(errors="replace").splitlines() if line.endswith("}")]
    steps = [r["step"] for r in records if "step" in r and "status" not in r]
    last_step = steps[-1] if steps else "before the first step"
    # A Rust panic prints its location and message first, faulthandler the fatal error and the stack.
    stderr = [line for line in (case.root / "stderr").read_text(errors="replace").splitlines() if line.strip()][:3]
    where = f"died during {last_step!r}; stderr: {' | '.join(stderr) or '(empty)'}"
    if exit_code is None:
        return Outcome(case, "hang", f"no exit after {TIMEOUT} s; last step {last_step!r}")
    if exit_code < 0:
        return Outcome(case, "signal", f"{signal.Signals(-exit_code).name}; {where}")
    if exit_code != 0:
        return Outcome(case, "lost", f"exit code {exit_code}; {where}")
    outcome = Outcome(case, "ok")
    for r in records:
        if r.get("status") == "foreign":
            outcome.status = "foreign"
            outcome.detail += f"{r['opener']} during {r['step']!r}: {r['error']}; "
        elif r.get("status") == "raised":
            outcome.raised.append((r["type"], r["corrupt"], r["message"]))
            if outcome.status == "ok":
                outcome.status = "raised"
        elif r.get("status") == "ok":
            outcome.opened.add(r["opener"])
        elif "stray_read" in r:
            outcome.stray_reads.append(r["stray_read"])
    return outcome


def run_all(workspace: Workspace) -> list[Outcome]:
    """Runs every case in its own forked child, JOBS at a time; a child past TIMEOUT is killed as hung."""
    running: dict[int, tuple[Case, int, float, list[bytes]]] = {}
    outcomes = []
    pending = make_cases(workspace)

    def finish(fd: int, hung: bool) -> None:
        case, pid, _, chunks = running.pop(fd)
        if hung:
            os.kill(pid, signal.SIGKILL)
        _, status = os.waitpid(pid, 0)
        while chunk := os.read(fd, 1 << 16):
            chunks.append(chunk)
        os.close(fd)
        outcomes.append(judge(case, None if hung else os.waitstatus_to_exitcode(status), b"".join(chunks)))
        workspace.give_back(case.template.name, case.root, case.touched)

    while True:
        while len(running) < JOBS and (case := next(pending, None)) is not None:
            pid, fd = fork_reader(case)
            running[fd] = (case, pid, time.monotonic() + TIMEOUT, [])
        if not running:
            return sorted(outcomes, key=lambda o: o.case.number)
        wait = max(0.0, min(deadline for _, _, deadline, _ in running.values()) - time.monotonic())
        ready, _, _ = select.select(list(running), [], [], wait)
        for fd in ready:
            chunk = os.read(fd, 1 << 16)
            if chunk:
                running[fd][3].append(chunk)
            else:
                finish(fd, hung=False)
        now = time.monotonic()
        for fd in [fd for fd, (_, _, deadline, _) in running.items() if deadline < now]:
            finish(fd, hung=True)


@pytest.fixture(scope="module")
def campaign(tmp_path_factory: pytest.TempPathFactory) -> list[Outcome]:
    """Every template damaged STORES times in all, each case read in its own child."""
    base = tmp_path_factory.mktemp("hostile")
    files = {}
    for template in TEMPLATES:
        template.build(base / "templates" / template.name)
        files[template.name] = snapshot(base / "templates" / template.name)
    workspace = Workspace(base / "cases", files)
    outcomes = run_all(workspace)
    assert workspace.pristine(), "a damaged store was not restored: later cases would not be what they say"
    statuses = Counter(o.status for o in outcomes)
    raised = Counter(
        f"{name}{' (CorruptStoreError)' if corrupt else ''}" for o in outcomes for name, corrupt, _ in o.raised
    )
    print(f"\n{len(outcomes)} damaged stores: {dict(statuses)}; exceptions raised: {dict(raised)}")
    return outcomes


def report(outcomes: list[Outcome]) -> str:
    return f"(MMAP_NINJA_FUZZ_SEED={SEED})\n" + "\n".join(
        f"{o.case.describe()}\n    -> {o.status}: {o.detail}" for o in outcomes
    )


def test_every_kind_of_store_and_damage_was_exercised(campaign: list[Outcome]) -> None:
    assert len(campaign) == STORES >= len(TEMPLATES)
    assert {o.case.template.name for o in campaign} == {t.name for t in TEMPLATES}
    assert {o.case.damage for o in campaign} == {mutate.__name__ for mutate, _ in MUTATIONS}
    statuses = Counter(o.status for o in campaign)
    assert statuses["raised"] > 0 and statuses["ok"] > 0, statuses
    # Every opener read some damaged store whole (an opener that always raised would test nothing).
    assert set().union(*(o.opened for o in campaign)) == {name for pairs in OPENERS.values() for name, _ in pairs}


def test_damaged_stores_raise_only_exceptions_of_the_hierarchy(campaign: list[Outcome]) -> None:
    """No segfault, bus error or abort (a Rust panic), no hang, and no exception a user catching ValueError,
    OSError, IndexError, KeyError or TypeError would miss."""
    bad = [o for o in campaign if SEVERITY.index(o.status) > SEVERITY.index("raised")]
    assert not bad, f"{len(bad)} of {len(campaign)} damaged stores misbehaved:\n{report(bad)}"


def test_damaged_offsets_never_yield_another_items_bytes(campaign: list[Outcome]) -> None:
    """With the data file intact, damage to starts/, ends/, shapes/ or flattened_shapes/ may make a read raise,
    or return fewer or shorter items, but never an item holding bytes outside its own."""
    bad = [o for o in campaign if o.stray_reads]
    for o in bad:
        o.detail = "; ".join(o.stray_reads)
    assert not bad, f"{len(bad)} damaged stores returned another item's bytes:\n{report(bad)}"

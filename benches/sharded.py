"""Sharded build with Dask's processes scheduler vs the serial build, on PNG-decoded images, in alternating rounds.

    .venv/bin/python benches/sharded.py [--quick] [--rounds N] [--n-images N] [--partitions P] [--chunksize C]
                                        [--workers W] [--builds a,b] [--sweep P[:C],...] [--profile]
                                        [--cache DIR] [--json FILE]

Makes ``--n-images`` PNG files once from random crops of the four public-domain photos in
``mmap_ninja/_photos/`` (``--cache``; kept and reused while complete, the missing ones made on a process pool).
Image i is a box of a seeded random photo (35-100 % of each side, anywhere), resized to H x W with H and W uniform
in [--min-side, --max-side), mirrored half the time, RGB uint8, PNG at Pillow's default level. Every PNG is read
once before timing (page cache warm: decoding is the CPU-bound part). Each round builds, ``os.sync()`` first:

- serial: ``RaggedMmap.from_generator(out, (decode(p) for p in paths), batch_size)``;
- dask: ``mmap_ninja.dask.to_ragged(db.from_sequence(paths, npartitions=P).map(decode), out, batch_size,
  scheduler="processes", num_workers=W, chunksize=C)``: the documented call. Dask starts a new (spawn) process
  pool for every compute, so its start-up is inside the figure (``dask_pool_startup_s`` times a no-op compute).
  Each partition is one task (decode, then write its shard), so decoded items never leave their worker.
``chunksize`` is how many ready tasks dask's local scheduler sends to a worker at once: with dask's default of 6,
P <= 6 partitions would all go to ONE worker, so ``to_ragged`` passes 1 for the processes scheduler, as this
script does (``--chunksize 0`` leaves it to ``to_ragged``); P=8 gives each worker 4 tasks, which balances
partitions that take unequal times.
``decode(p)`` is ``np.asarray(Image.open(p).convert("RGB"))``. After each dask build its store is compared with
the serial one in full (lengths, every item; a sample by global index, as one gather across shards, and against
a fresh decode of its PNG), so wrong output fails the run. ``open_read_all_s`` opens a store and reads every item
once (``item.max()`` touches each byte). Prints medians over rounds and serial/X ratios. ``--sweep`` adds one
build per partition count (``P`` or ``P:chunksize``) and dask build after the rounds; ``--profile`` shows where
the time goes (decode alone, items sent to a process and back, each build's tasks). Nothing asserts on timings.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import platform
import shlex
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path
from typing import Any

import dask
import dask.bag as db
import numpy as np
from PIL import Image

import mmap_ninja
import mmap_ninja.dask
from mmap_ninja import RaggedMmap, ShardedMmap

sys.path.insert(0, str(Path(__file__).resolve().parent))
import compare  # noqa: E402  (a sibling script, not a package)

PHOTOS = Path(mmap_ninja.__file__).parent / "_photos"
CACHE_FORMAT = 1  # bump when the images a (seed, size range) makes change


@dataclass(frozen=True)
class Sizes:
    n_images: int = 20_000
    min_side: int = 96
    max_side: int = 256
    batch_size: int = 256
    workers: int = 2
    partitions: int = 8
    chunksize: int = 1  # 0: leave it to to_ragged (which passes 1 to the processes scheduler)
    seed: int = 0


QUICK = Sizes(n_images=300)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help=f"{QUICK.n_images} images, 1 round: a smoke run")
    parser.add_argument("--rounds", type=int, help="serial + dask rounds (default 3; 1 with --quick)")
    parser.add_argument("--cache", type=Path, help="PNG cache (default: <tmp>/mmap_ninja_sharded_pngs)")
    parser.add_argument("--out-dir", type=Path, help="where the stores are built (default: a temp dir, removed)")
    parser.add_argument(
        "--builds", default=",".join(BUILDS), help=f"dask builds to run, in order (default all: {','.join(BUILDS)})"
    )
    parser.add_argument("--sweep", help="extra builds after the rounds, e.g. 2,4,8:1,12 (P or P:chunksize)")
    parser.add_argument("--profile", action="store_true", help="after the rounds, show where each build's time goes")
    parser.add_argument("--json", type=Path, help="also save the rounds and the summary to this file")
    defaults = Sizes()
    for f in fields(Sizes):
        flag = "--" + f.name.replace("_", "-")
        parser.add_argument(
            flag, type=int, help=f"default {getattr(defaults, f.name)} ({getattr(QUICK, f.name)} quick)"
        )
    args = parser.parse_args(argv)
    base = QUICK if args.quick else defaults
    given = {f.name: getattr(args, f.name) for f in fields(Sizes) if getattr(args, f.name) is not None}
    args.sizes = replace(base, **given)
    if not 0 < args.sizes.min_side < args.sizes.max_side:
        parser.error("need 0 < --min-side < --max-side")
    args.rounds = args.rounds or (1 if args.quick else 3)
    args.builds = args.builds.split(",")
    unknown = [b for b in args.builds if b not in BUILDS]
    if unknown or not args.builds:
        parser.error(f"unknown build(s) {unknown}; known: {', '.join(BUILDS)}")
    return args


# ----------------------------------------------------------------------------------------------- the images


def decode(path: str) -> np.ndarray:
    """The item function of both builds (top level, so dask's spawned workers can unpickle it)."""
    with Image.open(path) as img:
        return np.asarray(img.convert("RGB"))


_SOURCES: list[Image.Image] = []


def _load_sources() -> None:
    for path in sorted(PHOTOS.glob("*.jpg")):
        with Image.open(path) as img:
            _SOURCES.append(img.convert("RGB"))


def _make_pngs(folder: str, start: int, stop: int, sizes: Sizes) -> int:
    """Writes images ``start`` .. ``stop - 1`` (each from its own seeded rng, so any subset is the same)."""
    if not _SOURCES:
        _load_sources()
    for i in range(start, stop):
        rng = np.random.default_rng([sizes.seed, i])
        photo = _SOURCES[int(rng.integers(len(_SOURCES)))]
        h, w = (int(v) for v in rng.integers(sizes.min_side, sizes.max_side, size=2))
        pw, ph = photo.size
        cw, ch = pw * rng.uniform(0.35, 1.0), ph * rng.uniform(0.35, 1.0)
        x, y = rng.uniform(0, pw - cw), rng.uniform(0, ph - ch)
        img = photo.resize((w, h), Image.Resampling.BILINEAR, box=(x, y, x + cw, y + ch))
        if rng.random() < 0.5:
            img = img.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
        tmp = Path(folder) / f".{i:06d}.png.tmp"
        img.save(tmp, format="PNG")
        tmp.replace(png_path(folder, i))
    return stop - start


def png_path(folder: str | Path, i: int) -> str:
    return os.path.join(folder, f"{i:06d}.png")


def cache_folder(cache: Path, sizes: Sizes) -> Path:
    return cache / f"v{CACHE_FORMAT}-side{sizes.min_side}-{sizes.max_side}-seed{sizes.seed}"


def ensure_pngs(cache: Path, sizes: Sizes) -> tuple[list[str], float]:
    """The paths of images 0 .. n-1, making the missing ones (``done.json`` counts the images known complete,
    so a larger or interrupted run only makes the rest). Returns (paths, seconds spent making)."""
    folder = cache_folder(cache, sizes)
    folder.mkdir(parents=True, exist_ok=True)
    marker = folder / "done.json"
    done = json.loads(marker.read_text())["count"] if marker.exists() else 0
    paths = [png_path(folder, i) for i in range(sizes.n_images)]
    missing = [i for i, p in enumerate(paths) if i >= done or not os.path.exists(p)]
    start = time.perf_counter()
    if missing:
        print(f"making {len(missing)} PNGs in {folder} ...", flush=True)
        step = 200
        runs = [(missing[k], missing[min(k + step, len(missing)) - 1] + 1) for k in range(0, len(missing), step)]
        with ProcessPoolExecutor(os.cpu_count(), mp_context=multiprocessing.get_context("spawn")) as pool:
            jobs = [pool.submit(_make_pngs, str(folder), a, b, sizes) for a, b in runs]
            for job in jobs:
                job.result()
        tmp = marker.with_suffix(".tmp")
        tmp.write_text(json.dumps({"count": max(done, sizes.n_images)}))
        tmp.replace(marker)
    return paths, time.perf_counter() - start


def warm(paths: Sequence[str]) -> int:
    """Reads every file once (page cache warm); returns their total size."""
    total = 0
    for p in paths:
        with open(p, "rb") as f:
            total += len(f.read())
    return total


# ----------------------------------------------------------------------------------------------- the builds


def build_serial(out: Path, paths: Sequence[str], sizes: Sizes) -> float:
    start = time.perf_counter()
    store = RaggedMmap.from_generator(out, (decode(p) for p in paths), batch_size=sizes.batch_size)
    elapsed = time.perf_counter() - start
    store.close()
    return elapsed


def dask_kwargs(sizes: Sizes, chunksize: int) -> dict[str, Any]:
    kwargs: dict[str, Any] = {"scheduler": "processes", "num_workers": sizes.workers}
    if chunksize:
        kwargs["chunksize"] = chunksize
    return kwargs


def build_dask(
    build: str, out: Path, paths: Sequence[str], sizes: Sizes, partitions: int, chunksize: int
) -> tuple[float, int]:
    """Seconds and the number of shards written by one of BUILDS."""
    bag = db.from_sequence(paths, npartitions=partitions).map(decode)
    kwargs = dask_kwargs(sizes, chunksize)
    start = time.perf_counter()
    if build != "dask":
        raise ValueError(f"unknown build {build!r}")
    store = mmap_ninja.dask.to_ragged(bag, out, batch_size=sizes.batch_size, **kwargs)
    elapsed = time.perf_counter() - start
    shards = len(store.shards)
    store.close()
    return elapsed, shards


BUILDS = {"dask": "mmap_ninja.dask.to_ragged(bag, out, scheduler='processes'): the documented call"}


def _noop(x: int) -> int:
    return x


def pool_startup(sizes: Sizes) -> float:
    """A no-op compute on a fresh process pool: spawning the workers, importing this module (numpy, Pillow,
    dask, mmap_ninja) and shutting the pool down, one task per worker."""
    bag = db.from_sequence(range(sizes.workers), npartitions=sizes.workers).map(_noop)
    start = time.perf_counter()
    bag.compute(**dask_kwargs(sizes, 1))
    return time.perf_counter() - start


def read_all(open_store: Callable[[], Any]) -> float:
    """Opens a store and reads every item once (``max`` touches every byte)."""
    start = time.perf_counter()
    store = open_store()
    for item in store:
        item.max()
    elapsed = time.perf_counter() - start
    store.close()
    return elapsed


def verify(serial_dir: Path, sharded_dir: Path, paths: Sequence[str], seed: int) -> int:
    """Raises unless the two stores hold the same items as the PNGs (every item, a sample by global index and
    as one gather spanning shards, 32 against a fresh decode); returns the bytes of all items."""
    serial, sharded = RaggedMmap(serial_dir), ShardedMmap(sharded_dir)
    try:
        n = len(paths)
        if not len(serial) == len(sharded) == sum(items for _, items in sharded.shards) == n:
            raise AssertionError(f"lengths differ: serial {len(serial)}, sharded {len(sharded)}, paths {n}")
        total = 0
        for i, (a, b) in enumerate(zip(serial, sharded, strict=True)):
            total += a.nbytes
            if a.shape != b.shape or a.dtype != np.uint8 or b.dtype != np.uint8 or not np.array_equal(a, b):
                raise AssertionError(f"item {i} differs: serial {a.shape} {a.dtype}, sharded {b.shape} {b.dtype}")
        sample = np.random.default_rng(seed).choice(n, size=min(n, 256), replace=False)
        for i, b in zip(sample, sharded[sample], strict=True):
            if not np.array_equal(serial[int(i)], b) or not np.array_equal(sharded[int(i)], b):
                raise AssertionError(f"item {i} differs by global index")
        for i in sample[:32]:
            if not np.array_equal(decode(paths[int(i)]), sharded[int(i)]):
                raise AssertionError(f"item {i} is not the decoded {paths[int(i)]}")
        return total
    finally:
        serial.close()
        sharded.close()


# ----------------------------------------------------------------------------------------------- rounds


def fresh(path: Path) -> Path:
    shutil.rmtree(path, ignore_errors=True)
    os.sync()  # the previous build's writeback must not land in this build's time
    return path


def run_round(r: int, work: Path, paths: Sequence[str], sizes: Sizes, builds: list[str]) -> dict[str, Any]:
    serial_dir, dask_dir = work / "serial", work / "sharded"
    out: dict[str, Any] = {"round": r, "build_s": {}, "shards": {}, "open_read_all_s": {}}
    out["build_s"]["serial"] = build_serial(fresh(serial_dir), paths, sizes)
    for build in builds:
        seconds, shards = build_dask(build, fresh(dask_dir), paths, sizes, sizes.partitions, sizes.chunksize)
        out["build_s"][build], out["shards"][build] = seconds, shards
        out["decoded_bytes"] = verify(serial_dir, dask_dir, paths, sizes.seed + r)
        if build == builds[0]:
            out["open_read_all_s"][build] = read_all(lambda: ShardedMmap(dask_dir))
        shutil.rmtree(dask_dir)
    out["open_read_all_s"]["serial"] = read_all(lambda: RaggedMmap(serial_dir))
    out["dask_pool_startup_s"] = pool_startup(sizes)
    return out


def run_sweep(spec: str, work: Path, paths: Sequence[str], sizes: Sizes, builds: list[str]) -> list[dict[str, Any]]:
    rows = []
    for entry in spec.split(","):
        p, _, c = entry.partition(":")
        partitions, chunksize = int(p), int(c or 0)
        for build in builds:
            out = fresh(work / "sweep")
            seconds, shards = build_dask(build, out, paths, sizes, partitions, chunksize)
            shutil.rmtree(out, ignore_errors=True)
            row = {
                "build": build,
                "partitions": partitions,
                "chunksize": chunksize,
                "shards": shards,
                "build_s": seconds,
            }
            rows.append(row)
            print(f"sweep {build} P={partitions} chunksize={chunksize or 'default'}: {seconds:.2f} s", flush=True)
    return rows


def task_kind(key: Any) -> str:
    """A task key without its partition number and trailing tokens: what kind of task it is (fused tasks name
    every function they run)."""
    parts = str(key[0] if isinstance(key, tuple) else key).split("-")
    while len(parts) > 1 and all(c in "0123456789abcdef" for c in parts[-1]):
        parts.pop()
    return "-".join(parts)


def _identity(x: Any) -> Any:
    return x


def profile(work: Path, paths: Sequence[str], sizes: Sizes, builds: list[str]) -> dict[str, Any]:
    """Where the time goes: the decode alone, decoded items sent to a process and back (what a partition's items
    cost when they leave the worker that decoded them), and each dask build's tasks as dask's scheduler saw
    them (dask.diagnostics.Profiler: from dispatch to result, so transfers are included)."""
    from dask.diagnostics import Profiler

    report: dict[str, Any] = {}
    start = time.perf_counter()
    nbytes = sum(decode(p).nbytes for p in paths)
    report["decode_only_s"] = time.perf_counter() - start
    sample = [decode(p) for p in paths[:2000]]
    with ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn")) as pool:
        pool.submit(_identity, 0).result()  # started
        start = time.perf_counter()
        back = pool.submit(_identity, sample).result()
        seconds = time.perf_counter() - start
    report["crossing_gb_per_s"] = 2 * sum(a.nbytes for a in back) / 1e9 / seconds
    report["crossing_all_items_s"] = nbytes / 1e9 / report["crossing_gb_per_s"]
    for build in builds:
        out = fresh(work / "profile")
        with Profiler() as prof:
            seconds, _ = build_dask(build, out, paths, sizes, sizes.partitions, sizes.chunksize)
        shutil.rmtree(out, ignore_errors=True)
        kinds: dict[str, list[float]] = {}
        for task in prof.results:
            kinds.setdefault(task_kind(task.key), []).append(task.end_time - task.start_time)
        report[build] = {
            "build_s": seconds,
            "tasks": len(prof.results),
            "workers_used": len({task.worker_id for task in prof.results}),
            "by_kind": {k: {"tasks": len(v), "sum_s": sum(v), "max_s": max(v)} for k, v in kinds.items()},
        }
    return report


def print_profile(report: dict[str, Any], sizes: Sizes) -> None:
    print(
        f"\nprofile: decode alone (serial, no store) {report['decode_only_s']:.2f} s; decoded items sent to a "
        f"process and back: {report['crossing_gb_per_s']:.2f} GB/s per crossing, i.e. "
        f"{report['crossing_all_items_s']:.2f} s for all items each time they cross"
    )
    for build in BUILDS:
        if build not in report:
            continue
        r = report[build]
        print(
            f"{build}: {r['build_s']:.2f} s, {r['tasks']} tasks for {sizes.partitions} partitions, "
            f"{r['workers_used']} worker process(es) ran them"
        )
        for kind, k in r["by_kind"].items():
            print(f"    {kind:<50} {k['tasks']:>4} tasks, longest {k['max_s']:6.2f} s")


# ----------------------------------------------------------------------------------------------- report


def machine() -> dict[str, Any]:
    """compare.py's machine description, and the load when the run started (Dask's speed-up needs both cores)."""
    return {**compare.machine(), "load_avg_1m": os.getloadavg()[0]}


def versions() -> dict[str, str]:
    import PIL

    return {
        "python": platform.python_version(),
        "mmap_ninja": mmap_ninja.__version__,
        "dask": dask.__version__,
        "pillow": PIL.__version__,
        "numpy": np.__version__,
        "multiprocessing_context": str(dask.config.get("multiprocessing.context", "spawn")),
    }


def fmt(value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value:.0f}" if abs(value) >= 1e4 else f"{value:.4g}"


def median_of(runs: list[dict[str, Any]], figure: str, build: str) -> float | None:
    values = [r[figure][build] for r in runs if build in r[figure]]
    return statistics.median(values) if values else None


def summarise(runs: list[dict[str, Any]], builds: list[str], n: int, decoded: int) -> dict[str, dict[str, Any]]:
    """{figure: {"unit", build: median or None, "ratio": {build: serial/build}}}; rates from the median times."""
    columns = ["serial", *builds]
    build = {b: median_of(runs, "build_s", b) for b in columns}
    read = {b: median_of(runs, "open_read_all_s", b) for b in columns}

    def rate(times: dict[str, float | None], amount: float) -> dict[str, float | None]:
        return {b: None if t is None else amount / t for b, t in times.items()}

    def row(unit: str, values: dict[str, float | None], times: dict[str, float | None]) -> dict[str, Any]:
        serial = times["serial"]
        ratios = {b: serial / t if serial and t else None for b, t in times.items() if b != "serial"}
        return {"unit": unit, **values, "ratio": ratios}

    startup = {b: None for b in columns} | {builds[0]: statistics.median(r["dask_pool_startup_s"] for r in runs)}
    return {
        "build_s": row("s", build, build),
        "build_items_per_s": row("items/s", rate(build, n), build),
        "build_decoded_mb_per_s": row("MB/s", rate(build, decoded / 1e6), build),
        "open_read_all_s": row("s", read, read),
        "read_all_gb_per_s": row("GB/s", rate(read, decoded / 1e9), read),
        "dask_pool_startup_s": {"unit": "s", **startup, "ratio": {}},
    }


def print_table(summary: dict[str, dict[str, Any]], builds: list[str], rounds: int) -> None:
    columns = ["serial", *builds]
    header = ["figure", "unit", *columns, *(f"serial/{b}" for b in builds)]
    rows = [
        [
            name,
            row["unit"],
            *(fmt(row[b]) for b in columns),
            *("-" if row["ratio"].get(b) is None else f"{row['ratio'][b]:.2f}" for b in builds),
        ]
        for name, row in summary.items()
    ]
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    print()
    for r in [header, ["-" * w for w in widths], *rows]:
        print("  ".join(c.ljust(w) if i < 2 else c.rjust(w) for i, (c, w) in enumerate(zip(r, widths, strict=True))))
    print(
        f"\nmedians over {rounds} round(s); serial/X > 1 means X is faster (for items/s and GB/s rows too). "
        f"open_read_all_s of the sharded store is measured on {builds[0]}'s output (all builds write the same "
        f"shards); dask_pool_startup_s (a no-op compute on a fresh pool) is inside every dask build's time."
    )
    for b in builds:
        print(f"  {b}: {BUILDS[b]}")


def print_sweep(rows: list[dict[str, Any]], serial_s: float | None, n: int) -> None:
    print("\nbuild                partitions  chunksize  shards  build (s)  items/s  serial/build")
    for row in rows:
        seconds = row["build_s"]
        ratio = f"{serial_s / seconds:.2f}" if serial_s else "-"
        chunk = str(row["chunksize"] or "default")
        print(
            f"{row['build']:<20} {row['partitions']:>10}  {chunk:>9}  {row['shards']:>6}  {seconds:>9.2f}  "
            f"{n / seconds:>7.0f}  {ratio:>12}"
        )


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    sizes: Sizes = args.sizes
    builds: list[str] = args.builds
    command = shlex.join([sys.executable, *sys.argv]) if argv is None else shlex.join(["sharded.py", *argv])
    m, v = machine(), versions()
    print(f"command: {command}")
    print(f"machine: nproc={m['nproc']} usable={m['usable_cpus']} cpu={m['cpu']!r} load(1m)={m['load_avg_1m']:.2f}")
    print("versions: " + " ".join(f"{k}={val}" for k, val in v.items()))
    print("sizes: " + " ".join(f"{k}={val}" for k, val in asdict(sizes).items()), flush=True)

    cache = args.cache or Path(tempfile.gettempdir()) / "mmap_ninja_sharded_pngs"
    paths, made_s = ensure_pngs(cache, sizes)
    start = time.perf_counter()
    png_total = warm(paths)
    warm_s = time.perf_counter() - start
    n = len(paths)
    made = f"made in {made_s:.1f} s" if made_s > 0.05 else "cached"
    print(
        f"images: {n} PNGs in {cache_folder(cache, sizes)} ({made}); RGB uint8, H and W uniform in "
        f"[{sizes.min_side}, {sizes.max_side}); PNG {png_total / 1e6:.0f} MB (mean {png_total / n / 1e3:.1f} KB), "
        f"read once in {warm_s:.1f} s (page cache warm)"
    )
    chunk = sizes.chunksize or f"dask's default ({dask.config.get('chunksize', 6)})"
    print(f"dask: {sizes.partitions} partitions on {sizes.workers} workers, chunksize {chunk}", flush=True)

    work = args.out_dir or Path(tempfile.mkdtemp(prefix="mmap_ninja_sharded_"))
    work.mkdir(parents=True, exist_ok=True)
    total_start = time.perf_counter()
    runs: list[dict[str, Any]] = []
    sweep: list[dict[str, Any]] = []
    prof: dict[str, Any] = {}
    try:
        for r in range(1, args.rounds + 1):
            out = run_round(r, work, paths, sizes, builds)
            runs.append(out)
            times = out["build_s"]
            parts = ", ".join(f"{b} {times[b]:.2f} s ({times['serial'] / times[b]:.2f}x)" for b in builds)
            print(f"round {r}/{args.rounds}: serial {times['serial']:.2f} s, {parts}; outputs verified", flush=True)
        if args.sweep:
            sweep = run_sweep(args.sweep, work, paths, sizes, builds)
        if args.profile:
            prof = profile(work, paths, sizes, builds)
    finally:
        for name in ("serial", "sharded", "sweep", "profile"):
            shutil.rmtree(work / name, ignore_errors=True)
        if args.out_dir is None:
            shutil.rmtree(work, ignore_errors=True)

    decoded = runs[0]["decoded_bytes"]
    print(f"decoded: {decoded / 1e6:.0f} MB of RGB uint8 (mean {decoded / n / 1e3:.1f} KB per image)")
    summary = summarise(runs, builds, n, decoded)
    print_table(summary, builds, args.rounds)
    for b in builds:
        speedup = summary["build_s"]["ratio"][b]
        per_round = ", ".join(f"{r['build_s']['serial'] / r['build_s'][b]:.2f}" for r in runs)
        verdict = "met" if speedup >= 1.6 else "NOT met"
        print(f"speedup {b}: {speedup:.2f}x (median serial / median {b}; rounds: {per_round}); 1.6x target {verdict}")
    if sweep:
        print_sweep(sweep, summary["build_s"]["serial"], n)
    if prof:
        print_profile(prof, sizes)
    print(f"total: {time.perf_counter() - total_start:.1f} s (after the PNGs were ready)")
    if args.json:
        report = {
            "command": command,
            "machine": m,
            "versions": v,
            "sizes": asdict(sizes),
            "images": {
                "n": n,
                "png_bytes": png_total,
                "decoded_bytes": decoded,
                "cache": str(cache_folder(cache, sizes)),
            },
            "builds": {b: BUILDS[b] for b in builds},
            "rounds": runs,
            "summary": summary,
            "sweep": sweep,
            "profile": prof,
        }
        args.json.write_text(json.dumps(report, indent=1))
        print(f"saved {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""One round of the ours-vs-reference comparison (driven by ``benches/compare.py``).

Runs under whichever python has the ``mmap_ninja`` to measure (ours or the pure-Python reference 0.9.0):

    python benches/workload.py prepare --data-dir DIR [sizes]       # build the shared read-only stores once
    python benches/workload.py run --data-dir DIR --scratch-dir S [sizes] [--only a,b] [--floor]
    python benches/workload.py versions

``run`` prints ONE JSON line on stdout: ``{"results": {figure: {"value": v, "floor": f} | {"error": msg}}, ...}``;
everything else goes to stderr. Each figure group is measured in its own try/except. Data is deterministic:

- images: a 1000x896x3 uint8 block from ``default_rng(seed)``; image i is ``base[dy:dy+h, dx:dx+w]`` copied
  (``np.ascontiguousarray``), with h in [300, 500), w in [400, 640), dy in [0, 500), dx in [0, 256) drawn from
  the same seeded rng. Generating an image is thus one memcpy, not a random-number draw.
- tokens: int64 sequences of length 1-11 (slices of one seeded random buffer); strings: 3-24 characters drawn
  from ASCII plus a few multi-byte characters; dense: standard normal float32 (n, 64).
- PNGs: smooth gradients plus noise, encoded by a minimal writer (zlib, "Sub" filter); decoding is
  ``zlib.decompress`` + an unfilter cumsum, the CPU-heavy item function for ``from_indexable``.
"""

from __future__ import annotations

import argparse
import gc
import inspect
import json
import os
import shutil
import statistics
import struct
import subprocess
import sys
import threading
import time
import traceback
import zlib
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, fields
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np

# figure name -> (unit, direction); direction "lower"/"higher" is better, "info" has no ratio.
FIGURES: dict[str, tuple[str, str]] = {
    "image_get_cold_us": ("us/op", "lower"),
    "image_get_touched_us": ("us/op", "lower"),
    "batch256_gather_cold_ms": ("ms/batch", "lower"),
    "cold_disk_read_mb": ("MB", "info"),
    "image_get_us": ("us/op", "lower"),
    "token_get_us": ("us/op", "lower"),
    "string_get_us": ("us/op", "lower"),
    "batch256_get_us_per_item": ("us/item", "lower"),
    "batch256_materialise_ms": ("ms/batch", "lower"),
    "batch256_gather_reused_ms": ("ms/batch", "lower"),
    "batch256_listcopy_ms": ("ms/batch", "lower"),
    "copy_items_gbps": ("GB/s", "higher"),
    "copy_items_dropped_gbps": ("GB/s", "higher"),
    "open_ragged_ms": ("ms", "lower"),
    "open_ragged_ms_small": ("ms", "lower"),
    "open_ragged_first_ms": ("ms", "lower"),
    "open_ragged_first_ms_small": ("ms", "lower"),
    "import_ms": ("ms", "lower"),
    "dense_get_us": ("us/op", "lower"),
    "dense_gather256_us": ("us/batch", "lower"),
    "build_images_s": ("s", "lower"),
    "build_images_peak_extra_mb": ("MB", "lower"),
    "build_images_batch_mb": ("MB", "info"),
    "build_tokens_s": ("s", "lower"),
    "from_indexable_speedup": ("x", "higher"),
    "from_indexable_serial_s": ("s", "lower"),
    "from_indexable_parallel_s": ("s", "lower"),
    "from_indexable_inmem_parallel_s": ("s", "lower"),
    "from_indexable_threads_speedup": ("x", "higher"),
}

IMAGE_BATCH = 256  # from_generator batch size for the images (and the size of every "batch256" figure)
TOKEN_BATCH = 4096  # from_generator batch size for the tokens
PNG_BATCH = 64  # from_indexable batch size for the PNGs
FROM_INDEXABLE_PAIRS = 3  # serial/parallel build pairs per round


@dataclass(frozen=True)
class Sizes:
    """Workload sizes; the defaults are the full-size run."""

    images: int = 1500
    tokens: int = 300_000
    strings: int = 200_000
    dense_rows: int = 200_000
    small_store: int = 3_000
    pngs: int = 200
    png_side: int = 256
    get_ops: int = 20_000  # random single-item gets per figure per round
    batches: int = 10  # 256-item batches per round (batch256_* figures; x4 for batch256_get)
    copy_items: int = 500
    cold_items: int = 200
    open_reps: int = 50  # opens of the big store per round (x10 for the small one)
    first_opens: int = 5  # fresh processes per round timing their first open of each store
    seed: int = 1234


DATA_FIELDS = ("images", "tokens", "strings", "dense_rows", "small_store", "pngs", "png_side", "seed")

QUICK = Sizes(
    images=48,
    tokens=5_000,
    strings=5_000,
    dense_rows=5_000,
    small_store=300,
    pngs=16,
    png_side=64,
    get_ops=1_000,
    batches=2,
    copy_items=32,
    cold_items=16,
    open_reps=3,
    first_opens=2,
)


def add_size_args(parser: argparse.ArgumentParser, defaults: Sizes) -> None:
    for f in fields(Sizes):
        flag = "--" + f.name.replace("_", "-")
        parser.add_argument(flag, type=int, default=None, help=f"(default {getattr(defaults, f.name)})")


def sizes_from_args(args: argparse.Namespace, defaults: Sizes) -> Sizes:
    values = {f.name: getattr(args, f.name) for f in fields(Sizes) if getattr(args, f.name) is not None}
    return Sizes(**{**asdict(defaults), **values})


def size_argv(sizes: Sizes) -> list[str]:
    return [arg for f in fields(Sizes) for arg in ("--" + f.name.replace("_", "-"), str(getattr(sizes, f.name)))]


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


# ----------------------------------------------------------------------------------------------- data


@dataclass(frozen=True)
class ImageSpec:
    """Shapes and crop offsets of every image, plus the base block they are cut from."""

    base: np.ndarray
    h: list[int]
    w: list[int]
    dy: list[int]
    dx: list[int]

    @staticmethod
    def make(n: int, seed: int) -> ImageSpec:
        rng = np.random.default_rng(seed)
        base = rng.integers(0, 256, size=(1000, 896, 3), dtype=np.uint8)
        cols = [rng.integers(lo, hi, n).tolist() for lo, hi in ((300, 500), (400, 640), (0, 500), (0, 256))]
        return ImageSpec(base, *cols)

    def image(self, i: int) -> np.ndarray:
        return np.ascontiguousarray(self.base[self.dy[i] : self.dy[i] + self.h[i], self.dx[i] : self.dx[i] + self.w[i]])

    def generate(self) -> Iterator[np.ndarray]:
        return (self.image(i) for i in range(len(self.h)))

    def layout(self) -> tuple[list[int], list[int], list[tuple[int, int, int]]]:
        """Element offsets [start, end) and shapes of each image in the flat buffer."""
        sizes = np.array(self.h, np.int64) * np.array(self.w, np.int64) * 3
        ends = np.cumsum(sizes)
        return (ends - sizes).tolist(), ends.tolist(), [(h, w, 3) for h, w in zip(self.h, self.w, strict=True)]

    @property
    def nbytes(self) -> int:
        return int(np.dot(np.array(self.h, np.int64), np.array(self.w, np.int64))) * 3


def make_tokens(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """The flat int64 buffer and the end offsets of ``n`` sequences of length 1-11."""
    rng = np.random.default_rng(seed + 1)
    ends = np.cumsum(rng.integers(1, 12, n))
    return rng.integers(0, 1 << 40, int(ends[-1]) if n else 0, dtype=np.int64), ends


def token_items(flat: np.ndarray, ends: np.ndarray) -> Iterator[np.ndarray]:
    start = 0
    for end in ends.tolist():
        yield flat[start:end]
        start = end


def make_strings(n: int, seed: int) -> list[str]:
    alphabet = np.array(list("abcdefghijklmnopqrstuvwxyz ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_äöüßéñ€中文"))
    rng = np.random.default_rng(seed + 2)
    ends = np.cumsum(rng.integers(3, 25, n))
    chars = "".join(alphabet[rng.integers(0, len(alphabet), int(ends[-1]) if n else 0)].tolist())
    return [chars[s:e] for s, e in zip([0, *ends[:-1].tolist()], ends.tolist(), strict=True)]


def make_dense(n: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed + 3).standard_normal((n, 64), dtype=np.float32)


def _png_chunk(kind: bytes, payload: bytes) -> bytes:
    return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", zlib.crc32(kind + payload))


def encode_png(img: np.ndarray) -> bytes:
    """A minimal 8-bit RGB PNG writer: every row uses the "Sub" filter, one IDAT chunk."""
    h, w, _ = img.shape
    sub = np.diff(img, axis=1, prepend=np.zeros((h, 1, 3), np.uint8)).reshape(h, w * 3)
    raw = np.hstack([np.ones((h, 1), np.uint8), sub]).tobytes()
    ihdr = struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + _png_chunk(b"IHDR", ihdr)
        + _png_chunk(b"IDAT", zlib.compress(raw, 6))
        + _png_chunk(b"IEND", b"")
    )


def decode_png(blob: bytes) -> np.ndarray:
    """Decodes what ``encode_png`` writes (Sub-filtered RGB8): inflate, then undo the filter with a cumsum."""
    w, h = struct.unpack(">II", blob[16:24])
    pos, idat = 8, []
    while pos < len(blob):
        (length,) = struct.unpack(">I", blob[pos : pos + 4])
        if blob[pos + 4 : pos + 8] == b"IDAT":
            idat.append(blob[pos + 8 : pos + 8 + length])
        pos += 12 + length
    rows = np.frombuffer(zlib.decompress(b"".join(idat)), np.uint8).reshape(h, 1 + w * 3)
    if not (rows[:, 0] == 1).all():
        raise ValueError("unsupported PNG filter")
    return np.cumsum(rows[:, 1:].reshape(h, w, 3), axis=1, dtype=np.uint8)


def make_png(i: int, side: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed + 100 + i)
    y, x = np.mgrid[0:side, 0:side]
    grad = np.stack([x * (1 + i % 3), y * (1 + i % 5), x + y], axis=-1)
    return (grad + rng.integers(0, 8, (side, side, 3))).astype(np.uint8)


class PngFiles:
    """The item function of ``from_indexable``: reads and decodes the i-th PNG file (small to pickle)."""

    def __init__(self, paths: list[str]) -> None:
        self.paths = paths

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, i: int) -> np.ndarray:
        with open(self.paths[i], "rb") as f:
            return decode_png(f.read())


class PngBlobs:
    """Same, but holding every encoded PNG in memory (joblib pickles the whole list with each task batch)."""

    def __init__(self, blobs: list[bytes]) -> None:
        self.blobs = blobs

    def __len__(self) -> int:
        return len(self.blobs)

    def __getitem__(self, i: int) -> np.ndarray:
        return decode_png(self.blobs[i])


def prepare(data: Path, sizes: Sizes) -> None:
    """Builds the shared stores (with whichever mmap_ninja runs this: the driver uses ours)."""
    from mmap_ninja import numpy as mn_numpy
    from mmap_ninja.ragged import RaggedMmap
    from mmap_ninja.string import StringsMmap

    manifest = data / "manifest.json"
    wanted = json.dumps({k: getattr(sizes, k) for k in DATA_FIELDS}, sort_keys=True)
    if manifest.exists() and manifest.read_text() == wanted:
        log(f"reusing the data in {data}")
        return
    data.mkdir(parents=True, exist_ok=True)
    for child in data.iterdir():
        shutil.rmtree(child) if child.is_dir() else child.unlink()
    spec = ImageSpec.make(sizes.images, sizes.seed)
    RaggedMmap.from_generator(data / "images", spec.generate(), batch_size=IMAGE_BATCH)
    flat, ends = make_tokens(sizes.tokens, sizes.seed)
    RaggedMmap.from_generator(data / "tokens", token_items(flat, ends), batch_size=TOKEN_BATCH)
    RaggedMmap.from_lists(data / "tokens_small", list(token_items(flat, ends[: sizes.small_store])))
    StringsMmap.from_strings(data / "strings", make_strings(sizes.strings, sizes.seed))
    mn_numpy.from_ndarray(data / "dense", make_dense(sizes.dense_rows, sizes.seed))
    (data / "pngs").mkdir()
    for i in range(sizes.pngs):
        (data / "pngs" / f"{i:04d}.png").write_bytes(encode_png(make_png(i, sizes.png_side, sizes.seed)))
    os.sync()
    manifest.write_text(wanted)


# ----------------------------------------------------------------------------------------------- measuring


def per_op_ns(fn: Callable[[], Any], ops: int) -> float:
    """Runs ``fn`` once (with the garbage collector off) and returns its time divided by ``ops``."""
    gc.collect()
    gc.disable()
    try:
        start = time.perf_counter_ns()
        fn()
        return (time.perf_counter_ns() - start) / ops
    finally:
        gc.enable()


def get_loop(obj: Any, indices: list[Any]) -> Callable[[], None]:
    def run() -> None:
        for i in indices:
            obj[i]

    return run


def timed_get_us(obj: Any, indices: list[Any]) -> float:
    get_loop(obj, indices[:100])()  # warm-up
    return per_op_ns(get_loop(obj, indices), len(indices)) / 1e3


def status_kb(key: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1])
    return 0


def disk_read_bytes() -> int:
    """Bytes this process caused to be fetched from storage (``/proc/self/io``), -1 where unavailable."""
    try:
        for line in Path("/proc/self/io").read_text().splitlines():
            if line.startswith("read_bytes:"):
                return int(line.split()[1])
    except OSError:
        pass
    return -1


class PeakAnon:
    """Samples RssAnon every ~5 ms in a thread; ``extra_mb`` is the peak minus the value at entry."""

    def __init__(self, interval: float = 0.005) -> None:
        self.interval = interval
        self.base = self.peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def _sample(self) -> None:
        while not self._stop.wait(self.interval):
            self.peak = max(self.peak, status_kb("RssAnon"))

    def __enter__(self) -> PeakAnon:
        gc.collect()
        self.base = self.peak = status_kb("RssAnon")
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, status_kb("RssAnon"))

    @property
    def extra_mb(self) -> float:
        return (self.peak - self.base) / 1024


def drop_page_cache(root: Path) -> None:
    """Evicts every file of ``root`` from the page cache (pages mapped by a live process stay: the garbage
    collector first drops this process's unreachable stores). Mirrors ``mmap_ninja.bench.drop_cache``: this
    script also runs under the reference, which cannot import ours."""
    gc.collect()
    for path in sorted(root.rglob("*")):
        if path.is_file():
            fd = os.open(path, os.O_RDONLY)
            try:
                os.fsync(fd)
                os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
            finally:
                os.close(fd)


def load_page_cache(root: Path) -> None:
    """Reads every file of ``root`` once, so that its pages are in the page cache again."""
    chunk = bytearray(8 << 20)
    for path in sorted(root.rglob("*")):
        if path.is_file():
            with open(path, "rb", buffering=0) as f:
                while f.readinto(chunk):
                    pass


def rand_ints(n: int, count: int, seed: int) -> list[int]:
    return np.random.default_rng(seed).integers(0, n, count).tolist()


def rand_batches(n: int, count: int, seed: int) -> list[list[int]]:
    rng = np.random.default_rng(seed)
    return [rng.integers(0, n, IMAGE_BATCH).tolist() for _ in range(count)]


Result = dict[str, float | None]


def result(value: float, floor: float | None = None) -> Result:
    return {"value": value, "floor": floor}


class Ctx:
    """Lazily opened stores and in-memory copies (the floors) for one round."""

    def __init__(self, data: Path, scratch: Path, sizes: Sizes, floor: bool) -> None:
        self.data, self.scratch, self.sizes, self.floor = data, scratch, sizes, floor

    @cached_property
    def spec(self) -> ImageSpec:
        return ImageSpec.make(self.sizes.images, self.sizes.seed)

    @cached_property
    def images(self) -> Any:
        from mmap_ninja.ragged import RaggedMmap

        return RaggedMmap(self.data / "images")

    @cached_property
    def image_flat(self) -> np.ndarray:
        return np.fromfile(self.data / "images" / "data.ninja", np.uint8, count=self.spec.nbytes)

    @cached_property
    def image_layout(self) -> tuple[list[int], list[int], list[tuple[int, int, int]]]:
        return self.spec.layout()

    @cached_property
    def tokens(self) -> Any:
        from mmap_ninja.ragged import RaggedMmap

        return RaggedMmap(self.data / "tokens")

    @cached_property
    def token_data(self) -> tuple[np.ndarray, np.ndarray]:
        return make_tokens(self.sizes.tokens, self.sizes.seed)

    @cached_property
    def strings(self) -> Any:
        from mmap_ninja.string import StringsMmap

        return StringsMmap(self.data / "strings")

    @cached_property
    def dense(self) -> np.ndarray:
        from mmap_ninja import numpy as mn_numpy

        return mn_numpy.open_existing(self.data / "dense")

    def image_slices(self, indices: list[int]) -> list[np.ndarray]:
        starts, ends, shapes = self.image_layout
        flat = self.image_flat
        return [flat[starts[i] : ends[i]].reshape(shapes[i]) for i in indices]


# ----------------------------------------------------------------------------------------------- figures


def fig_cold(ctx: Ctx) -> dict[str, Result]:
    """Random images read and copied (every byte touched) right after evicting the store from the page cache,
    then the same warm, and a cold batch (``fig_gather_cold``). Must run before anything else maps the images
    store in this process. Reads the whole store back into the page cache when done, also after a failure, so
    that the figures after it read a warm store."""
    try:
        return _cold_figures(ctx)
    finally:
        load_page_cache(ctx.data / "images")


def _cold_figures(ctx: Ctx) -> dict[str, Result]:
    from mmap_ninja.ragged import RaggedMmap

    store_dir = ctx.data / "images"
    indices = rand_ints(ctx.sizes.images, ctx.sizes.cold_items, 13)

    def touch_store() -> float:
        store = RaggedMmap(store_dir)
        return per_op_ns(lambda: [np.array(store[i]) for i in indices], len(indices)) / 1e3

    drop_page_cache(store_dir)
    read0 = disk_read_bytes()
    cold = touch_store()
    read_mb = (disk_read_bytes() - read0) / 1e6 if read0 >= 0 else -1.0
    cold_floor = touched_floor = None
    if ctx.floor:
        drop_page_cache(store_dir)
        cold_floor = _cold_pread_us(store_dir / "data.ninja", ctx.spec, indices)
        slices = ctx.image_slices(indices)
        touched_floor = per_op_ns(lambda: [np.array(x) for x in slices], len(indices)) / 1e3
    touched = touch_store()
    return {
        "image_get_cold_us": result(cold, cold_floor),
        "image_get_touched_us": result(touched, touched_floor),
        "cold_disk_read_mb": result(read_mb),
        **fig_gather_cold(ctx),
    }


def fig_gather_cold(ctx: Ctx) -> dict[str, Result]:
    """A 256-image batch copied out right after evicting the store: ``gather`` where the store has it (which
    prefetches the cold items and copies on two threads), else the list of copies a user of the reference
    makes; median of three batches. Floor: ``os.preadv`` of each item into a fresh array, one after another."""
    from mmap_ninja.ragged import RaggedMmap

    store_dir = ctx.data / "images"

    def copy_cold(batch: list[int]) -> float:
        drop_page_cache(store_dir)
        store = RaggedMmap(store_dir)
        if hasattr(store, "gather"):
            return per_op_ns(lambda: store.gather(batch), 1) / 1e6
        return per_op_ns(lambda: [np.array(x) for x in store[batch]], 1) / 1e6

    times, floors = [], []
    for seed in (14, 15, 16):
        batch = rand_batches(ctx.sizes.images, 1, seed)[0]
        times.append(copy_cold(batch))
        if ctx.floor:
            drop_page_cache(store_dir)
            floors.append(_cold_pread_us(store_dir / "data.ninja", ctx.spec, batch) * len(batch) / 1e3)
    return {"batch256_gather_cold_ms": result(statistics.median(times), statistics.median(floors) if floors else None)}


def _cold_pread_us(path: Path, spec: ImageSpec, indices: list[int]) -> float:
    """Floor of the cold figure: ``os.preadv`` of each image's bytes into a fresh array."""
    starts, ends, shapes = spec.layout()
    fd = os.open(path, os.O_RDONLY)
    try:

        def run() -> None:
            for i in indices:
                out = np.empty(shapes[i], np.uint8)
                os.preadv(fd, [out.data], starts[i])

        return per_op_ns(run, len(indices)) / 1e3
    finally:
        os.close(fd)


def fig_image_get(ctx: Ctx) -> dict[str, Result]:
    indices = rand_ints(ctx.sizes.images, ctx.sizes.get_ops, 1)
    value = timed_get_us(ctx.images, indices)
    floor = None
    if ctx.floor:
        starts, ends, shapes = ctx.image_layout
        flat = ctx.image_flat
        floor = per_op_ns(lambda: [flat[starts[i] : ends[i]].reshape(shapes[i]) for i in indices], len(indices))
        floor /= 1e3
    return {"image_get_us": result(value, floor)}


def fig_token_get(ctx: Ctx) -> dict[str, Result]:
    indices = rand_ints(ctx.sizes.tokens, ctx.sizes.get_ops, 2)
    value = timed_get_us(ctx.tokens, indices)
    floor = None
    if ctx.floor:
        flat, ends_arr = ctx.token_data
        ends = ends_arr.tolist()
        starts = [0, *ends[:-1]]
        floor = per_op_ns(lambda: [flat[starts[i] : ends[i]].reshape(-1) for i in indices], len(indices)) / 1e3
    return {"token_get_us": result(value, floor)}


def fig_string_get(ctx: Ctx) -> dict[str, Result]:
    indices = rand_ints(ctx.sizes.strings, ctx.sizes.get_ops, 3)
    value = timed_get_us(ctx.strings, indices)
    floor = None
    if ctx.floor:
        encoded = [s.encode() for s in make_strings(ctx.sizes.strings, ctx.sizes.seed)]
        ends = np.cumsum([len(b) for b in encoded]).tolist()
        starts, blob = [0, *ends[:-1]], b"".join(encoded)
        floor = per_op_ns(lambda: [blob[starts[i] : ends[i]].decode() for i in indices], len(indices)) / 1e3
    return {"string_get_us": result(value, floor)}


def fig_batch_get(ctx: Ctx) -> dict[str, Result]:
    batches = rand_batches(ctx.sizes.images, 4 * ctx.sizes.batches, 4)
    images = ctx.images
    images[batches[0]]  # warm-up
    value = per_op_ns(lambda: [images[b] for b in batches], len(batches) * IMAGE_BATCH) / 1e3
    floor = None
    if ctx.floor:
        ctx.image_slices(batches[0])
        floor = per_op_ns(lambda: [ctx.image_slices(b) for b in batches], len(batches) * IMAGE_BATCH) / 1e3
    return {"batch256_get_us_per_item": result(value, floor)}


def fig_batch_materialise(ctx: Ctx) -> dict[str, Result]:
    """A 256-image batch copied out of the store: ``gather`` where the store has it, else ``np.array`` per item
    (``batch256_listcopy_ms`` is that list copy for both implementations)."""
    batches = rand_batches(ctx.sizes.images, ctx.sizes.batches + 1, 5)
    warm, batches = batches[0], batches[1:]
    images = ctx.images
    starts, ends, _ = ctx.image_layout
    max_bytes = max(sum(ends[i] - starts[i] for i in b) for b in [warm, *batches])

    def listcopy() -> None:
        for b in batches:
            [np.array(x) for x in images[b]]

    floor = copy_floor = None
    if ctx.floor:
        buf = np.empty(max_bytes, np.uint8)
        concat_into(ctx, warm, buf)

        def concat_all() -> None:
            for b in batches:
                concat_into(ctx, b, buf)

        floor = per_op_ns(concat_all, len(batches)) / 1e6
        copy_floor = two_thread_copy_ms(ctx.image_flat[:max_bytes], len(batches))
    [np.array(x) for x in images[warm]]
    listcopy_ms = per_op_ns(listcopy, len(batches)) / 1e6
    out = {"batch256_listcopy_ms": result(listcopy_ms, floor), "batch256_materialise_ms": result(listcopy_ms, floor)}
    if hasattr(type(images), "gather"):

        def gather_each() -> None:
            # Like listcopy: each batch is dropped before the next, as in a training loop.
            for b in batches:
                images.gather(b)

        images.gather(warm)
        fresh = per_op_ns(gather_each, len(batches)) / 1e6
        reuse = np.ones(max_bytes, np.uint8)  # written before, as a reused buffer is: no first-touch faults
        images.gather(warm, out=reuse)
        reused = per_op_ns(lambda: [images.gather(b, out=reuse) for b in batches], len(batches)) / 1e6
        out["batch256_materialise_ms"] = result(fresh, floor)
        out["batch256_gather_reused_ms"] = result(reused, copy_floor)
    return out


def two_thread_copy_ms(src: np.ndarray, ops: int) -> float:
    """The floor of a gather into a reused buffer: ``src`` (in memory) copied whole by two threads, each
    ``np.copyto`` of one half (GIL released), into a buffer already written; ms per copy over ``ops`` copies."""
    from concurrent.futures import ThreadPoolExecutor

    dst = np.zeros_like(src)
    half = len(src) // 2
    spans = [(0, half), (half, len(src))]

    def copy(span: tuple[int, int]) -> None:
        np.copyto(dst[span[0] : span[1]], src[span[0] : span[1]])

    with ThreadPoolExecutor(2) as pool:
        list(pool.map(copy, spans))
        return per_op_ns(lambda: [list(pool.map(copy, spans)) for _ in range(ops)], ops) / 1e6


def concat_into(ctx: Ctx, batch: list[int], buf: np.ndarray) -> None:
    starts, ends, _ = ctx.image_layout
    flat = ctx.image_flat
    np.concatenate([flat[starts[i] : ends[i]] for i in batch], out=buf[: sum(ends[i] - starts[i] for i in batch)])


def fig_copy_items(ctx: Ctx) -> dict[str, Result]:
    """``[np.array(x) for x in m[idx]]``, every copy kept (fresh pages, each faulted in), and the same loop with
    each copy dropped before the next (``_dropped_``: the allocator hands the same pages back, so it is memcpy
    and the per-item cost). Floors: the same over slices of an in-memory copy."""
    indices = rand_ints(ctx.sizes.images, ctx.sizes.copy_items, 6)
    starts, ends, _ = ctx.image_layout
    nbytes = sum(ends[i] - starts[i] for i in indices)
    images = ctx.images

    def kept(items: Any) -> list[np.ndarray]:
        return [np.array(x) for x in items]

    def dropped(items: Any) -> None:
        for x in items:
            np.array(x)

    kept(images[indices[:8]])
    value = nbytes / per_op_ns(lambda: kept(images[indices]), 1)
    value_dropped = nbytes / per_op_ns(lambda: dropped(images[indices]), 1)
    floor = floor_dropped = None
    if ctx.floor:
        slices = ctx.image_slices(indices)
        floor = nbytes / per_op_ns(lambda: kept(slices), 1)
        floor_dropped = nbytes / per_op_ns(lambda: dropped(slices), 1)
    return {
        "copy_items_gbps": result(value, floor),
        "copy_items_dropped_gbps": result(value_dropped, floor_dropped),
    }


def fig_open(ctx: Ctx) -> dict[str, Result]:
    """Opens in this process, again and again (``open_ragged_ms*``), and the first open in a fresh process after
    the import (``open_ragged_first_ms*``), as a script or a DataLoader worker does it: there the reference's
    ``np.arange(n)`` pays a page fault per 4 KiB, which the heap of this long-running process hides. Those
    processes also time the import before it (``import_ms``: numpy's, and ours' numpy C-API lookup)."""
    from mmap_ninja.ragged import RaggedMmap

    out: dict[str, Result] = {}
    imports: list[float] = []
    for name, folder, reps, items in (
        ("open_ragged_ms", "tokens", ctx.sizes.open_reps, ctx.sizes.tokens),
        ("open_ragged_ms_small", "tokens_small", 10 * ctx.sizes.open_reps, ctx.sizes.small_store),
    ):
        path = ctx.data / folder
        RaggedMmap(path)
        out[name] = result(per_op_ns(opener(RaggedMmap, path, reps), reps) / 1e6)
        firsts = [first_open_ms(path, items) for _ in range(ctx.sizes.first_opens)]
        imports += [imported for imported, _ in firsts]
        out[name.replace("_ms", "_first_ms")] = result(statistics.median(opened for _, opened in firsts))
    out["import_ms"] = result(statistics.median(imports))
    return out


FIRST_OPEN = """
import sys, time
from pathlib import Path
start = time.perf_counter_ns()
from mmap_ninja.ragged import RaggedMmap
imported = time.perf_counter_ns()
store = RaggedMmap(Path(sys.argv[1]))
opened = time.perf_counter_ns()
print((imported - start) / 1e6, (opened - imported) / 1e6, len(store))
"""


def first_open_ms(path: Path, items: int) -> tuple[float, float]:
    """``(import, first open)`` of ``RaggedMmap(path)`` in a fresh interpreter of this implementation, in ms;
    the store must hold ``items`` items."""
    proc = subprocess.run(
        [sys.executable, "-c", FIRST_OPEN, str(path)], capture_output=True, text=True, check=True, timeout=120
    )
    imported, opened, length = proc.stdout.split()
    if int(length) != items:
        raise AssertionError(f"a fresh process read {length} items from {path}, not {items}")
    return float(imported), float(opened)


def opener(cls: Any, path: Path, reps: int) -> Callable[[], None]:
    def run() -> None:
        for _ in range(reps):
            cls(path)

    return run


def fig_dense_get(ctx: Ctx) -> dict[str, Result]:
    indices = rand_ints(ctx.sizes.dense_rows, ctx.sizes.get_ops, 7)
    value = timed_get_us(ctx.dense, indices)
    floor = timed_get_us(np.array(ctx.dense), indices) if ctx.floor else None
    return {"dense_get_us": result(value, floor)}


def fig_dense_gather(ctx: Ctx) -> dict[str, Result]:
    rng = np.random.default_rng(8)
    batches = [rng.integers(0, ctx.sizes.dense_rows, IMAGE_BATCH) for _ in range(max(ctx.sizes.get_ops // 10, 10))]
    value = timed_get_us(ctx.dense, batches)  # type: ignore[arg-type]
    floor = timed_get_us(np.array(ctx.dense), batches) if ctx.floor else None  # type: ignore[arg-type]
    return {"dense_gather256_us": result(value, floor)}


def _fresh_dir(ctx: Ctx, name: str) -> Path:
    path = ctx.scratch / f"{name}_{os.getpid()}"
    shutil.rmtree(path, ignore_errors=True)
    return path


def _timed_build(build: Callable[[], Any]) -> tuple[float, float]:
    """Seconds and peak extra anonymous MB of ``build`` (dirty pages of earlier work flushed first)."""
    os.sync()
    with PeakAnon() as peak:
        start = time.perf_counter_ns()
        build()
        seconds = (time.perf_counter_ns() - start) / 1e9
    return seconds, peak.extra_mb


def _write_raw(path: Path, items: Iterator[np.ndarray]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as f:
        for item in items:
            f.write(item.data.cast("B"))


def fig_build_images(ctx: Ctx) -> dict[str, Result]:
    from mmap_ninja.ragged import RaggedMmap

    spec = ctx.spec
    out_dir = _fresh_dir(ctx, "build_images")
    seconds, extra = _timed_build(lambda: RaggedMmap.from_generator(out_dir, spec.generate(), batch_size=IMAGE_BATCH))
    shutil.rmtree(out_dir, ignore_errors=True)
    floor_s = floor_mb = None
    if ctx.floor:
        floor_s, floor_mb = _timed_build(lambda: _write_raw(out_dir / "raw.bin", spec.generate()))
        shutil.rmtree(out_dir, ignore_errors=True)
    batch_mb = spec.nbytes / max(len(spec.h), 1) * min(IMAGE_BATCH, len(spec.h)) / 2**20
    return {
        "build_images_s": result(seconds, floor_s),
        "build_images_peak_extra_mb": result(extra, floor_mb),
        "build_images_batch_mb": result(batch_mb),
    }


def fig_build_tokens(ctx: Ctx) -> dict[str, Result]:
    from mmap_ninja.ragged import RaggedMmap

    flat, ends = ctx.token_data
    out_dir = _fresh_dir(ctx, "build_tokens")
    seconds, _ = _timed_build(
        lambda: RaggedMmap.from_generator(out_dir, token_items(flat, ends), batch_size=TOKEN_BATCH)
    )
    shutil.rmtree(out_dir, ignore_errors=True)
    floor = None
    if ctx.floor:
        floor, _ = _timed_build(lambda: _write_raw(out_dir / "raw.bin", token_items(flat, ends)))
        shutil.rmtree(out_dir, ignore_errors=True)
    return {"build_tokens_s": result(seconds, floor)}


def fig_from_indexable(ctx: Ctx) -> dict[str, Result]:
    """``from_indexable`` of PNG decodes, n_jobs=1 vs 2 in alternating pairs (medians; the speed-up is the
    median pair's ratio) after an untimed warm-up build each way. Floor: a plain loop / a plain
    ``joblib.Parallel(n_jobs=2)`` over the same item function."""
    from mmap_ninja.ragged import RaggedMmap

    paths = sorted(str(p) for p in (ctx.data / "pngs").glob("*.png"))
    files = PngFiles(paths)
    out_dir = _fresh_dir(ctx, "from_indexable")

    def build(indexable: Any, n_jobs: int, **backend: str) -> float:
        shutil.rmtree(out_dir, ignore_errors=True)
        os.sync()  # as _timed_build: the previous build's writeback does not compete for the two cores
        start = time.perf_counter_ns()
        RaggedMmap.from_indexable(out_dir, indexable, batch_size=PNG_BATCH, n_jobs=n_jobs, **backend)
        return (time.perf_counter_ns() - start) / 1e9

    # The warm-up starts the worker pool and grows the heaps: in three fresh processes the first serial build
    # took 7-60% longer than the next ones, its decodes faulting in fresh memory.
    build(files, 1)
    build(files, 2)
    # Alternating pairs (a build is short, so one pair per round is at the mercy of the noise).
    pairs = [(build(files, 1), build(files, 2)) for _ in range(FROM_INDEXABLE_PAIRS)]
    serial, parallel = (statistics.median(p[k] for p in pairs) for k in (0, 1))
    speedup = statistics.median(s / p for s, p in pairs)
    inmem = build(PngBlobs([Path(p).read_bytes() for p in paths]), 2)
    # Ours only: threads (the decode runs in zlib and numpy, outside the GIL), nothing pickled.
    threads = (
        statistics.median(build(files, 2, backend="threads") for _ in range(FROM_INDEXABLE_PAIRS))
        if "backend" in inspect.signature(RaggedMmap.from_indexable).parameters
        else None
    )
    shutil.rmtree(out_dir, ignore_errors=True)
    floors: list[float | None] = [None, None, None]
    if ctx.floor:
        floors = _from_indexable_floor(files)
    return {
        "from_indexable_speedup": result(speedup, floors[0]),
        "from_indexable_serial_s": result(serial, floors[1]),
        "from_indexable_parallel_s": result(parallel, floors[2]),
        "from_indexable_inmem_parallel_s": result(inmem, floors[2]),
        **({} if threads is None else {"from_indexable_threads_speedup": result(serial / threads)}),
    }


def _from_indexable_floor(files: PngFiles) -> list[float | None]:
    from joblib import Parallel, delayed

    start = time.perf_counter_ns()
    [files[i] for i in range(len(files))]
    serial = (time.perf_counter_ns() - start) / 1e9
    Parallel(n_jobs=2)(delayed(files.__getitem__)(i) for i in range(2))  # warm-up: starts the worker pool
    start = time.perf_counter_ns()
    Parallel(n_jobs=2)(delayed(files.__getitem__)(i) for i in range(len(files)))
    parallel = (time.perf_counter_ns() - start) / 1e9
    return [serial / parallel, serial, parallel]


def fig_checks(ctx: Ctx) -> dict[str, Result]:
    """Not a timing: spot-checks that the stores return the expected items (raises on a mismatch)."""
    for i in (0, ctx.sizes.images // 2, ctx.sizes.images - 1):
        if not np.array_equal(np.asarray(ctx.images[i]), ctx.spec.image(i)):
            raise AssertionError(f"images[{i}] differs from the generated image")
    flat, ends = ctx.token_data
    for i in (0, ctx.sizes.tokens - 1):
        start = int(ends[i - 1]) if i else 0
        if not np.array_equal(np.asarray(ctx.tokens[i]).reshape(-1), flat[start : ends[i]]):
            raise AssertionError(f"tokens[{i}] differs")
    expected = make_strings(ctx.sizes.strings, ctx.sizes.seed)
    for i in (0, ctx.sizes.strings - 1):
        if ctx.strings[i] != expected[i]:
            raise AssertionError(f"strings[{i}] differs")
    if not np.array_equal(ctx.dense[ctx.sizes.dense_rows - 1], make_dense(ctx.sizes.dense_rows, ctx.sizes.seed)[-1]):
        raise AssertionError("dense[-1] differs")
    return {}


# Run in this order: the cold figure first (nothing mapped yet), the builds last (they dirty the page cache).
GROUPS: list[tuple[str, Callable[[Ctx], dict[str, Result]], tuple[str, ...]]] = [
    (
        "image_get_cold_us",
        fig_cold,
        ("image_get_cold_us", "image_get_touched_us", "cold_disk_read_mb", "batch256_gather_cold_ms"),
    ),
    ("checks", fig_checks, ()),
    ("image_get_us", fig_image_get, ("image_get_us",)),
    ("token_get_us", fig_token_get, ("token_get_us",)),
    ("string_get_us", fig_string_get, ("string_get_us",)),
    ("batch256_get_us_per_item", fig_batch_get, ("batch256_get_us_per_item",)),
    (
        "batch256_materialise_ms",
        fig_batch_materialise,
        ("batch256_materialise_ms", "batch256_gather_reused_ms", "batch256_listcopy_ms"),
    ),
    ("copy_items_gbps", fig_copy_items, ("copy_items_gbps", "copy_items_dropped_gbps")),
    (
        "open_ragged_ms",
        fig_open,
        ("open_ragged_ms", "open_ragged_ms_small", "open_ragged_first_ms", "open_ragged_first_ms_small", "import_ms"),
    ),
    ("dense_get_us", fig_dense_get, ("dense_get_us",)),
    ("dense_gather256_us", fig_dense_gather, ("dense_gather256_us",)),
    ("build_images_s", fig_build_images, ("build_images_s", "build_images_peak_extra_mb", "build_images_batch_mb")),
    ("build_tokens_s", fig_build_tokens, ("build_tokens_s",)),
    (
        "from_indexable_speedup",
        fig_from_indexable,
        (
            "from_indexable_speedup",
            "from_indexable_serial_s",
            "from_indexable_parallel_s",
            "from_indexable_inmem_parallel_s",
            "from_indexable_threads_speedup",
        ),
    ),
]


def selected_groups(only: set[str] | None) -> list[tuple[str, Callable[[Ctx], dict[str, Result]], tuple[str, ...]]]:
    if only is None:
        return GROUPS
    return [g for g in GROUPS if g[0] == "checks" or g[0] in only or only & set(g[2])]


def run(ctx: Ctx, only: set[str] | None) -> dict[str, Any]:
    """Every selected group in turn; with ``only``, a group's outputs that were not asked for are dropped
    (unless the group itself was named)."""
    results: dict[str, Any] = {}
    checks = "not run"
    for name, fn, outputs in selected_groups(only):
        if only is not None and name not in only:
            outputs = tuple(o for o in outputs if o in only)
        start = time.perf_counter()
        try:
            got = fn(ctx)
            if name == "checks":
                checks = "ok"
            results.update({k: v for k, v in got.items() if k in outputs})
        except Exception as exc:  # one failing figure must not kill the round
            msg = f"{type(exc).__name__}: {exc}".splitlines()[0][:200]
            log(f"{name}: {traceback.format_exc()}")
            if name == "checks":
                checks = msg
            results.update({out: {"error": msg} for out in outputs})
        log(f"  {name}: {time.perf_counter() - start:.1f} s")
    return {"results": results, "checks": checks}


def versions() -> dict[str, str]:
    from importlib import metadata

    out = {"python": sys.version.split()[0], "executable": sys.executable}
    for dist in ("mmap_ninja", "mmap-ninja", "numpy", "joblib"):
        try:
            out[dist.replace("-", "_")] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            pass
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("command", choices=["prepare", "run", "versions"])
    parser.add_argument("--data-dir", type=Path)
    parser.add_argument("--scratch-dir", type=Path, help="where the build figures write (default: DATA/scratch)")
    parser.add_argument("--only", help="comma-separated figure names")
    parser.add_argument("--floor", action="store_true", help="also measure the numpy floors")
    add_size_args(parser, Sizes())
    args = parser.parse_args(argv)
    if args.command == "versions":
        print(json.dumps(versions()))
        return 0
    if args.data_dir is None:
        parser.error("--data-dir is required")
    sizes = sizes_from_args(args, Sizes())
    if args.command == "prepare":
        prepare(args.data_dir, sizes)
        return 0
    scratch = args.scratch_dir or args.data_dir / "scratch"
    scratch.mkdir(parents=True, exist_ok=True)
    only = set(args.only.split(",")) if args.only else None
    start = time.perf_counter()
    out = run(Ctx(args.data_dir, scratch, sizes, args.floor), only)
    out.update(versions=versions(), wall_s=time.perf_counter() - start)
    print(json.dumps(out), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())

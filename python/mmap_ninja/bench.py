"""The main job (``python -m mmap_ninja bench``): convert an image folder into a RaggedMmap and compare,
as in the original mmap-ninja README, in-memory, mmap_ninja and load-from-disk: initial load, one pass as
views, one pass touching every byte (page cache warm, then cold), real memory (anonymous RSS growth, not
array sizes) and disk usage. Every figure comes from a fresh process.

The built-in data is a folder of synthetic COCO-sized uint8 images (H in [300, 500), W in [400, 640), 3
channels) saved as ``.npy``; "load-from-disk" therefore means ``np.load`` per image (no JPEG decoding).
"""

from __future__ import annotations

import multiprocessing
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from .info import disk_bytes
from .ragged import RaggedMmap


def rss_anon_bytes() -> int:
    """Anonymous resident memory of this process (Linux), 0 where /proc is unavailable."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("RssAnon:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def make_images(folder: Path, n: int, seed: int) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    base = rng.integers(0, 256, size=(500, 640 + 256, 3), dtype=np.uint8)
    for i in range(n):
        h, w, dx = int(rng.integers(300, 500)), int(rng.integers(400, 640)), int(rng.integers(0, 256))
        np.save(folder / f"{i:06d}.npy", np.ascontiguousarray(base[:h, dx : dx + w]))


def _timed(fn: Callable[[], Any]) -> tuple[float, Any]:
    start = time.perf_counter()
    result = fn()
    return time.perf_counter() - start, result


def _one_pass(items: Any, n: int, touch: bool) -> float:
    start = time.perf_counter()
    total = 0
    for i in range(n):
        item = items[i]
        if touch:
            total += int(item.sum(dtype=np.uint64))
    return time.perf_counter() - start


class _FromDisk:
    def __init__(self, files: list[Path]) -> None:
        self.files = files

    def __getitem__(self, i: int) -> np.ndarray:
        arr: np.ndarray = np.load(self.files[i])
        return arr


def drop_cache(paths: list[Path]) -> None:
    """Evicts the files' pages from the page cache (they must not be mapped), so the next read hits the disk."""
    for path in paths:
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        finally:
            os.close(fd)


def measure(method: str, files: list[Path], store_dir: Path, cold: bool) -> tuple[float, float, float, int, int]:
    """(initial load, pass as views, pass touched, anonymous RSS growth, disk bytes) of one method, after
    evicting its files from the page cache when ``cold``. Run in a fresh process so the memory figure is not
    hidden by heap that an earlier step freed but kept."""
    n = len(files)
    if cold:
        drop_cache(sorted(p for p in store_dir.rglob("*") if p.is_file()) if method == "ragged_mmap" else files)
    before = rss_anon_bytes()
    items: Any
    if method == "in_memory":
        load, items = _timed(lambda: [np.load(f) for f in files])
        disk = sum(f.stat().st_size for f in files)
    elif method == "ragged_mmap":
        load, items = _timed(lambda: RaggedMmap(store_dir))
        disk = disk_bytes(store_dir)
    else:
        load, items = 0.0, _FromDisk(files)
        disk = sum(f.stat().st_size for f in files)
    views = 0.0 if cold else _one_pass(items, n, False)
    touched = _one_pass(items, n, True)
    return load, views, touched, rss_anon_bytes() - before, disk


METHODS = ("in_memory", "ragged_mmap", "load_from_disk")


def run(images: Path | None, work_dir: Path | None, n_images: int, seed: int) -> None:
    owned = work_dir is None
    work = Path(tempfile.mkdtemp(prefix="mmap_ninja_bench_")) if work_dir is None else work_dir
    try:
        if images is None:
            images = work / "images"
            print(f"making {n_images} synthetic COCO-sized images in {images} ...", file=sys.stderr)
            make_images(images, n_images, seed)
        files = sorted(images.glob("*.npy"))
        if not files:
            raise ValueError(f"no .npy images in {images}")
        store_dir = work / "ragged"
        seconds, _ = _timed(
            lambda: RaggedMmap.from_generator(store_dir, (np.load(f) for f in files), batch_size=256, verbose=True)
        )
        print(f"converted {len(files)} images into {store_dir} in {seconds:.2f} s", file=sys.stderr)
        print(f"\n{len(files)} images, {sum(f.stat().st_size for f in files) / 1e9:.3f} GB\n")
        header = (
            "",
            "Initial load (s)",
            "Pass as views (s)",
            "Pass touched (s)",
            "Cold: load (s)",
            "Cold: pass touched (s)",
            "Memory (GB, anon RSS)",
            "Disk (GB)",
        )
        print("| " + " | ".join(header) + " |")
        print("|:--|" + "--:|" * (len(header) - 1))
        spawn = multiprocessing.get_context("spawn")
        for name in METHODS:
            with spawn.Pool(1) as pool:
                load, views, touched, mem, disk = pool.apply(measure, (name, files, store_dir, False))
                cold_load, _, cold_touched, _, _ = pool.apply(measure, (name, files, store_dir, True))
            cells = (load, views, touched, cold_load, cold_touched)
            sizes = (f"{max(mem, 0) / 1e9:.6f}", f"{disk / 1e9:.6f}")
            print(f"| {name} | " + " | ".join(f"{c:.6f}" for c in cells) + " | " + " | ".join(sizes) + " |")
    finally:
        if owned:
            shutil.rmtree(work, ignore_errors=True)

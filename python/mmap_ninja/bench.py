"""The main job (``python -m mmap_ninja bench``): convert a folder of JPEGs into a RaggedMmap (the ``convert``
command's code) and compare, as in the original mmap-ninja README, holding the decoded images in memory,
mmap_ninja, and decoding the files from disk on every access: initial load, one pass as views, one pass touching
every byte (page cache warm, then cold), real memory (anonymous RSS growth, not array sizes) and disk usage.
Every figure comes from a fresh process; images are decoded by Pillow to RGB, one at a time.

The built-in data is a folder of COCO-like JPEGs made from the four photos in ``_photos/`` (public domain and
CC0, from scikit-image's sample data): each a random crop of a random photo, resized to a COCO size (long side
640, sometimes less; short side 56-80 % of it; a quarter portrait), mirrored half the time, with brightness
jitter and mild sensor-like noise, saved at JPEG quality 95 (about 120 KB for 640 x 480; COCO val2017 averages
160 KB). ``--images DIR`` uses any image folder instead.
"""

from __future__ import annotations

import multiprocessing
import os
import shutil
import sys
import tempfile
import textwrap
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

from .convert import convert, cores, decode, report_skip, require_pillow
from .info import disk_bytes
from .ragged import RaggedMmap

PHOTOS = Path(__file__).parent / "_photos"
METHODS = ("in_memory", "ragged_mmap", "decode_from_disk")
HEADER = (
    "Initial load (s)",
    "Pass as views (s)",
    "Pass touched (s)",
    "Cold: load (s)",
    "Cold: pass touched (s)",
    "Memory (GB, anon RSS)",
    "Disk (GB)",
)


def rss_anon_bytes() -> int:
    """Anonymous resident memory of this process (Linux), 0 where /proc is unavailable."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("RssAnon:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def _coco_like(photos: list[np.ndarray], grain: np.ndarray, seed: int, i: int) -> Any:
    """Image ``i``: a random crop of a random photo at a COCO size, maybe mirrored, jittered and grainy."""
    from PIL import Image

    rng = np.random.default_rng([seed, i])
    long = 640 if rng.random() < 0.85 else int(rng.integers(480, 640))
    short = round(long * rng.uniform(0.56, 0.8))
    w, h = (long, short) if rng.random() < 0.75 else (short, long)
    photo = Image.fromarray(photos[int(rng.integers(len(photos)))])
    # The largest box of the target's aspect ratio in the photo, shrunk to 40-100 % of its area, placed anywhere.
    pw, ph = photo.size
    scale = np.sqrt(rng.uniform(0.4, 1.0))
    cw, ch = (min(pw, ph * w / h) * scale, min(ph, pw * h / w) * scale)
    x, y = rng.uniform(0, pw - cw), rng.uniform(0, ph - ch)
    img = photo.resize((w, h), Image.Resampling.BICUBIC, box=(x, y, x + cw, y + ch))
    if rng.random() < 0.5:
        img = img.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
    gy, gx = int(rng.integers(grain.shape[0] - h + 1)), int(rng.integers(grain.shape[1] - w + 1))
    pixels = np.asarray(img, np.float32) * np.float32(rng.uniform(0.8, 1.2)) + grain[gy : gy + h, gx : gx + w]
    return Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8))


def make_images(folder: Path, n: int, seed: int, verbose: bool = False) -> None:
    """Writes ``n`` COCO-like JPEGs ``000000.jpg``, ... into ``folder`` (the same ones for the same seed)."""
    from PIL import Image
    from tqdm.auto import tqdm

    folder.mkdir(parents=True, exist_ok=True)
    photos = []
    for path in sorted(PHOTOS.glob("*.jpg")):
        with Image.open(path) as img:
            photos.append(np.asarray(img.convert("RGB")))
    grain = np.random.default_rng(seed).normal(0, 8, size=(1024, 1024, 3)).astype(np.float32)

    def save(i: int) -> None:
        _coco_like(photos, grain, seed, i).save(folder / f"{i:06d}.jpg", quality=95)

    # Pillow and numpy release the GIL for most of the work, so threads use every core.
    with ThreadPoolExecutor(cores()) as pool:
        for _ in tqdm(pool.map(save, range(n)), total=n, unit="img", disable=not verbose):
            pass


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
        return decode(self.files[i])


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
    hidden by heap that an earlier step freed but kept. For decode_from_disk a pass as views decodes too."""
    n = len(files)
    if cold:
        drop_cache(sorted(p for p in store_dir.rglob("*") if p.is_file()) if method == "ragged_mmap" else files)
    before = rss_anon_bytes()
    items: Any
    if method == "in_memory":
        load, items = _timed(lambda: [decode(f) for f in files])
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


def check_plot_target(path: Path) -> None:
    """Fails early (before the benchmark runs) when ``--plot`` cannot be written."""
    try:
        from matplotlib.figure import Figure
    except ImportError:
        raise ImportError("--plot needs matplotlib: pip install matplotlib") from None
    formats = Figure().canvas.get_supported_filetypes()
    if path.suffix and path.suffix[1:].lower() not in formats:
        raise ValueError(f"--plot {path}: unknown image format; use one of .{', .'.join(sorted(formats))}")
    if not path.parent.is_dir():
        raise FileNotFoundError(f"--plot {path}: no such folder {path.parent}")


def plot_table(rows: Sequence[tuple[str, Sequence[float]]], caption: str, path: Path) -> None:
    """The table as bar charts, one panel per column, saved to ``path`` (format from its extension)."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(16, 7.5), layout="constrained")
    axes = fig.subplots(2, 4).flat
    names = [textwrap.fill(name.replace("_", " "), 10) for name, _ in rows]
    for k, (ax, title) in enumerate(zip(axes, HEADER, strict=False)):
        values = [cells[k] for _, cells in rows]
        bars = ax.bar(names, values, color=["tab:blue", "tab:orange", "tab:green"][: len(rows)])
        ax.bar_label(bars, labels=[f"{v:.3g}" for v in values], fontsize=9)
        ax.set_title(title, fontsize=11)
        ax.tick_params(axis="x", labelsize=9)
        ax.margins(y=0.15)
    axes[len(HEADER)].axis("off")
    axes[len(HEADER)].text(0, 0.5, caption, fontsize=11, va="center", wrap=True)
    fig.suptitle("python -m mmap_ninja bench: in memory vs mmap_ninja vs decoding from disk", fontsize=13)
    fig.savefig(path, dpi=100)


def run(
    images: Path | None, work_dir: Path | None, n_images: int, seed: int, plot: Path | None = None
) -> list[tuple[str, list[float]]]:
    """Prints the table (and saves it as a chart to ``plot``); returns its rows."""
    if plot is not None:
        check_plot_target(plot)
    require_pillow("bench")
    owned = work_dir is None
    work = Path(tempfile.mkdtemp(prefix="mmap_ninja_bench_")) if work_dir is None else work_dir
    try:
        if images is None:
            images = work / "images"
            shutil.rmtree(images, ignore_errors=True)
            print(f"making {n_images} COCO-like JPEGs in {images} ...", file=sys.stderr)
            make_images(images, n_images, seed, verbose=True)
        store_dir = work / "ragged"
        print(f"converting {images} into {store_dir} ...", file=sys.stderr)
        conversion = convert(images, store_dir, overwrite=True, verbose=True, on_skip=report_skip)
        files = [images / name for name in conversion.names]
        file_gb, store_gb = sum(f.stat().st_size for f in files) / 1e9, disk_bytes(store_dir) / 1e9
        caption = (
            f"{len(files)} images, {file_gb:.3f} GB of files, {store_gb:.3f} GB decoded;\n"
            f"converted into a RaggedMmap in {conversion.seconds:.2f} s ({cores()} decoding threads)"
        )
        print(f"\n{caption.replace(chr(10), ' ')}\n")
        print("| | " + " | ".join(HEADER) + " |")
        print("|:--|" + "--:|" * len(HEADER))
        rows = []
        spawn = multiprocessing.get_context("spawn")
        for name in METHODS:
            with spawn.Pool(1) as pool:
                load, views, touched, mem, disk = pool.apply(measure, (name, files, store_dir, False))
                cold_load, _, cold_touched, _, _ = pool.apply(measure, (name, files, store_dir, True))
            cells = [load, views, touched, cold_load, cold_touched, max(mem, 0) / 1e9, disk / 1e9]
            rows.append((name, cells))
            print(f"| {name} | " + " | ".join(f"{c:.6f}" for c in cells) + " |", flush=True)
        if plot is not None:
            plot_table(rows, caption, plot)
            print(f"wrote {plot}", file=sys.stderr)
        return rows
    finally:
        if owned:
            shutil.rmtree(work, ignore_errors=True)

"""python -m mmap_ninja convert: an image folder as a RaggedMmap equal to Pillow's decode, in sorted name order,
with names to look items up by; unreadable images skipped or fatal (--strict); nothing half-written."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from mmap_ninja import CorruptStoreError
from mmap_ninja.ragged import RaggedMmap

from support import run_reference

Image = pytest.importorskip("PIL.Image")

from mmap_ninja.convert import NamedImages, UnreadableImageError, convert, decode  # noqa: E402

# Sorted by code point: upper case first, subfolders by their path, non-ASCII last.
GOOD = ["D.PNG", "a.png", "b.jpg", "f.gif", "sub/c.png", "sub/deep/e.bmp", "ü.png"]
BAD = ["bad.jpg", "g16.png"]  # not an image; 16-bit grayscale (does not fit uint8)


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "mmap_ninja", *args], capture_output=True, text=True, timeout=120)


def one_error_line(out: subprocess.CompletedProcess[str]) -> str:
    assert out.stderr.count("\n") == 1 and out.stderr.startswith("error: ") and "Traceback" not in out.stderr
    return out.stderr


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    rng = np.random.default_rng(0)
    src = tmp_path / "images"
    (src / "sub" / "deep").mkdir(parents=True)
    (src / ".hidden").mkdir()

    def pixels(h: int, w: int, *c: int) -> np.ndarray:
        return rng.integers(0, 256, (h, w, *c), dtype=np.uint8)

    Image.fromarray(pixels(12, 10, 3)).save(src / "a.png")
    Image.fromarray(pixels(16, 8, 3)).save(src / "b.jpg", quality=80)
    Image.fromarray(pixels(7, 9)).save(src / "sub" / "c.png")  # grayscale
    Image.fromarray(pixels(5, 6, 4)).save(src / "D.PNG")  # RGBA, upper-case extension
    Image.fromarray(pixels(4, 3, 3)).save(src / "sub" / "deep" / "e.bmp")
    Image.fromarray(pixels(6, 6, 3)).convert("P").save(src / "f.gif")  # palette
    Image.fromarray(pixels(3, 5, 3)).save(src / "ü.png")
    Image.fromarray(np.arange(12, dtype=np.uint16).reshape(3, 4) * 5000).save(src / "g16.png")
    (src / "bad.jpg").write_bytes(b"\xff\xd8 this is no JPEG")
    (src / "notes.txt").write_text("not an image")
    Image.fromarray(pixels(2, 2, 3)).save(src / ".hidden" / "x.png")
    Image.fromarray(pixels(2, 2, 3)).save(src / ".y.png")
    return src


def pillow(path: Path, mode: str) -> np.ndarray:
    with Image.open(path) as img:
        return np.asarray(img.convert(mode))


def test_cli_stores_pillow_decode_in_name_order_and_skips_unreadable(folder: Path, tmp_path: Path) -> None:
    out = cli("convert", str(folder), str(tmp_path / "out"))
    assert out.returncode == 0, out.stderr
    assert all(f"skipped {name}: " in out.stderr for name in BAD)
    assert "7 images (RGB, uint8)" in out.stdout and "skipped 2 unreadable" in out.stdout
    store = NamedImages(tmp_path / "out")
    assert store.names[:] == GOOD
    for i, name in enumerate(GOOD):
        item = store[i]
        assert item.dtype == np.uint8 and item.ndim == 3 and item.shape[2] == 3
        np.testing.assert_array_equal(item, pillow(folder / name, "RGB"))
    # OUT_DIR is a plain RaggedMmap: names/ beside the store files does not disturb it.
    assert len(RaggedMmap(tmp_path / "out")) == len(GOOD)
    assert cli("check", str(tmp_path / "out")).stdout.strip().endswith(": ok")


def test_lookup_by_name(folder: Path, tmp_path: Path) -> None:
    convert(folder, tmp_path / "out")
    store = NamedImages(tmp_path / "out")
    assert len(store) == len(GOOD) and store.index("sub/c.png") == 4
    np.testing.assert_array_equal(store["sub/c.png"], store[4])
    np.testing.assert_array_equal(store["ü.png"], pillow(folder / "ü.png", "RGB"))
    with pytest.raises(KeyError, match="bad.jpg"):
        store["bad.jpg"]
    RaggedMmap(tmp_path / "out").append(np.zeros((1, 1, 3), np.uint8))
    with pytest.raises(CorruptStoreError, match="8 images but 7 names"):
        NamedImages(tmp_path / "out")


def test_modes(folder: Path, tmp_path: Path) -> None:
    convert(folder, tmp_path / "gray", "L")
    gray = NamedImages(tmp_path / "gray")
    for name in GOOD:
        np.testing.assert_array_equal(gray[name], pillow(folder / name, "L"))
    convert(folder, tmp_path / "keep", "keep")
    keep = NamedImages(tmp_path / "keep")
    shapes = {name: keep[name].shape for name in GOOD}
    assert shapes["D.PNG"] == (5, 6, 4) and shapes["sub/c.png"] == (7, 9) and shapes["f.gif"] == (6, 6, 3)
    np.testing.assert_array_equal(keep["D.PNG"], pillow(folder / "D.PNG", "RGBA"))
    assert decode(folder / "D.PNG", "RGBA").shape == (5, 6, 4)


def test_strict_stops_and_leaves_nothing(folder: Path, tmp_path: Path) -> None:
    before = sorted(tmp_path.iterdir())
    out = cli("convert", "--strict", "--quiet", str(folder), str(tmp_path / "out"))
    assert out.returncode == 1 and "bad.jpg" in one_error_line(out)
    assert sorted(tmp_path.iterdir()) == before  # no OUT_DIR, no temporary folder
    with pytest.raises(UnreadableImageError) as exc:
        convert(folder, tmp_path / "out", strict=True)
    assert exc.value.name == "bad.jpg"


def test_interrupted_run_leaves_nothing(folder: Path, tmp_path: Path) -> None:
    def interrupt(name: str, reason: str) -> None:
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        convert(folder, tmp_path / "out", on_skip=interrupt)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["images"]


def test_existing_out_dir_is_replaced_only_when_asked_and_a_store(folder: Path, tmp_path: Path) -> None:
    out_dir = tmp_path / "out"
    assert cli("convert", "-q", str(folder), str(out_dir)).returncode == 0
    out = cli("convert", "-q", str(folder), str(out_dir))
    assert out.returncode == 1 and "already exists" in one_error_line(out)
    (folder / "a.png").unlink()
    out = cli("convert", "-q", "--overwrite", str(folder), str(out_dir))
    assert out.returncode == 0, out.stderr
    assert NamedImages(out_dir).names[:] == [n for n in GOOD if n != "a.png"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["images", "out"]
    other = tmp_path / "other"
    other.mkdir()
    (other / "keep.txt").write_text("mine")
    out = cli("convert", "-q", "--overwrite", str(folder), str(other))
    assert out.returncode == 1 and "not a mmap_ninja store" in one_error_line(out)
    assert [p.name for p in other.iterdir()] == ["keep.txt"]


def test_overwrite_waits_for_no_writer_and_leaves_a_store_being_written_alone(folder: Path, tmp_path: Path) -> None:
    import fcntl

    out_dir = tmp_path / "out"
    assert cli("convert", "-q", str(folder), str(out_dir)).returncode == 0
    before = sorted(str(p.relative_to(out_dir)) for p in out_dir.rglob("*"))
    fd = os.open(out_dir, os.O_RDONLY)
    fcntl.flock(fd, fcntl.LOCK_EX)  # a writer of the store is at work
    out = cli("convert", "-q", "--overwrite", str(folder), str(out_dir))
    os.close(fd)
    # (the folder's unreadable images are reported first, one line each)
    assert out.returncode == 1 and "another writer" in out.stderr.splitlines()[-1], out.stderr
    assert sorted(str(p.relative_to(out_dir)) for p in out_dir.rglob("*")) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["images", "out"]  # no temporary folder left


def test_bad_input_is_one_line(folder: Path, tmp_path: Path) -> None:
    out = cli("convert", str(tmp_path / "missing"), str(tmp_path / "out"))
    assert out.returncode == 1 and "no such folder" in one_error_line(out)
    (tmp_path / "empty").mkdir()
    out = cli("convert", str(tmp_path / "empty"), str(tmp_path / "out"))
    assert out.returncode == 1 and "no images" in one_error_line(out)
    (tmp_path / "junk").mkdir()
    (tmp_path / "junk" / "x.png").write_bytes(b"junk")
    out = cli("convert", "-q", str(tmp_path / "junk"), str(tmp_path / "out"))
    assert out.returncode == 1 and "none of the 1 images" in out.stderr.splitlines()[-1]
    assert not (tmp_path / "out").exists()
    for bad in (["--mode", "CMYK"], ["--jobs", "0"], []):
        out = cli("convert", *bad, *([str(folder), str(tmp_path / "out")] if bad else []))
        assert out.returncode == 2 and out.stderr.count("\n") == 1 and "error:" in out.stderr


def test_a_file_name_that_is_not_utf8_is_refused_up_front(folder: Path, tmp_path: Path) -> None:
    Image.new("RGB", (2, 2)).save(os.fsdecode(bytes(folder) + b"/\xff.png"))
    out = cli("convert", str(folder), str(tmp_path / "out"))
    assert out.returncode == 1 and "\\xff.png': file name is not UTF-8" in one_error_line(out)


def test_missing_pillow_is_one_line(folder: Path, tmp_path: Path) -> None:
    code = (
        "import sys; sys.modules['PIL'] = None; from mmap_ninja.__main__ import main; "
        f"sys.exit(main(['convert', {str(folder)!r}, {str(tmp_path / 'out')!r}]))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 1 and "pip install pillow" in one_error_line(out)


def test_many_images_keep_their_order_across_threads(tmp_path: Path) -> None:
    src = tmp_path / "many"
    src.mkdir()
    for i in range(40):
        Image.fromarray(np.full((i + 1, 2, 3), i, np.uint8)).save(src / f"{i:03d}.png")
    result = convert(src, tmp_path / "out", jobs=4)
    assert result.names == [f"{i:03d}.png" for i in range(40)] and not result.skipped
    images = RaggedMmap(tmp_path / "out")
    assert [(img.shape[0], int(img[0, 0, 0])) for img in images[:]] == [(i + 1, i) for i in range(40)]


def test_reference_reads_a_converted_folder(folder: Path, tmp_path: Path, reference_python: Path) -> None:
    convert(folder, tmp_path / "out")
    script = (
        "import sys; from mmap_ninja.ragged import RaggedMmap; from mmap_ninja.string import StringsMmap; "
        "m = RaggedMmap(sys.argv[1]); print([(x.shape, int(x.sum())) for x in m[:]]); "
        "print(StringsMmap(sys.argv[1] + '/names')[:])"
    )
    out = run_reference(reference_python, "-c", script, str(tmp_path / "out"))
    assert out.returncode == 0, out.stderr
    ours = [(x.shape, int(x.sum())) for x in RaggedMmap(tmp_path / "out")[:]]
    assert out.stdout.splitlines() == [str(ours), str(GOOD)]

"""Command line: ``python -m mmap_ninja {bench,convert,info,check}``; ``--help`` on each command. Errors are one
line on stderr: exit 1 for a failed command, 2 for bad arguments, 130 when interrupted; 141 (quietly) when the
reader of stdout goes away early."""

from __future__ import annotations

import argparse
import os
import select
import signal
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import NoReturn

from .errors import MmapNinjaError


class _Parser(argparse.ArgumentParser):
    """argparse, with usage errors on one line (the usage itself is one ``--help`` away)."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see --help)\n")


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, not {value}")
    return value


def _info(args: argparse.Namespace) -> int:
    from .info import describe

    for key, value in describe(Path(args.dir)).items():
        print(f"{key}: {value}")
    return 0


def _check(args: argparse.Namespace) -> int:
    from .info import check

    faults = check(Path(args.dir))
    for fault in faults:
        print(f"{args.dir}: {fault}")
    if not faults:
        print(f"{args.dir}: ok")
    return 1 if faults else 0


def _convert(args: argparse.Namespace) -> int:
    from .convert import NAMES_DIR, convert, report_skip

    done = convert(
        args.images_dir,
        args.out_dir,
        args.mode,
        strict=args.strict,
        overwrite=args.overwrite,
        jobs=args.jobs,
        verbose=not args.quiet,
        on_skip=report_skip,
    )
    skipped = f", skipped {len(done.skipped)} unreadable" if done.skipped else ""
    print(
        f"{args.out_dir}: {len(done.names)} images ({args.mode}, uint8) in {done.seconds:.2f} s{skipped}; "
        f"names in {Path(args.out_dir) / NAMES_DIR}"
    )
    return 0


def _bench(args: argparse.Namespace) -> int:
    from .bench import run

    run(args.images, args.dir, args.n_images, args.seed, args.plot)
    return 0


def parser() -> argparse.ArgumentParser:
    from .convert import MODES

    p = _Parser(prog="python -m mmap_ninja", description="Memory-mapped datasets for machine learning.")
    sub = p.add_subparsers(dest="command", required=True)
    bench = sub.add_parser(
        "bench",
        help="convert an image folder and compare in-memory, mmap_ninja and decoding from disk",
        description="The main job: convert a folder of JPEGs (default: built-in COCO-like images made from the "
        "photos the package ships) into a RaggedMmap, then print initial load, one pass as views and touched (warm "
        "and cold page cache), real memory and disk usage for in-memory, mmap_ninja and decode-from-disk.",
    )
    bench.add_argument("--images", type=Path, metavar="DIR", help="image folder to use instead of the built-in data")
    bench.add_argument("--dir", type=Path, help="work folder (default: a temporary folder, removed afterwards)")
    bench.add_argument("--n-images", type=_positive, default=300, help="number of built-in images (default 300)")
    bench.add_argument("--seed", type=int, default=0, help="seed of the built-in images")
    bench.add_argument("--plot", type=Path, metavar="FILE.png", help="also draw the table as bar charts (matplotlib)")
    bench.set_defaults(run=_bench)
    convert = sub.add_parser(
        "convert",
        help="turn a folder of images into a RaggedMmap of uint8 arrays, with their names",
        description="Decode every image under IMAGES_DIR (jpg, png, bmp, gif, tif, webp, ppm...; any case; "
        "subfolders included, hidden ones skipped) with Pillow, in sorted path order, into OUT_DIR: a RaggedMmap "
        "of uint8 arrays ((H, W, 3) for RGB, (H, W) for L), with the paths relative to IMAGES_DIR in the "
        "StringsMmap OUT_DIR/names (mmap_ninja.convert.NamedImages(OUT_DIR)['a/b.jpg'] looks one up). "
        "OUT_DIR appears only when complete.",
        epilog="Unreadable images are named on stderr. Exit 0 when done (also with skipped images), 1 on an error "
        "(nothing written), 2 on bad arguments.",
    )
    convert.add_argument("images_dir", metavar="IMAGES_DIR")
    convert.add_argument("out_dir", metavar="OUT_DIR")
    convert.add_argument(
        "--mode",
        choices=MODES,
        default="RGB",
        help="convert every image to RGB (default), RGBA or L (grayscale); 'keep' keeps L, LA, RGB and RGBA "
        "and turns other modes into RGB (RGBA with transparency)",
    )
    convert.add_argument(
        "--strict", action="store_true", help="stop at the first unreadable image (default: report and skip it)"
    )
    convert.add_argument("--overwrite", action="store_true", help="replace OUT_DIR if it is a store already")
    convert.add_argument("-j", "--jobs", type=_positive, help="decoding threads (default: one per core)")
    convert.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    convert.set_defaults(run=_convert)
    info = sub.add_parser(
        "info", help="store type, items, dtype, shapes and bytes on disk", description="Describe a store."
    )
    info.add_argument("dir")
    info.set_defaults(run=_info)
    check = sub.add_parser(
        "check",
        help="read and validate every item; exit 1 with one line per fault",
        description="Open the store and read every item; exit 0 when sound, 1 with one line per fault.",
    )
    check.add_argument("dir")
    check.set_defaults(run=_check)
    return p


def _stdout_is_closed() -> bool:
    """True when stdout is a pipe (or socket) whose reader is gone: polling its end reports an error."""
    try:
        poller = select.poll()
        poller.register(sys.stdout.fileno(), select.POLLOUT)
        return any(events & select.POLLERR for _, events in poller.poll(0))
    except (OSError, ValueError):
        return False


def _stdout_closed() -> int:
    """The reader of our output went away (``mmap-ninja info DIR | head -1``): stop quietly, as a command killed by
    SIGPIPE does, and keep Python from reporting the same broken pipe again when it flushes stdout at exit."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    os.close(devnull)
    return 128 + signal.SIGPIPE


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        code: int = args.run(args)
        sys.stdout.flush()
        return code
    except BrokenPipeError as exc:
        if _stdout_is_closed():
            return _stdout_closed()
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except (OSError, ImportError, MmapNinjaError, ValueError, TypeError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("error: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())

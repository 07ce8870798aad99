"""Command line: ``python -m mmap_ninja {bench,info,check}``; ``--help`` on each command."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from .errors import MmapNinjaError


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


def _bench(args: argparse.Namespace) -> int:
    from .bench import run

    run(args.images, Path(args.dir) if args.dir else None, args.n_images, args.seed)
    return 0


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m mmap_ninja", description="Memory-mapped datasets for machine learning.")
    sub = p.add_subparsers(dest="command", required=True)
    bench = sub.add_parser(
        "bench",
        help="build a RaggedMmap from an image folder and compare it with in-memory and load-from-disk",
        description="The main job: convert an image folder (default: built-in synthetic COCO-sized images) into a "
        "RaggedMmap, then print initial load, one pass as views and touched, real memory and disk usage for "
        "in-memory, mmap_ninja and load-from-disk.",
    )
    bench.add_argument("--images", help="folder of .npy images to use instead of the built-in data")
    bench.add_argument("--dir", help="work folder (default: a temporary folder, removed afterwards)")
    bench.add_argument("--n-images", type=int, default=300, help="number of built-in images (default 300)")
    bench.add_argument("--seed", type=int, default=0, help="seed of the built-in images")
    bench.set_defaults(run=_bench)
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


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        code: int = args.run(args)
        return code
    except (OSError, MmapNinjaError, ValueError, TypeError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())

"""Write every case of ``tests/fixtures/golden_cases.py`` with the reference (mmap-ninja 0.9.0).

Run with the reference venv's python (``scripts/ref_venv.sh`` prints it):
``python tests/compat/write_with_reference.py OUT_ROOT``.
Each case becomes ``OUT_ROOT/<case>/``; OUT_ROOT must not hold those directories yet.
"""

import sys
from pathlib import Path

import numpy as np

from mmap_ninja import np_extend_dir, np_from_ndarray
from mmap_ninja.ragged import RaggedMmap
from mmap_ninja.string import StringsMmap

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "fixtures"))
import golden_cases as gc


def write_case(name: str, out_dir: Path) -> None:
    """Write case ``name`` into ``out_dir`` (which must not exist) with the reference's own API."""
    kind, make = gc.CASES[name]
    items = make()
    if out_dir.exists():
        raise FileExistsError(out_dir)
    if name == "numpy_extended":
        np_from_ndarray(out_dir, items[: gc.NUMPY_EXTENDED_SPLIT])
        np_extend_dir(out_dir, items[gc.NUMPY_EXTENDED_SPLIT :])
    elif kind == "numpy":
        np_from_ndarray(out_dir, np.asarray(items))
    elif name == "ragged_float64_extended":
        store = RaggedMmap.from_lists(out_dir, items[:3])
        store.extend(items[3:5])
        store.append(items[5])
    elif name == "ragged_from_generator":
        RaggedMmap.from_generator(out_dir, iter(items), batch_size=gc.GENERATOR_BATCH_SIZE)
    elif kind == "ragged":
        RaggedMmap.from_lists(out_dir, items)
    elif name == "strings_extended":
        store = StringsMmap.from_strings(out_dir, items[: gc.STRINGS_EXTENDED_SPLIT])
        store.extend(items[gc.STRINGS_EXTENDED_SPLIT :])
        store.close()
    elif name in gc.ZSTD_CASES:
        level, dict_size = gc.ZSTD_CASES[name]
        store = StringsMmap.from_strings(out_dir, items, zstd_level=level, zstd_train_dictionary_size=dict_size)
        store.close()
    else:
        StringsMmap.from_strings(out_dir, items).close()


def write_all(out_root: Path) -> None:
    """Write every case into ``out_root/<case>``."""
    out_root.mkdir(parents=True, exist_ok=True)
    for name in gc.CASES:
        write_case(name, out_root / name)


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit(f"usage: {sys.argv[0]} OUT_ROOT")
    write_all(Path(sys.argv[1]))

"""mmap_ninja: datasets in memory-mapped files, read zero-copy from many processes.

A Rust-backed successor of mmap-ninja 0.9.0 with the same API and on-disk format.
"""

__version__ = "0.10.0"

from .base import Wrapped
from .errors import CorruptStoreError, ForkedWriterError, MmapNinjaError, StoreLockedError, StoreReplacedError
from .generic import open_existing
from .numpy import (
    append as np_append,
)
from .numpy import (
    extend as np_extend,
)
from .numpy import (
    extend_dir as np_extend_dir,
)
from .numpy import (
    from_generator as np_from_generator,
)
from .numpy import (
    from_ndarray as np_from_ndarray,
)
from .numpy import (
    open_existing as np_open_existing,
)
from .ragged import RaggedMmap
from .sharded import ShardedMmap
from .string import StringsMmap

__all__ = [
    "CorruptStoreError",
    "ForkedWriterError",
    "MmapNinjaError",
    "RaggedMmap",
    "ShardedMmap",
    "StoreLockedError",
    "StoreReplacedError",
    "StringsMmap",
    "Wrapped",
    "np_append",
    "np_extend",
    "np_extend_dir",
    "np_from_generator",
    "np_from_ndarray",
    "np_open_existing",
    "open_existing",
]

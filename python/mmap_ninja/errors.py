"""The exceptions mmap_ninja raises for its own reasons (I/O errors stay OSError subclasses)."""


class MmapNinjaError(Exception):
    """Base class of every error that mmap_ninja raises about a store."""


class CorruptStoreError(MmapNinjaError, ValueError):
    """The files of a store disagree with each other or with the format; ``path`` names the offending file."""

    def __init__(self, message: str, path: str | None = None) -> None:
        super().__init__(message)
        self.path = path


class StoreLockedError(MmapNinjaError, BlockingIOError):
    """Another writer holds the store's lock (and the write did not wait long enough): nothing was written.
    Pass ``wait=True`` (or a number of seconds) to wait for it instead."""


class StoreReplacedError(MmapNinjaError, RuntimeError):
    """The store a reader snapshot (or a pickled reader) refers to was replaced by another one since (its data
    file is a new file, or it holds fewer items): open it again to read the new store."""


class ForkedWriterError(MmapNinjaError, RuntimeError):
    """A writer was used in a process forked from the one that opened it; the child must open its own."""

"""The exceptions mmap_ninja raises for its own reasons (I/O errors stay OSError subclasses)."""


class MmapNinjaError(Exception):
    """Base class of every error that mmap_ninja raises about a store."""


class CorruptStoreError(MmapNinjaError, ValueError):
    """The files of a store disagree with each other or with the format; ``path`` names the offending file."""

    def __init__(self, message: str, path: str | None = None) -> None:
        super().__init__(message)
        self.path = path

//! The crate's one error type. Every variant keeps the kind of failure so the Python glue can map it to
//! the exception a user expects (FileNotFoundError vs PermissionError, IndexError, CorruptStoreError, ...).

use std::io;
use std::path::{Path, PathBuf};

/// Everything that can go wrong while opening, reading or writing a store.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// An operating-system error on `path`; `source.kind()` is preserved.
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    /// The files of a store disagree with each other or with the format.
    #[error("{}: corrupt store: {reason}", path.display())]
    Corrupt { path: PathBuf, reason: String },
    /// `type.ninja` names a store kind this library does not know.
    #[error("{}: unknown store type {name:?} (expected numpy, ragged or string)", path.display())]
    UnknownStoreType { path: PathBuf, name: String },
    /// An item index outside `-len..len`.
    #[error("index {index} is out of range for a store of {len} items")]
    IndexOutOfRange { index: i64, len: usize },
    /// A dtype outside the allowlist (bool, ints, uints, floats, complex, times).
    #[error("unsupported dtype {0:?}: only {allowed} can be stored", allowed = crate::format::ALLOWED_DTYPES)]
    UnsupportedDtype(String),
    /// Another writer holds the store's lock (and the caller did not wait long enough for it).
    #[error("{}: another writer is writing this store", path.display())]
    Locked { path: PathBuf },
    /// A writer used by a process other than the one that opened it (a forked child).
    #[error("this writer belongs to process {owner}; process {current} (a forked child?) must open its own")]
    ForeignProcess { owner: u32, current: u32 },
    /// The store at `path` is not the one this reader opened: it was replaced (written anew) since.
    #[error("{}: the store was replaced since it was opened; open it again", path.display())]
    Replaced { path: PathBuf },
    /// The caller passed something inconsistent (wrong dtype, sizes that do not add up, ...).
    #[error("{0}")]
    InvalidArgument(String),
}

/// The crate's result alias.
pub type Result<T> = std::result::Result<T, Error>;

impl Error {
    /// A corrupt-store error about `path`.
    pub fn corrupt(path: impl AsRef<Path>, reason: impl Into<String>) -> Self {
        Error::Corrupt {
            path: path.as_ref().to_path_buf(),
            reason: reason.into(),
        }
    }

    /// A closure that wraps an `io::Error` with the path it happened on, for `map_err`.
    pub fn io(path: impl AsRef<Path>) -> impl FnOnce(io::Error) -> Self {
        let path = path.as_ref().to_path_buf();
        move |source| Error::Io { path, source }
    }
}

//! `crate::Error` -> Python exceptions, keeping the kind: OSError subclasses by errno (FileNotFoundError,
//! PermissionError, ...) with the file name, IndexError, TypeError, ValueError, and the package's
//! `CorruptStoreError` (a ValueError) for files that disagree with the format.

use pyo3::exceptions::{PyIndexError, PyOSError, PyTypeError, PyValueError};
use pyo3::PyErr;

use crate::error::Error;

pyo3::import_exception!(mmap_ninja.errors, CorruptStoreError);
pyo3::import_exception!(mmap_ninja.errors, StoreLockedError);
pyo3::import_exception!(mmap_ninja.errors, ForkedWriterError);
pyo3::import_exception!(mmap_ninja.errors, StoreReplacedError);

/// errno values for kinds raised without one (ENOENT, EACCES on every Unix this builds for).
fn errno_of(source: &std::io::Error) -> Option<i32> {
    source.raw_os_error().or(match source.kind() {
        std::io::ErrorKind::NotFound => Some(2),
        std::io::ErrorKind::PermissionDenied => Some(13),
        _ => None,
    })
}

impl From<Error> for PyErr {
    fn from(err: Error) -> PyErr {
        let message = err.to_string();
        match err {
            Error::Io { path, source } => match errno_of(&source) {
                Some(errno) => {
                    let text = std::io::Error::from_raw_os_error(errno).to_string();
                    let text = text.split(" (os error").next().unwrap_or(&text).to_owned();
                    PyOSError::new_err((errno, text, path.to_string_lossy().into_owned()))
                }
                None => PyOSError::new_err(message),
            },
            Error::Corrupt { path, .. } | Error::UnknownStoreType { path, .. } => {
                CorruptStoreError::new_err((message, path.to_string_lossy().into_owned()))
            }
            Error::Locked { path } => {
                let text = "another writer is writing this store";
                StoreLockedError::new_err((11, text, path.to_string_lossy().into_owned()))
            }
            Error::ForeignProcess { .. } => ForkedWriterError::new_err(message),
            Error::Replaced { .. } => StoreReplacedError::new_err(message),
            Error::IndexOutOfRange { .. } => PyIndexError::new_err(message),
            Error::UnsupportedDtype(_) => PyTypeError::new_err(message),
            Error::InvalidArgument(_) => PyValueError::new_err(message),
        }
    }
}

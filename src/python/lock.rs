//! `StoreLock`: the glue of `crate::lock`, for Python code that changes a store directory as a whole (moving
//! it aside, say) and must not do so while one of the store's writers is at work.

use std::path::PathBuf;

use pyo3::prelude::*;

use super::options::locked;
use crate::lock::WriteLock;

/// A store's write lock, held until `release` (or the end of a `with` block).
#[pyclass(name = "StoreLock", module = "mmap_ninja._native")]
pub struct PyStoreLock {
    inner: Option<WriteLock>,
}

#[pymethods]
impl PyStoreLock {
    /// Locks the store directory `path`, waiting up to `wait` seconds for its writer.
    #[new]
    #[pyo3(signature = (path, wait = 0.0))]
    fn new(py: Python<'_>, path: PathBuf, wait: f64) -> PyResult<Self> {
        let inner = locked(py, wait, false, |options| WriteLock::acquire(&path, options.wait))?;
        Ok(PyStoreLock { inner: Some(inner) })
    }

    /// Releases the lock; releasing twice does nothing.
    fn release(&mut self) {
        self.inner = None;
    }

    fn __enter__(slf: PyRef<'_, Self>) -> PyRef<'_, Self> {
        slf
    }

    #[pyo3(signature = (*_exc))]
    fn __exit__(&mut self, _exc: &Bound<'_, pyo3::types::PyTuple>) {
        self.release();
    }
}

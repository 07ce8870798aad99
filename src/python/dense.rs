//! `DenseStore`: the glue of `crate::dense`.

use std::path::PathBuf;

use pyo3::buffer::PyBuffer;
use pyo3::prelude::*;

use super::buffer::PyMappedBuffer;
use super::payload;
use crate::dense::DenseStore;
use crate::error::Error;
use crate::format::Dtype;

/// An opened dense directory (the reference's `numpy` store).
#[pyclass(name = "DenseStore", module = "mmap_ninja._native", frozen)]
pub struct PyDenseStore {
    inner: DenseStore,
}

/// Parses a dtype name from Python, refusing anything outside the allowlist with a TypeError.
pub fn parse_dtype(name: &str) -> Result<Dtype, Error> {
    Dtype::parse(name).ok_or_else(|| Error::UnsupportedDtype(name.to_owned()))
}

#[pymethods]
impl PyDenseStore {
    #[new]
    #[pyo3(signature = (path, writable = false))]
    fn new(py: Python<'_>, path: PathBuf, writable: bool) -> PyResult<Self> {
        let inner = py.detach(|| DenseStore::open(&path, writable))?;
        Ok(PyDenseStore { inner })
    }

    /// Element type name.
    #[getter]
    fn dtype(&self) -> &'static str {
        self.inner.dtype().name()
    }

    /// Committed shape.
    #[getter]
    fn shape(&self) -> Vec<u64> {
        self.inner.shape().to_vec()
    }

    /// `C` or `F`.
    #[getter]
    fn order(&self) -> &'static str {
        self.inner.order().name()
    }

    /// The committed bytes, zero-copy.
    fn buffer(&self) -> PyMappedBuffer {
        PyMappedBuffer::new(self.inner.region().clone(), self.inner.bytes().len())
    }

    /// Writes a new C-order dense directory.
    #[staticmethod]
    fn create(py: Python<'_>, path: PathBuf, dtype: &str, shape: Vec<u64>, data: PyBuffer<u8>) -> PyResult<()> {
        let dtype = parse_dtype(dtype)?;
        let bytes = payload::concat(py, &[data])?;
        Ok(py.detach(|| DenseStore::create(&path, dtype, &shape, &bytes))?)
    }

    /// Appends `rows` rows to a C-order dense directory.
    #[staticmethod]
    fn extend(py: Python<'_>, path: PathBuf, dtype: &str, rows: u64, data: PyBuffer<u8>) -> PyResult<()> {
        let dtype = parse_dtype(dtype)?;
        let bytes = payload::concat(py, &[data])?;
        Ok(py.detach(|| DenseStore::extend(&path, dtype, rows, &bytes))?)
    }
}

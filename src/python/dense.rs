//! `DenseStore`: the glue of `crate::dense`.

use std::path::PathBuf;

use pyo3::prelude::*;

use super::buffer::PyMappedBuffer;
use super::options::{locked, parse_mode};
use super::payload::Items;
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
    #[pyo3(signature = (path, mode = "r"))]
    fn new(py: Python<'_>, path: PathBuf, mode: &str) -> PyResult<Self> {
        let mode = parse_mode(mode)?;
        let inner = py.detach(|| DenseStore::open(&path, mode))?;
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

    /// Device and inode of the data file: they change when the store is replaced, not when it is extended.
    #[getter]
    fn identity(&self) -> (u64, u64) {
        self.inner.region().identity()
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

    /// Writes the elements of `flat` (C-contiguous, little-endian `dtype`) as a new C-order dense directory
    /// of `shape` (which may be 0-d).
    #[staticmethod]
    #[pyo3(signature = (path, dtype, flat, shape, wait = 0.0, durable = false))]
    fn create(
        py: Python<'_>,
        path: PathBuf,
        dtype: &str,
        flat: Bound<'_, PyAny>,
        shape: Vec<u64>,
        wait: f64,
        durable: bool,
    ) -> PyResult<()> {
        let dtype = parse_dtype(dtype)?;
        let items = Items::new(&[flat], dtype)?;
        let bytes = items.slices()?[0];
        locked(py, wait, durable, |options| {
            DenseStore::create(&path, options, dtype, &shape, bytes)
        })
    }

    /// Appends the rows of `array` (C-contiguous, little-endian `dtype`) to a C-order dense directory.
    #[staticmethod]
    #[pyo3(signature = (path, dtype, array, wait = 0.0, durable = false))]
    fn extend(
        py: Python<'_>,
        path: PathBuf,
        dtype: &str,
        array: Bound<'_, PyAny>,
        wait: f64,
        durable: bool,
    ) -> PyResult<()> {
        let dtype = parse_dtype(dtype)?;
        let items = Items::new(&[array], dtype)?;
        let (bytes, shape) = (items.slices()?[0], items.shapes().swap_remove(0));
        locked(py, wait, durable, |options| {
            DenseStore::extend(&path, options, dtype, &shape, bytes)
        })
    }
}

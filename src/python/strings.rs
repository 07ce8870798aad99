//! `StringStore`: the glue of `crate::strings`.

use std::path::PathBuf;

use pyo3::buffer::PyBuffer;
use pyo3::prelude::*;
use pyo3::pybacked::PyBackedStr;
use pyo3::types::PyString;

use super::options::locked;
use crate::strings::{StringStore, ZstdOptions};

/// An opened, non-empty string store.
#[pyclass(name = "StringStore", module = "mmap_ninja._native", frozen)]
pub struct PyStringStore {
    inner: StringStore,
}

fn as_strs(items: &[PyBackedStr]) -> Vec<&str> {
    items.iter().map(|s| &**s).collect()
}

#[pymethods]
impl PyStringStore {
    /// Opens `path`; `None` for an empty store. `limit` keeps only the first `limit` strings (a snapshot).
    #[staticmethod]
    #[pyo3(signature = (path, limit = None))]
    fn open(py: Python<'_>, path: PathBuf, limit: Option<usize>) -> PyResult<Option<Self>> {
        let mut inner = py.detach(|| StringStore::open(&path))?;
        if let (Some(store), Some(limit)) = (inner.as_mut(), limit) {
            store.limit(limit);
        }
        Ok(inner.map(|inner| PyStringStore { inner }))
    }

    /// Device and inode of the data file: they change when the store is replaced, not when it is extended.
    #[getter]
    fn identity(&self) -> (u64, u64) {
        self.inner.region().identity()
    }

    /// Messages of up to `max` faults found by decoding every string (empty when sound).
    #[pyo3(signature = (max = 100))]
    fn verify(&self, py: Python<'_>, max: usize) -> Vec<String> {
        py.detach(|| self.inner.verify(max).iter().map(ToString::to_string).collect())
    }

    fn __len__(&self) -> usize {
        self.inner.len()
    }

    /// True when items are zstd frames.
    #[getter]
    fn is_compressed(&self) -> bool {
        self.inner.is_compressed()
    }

    /// Where each committed string's bytes start in the data file: a read-only int64 array (zero-copy).
    #[getter]
    fn starts<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        super::column::values(py, self.inner.starts(), self.inner.len())
    }

    /// Where each committed string's bytes end in the data file: a read-only int64 array (zero-copy).
    #[getter]
    fn ends<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        super::column::values(py, self.inner.ends(), self.inner.len())
    }

    /// String `index` (negative counts from the end).
    fn get<'py>(&self, py: Python<'py>, index: i64) -> PyResult<Bound<'py, PyString>> {
        Ok(self.inner.with_str(index, |s| PyString::new(py, s))?)
    }

    /// Many strings in one call, from a C-contiguous int64 array of indices.
    fn get_many<'py>(&self, py: Python<'py>, indices: PyBuffer<i64>) -> PyResult<Vec<Bound<'py, PyString>>> {
        let indices = super::payload::indices(py, &indices)?;
        Ok(indices
            .into_iter()
            .map(|i| self.inner.with_str(i, |s| PyString::new(py, s)))
            .collect::<Result<_, _>>()?)
    }

    /// Overwrites strings (`indices[k]` by `values[k]`, each of the same UTF-8 byte length), all checked first,
    /// then written under one hold of the store's lock (waiting up to `wait` seconds).
    #[pyo3(signature = (indices, values, wait = 0.0))]
    fn set(&self, py: Python<'_>, indices: Vec<i64>, values: Vec<PyBackedStr>, wait: f64) -> PyResult<()> {
        let values = as_strs(&values);
        locked(py, wait, false, |options| self.inner.set(options, &indices, &values))
    }

    /// Appends strings, creating an uncompressed store when empty.
    #[staticmethod]
    #[pyo3(signature = (path, items, wait = 0.0, durable = false))]
    fn extend(py: Python<'_>, path: PathBuf, items: Vec<PyBackedStr>, wait: f64, durable: bool) -> PyResult<()> {
        let items = as_strs(&items);
        locked(py, wait, durable, |options| StringStore::extend(&path, options, &items))
    }

    /// Writes a new store holding `items`, optionally zstd-compressed.
    #[staticmethod]
    #[pyo3(signature = (path, items, zstd_level = None, zstd_dictionary_size = None, wait = 0.0, durable = false))]
    #[allow(clippy::too_many_arguments)]
    fn create(
        py: Python<'_>,
        path: PathBuf,
        items: Vec<PyBackedStr>,
        zstd_level: Option<i32>,
        zstd_dictionary_size: Option<usize>,
        wait: f64,
        durable: bool,
    ) -> PyResult<()> {
        let items = as_strs(&items);
        let zstd = zstd_level.map(|level| ZstdOptions {
            level,
            dictionary_size: zstd_dictionary_size,
        });
        locked(py, wait, durable, |options| {
            StringStore::create(&path, options, &items, zstd)
        })
    }
}

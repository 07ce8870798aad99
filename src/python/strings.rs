//! `StringStore`: the glue of `crate::strings`.

use std::borrow::Cow;
use std::path::PathBuf;

use pyo3::buffer::PyBuffer;
use pyo3::prelude::*;
use pyo3::pybacked::PyBackedStr;

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
    /// Opens `path`; `None` for an empty store.
    #[staticmethod]
    fn open(py: Python<'_>, path: PathBuf) -> PyResult<Option<Self>> {
        let inner = py.detach(|| StringStore::open(&path))?;
        Ok(inner.map(|inner| PyStringStore { inner }))
    }

    fn __len__(&self) -> usize {
        self.inner.len()
    }

    /// True when items are zstd frames.
    #[getter]
    fn is_compressed(&self) -> bool {
        self.inner.is_compressed()
    }

    /// String `index` (negative counts from the end).
    fn get(&self, index: i64) -> PyResult<Cow<'_, str>> {
        Ok(self.inner.get(index)?)
    }

    /// Many strings in one call, from a C-contiguous int64 array of indices.
    fn get_many(&self, py: Python<'_>, indices: PyBuffer<i64>) -> PyResult<Vec<Cow<'_, str>>> {
        let indices = super::payload::indices(py, &indices)?;
        Ok(indices
            .into_iter()
            .map(|i| self.inner.get(i))
            .collect::<Result<_, _>>()?)
    }

    /// Overwrites string `index` with one of the same UTF-8 byte length.
    fn set(&self, index: i64, value: &str) -> PyResult<()> {
        Ok(self.inner.set(index, value)?)
    }

    /// Appends strings, creating an uncompressed store when empty.
    #[staticmethod]
    fn extend(py: Python<'_>, path: PathBuf, items: Vec<PyBackedStr>) -> PyResult<()> {
        let items = as_strs(&items);
        Ok(py.detach(|| StringStore::extend(&path, &items))?)
    }

    /// Writes a new store holding `items`, optionally zstd-compressed.
    #[staticmethod]
    #[pyo3(signature = (path, items, zstd_level = None, zstd_dictionary_size = None))]
    fn create(
        py: Python<'_>,
        path: PathBuf,
        items: Vec<PyBackedStr>,
        zstd_level: Option<i32>,
        zstd_dictionary_size: Option<usize>,
    ) -> PyResult<()> {
        let items = as_strs(&items);
        let zstd = zstd_level.map(|level| ZstdOptions {
            level,
            dictionary_size: zstd_dictionary_size,
        });
        Ok(py.detach(|| StringStore::create(&path, &items, zstd))?)
    }
}

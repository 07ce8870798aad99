//! `RaggedStore`: the glue of `crate::ragged`.

use std::path::PathBuf;

use pyo3::buffer::PyBuffer;
use pyo3::prelude::*;

use super::buffer::PyMappedBuffer;
use super::dense::parse_dtype;
use super::payload;
use crate::ragged::{Item, RaggedStore};

/// An opened, non-empty ragged store.
#[pyclass(name = "RaggedStore", module = "mmap_ninja._native", frozen)]
pub struct PyRaggedStore {
    inner: RaggedStore,
}

type Located = (u64, u64, Vec<u64>);

fn located(item: Item) -> Located {
    (item.start, item.end, item.shape)
}

#[pymethods]
impl PyRaggedStore {
    /// Opens `path`; `None` for an empty store.
    #[staticmethod]
    #[pyo3(signature = (path, writable = false))]
    fn open(py: Python<'_>, path: PathBuf, writable: bool) -> PyResult<Option<Self>> {
        let inner = py.detach(|| RaggedStore::open(&path, writable))?;
        Ok(inner.map(|inner| PyRaggedStore { inner }))
    }

    fn __len__(&self) -> usize {
        self.inner.len()
    }

    /// Element type name.
    #[getter]
    fn dtype(&self) -> &'static str {
        self.inner.dtype().name()
    }

    /// True when every item is 1-D or 0-d.
    #[getter]
    fn is_flat(&self) -> bool {
        self.inner.is_flat()
    }

    /// The committed flat buffer, zero-copy.
    fn buffer(&self) -> PyMappedBuffer {
        let bytes = self.inner.data_len() as usize * self.inner.dtype().itemsize();
        PyMappedBuffer::new(self.inner.region().clone(), bytes)
    }

    /// `(start, end, shape)` of item `index` in elements; `shape` is empty for a 0-d item.
    fn locate(&self, index: i64) -> PyResult<Located> {
        Ok(located(self.inner.locate(index)?))
    }

    /// `locate` for many indices in one call.
    fn locate_many(&self, indices: Vec<i64>) -> PyResult<Vec<Located>> {
        Ok(self.inner.locate_many(&indices)?.into_iter().map(located).collect())
    }

    /// Appends items (C-contiguous uint8 views of little-endian arrays) with their shapes, creating the
    /// store when empty.
    #[staticmethod]
    fn extend(
        py: Python<'_>,
        path: PathBuf,
        dtype: &str,
        items: Vec<PyBuffer<u8>>,
        shapes: Vec<Vec<u64>>,
    ) -> PyResult<()> {
        let dtype = parse_dtype(dtype)?;
        let bytes = payload::concat(py, &items)?;
        Ok(py.detach(|| RaggedStore::extend(&path, dtype, &bytes, &shapes))?)
    }

    /// Writes a new store holding the items, replacing any store in `path`.
    #[staticmethod]
    fn create(
        py: Python<'_>,
        path: PathBuf,
        dtype: &str,
        items: Vec<PyBuffer<u8>>,
        shapes: Vec<Vec<u64>>,
    ) -> PyResult<()> {
        let dtype = parse_dtype(dtype)?;
        let bytes = payload::concat(py, &items)?;
        Ok(py.detach(|| RaggedStore::create(&path, dtype, &bytes, &shapes))?)
    }
}

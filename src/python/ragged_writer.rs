//! `RaggedWriter`: the glue of `crate::ragged::RaggedWriter`. Items are borrowed from numpy (no copy) and
//! written with the GIL released.

use std::path::PathBuf;

use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::{PyList, PyType};

use super::dense::parse_dtype;
use super::options::locked;
use super::payload::Items;
use crate::format::Dtype;
use crate::ragged::RaggedWriter;

/// Writes `items` (C-contiguous little-endian arrays of `dtype`) back to back from byte `start` into a data
/// file that the writer of another process will `adopt` them from, with the GIL released: the first of
/// `paths` that exists, if its (device, inode) is `identity`, while that writer's process holds its lock on
/// `owner` (see `crate::ragged::place`). Returns where the items end, or `None` when the file is not that
/// writer's any more or the writer is gone.
#[pyfunction]
pub fn place(
    py: Python<'_>,
    dtype: &str,
    items: Vec<Bound<'_, PyAny>>,
    start: u64,
    paths: Vec<PathBuf>,
    identity: (u64, u64),
    owner: PathBuf,
) -> PyResult<Option<u64>> {
    let items = Items::new(&items, parse_dtype(dtype)?)?;
    let slices = items.slices()?;
    Ok(py.detach(|| crate::ragged::place(&paths, identity, &owner, start, &slices))?)
}

/// A write session on a ragged store.
#[pyclass(name = "RaggedWriter", module = "mmap_ninja._native")]
pub struct PyRaggedWriter {
    inner: Option<RaggedWriter>,
}

impl PyRaggedWriter {
    /// Pushes `items` with `shapes`, straight from their memory, with the GIL released; returns the bytes.
    fn write(&mut self, py: Python<'_>, dtype: Dtype, items: &Items, shapes: &[Vec<u64>]) -> PyResult<usize> {
        let slices = items.slices()?;
        let writer = self.writer()?;
        py.detach(|| writer.push_all(dtype, slices.iter().copied().zip(shapes.iter().map(Vec::as_slice))))?;
        Ok(slices.iter().map(|s| s.len()).sum())
    }

    fn writer(&mut self) -> PyResult<&mut RaggedWriter> {
        self.inner
            .as_mut()
            .ok_or_else(|| PyValueError::new_err("this RaggedWriter is closed"))
    }
}

#[pymethods]
impl PyRaggedWriter {
    /// Locks `path` and opens it to append (`replace=False`, creating it when missing) or to write a new
    /// store, waiting up to `wait` seconds for another writer; `durable` flushes every commit to disk.
    #[new]
    #[pyo3(signature = (path, replace = false, wait = 0.0, durable = false))]
    fn new(py: Python<'_>, path: PathBuf, replace: bool, wait: f64, durable: bool) -> PyResult<Self> {
        let inner = locked(py, wait, durable, |options| {
            if replace {
                RaggedWriter::replace(&path, options)
            } else {
                RaggedWriter::append(&path, options)
            }
        })?;
        Ok(PyRaggedWriter { inner: Some(inner) })
    }

    /// The store's dtype name, `None` until a new store gets its first item.
    #[getter]
    fn dtype(&self) -> Option<&'static str> {
        self.inner.as_ref().and_then(|w| w.dtype()).map(|d| d.name())
    }

    /// Items pushed since the last commit.
    #[getter]
    fn pending(&self) -> usize {
        self.inner.as_ref().map_or(0, RaggedWriter::pending)
    }

    /// Writes items (C-contiguous little-endian arrays of `dtype`) straight from their memory; the items
    /// listed in `scalars` are 1-element arrays standing for 0-d items. Visible at the next commit.
    #[pyo3(signature = (dtype, items, scalars = Vec::new()))]
    fn push(&mut self, py: Python<'_>, dtype: &str, items: Vec<Bound<'_, PyAny>>, scalars: Vec<usize>) -> PyResult<()> {
        let dtype = parse_dtype(dtype)?;
        let items = Items::new(&items, dtype)?;
        let shapes = items.shapes_with_scalars(&scalars)?;
        self.write(py, dtype, &items, &shapes).map(drop)
    }

    /// Writes the items of `items` from `start` on, straight from their memory, up to the first that is not a
    /// C-contiguous, at least 1-D numpy array of `dtype`; returns how many items and bytes it wrote (the
    /// Python layer converts the rest).
    #[pyo3(signature = (dtype, items, start = 0))]
    fn push_arrays(
        &mut self,
        py: Python<'_>,
        dtype: &str,
        items: &Bound<'_, PyList>,
        start: usize,
    ) -> PyResult<(usize, usize)> {
        let dtype = parse_dtype(dtype)?;
        let ndarray = py.import("numpy")?.getattr("ndarray")?.cast_into::<PyType>()?;
        let items = Items::leading_arrays(items, start, dtype, &ndarray);
        let nbytes = self.write(py, dtype, &items, &items.shapes())?;
        Ok((items.len(), nbytes))
    }

    /// The byte of the data file where the next item goes.
    #[getter]
    fn position(&self) -> u64 {
        self.inner.as_ref().map_or(0, RaggedWriter::position)
    }

    /// The data file's current path, creating it for a new store (a temporary file until the first commit
    /// renames it to `data.ninja`).
    fn data_file(&mut self) -> PyResult<PathBuf> {
        Ok(self.writer()?.data_file()?)
    }

    /// Takes items another process wrote into the data file, back to back from byte `start` (which must be
    /// `position`), as if they were pushed: C-order elements of `dtype` with `shapes`.
    fn adopt(&mut self, py: Python<'_>, dtype: &str, start: u64, shapes: Vec<Vec<u64>>) -> PyResult<()> {
        let dtype = parse_dtype(dtype)?;
        let writer = self.writer()?;
        Ok(py.detach(|| writer.adopt(dtype, start, &shapes))?)
    }

    /// Makes every pushed item visible in one atomic step.
    fn commit(&mut self, py: Python<'_>) -> PyResult<()> {
        let writer = self.writer()?;
        Ok(py.detach(|| writer.commit())?)
    }

    /// Ends the session; uncommitted items are dropped.
    fn close(&mut self) {
        self.inner = None;
    }
}

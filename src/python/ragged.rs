//! `RaggedStore`: the glue of `crate::ragged`. Items come back as numpy views of one whole-buffer array
//! (`np.frombuffer` over a `MappedBuffer`), sliced and reshaped here so a single get is one native call.

use std::path::PathBuf;

use pyo3::buffer::PyBuffer;
use pyo3::prelude::*;
use pyo3::types::{PySlice, PyTuple};

use super::buffer::PyMappedBuffer;
use super::dense::parse_dtype;
use super::payload;
use crate::ragged::{Item, RaggedStore};

/// An opened, non-empty ragged store.
#[pyclass(name = "RaggedStore", module = "mmap_ninja._native", frozen)]
pub struct PyRaggedStore {
    inner: RaggedStore,
    /// `np.frombuffer(MappedBuffer, little-endian dtype)` over the committed flat buffer.
    flat: Py<PyAny>,
}

type Located = (u64, u64, Vec<u64>);

impl PyRaggedStore {
    /// The numpy view of `item`: a slice of the flat array, reshaped; a Python scalar for 0-d items.
    fn view<'py>(&self, py: Python<'py>, item: Item) -> PyResult<Bound<'py, PyAny>> {
        let slice = PySlice::new(py, item.start as isize, item.end as isize, 1);
        let view = self.flat.bind(py).get_item(slice)?;
        match item.shape.len() {
            0 => view.call_method0(pyo3::intern!(py, "item")),
            1 => Ok(view),
            _ => {
                // Setting `shape` on the fresh contiguous slice reshapes it in place: cheaper than a
                // `reshape` method call through the limited API.
                view.setattr(pyo3::intern!(py, "shape"), PyTuple::new(py, &item.shape)?)?;
                Ok(view)
            }
        }
    }
}

#[pymethods]
impl PyRaggedStore {
    /// Opens `path`; `None` for an empty store.
    #[staticmethod]
    #[pyo3(signature = (path, writable = false))]
    fn open(py: Python<'_>, path: PathBuf, writable: bool) -> PyResult<Option<Self>> {
        let Some(inner) = py.detach(|| RaggedStore::open(&path, writable))? else {
            return Ok(None);
        };
        let bytes = inner.data_len() as usize * inner.dtype().itemsize();
        let buffer = Py::new(py, PyMappedBuffer::new(inner.region().clone(), bytes))?;
        let numpy = py.import("numpy")?;
        let dtype = numpy
            .call_method1("dtype", (inner.dtype().name(),))?
            .call_method1("newbyteorder", ("<",))?;
        let flat = numpy.call_method1("frombuffer", (buffer, dtype))?.unbind();
        Ok(Some(PyRaggedStore { inner, flat }))
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

    /// The whole committed flat buffer as a numpy array (zero-copy).
    #[getter]
    fn flat(&self, py: Python<'_>) -> Py<PyAny> {
        self.flat.clone_ref(py)
    }

    /// Item `index` (negative counts from the end) as a numpy view, or a Python scalar for a 0-d item.
    fn get<'py>(&self, py: Python<'py>, index: i64) -> PyResult<Bound<'py, PyAny>> {
        let item = self.inner.locate(index)?;
        self.view(py, item)
    }

    /// Many items in one call, from a C-contiguous int64 array of indices.
    fn get_many<'py>(&self, py: Python<'py>, indices: PyBuffer<i64>) -> PyResult<Vec<Bound<'py, PyAny>>> {
        let items = self.inner.locate_many(&payload::indices(py, &indices)?)?;
        items.into_iter().map(|item| self.view(py, item)).collect()
    }

    /// `(start, end, shape)` of item `index` in elements; `shape` is empty for a 0-d item.
    fn locate(&self, index: i64) -> PyResult<Located> {
        let item = self.inner.locate(index)?;
        Ok((item.start, item.end, item.shape))
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

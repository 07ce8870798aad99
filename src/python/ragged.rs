//! `RaggedStore`: the glue of `crate::ragged`. Items come back as numpy views of the mapped flat buffer, each
//! made in one call (`ItemViews`), so a single get is one native call. Gathered items are views of the output
//! buffer, sliced and reshaped.

use std::path::PathBuf;

use pyo3::buffer::{PyBuffer, PyUntypedBuffer};
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::{PySlice, PyTuple};

use super::buffer::{bytes_of_mut, ItemViews, PyMappedBuffer};
use super::column;
use super::options::parse_mode;
use super::payload;
use crate::ragged::{Item, RaggedStore, Shapes};

/// An opened, non-empty ragged store.
#[pyclass(name = "RaggedStore", module = "mmap_ninja._native", frozen)]
pub struct PyRaggedStore {
    inner: RaggedStore,
    /// `np.frombuffer(MappedBuffer, little-endian dtype)` over the snapshot's elements, made on first use:
    /// finding where the last item ends reads the mapped columns, which an open does not (see `new`).
    flat: PyOnceLock<Py<PyAny>>,
    /// Views of the items, over a `MappedBuffer` of the data's committed elements with the same dtype. The
    /// buffer (an item's `.base`) may hold more than the snapshot: later items, or a failed write's tail.
    views: ItemViews,
}

type Located = (u64, u64, Vec<u64>);

/// The view of `item` in the 1-D array `base` (a gather's output): a slice, reshaped; a 0-d item is a 0-d
/// array.
fn view<'py>(base: &Bound<'py, PyAny>, item: Item) -> PyResult<Bound<'py, PyAny>> {
    let py = base.py();
    let slice = PySlice::new(py, item.start as isize, item.end as isize, 1);
    let view = base.get_item(slice)?;
    if item.shape.len() == 1 {
        return Ok(view);
    }
    // Setting `shape` on the fresh contiguous slice reshapes it in place: cheaper than a `reshape` method call
    // through the limited API.
    view.setattr(pyo3::intern!(py, "shape"), PyTuple::new(py, &item.shape)?)?;
    Ok(view)
}

#[pymethods]
impl PyRaggedStore {
    /// Opens `path` in `mode` (`r`, `r+` or `c`); `None` for an empty store. `limit` keeps only the first
    /// `limit` items (a snapshot).
    #[staticmethod]
    #[pyo3(signature = (path, mode = "r", limit = None))]
    fn open(py: Python<'_>, path: PathBuf, mode: &str, limit: Option<usize>) -> PyResult<Option<Self>> {
        let mode = parse_mode(mode)?;
        let Some(mut inner) = py.detach(|| RaggedStore::open(&path, mode))? else {
            return Ok(None);
        };
        if let Some(limit) = limit {
            inner.limit(limit);
        }
        Self::new(py, inner).map(Some)
    }

    fn __len__(&self) -> usize {
        self.inner.len()
    }

    /// Where each committed item starts in `flat`, in elements: a read-only int64 array (zero-copy).
    #[getter]
    fn starts<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        column::values(py, self.inner.starts(), self.inner.len())
    }

    /// Where each committed item ends in `flat`, in elements: a read-only int64 array (zero-copy).
    #[getter]
    fn ends<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        column::values(py, self.inner.ends(), self.inner.len())
    }

    /// The committed items' shapes: when every item is 1-D or 0-d, a read-only int64 array shaped `(n, 1)`
    /// (zero-copy; a 0-d item's is 0); else the nested store holding each item's shape as an item.
    #[getter]
    fn shapes<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        match self.inner.shapes() {
            Shapes::Flat(column) => {
                let values = column::values(py, column, self.inner.len())?;
                values.call_method1("reshape", (self.inner.len(), 1))
            }
            Shapes::Nested(nested) => Ok(Bound::new(py, Self::new(py, (**nested).clone())?)?.into_any()),
        }
    }

    /// Device and inode of the data file: they change when the store is replaced, not when it is extended.
    #[getter]
    fn identity(&self) -> (u64, u64) {
        self.inner.region().identity()
    }

    /// Messages of up to `max` faults found by locating and checking every item (empty when sound).
    #[pyo3(signature = (max = 100))]
    fn verify(&self, py: Python<'_>, max: usize) -> Vec<String> {
        py.detach(|| self.inner.verify(max).iter().map(ToString::to_string).collect())
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

    /// The snapshot's elements of the flat buffer as a numpy array (zero-copy), made on first use. A limited
    /// store's data file may hold later items, or the tail of a write that never committed. (Should its last
    /// item be damaged, the whole committed buffer: reading that item reports it.)
    #[getter]
    fn flat(&self, py: Python<'_>) -> PyResult<Py<PyAny>> {
        let flat = self.flat.get_or_try_init(py, || {
            let elements = self.inner.snapshot_end();
            let numpy = py.import("numpy")?;
            let array = numpy.call_method1("frombuffer", (self.views.buffer(py), self.views.dtype(py), elements))?;
            Ok::<_, PyErr>(array.unbind())
        })?;
        Ok(flat.clone_ref(py))
    }

    /// Item `index` (negative counts from the end) as a numpy view, or a Python scalar for a 0-d item.
    fn get<'py>(&self, py: Python<'py>, index: i64) -> PyResult<Bound<'py, PyAny>> {
        let item = self.inner.locate(index)?;
        self.prefetch_views(py, std::slice::from_ref(&item));
        self.item_view(py, item)
    }

    /// Many items in one call, from a C-contiguous int64 array of indices.
    fn get_many<'py>(&self, py: Python<'py>, indices: PyBuffer<i64>) -> PyResult<Vec<Bound<'py, PyAny>>> {
        let items = self.inner.locate_many(&payload::indices(py, &indices)?)?;
        self.prefetch_views(py, &items);
        items.into_iter().map(|item| self.item_view(py, item)).collect()
    }

    /// Copies the items into one contiguous writable buffer with the GIL released and returns writable views
    /// into it (0-d items as 0-d arrays). The buffer is `out` (a writable C-contiguous buffer of at least the
    /// batch's bytes) when given, else `allocate(nbytes)` when given, else a new uint8 array.
    #[pyo3(signature = (indices, out = None, allocate = None))]
    fn gather<'py>(
        &self,
        py: Python<'py>,
        indices: PyBuffer<i64>,
        out: Option<Bound<'py, PyAny>>,
        allocate: Option<Bound<'py, PyAny>>,
    ) -> PyResult<Vec<Bound<'py, PyAny>>> {
        let items = self.inner.locate_many(&payload::indices(py, &indices)?)?;
        let needed = self.inner.gather_len(&items)?;
        let numpy = py.import("numpy")?;
        let out = match (out, allocate) {
            (Some(out), _) => out,
            (None, Some(allocate)) => allocate.call1((needed,))?,
            (None, None) => numpy.call_method1("empty", (needed, "uint8"))?,
        };
        let mut buffer = PyUntypedBuffer::get(&out)?;
        let bytes = bytes_of_mut(&mut buffer)?;
        let mapped = self.inner.region().bytes().as_ptr_range();
        let target = bytes.as_ptr_range();
        if target.start < mapped.end && mapped.start < target.end {
            return Err(PyValueError::new_err("out must not overlap the store's own mapping"));
        }
        if bytes.len() < needed {
            return Err(PyValueError::new_err(format!(
                "out holds {} bytes; this batch needs {needed}",
                bytes.len()
            )));
        }
        let placed = py.detach(|| self.inner.gather(items, bytes))?;
        drop(buffer);
        let dtype = self.views.dtype(py);
        let count = needed / self.inner.dtype().itemsize();
        let typed = numpy.call_method1("frombuffer", (out, dtype, count))?;
        placed.into_iter().map(|item| view(&typed, item)).collect()
    }

    /// `(start, end, shape)` of item `index` in elements; `shape` is empty for a 0-d item.
    fn locate(&self, index: i64) -> PyResult<Located> {
        let item = self.inner.locate(index)?;
        Ok((item.start, item.end, item.shape))
    }
}

impl PyRaggedStore {
    /// The Python object of an opened store, its item views made once. It reads metadata files only, never a
    /// mapped byte (the first fault in a 2 MiB range of addresses may allocate a page table, freed at the
    /// unmap: see the README's figures). So the views span the data's committed elements (its metadata), not
    /// the snapshot's (the last item's end, in the mapped columns): items located in the snapshot lie within
    /// either.
    fn new(py: Python<'_>, inner: RaggedStore) -> PyResult<Self> {
        let bytes = inner.data_len() as usize * inner.dtype().itemsize();
        let buffer = Py::new(py, PyMappedBuffer::new(inner.region().clone(), bytes))?;
        let dtype = py
            .import("numpy")?
            .call_method1("dtype", (inner.dtype().name(),))?
            .call_method1("newbyteorder", ("<",))?;
        let views = ItemViews::new(buffer, &dtype)?;
        Ok(PyRaggedStore {
            inner,
            flat: PyOnceLock::new(),
            views,
        })
    }

    /// Asks for the large ones of `items` not in memory before they are handed out as views, when a probe is
    /// due (`RaggedStore::views_to_probe`), with the GIL released.
    fn prefetch_views(&self, py: Python<'_>, items: &[Item]) {
        let ranges = self.inner.views_to_probe(items);
        if !ranges.is_empty() {
            py.detach(|| self.inner.region().prefetch_views(&ranges));
        }
    }

    /// The view of a located item; a 0-d item comes back as a Python scalar.
    fn item_view<'py>(&self, py: Python<'py>, item: Item) -> PyResult<Bound<'py, PyAny>> {
        let view = self.views.view(py, item.start, item.end, &item.shape)?;
        if item.shape.is_empty() {
            return view.call_method0(pyo3::intern!(py, "item"));
        }
        Ok(view)
    }
}

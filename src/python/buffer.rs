//! The buffer protocol, both ways, without copying, and numpy arrays over mapped bytes: all of the crate's FFI
//! `unsafe` is here, in three kinds of site. `MappedBuffer` exports a prefix of a mapped file (`__getbuffer__`):
//! it holds an `Arc` of the mapping, and every memoryview/ndarray made from it holds the `MappedBuffer`, so the
//! memory stays mapped as long as any view exists, whatever happens to the store that made it. `ItemViews`
//! makes ndarrays over parts of a `MappedBuffer` with numpy's C API (a ragged store's items, a quarter of a
//! microsecond faster each than slicing through Python), with the `MappedBuffer` as their base. `bytes_of` and
//! `bytes_of_mut` borrow the memory of incoming buffers (items to write, gather outputs) as Rust slices, so the
//! core can read or fill them with the GIL released.

use std::ffi::c_int;
use std::sync::Arc;

use numpy::npyffi::{get_type_object, npy_intp, NpyTypes, NPY_ARRAY_WRITEABLE};
use numpy::{PyArrayDescr, PyArrayDescrMethods, PY_ARRAY_API};
use pyo3::buffer::PyUntypedBuffer;
use pyo3::exceptions::{PyBufferError, PyValueError};
use pyo3::ffi;
use pyo3::prelude::*;

use crate::error::Error;
use crate::format::MAX_NDIM;
use crate::mmap::Region;

/// A read-only (or, when the mapping is writable, writable) byte buffer over `region[..len]`.
#[pyclass(name = "MappedBuffer", module = "mmap_ninja._native", frozen)]
pub struct PyMappedBuffer {
    region: Arc<Region>,
    len: usize,
}

impl PyMappedBuffer {
    /// A buffer over the first `len` bytes of `region` (clamped to the mapping).
    pub fn new(region: Arc<Region>, len: usize) -> Self {
        let len = len.min(region.len());
        PyMappedBuffer { region, len }
    }
}

#[pymethods]
impl PyMappedBuffer {
    fn __len__(&self) -> usize {
        self.len
    }

    /// True when views made from this buffer may be written (store opened in mode r+ or c).
    #[getter]
    fn writable(&self) -> bool {
        self.region.writable_ptr().is_some()
    }

    /// Writes what was written through this buffer's mapping to disk (`msync`), with the GIL released.
    fn flush(&self, py: Python<'_>) -> PyResult<()> {
        Ok(py.detach(|| self.region.flush())?)
    }

    unsafe fn __getbuffer__(slf: Bound<'_, Self>, view: *mut ffi::Py_buffer, flags: c_int) -> PyResult<()> {
        if view.is_null() {
            return Err(PyBufferError::new_err("view is null"));
        }
        let this = slf.get();
        let writable = this.region.writable_ptr();
        if flags & ffi::PyBUF_WRITABLE != 0 && writable.is_none() {
            return Err(PyBufferError::new_err("the store was opened read-only (mode 'r')"));
        }
        let buf = writable.unwrap_or(this.region.bytes().as_ptr().cast_mut());
        let len = this.len as isize;
        // SAFETY: `view` is non-null and points to a Py_buffer that CPython hands us to fill. `buf` points to
        // `len <= region.len()` mapped bytes that stay valid while `view.obj` (a new strong reference to
        // `slf`, which owns an `Arc` of the region) is alive; CPython releases `obj` only in PyBuffer_Release.
        // The view is marked writable only when the mapping itself is PROT_WRITE. `format` points to a static
        // C string and `shape`/`strides` into the view itself, as the buffer protocol allows, so nothing needs
        // freeing in `__releasebuffer__`.
        unsafe {
            (*view).obj = slf.into_any().into_ptr();
            (*view).buf = buf.cast();
            (*view).len = len;
            (*view).readonly = c_int::from(writable.is_none());
            (*view).itemsize = 1;
            (*view).format = if flags & ffi::PyBUF_FORMAT != 0 {
                c"B".as_ptr().cast_mut()
            } else {
                std::ptr::null_mut()
            };
            (*view).ndim = 1;
            (*view).shape = if flags & ffi::PyBUF_ND != 0 {
                &raw mut (*view).len
            } else {
                std::ptr::null_mut()
            };
            (*view).strides = if flags & ffi::PyBUF_STRIDES == ffi::PyBUF_STRIDES {
                &raw mut (*view).itemsize
            } else {
                std::ptr::null_mut()
            };
            (*view).suboffsets = std::ptr::null_mut();
            (*view).internal = std::ptr::null_mut();
        }
        Ok(())
    }
}

/// Numpy arrays over parts of one `MappedBuffer` (a ragged store's items), each made with one call into numpy's
/// C API (`PyArray_NewFromDescr`) rather than a slice and a reshape through Python: a quarter of a microsecond
/// less per item. Every view has the `MappedBuffer` as its base and is writable only when the mapping is.
pub struct ItemViews {
    buffer: Py<PyMappedBuffer>,
    dtype: Py<PyArrayDescr>,
    itemsize: usize,
}

impl ItemViews {
    /// Views of `buffer`'s elements of `dtype` (a `numpy.dtype`).
    pub fn new(buffer: Py<PyMappedBuffer>, dtype: &Bound<'_, PyAny>) -> PyResult<Self> {
        let dtype = dtype.cast::<PyArrayDescr>()?;
        let itemsize = dtype.itemsize();
        if itemsize == 0 {
            return Err(PyValueError::new_err("items of a 0-byte dtype cannot be viewed"));
        }
        Ok(ItemViews {
            buffer,
            dtype: dtype.clone().unbind(),
            itemsize,
        })
    }

    /// The buffer the views are made over.
    pub fn buffer<'py>(&self, py: Python<'py>) -> &Bound<'py, PyMappedBuffer> {
        self.buffer.bind(py)
    }

    /// The views' dtype.
    pub fn dtype<'py>(&self, py: Python<'py>) -> &Bound<'py, PyArrayDescr> {
        self.dtype.bind(py)
    }

    /// The C-order array of `shape` over elements `start..end` of the buffer; `CorruptStoreError`, never a
    /// view, when they lie outside it or `shape` does not hold exactly that many elements (the core checks
    /// both when it locates an item; this is the last line).
    pub fn view<'py>(&self, py: Python<'py>, start: u64, end: u64, shape: &[u64]) -> PyResult<Bound<'py, PyAny>> {
        let mapped = self.buffer.get();
        let corrupt = |message: String| PyErr::from(Error::corrupt(mapped.region.path(), message));
        let bytes = |elements: u64| {
            usize::try_from(elements)
                .ok()
                .and_then(|n| n.checked_mul(self.itemsize))
        };
        let (first, last) = match (bytes(start), bytes(end)) {
            (Some(first), Some(last)) if first <= last && last <= mapped.len => (first, last),
            _ => return Err(corrupt(format!("elements {start}..{end} lie outside the data"))),
        };
        let elements = shape.iter().try_fold(1u64, |n, &d| n.checked_mul(d));
        if elements.and_then(bytes) != Some(last - first) || shape.len() > MAX_NDIM {
            return Err(corrupt(format!("shape {shape:?} does not fit elements {start}..{end}")));
        }
        let mut dims = [0 as npy_intp; MAX_NDIM];
        for (dim, &d) in dims.iter_mut().zip(shape) {
            // An axis can be huge when another is 0.
            *dim = npy_intp::try_from(d).map_err(|_| corrupt(format!("shape {shape:?} has an axis too large")))?;
        }
        let writable = mapped.region.writable_ptr();
        let base = writable.unwrap_or(mapped.region.bytes().as_ptr().cast_mut());
        let data = base.wrapping_add(first);
        let flags = if writable.is_some() { NPY_ARRAY_WRITEABLE } else { 0 };
        // SAFETY: the array numpy makes spans `last - first` bytes from `data` (C order, the dims checked above
        // to hold exactly that many elements of `itemsize` bytes, which `new` took from this same dtype; the
        // fields are private and never change). Those bytes lie within the buffer's `len <= region.len()`
        // mapped bytes, checked above; for an empty region `data` is the dangling pointer of an empty slice
        // and the array spans 0 bytes, which numpy never dereferences. The mapping stays valid while the array
        // lives: the array's base is a strong reference to the `MappedBuffer`, which owns an `Arc` of the
        // region, unmapped only when the last one drops. The array is writable only when the region is mapped
        // PROT_WRITE; numpy makes it writable later (`setflags(write=True)`) only if its base grants a writable
        // buffer, which `__getbuffer__` refuses for a read-only mapping. What would break this: a base set too
        // late or not at all (the array would outlive the mapping), loosening that refusal (a write to
        // PROT_READ memory faults), or another program truncating the file (SIGBUS on access, as for every
        // view of a mapping). References: `PyArray_NewFromDescr` steals the one `into_dtype_ptr` hands it,
        // even when it fails, and copies `dims`; `PyArray_SetBaseObject` steals the base's, even when it
        // fails, and the new array is then released by the `Bound` that owns it.
        unsafe {
            let array = PY_ARRAY_API.PyArray_NewFromDescr(
                py,
                get_type_object(py, NpyTypes::PyArray_Type),
                self.dtype.clone_ref(py).into_bound(py).into_dtype_ptr(),
                shape.len() as c_int,
                dims.as_mut_ptr(),
                std::ptr::null_mut(),
                data.cast(),
                flags,
                std::ptr::null_mut(),
            );
            let array = Bound::from_owned_ptr_or_err(py, array)?;
            let base = self.buffer.clone_ref(py).into_ptr();
            if PY_ARRAY_API.PyArray_SetBaseObject(py, array.as_ptr().cast(), base) < 0 {
                return Err(PyErr::fetch(py));
            }
            Ok(array)
        }
    }
}

/// The bytes of a C-contiguous Python buffer, borrowed for as long as `buf` holds the export.
pub fn bytes_of(buf: &PyUntypedBuffer) -> PyResult<&[u8]> {
    let len = contiguous_len(buf)?;
    if len == 0 {
        return Ok(&[]);
    }
    // SAFETY: `buf` holds a buffer export (PyObject_GetBuffer, released only when `buf` drops), during which
    // the exporter keeps `len_bytes()` bytes at `buf_ptr()` allocated and in place; the buffer is
    // C-contiguous (checked above), so those bytes are exactly the slice. The returned borrow cannot outlive
    // `buf`. Another Python thread may still write into a writable exporter meanwhile; the bytes are plain u8
    // with no validity invariant, so that can only change what we copy, never make a slice invalid.
    Ok(unsafe { std::slice::from_raw_parts(buf.buf_ptr().cast::<u8>(), len) })
}

/// The bytes of a writable C-contiguous Python buffer, mutably borrowed for as long as `buf` is.
pub fn bytes_of_mut(buf: &mut PyUntypedBuffer) -> PyResult<&mut [u8]> {
    if buf.readonly() {
        return Err(PyBufferError::new_err("the output buffer is read-only"));
    }
    let len = contiguous_len(buf)?;
    if len == 0 {
        return Ok(&mut []);
    }
    // SAFETY: as in `bytes_of`; in addition the exporter declared the memory writable (`readonly == 0`), and the
    // `&mut` borrow of `buf` makes this the only Rust slice over it while it lives.
    Ok(unsafe { std::slice::from_raw_parts_mut(buf.buf_ptr().cast::<u8>(), len) })
}

fn contiguous_len(buf: &PyUntypedBuffer) -> PyResult<usize> {
    if !buf.is_c_contiguous() {
        return Err(PyBufferError::new_err("the buffer must be C-contiguous"));
    }
    Ok(buf.len_bytes())
}

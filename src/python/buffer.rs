//! The buffer protocol, both ways, without copying. `MappedBuffer` exports a prefix of a mapped file: it holds
//! an `Arc` of the mapping, and every memoryview/ndarray made from it holds the `MappedBuffer`, so the memory
//! stays mapped as long as any view exists, whatever happens to the store that made it. `bytes_of` and
//! `bytes_of_mut` borrow the memory of incoming buffers (items to write, gather outputs) as Rust slices, so the
//! core can read or fill them with the GIL released.

use std::ffi::c_int;
use std::sync::Arc;

use pyo3::buffer::PyUntypedBuffer;
use pyo3::exceptions::PyBufferError;
use pyo3::ffi;
use pyo3::prelude::*;

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

    /// True when views made from this buffer may be written (store opened in mode r+).
    #[getter]
    fn writable(&self) -> bool {
        self.region.writable_ptr().is_some()
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

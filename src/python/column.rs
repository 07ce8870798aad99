//! A column as numpy sees it: the committed values of a `crate::column::Column`, a read-only int64 array over
//! its mapping (zero-copy), as mmap-ninja 0.9.0's readers expose `starts`, `ends` and flat `shapes`.

use pyo3::prelude::*;

use super::buffer::PyMappedBuffer;
use crate::column::Column;

/// The first `len` values of `column` as a 1-D little-endian int64 array.
pub fn values<'py>(py: Python<'py>, column: &Column, len: usize) -> PyResult<Bound<'py, PyAny>> {
    let bytes = len.min(column.len()).saturating_mul(8);
    let buffer = Py::new(py, PyMappedBuffer::new(column.region().clone(), bytes))?;
    py.import("numpy")?.call_method1("frombuffer", (buffer, "<i8"))
}

//! Incoming item bytes: copies Python buffers (C-contiguous uint8 views made by the Python layer) into
//! one contiguous payload for the core, with the safe `PyBuffer::copy_to_slice`.

use pyo3::buffer::PyBuffer;
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;

/// Concatenates the bytes of `items`.
pub fn concat(py: Python<'_>, items: &[PyBuffer<u8>]) -> PyResult<Vec<u8>> {
    let total = items.iter().map(|b| b.item_count()).sum();
    let mut payload = vec![0u8; total];
    let mut at = 0;
    for item in items {
        if !item.is_c_contiguous() {
            return Err(PyValueError::new_err("item buffers must be C-contiguous"));
        }
        let n = item.item_count();
        item.copy_to_slice(py, &mut payload[at..at + n])?;
        at += n;
    }
    Ok(payload)
}

/// Indices from a C-contiguous int64 buffer (what the Python layer passes), copied in one go.
pub fn indices(py: Python<'_>, indices: &PyBuffer<i64>) -> PyResult<Vec<i64>> {
    indices.to_vec(py)
}

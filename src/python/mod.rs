//! PyO3 glue: argument conversion, GIL release and error mapping only. Logic lives in the core.

mod buffer;
mod dense;
mod errors;
mod options;
mod payload;
mod ragged;
mod ragged_writer;
mod strings;

use std::path::PathBuf;

use pyo3::prelude::*;

/// The store kind named by `path/type.ninja`: "numpy", "ragged" or "string".
#[pyfunction]
fn store_kind(py: Python<'_>, path: PathBuf) -> PyResult<&'static str> {
    Ok(py.detach(|| crate::store::kind(&path))?.name())
}

/// The native half of `mmap_ninja`.
#[pymodule]
#[pyo3(name = "_native")]
fn native(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<buffer::PyMappedBuffer>()?;
    m.add_class::<dense::PyDenseStore>()?;
    m.add_class::<ragged::PyRaggedStore>()?;
    m.add_class::<ragged_writer::PyRaggedWriter>()?;
    m.add_class::<strings::PyStringStore>()?;
    m.add_function(wrap_pyfunction!(store_kind, m)?)?;
    Ok(())
}

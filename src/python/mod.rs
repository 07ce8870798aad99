//! PyO3 glue: argument conversion, GIL release and error mapping only. Logic lives in the core.

mod buffer;
mod column;
mod dense;
mod errors;
mod lock;
mod options;
mod payload;
mod ragged;
mod ragged_writer;
mod sharded;
mod strings;

use std::path::PathBuf;

use pyo3::exceptions::PyImportError;
use pyo3::prelude::*;

/// What `path` holds: "sharded" (a manifest), else the store kind its `type.ninja` names: "numpy", "ragged"
/// or "string".
#[pyfunction]
fn store_kind(py: Python<'_>, path: PathBuf) -> PyResult<&'static str> {
    Ok(match py.detach(|| crate::store::layout(&path))? {
        crate::store::Layout::Sharded => "sharded",
        crate::store::Layout::Single(kind) => kind.name(),
    })
}

/// The native half of `mmap_ninja`.
#[pymodule]
#[pyo3(name = "_native")]
fn native(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add("ALLOWED_DTYPES", crate::format::ALLOWED_DTYPES)?;
    m.add_class::<buffer::PyMappedBuffer>()?;
    m.add_class::<dense::PyDenseStore>()?;
    m.add_class::<ragged::PyRaggedStore>()?;
    m.add_class::<ragged_writer::PyRaggedWriter>()?;
    m.add_class::<strings::PyStringStore>()?;
    m.add_class::<lock::PyStoreLock>()?;
    m.add_class::<sharded::PyShardedStore>()?;
    m.add_class::<sharded::PyShardedWriter>()?;
    m.add_function(wrap_pyfunction!(sharded::shard_name, m)?)?;
    m.add_function(wrap_pyfunction!(store_kind, m)?)?;
    m.add_function(wrap_pyfunction!(ragged_writer::place, m)?)?;
    // numpy's C API is looked up here, once, where extensions built against numpy call `import_array()`:
    // lazily, the first store opened in a process would pay for it (about 0.15 ms, as much as the open
    // itself). rust-numpy panics when the API is unusable (a numpy too old or broken); that is an ImportError.
    let py = m.py();
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| numpy::PyArrayDescr::of::<u8>(py)))
        .map_err(|_| PyImportError::new_err("numpy's C API is unavailable: is a working numpy installed?"))?;
    Ok(())
}

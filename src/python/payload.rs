//! Incoming items: typed, C-contiguous numpy arrays from the Python layer, borrowed as byte slices (no copy)
//! with their shapes, after checking that each buffer's element format is the store's dtype, little-endian.

use pyo3::buffer::{PyBuffer, PyUntypedBuffer};
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::{PyList, PyType};

use super::buffer::bytes_of;
use crate::format::Dtype;

/// struct-module codes numpy exports for each dtype (both C names of 8-byte integers appear). numpy exports no
/// buffer of datetime64 or timedelta64 elements: the Python layer passes their int64 view.
fn formats(dtype: Dtype) -> &'static [&'static str] {
    match dtype {
        Dtype::Bool => &["?"],
        Dtype::Int8 => &["b"],
        Dtype::Uint8 => &["B"],
        Dtype::Int16 => &["h"],
        Dtype::Uint16 => &["H"],
        Dtype::Int32 => &["i"],
        Dtype::Uint32 => &["I"],
        Dtype::Int64 | Dtype::Datetime64(_) | Dtype::Timedelta64(_) => &["l", "q"],
        Dtype::Uint64 => &["L", "Q"],
        Dtype::Float16 => &["e"],
        Dtype::Float32 => &["f"],
        Dtype::Float64 => &["d"],
        Dtype::Float128 => &["g"],
        Dtype::Complex64 => &["Zf"],
        Dtype::Complex128 => &["Zd"],
        Dtype::Complex256 => &["Zg"],
    }
}

fn format_matches(dtype: Dtype, format: &str) -> bool {
    let code = format.strip_prefix(['<', '=', '@']).unwrap_or(format);
    let little_endian = cfg!(target_endian = "little") || format.starts_with('<') || dtype.itemsize() == 1;
    little_endian && formats(dtype).contains(&code)
}

/// Item buffers borrowed from Python for one write.
pub struct Items {
    buffers: Vec<PyUntypedBuffer>,
}

impl Items {
    /// Takes the buffers of `items`, each a C-contiguous array of `dtype`.
    pub fn new(items: &[Bound<'_, PyAny>], dtype: Dtype) -> PyResult<Items> {
        let buffers = items
            .iter()
            .enumerate()
            .map(|(k, item)| {
                let buf = PyUntypedBuffer::get(item)?;
                let format = buf.format().to_string_lossy();
                if buf.item_size() != dtype.itemsize() || !format_matches(dtype, &format) {
                    return Err(PyValueError::new_err(format!(
                        "item {k}: buffer format {format:?} is not little-endian {dtype}"
                    )));
                }
                Ok(buf)
            })
            .collect::<PyResult<_>>()?;
        Ok(Items { buffers })
    }

    /// The items of `list` from `start` on, up to the first that cannot be written as it is: those that are
    /// exactly `ndarray` (no subclass, nor another buffer exporter such as `bytes`, which the Python layer
    /// converts or refuses), at least 1-D, C-contiguous, of `dtype` little-endian.
    pub fn leading_arrays(list: &Bound<'_, PyList>, start: usize, dtype: Dtype, ndarray: &Bound<'_, PyType>) -> Items {
        if dtype.is_time() {
            // Times arrive only as the int64 views the Python layer makes of the items it converted (numpy
            // exports no buffer of datetime64 or timedelta64): a raw int64 array is a count, not a time.
            return Items { buffers: Vec::new() };
        }
        let mut buffers = Vec::new();
        for item in list.iter().skip(start) {
            if !item.get_type().is(ndarray) {
                break;
            }
            let Ok(buf) = PyUntypedBuffer::get(&item) else {
                break;
            };
            let format = buf.format().to_string_lossy();
            let fits = buf.dimensions() >= 1 && buf.is_c_contiguous() && buf.item_size() == dtype.itemsize();
            if !fits || !format_matches(dtype, &format) {
                break;
            }
            buffers.push(buf);
        }
        Items { buffers }
    }

    /// How many items there are.
    pub fn len(&self) -> usize {
        self.buffers.len()
    }

    /// Each item's bytes.
    pub fn slices(&self) -> PyResult<Vec<&[u8]>> {
        self.buffers.iter().map(bytes_of).collect()
    }

    /// Each item's shape.
    pub fn shapes(&self) -> Vec<Vec<u64>> {
        self.buffers
            .iter()
            .map(|b| b.shape().iter().map(|&d| d as u64).collect())
            .collect()
    }

    /// Each item's shape, with the 1-element items listed in `scalars` standing for 0-d items.
    pub fn shapes_with_scalars(&self, scalars: &[usize]) -> PyResult<Vec<Vec<u64>>> {
        let mut shapes = self.shapes();
        for &k in scalars {
            match shapes.get_mut(k) {
                Some(shape) if shape.as_slice() == [1] => shape.clear(),
                _ => {
                    return Err(PyValueError::new_err(format!(
                        "item {k} is not a 1-element stand-in for a 0-d item"
                    )))
                }
            }
        }
        Ok(shapes)
    }
}

/// Indices from a C-contiguous int64 buffer (what the Python layer passes), copied in one go.
pub fn indices(py: Python<'_>, indices: &PyBuffer<i64>) -> PyResult<Vec<i64>> {
    indices.to_vec(py)
}

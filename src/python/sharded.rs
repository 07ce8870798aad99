//! `ShardedStore` and `ShardedWriter`: the glue of `crate::sharded`. The Python layer opens the shards
//! themselves with the ordinary store classes; this side reads the manifest and maps global indices.

use std::path::PathBuf;

use pyo3::buffer::PyBuffer;
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;

use super::options::locked;
use super::payload;
use crate::format::StoreKind;
use crate::sharded::{self, Group, Manifest, Shard, ShardedWriter};

/// The manifest of a sharded store: its shards and the map from global indices to (shard, local index).
#[pyclass(name = "ShardedStore", module = "mmap_ninja._native", frozen)]
pub struct PyShardedStore {
    inner: Manifest,
}

#[pymethods]
impl PyShardedStore {
    /// Reads and validates `path/shards.ninja`.
    #[staticmethod]
    fn open(py: Python<'_>, path: PathBuf) -> PyResult<Self> {
        let inner = py.detach(|| Manifest::read(&path))?;
        Ok(PyShardedStore { inner })
    }

    fn __len__(&self) -> usize {
        // The manifest's total fits in i64 (checked when read), so in usize on 64-bit targets.
        self.inner.len() as usize
    }

    /// "numpy", "ragged" or "string": the kind of every shard.
    #[getter]
    fn kind(&self) -> &'static str {
        self.inner.kind().name()
    }

    /// Names the write that produced this manifest; a new write has a new one.
    #[getter]
    fn generation(&self) -> &str {
        self.inner.generation()
    }

    /// `(name, items)` of each shard, in order.
    #[getter]
    fn shards(&self) -> Vec<(String, u64)> {
        self.inner.shards().iter().map(|s| (s.name.clone(), s.items)).collect()
    }

    /// `(shard, index within it)` of item `index` (negative counts from the end).
    fn locate(&self, index: i64) -> PyResult<(usize, u64)> {
        Ok(self.inner.locate(index)?)
    }

    /// A batch (C-contiguous int64 indices) grouped by shard: `(shard, local indices, batch positions)`.
    fn group(&self, py: Python<'_>, indices: PyBuffer<i64>) -> PyResult<Vec<Group>> {
        let indices = payload::indices(py, &indices)?;
        Ok(py.detach(|| self.inner.group(&indices))?)
    }
}

/// The writer of a sharded store, holding its lock until closed.
#[pyclass(name = "ShardedWriter", module = "mmap_ninja._native", weakref)]
pub struct PyShardedWriter {
    inner: Option<ShardedWriter>,
}

impl PyShardedWriter {
    fn writer(&mut self) -> PyResult<&mut ShardedWriter> {
        self.inner
            .as_mut()
            .ok_or_else(|| PyValueError::new_err("this ShardedWriter is closed"))
    }
}

#[pymethods]
impl PyShardedWriter {
    /// Locks `path` (empty, new, or a sharded store), waiting up to `wait` seconds for another writer;
    /// `durable` flushes the manifest and its directory to disk on commit.
    #[new]
    #[pyo3(signature = (path, wait = 0.0, durable = false))]
    fn new(py: Python<'_>, path: PathBuf, wait: f64, durable: bool) -> PyResult<Self> {
        let inner = locked(py, wait, durable, |options| ShardedWriter::open(&path, options))?;
        Ok(PyShardedWriter { inner: Some(inner) })
    }

    /// The store's directory.
    #[getter]
    fn path(&mut self) -> PyResult<PathBuf> {
        Ok(self.writer()?.dir().to_path_buf())
    }

    /// Makes `shards` (`(name, items)` pairs, in order) the store's content, of `kind`; returns the generation.
    fn commit(&mut self, py: Python<'_>, kind: &str, shards: Vec<(String, u64)>) -> PyResult<String> {
        let kind = StoreKind::parse(kind)
            .ok_or_else(|| PyValueError::new_err(format!("kind must be numpy, ragged or string, not {kind:?}")))?;
        let shards = shards.into_iter().map(|(name, items)| Shard { name, items }).collect();
        let writer = self.writer()?;
        let manifest = py.detach(|| writer.commit(kind, shards))?;
        Ok(manifest.generation().to_owned())
    }

    /// Removes the shards written since the last commit that no manifest lists, then releases the lock.
    /// Closing twice does nothing.
    fn close(&mut self, py: Python<'_>) -> PyResult<()> {
        match self.inner.take() {
            Some(mut writer) => Ok(py.detach(|| writer.discard())?),
            None => Ok(()),
        }
    }

    /// Releases the lock without cleaning up (a forked child's inherited copy).
    fn forget(&mut self) {
        self.inner = None;
    }
}

/// A fresh shard name for partition `part`: `shard-{part:05}-{random}`.
#[pyfunction]
pub fn shard_name(part: u64) -> String {
    sharded::shard_name(part)
}

//! The dense store (the reference's `numpy` directory): one array of fixed-shape rows in `data.ninja`,
//! described by `dtype.ninja`, `shape.ninja` and `order.ninja`. Also the building block of the ragged and
//! string stores, whose data buffer and offset columns are dense directories too.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::commit::{self, Commit, WriteOptions};
use crate::error::{Error, Result};
use crate::files;
use crate::format::{self, Dtype, Order, StoreKind};
use crate::lock::WriteLock;
use crate::mmap::{Mode, Region};

/// An opened dense directory: validated metadata plus a mapping of its data file.
#[derive(Debug, Clone)]
pub struct DenseStore {
    dir: PathBuf,
    dtype: Dtype,
    shape: Vec<u64>,
    order: Order,
    data: Arc<Region>,
    byte_len: usize,
}

impl DenseStore {
    /// Opens and validates `dir`, mapping the data in `mode`. Reads are consistent with one commit: if a
    /// writer replaces `shape.ninja` meanwhile, the open starts again.
    pub fn open(dir: &Path, mode: Mode) -> Result<DenseStore> {
        let marker = dir.join(format::SHAPE_FILE);
        let missing = || {
            crate::store::refuse_sharded(dir, StoreKind::Numpy)?;
            Err(Error::io(&marker)(std::io::ErrorKind::NotFound.into()))
        };
        let open = |held: &files::Marker| {
            let shape = held.read(format::MAX_METADATA_BYTES)?;
            Self::open_dir(dir, mode, Some(shape), OrderFile::Read)
        };
        files::open_consistent(&marker, open, missing)
    }

    /// Opens `dir` without the consistency check (for directories inside a store that checks its own).
    /// `shape` holds the bytes of its `shape.ninja` when the caller has read them already.
    pub(crate) fn open_dir(dir: &Path, mode: Mode, shape: Option<Vec<u8>>, order: OrderFile) -> Result<DenseStore> {
        let (dtype, shape, order) = read_layout(dir, shape, order)?;
        let data_path = dir.join(format::DATA_FILE);
        let byte_len = format::byte_len(&shape, dtype)
            .ok_or_else(|| Error::corrupt(dir.join(format::SHAPE_FILE), format!("shape {shape:?} overflows")))?;
        let data = Region::open(&data_path, mode)?;
        if data.len() < byte_len {
            return Err(Error::corrupt(
                &data_path,
                format!("{} bytes, but shape {shape:?} of {dtype} needs {byte_len}", data.len()),
            ));
        }
        Ok(DenseStore {
            dir: dir.to_path_buf(),
            dtype,
            shape,
            order,
            data: Arc::new(data),
            byte_len,
        })
    }

    /// Locks `dir` and writes a new C-order dense directory holding `payload` (little-endian elements),
    /// replacing any old one. The old `shape.ninja` goes first, so the store cannot be opened half-replaced
    /// (it is missing meanwhile).
    pub fn create(dir: &Path, options: &WriteOptions, dtype: Dtype, shape: &[u64], payload: &[u8]) -> Result<()> {
        let _lock = WriteLock::acquire(dir, options.wait)?;
        crate::store::require_kind(dir, StoreKind::Numpy)?;
        require_payload_len(dtype, shape, payload.len())?; // before the old store goes
        files::remove_if_exists(&dir.join(format::SHAPE_FILE))?;
        let mut commit = Commit::new(options.durable);
        write_layout(dir, dtype, shape, &[payload], &mut commit)?;
        commit.stage(dir.join(format::TYPE_FILE), StoreKind::Numpy.name().into());
        commit.apply()
    }

    /// Locks `dir` and appends the rows of `payload` (an array of `shape`, little-endian, C order) to its dense
    /// store, from the committed end on; the rows must have the store's dtype and row shape (checked under the
    /// lock). An F-order store (mmap-ninja 0.9.0 writes them) cannot grow by appending: it is rewritten in C
    /// order with the rows added, under the same lock (see `rewrite_in_c_order`).
    pub fn extend(dir: &Path, options: &WriteOptions, dtype: Dtype, shape: &[u64], payload: &[u8]) -> Result<()> {
        let _lock = WriteLock::acquire(dir, options.wait)?;
        let store = DenseStore::open(dir, Mode::ReadOnly)?;
        let rows = store.check_rows(dtype, shape)?;
        let mut commit = Commit::new(options.durable);
        if store.order == Order::F && store.shape.len() > 1 {
            store.rewrite_in_c_order(dtype, rows, payload, &mut commit)?;
        } else {
            store.append(dtype, rows, payload, &mut commit)?;
        }
        commit.apply()
    }

    /// The number of rows in an array of `shape` and `dtype` that can be appended to this store.
    fn check_rows(&self, dtype: Dtype, shape: &[u64]) -> Result<u64> {
        match shape.split_first() {
            Some((&rows, row)) if row == self.shape.get(1..).unwrap_or_default() && dtype == self.dtype => Ok(rows),
            _ => Err(Error::InvalidArgument(format!(
                "Trying to append samples of {dtype} with shape {:?}, expected {} with shape {:?}",
                shape.get(1..).unwrap_or_default(),
                self.dtype,
                self.shape.get(1..).unwrap_or_default()
            ))),
        }
    }

    /// Writes this F-order store's rows in C order, then `payload`, into a temporary data file while the store
    /// stays readable as it was; then removes `shape.ninja`, renames the new data into place and rewrites the
    /// metadata, staging the new `shape.ninja` into `commit`. Readers (and a `kill -9`) can only catch the
    /// store missing during those few renames, never half-converted.
    fn rewrite_in_c_order(&self, dtype: Dtype, rows: u64, payload: &[u8], commit: &mut Commit) -> Result<()> {
        let shape = self.grown_shape(dtype, rows, payload.len())?;
        let c_order = f_to_c(&self.bytes()[..self.byte_len], &self.shape, dtype.itemsize());
        let data = self.dir.join(format::DATA_FILE);
        let tmp = commit::temp_path(&data);
        files::remove_if_exists(&tmp)?;
        commit::write_at(&tmp, 0, format::data_parts(&[&c_order, payload]))?;
        files::remove_if_exists(&self.dir.join(format::SHAPE_FILE))?;
        std::fs::rename(&tmp, &data).map_err(Error::io(&data))?;
        commit.record(data);
        write_meta(&self.dir, dtype, &shape, commit)
    }

    /// Writes `payload` past the committed rows and stages the new `shape.ninja` into `commit` (C-order stores).
    pub fn append(&self, dtype: Dtype, rows: u64, payload: &[u8], commit: &mut Commit) -> Result<()> {
        if self.order == Order::F && self.shape.len() > 1 {
            return Err(Error::InvalidArgument(
                "appending to an F-order array needs a rewrite; rewrite it in C order".into(),
            ));
        }
        let new_shape = self.grown_shape(dtype, rows, payload.len())?;
        commit.write_at(&self.dir.join(format::DATA_FILE), self.byte_len as u64, &[payload])?;
        commit.stage(self.dir.join(format::SHAPE_FILE), format::encode_shape(&new_shape));
        Ok(())
    }

    /// The shape after appending `rows` rows of `dtype` given as `payload_len` bytes, checked against the store.
    fn grown_shape(&self, dtype: Dtype, rows: u64, payload_len: usize) -> Result<Vec<u64>> {
        if dtype != self.dtype {
            return Err(Error::InvalidArgument(format!(
                "cannot append {dtype} rows to a {} store",
                self.dtype
            )));
        }
        if self.shape.is_empty() {
            return Err(Error::InvalidArgument("cannot append to a 0-d array".into()));
        }
        let mut new_shape = self.shape.clone();
        new_shape[0] = new_shape[0]
            .checked_add(rows)
            .ok_or_else(|| Error::InvalidArgument("row count overflows".into()))?;
        let expected = format::byte_len(&new_shape, dtype)
            .and_then(|total| total.checked_sub(self.byte_len))
            .ok_or_else(|| Error::InvalidArgument("array too large".into()))?;
        if payload_len != expected {
            return Err(Error::InvalidArgument(format!(
                "{payload_len} bytes given for {rows} rows of shape {:?} ({expected} bytes expected)",
                &self.shape[1..]
            )));
        }
        Ok(new_shape)
    }

    /// The directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Element type.
    pub fn dtype(&self) -> Dtype {
        self.dtype
    }

    /// Committed shape.
    pub fn shape(&self) -> &[u64] {
        &self.shape
    }

    /// Memory order.
    pub fn order(&self) -> Order {
        self.order
    }

    /// The mapping of `data.ninja` (may be longer than the committed bytes).
    pub fn region(&self) -> &Arc<Region> {
        &self.data
    }

    /// The committed bytes of the array.
    pub fn bytes(&self) -> &[u8] {
        &self.data.bytes()[..self.byte_len]
    }
}

/// Whether `DenseStore::open_dir` reads `order.ninja`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum OrderFile {
    /// When the array has two axes or more: a dense store, which `extend` must rewrite if it is in F order
    /// (even a `(1, k)` one, which stops lying the same in both orders once rows are added).
    Read,
    /// Never: an offset column, `(n,)` or `(n, 1)`, lies the same in C and F order and only grows by rows of
    /// one value, which keep it so (about a tenth of the system calls of opening a ragged store).
    Ignore,
}

/// Reads and validates `dtype.ninja`, `shape.ninja` (unless its bytes are given) and, as `order_file` says,
/// `order.ninja` of `dir`.
fn read_layout(dir: &Path, shape: Option<Vec<u8>>, order_file: OrderFile) -> Result<(Dtype, Vec<u64>, Order)> {
    let dtype_path = dir.join(format::DTYPE_FILE);
    let name = files::read_text(&dtype_path, format::MAX_METADATA_BYTES)?;
    let dtype = Dtype::parse(name.trim()).ok_or_else(|| {
        Error::corrupt(
            &dtype_path,
            format!("dtype {:?} is not an allowed element type", name.trim()),
        )
    })?;
    let shape_path = dir.join(format::SHAPE_FILE);
    let shape = match shape {
        Some(bytes) => bytes,
        None => files::read_capped(&shape_path, format::MAX_METADATA_BYTES)?,
    };
    let shape = format::parse_shape(&shape).map_err(|reason| Error::corrupt(&shape_path, reason))?;
    // Memory order only matters from two axes on (flat buffers are 1-D): skip the read for one.
    let order_path = dir.join(format::ORDER_FILE);
    let order = match (shape.len(), order_file) {
        (0 | 1, _) | (_, OrderFile::Ignore) => Order::C,
        (_, OrderFile::Read) => match files::read_text_if_exists(&order_path, format::MAX_METADATA_BYTES)? {
            None => Order::C,
            Some(text) => Order::parse(text.trim())
                .ok_or_else(|| Error::corrupt(&order_path, format!("order {text:?} is not C or F")))?,
        },
    };
    Ok((dtype, shape, order))
}

/// The elements of an F-order array of `shape` (`itemsize` bytes each, `bytes` holding exactly them), in C
/// order: the last axis varies fastest.
fn f_to_c(bytes: &[u8], shape: &[u64], itemsize: usize) -> Vec<u8> {
    let dims: Vec<usize> = shape.iter().map(|&d| d as usize).collect();
    // F order: axis 0 varies fastest, so axis k's stride is the product of the axes before it.
    let strides: Vec<usize> = dims
        .iter()
        .scan(1usize, |stride, &d| {
            let this = *stride;
            *stride *= d;
            Some(this)
        })
        .collect();
    let mut out = Vec::with_capacity(bytes.len());
    let mut index = vec![0usize; dims.len()];
    for _ in 0..bytes.len() / itemsize.max(1) {
        let at = index.iter().zip(&strides).map(|(i, s)| i * s).sum::<usize>() * itemsize;
        out.extend_from_slice(&bytes[at..at + itemsize]);
        for axis in (0..dims.len()).rev() {
            index[axis] += 1;
            if index[axis] < dims[axis] {
                break;
            }
            index[axis] = 0;
        }
    }
    out
}

/// Writes the data and metadata files of a C-order dense directory; `shape.ninja` is staged in `commit`.
/// The data is given as `parts` written back to back.
pub(crate) fn write_layout(
    dir: &Path,
    dtype: Dtype,
    shape: &[u64],
    parts: &[&[u8]],
    commit: &mut Commit,
) -> Result<()> {
    require_payload_len(dtype, shape, parts.iter().map(|p| p.len()).sum())?;
    commit::create_dir(dir)?;
    commit.replace_now(&dir.join(format::DATA_FILE), format::data_parts(parts))?;
    write_meta(dir, dtype, shape, commit)
}

/// Refuses `given` bytes as the elements of an array of `shape` and `dtype` unless they are exactly that.
fn require_payload_len(dtype: Dtype, shape: &[u64], given: usize) -> Result<()> {
    let expected = format::byte_len(shape, dtype).ok_or_else(|| Error::InvalidArgument("array too large".into()))?;
    if given != expected {
        return Err(Error::InvalidArgument(format!(
            "{given} bytes given for shape {shape:?} of {dtype} ({expected} expected)"
        )));
    }
    Ok(())
}

/// Writes `dtype.ninja` and `order.ninja` (C) of a dense directory whose data file is already in place, and
/// stages its `shape.ninja` into `commit`.
pub(crate) fn write_meta(dir: &Path, dtype: Dtype, shape: &[u64], commit: &mut Commit) -> Result<()> {
    commit.replace_now(&dir.join(format::DTYPE_FILE), &[dtype.name().as_bytes()])?;
    commit.replace_now(&dir.join(format::ORDER_FILE), &[Order::C.name().as_bytes()])?;
    commit.stage(dir.join(format::SHAPE_FILE), format::encode_shape(shape));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn le(values: &[f32]) -> Vec<u8> {
        values.iter().flat_map(|v| v.to_le_bytes()).collect()
    }

    #[test]
    fn create_open_extend() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path().join("a/b");
        DenseStore::create(
            &d,
            &WriteOptions::default(),
            Dtype::Float32,
            &[2, 2],
            &le(&[1.0, 2.0, 3.0, 4.0]),
        )
        .unwrap();
        DenseStore::extend(&d, &WriteOptions::default(), Dtype::Float32, &[1, 2], &le(&[5.0, 6.0])).unwrap();
        let s = DenseStore::open(&d, Mode::ReadOnly).unwrap();
        assert_eq!(s.shape(), [3, 2]);
        assert_eq!(s.bytes(), le(&[1.0, 2.0, 3.0, 4.0, 5.0, 6.0]));
        assert_eq!(std::fs::read_to_string(d.join("type.ninja")).unwrap(), "numpy");
    }

    #[test]
    fn a_create_with_the_wrong_payload_keeps_the_store_that_was_there() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        DenseStore::create(d, &WriteOptions::default(), Dtype::Float32, &[2], &le(&[1.0, 2.0])).unwrap();
        let err = DenseStore::create(d, &WriteOptions::default(), Dtype::Float32, &[3], &le(&[1.0])).unwrap_err();
        assert!(matches!(err, Error::InvalidArgument(_)), "{err}");
        assert_eq!(DenseStore::open(d, Mode::ReadOnly).unwrap().bytes(), le(&[1.0, 2.0]));
    }

    #[test]
    fn extending_an_f_order_store_rewrites_it_in_c_order() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        // The 2 x 3 array [[1, 2, 3], [4, 5, 6]] as mmap-ninja 0.9.0 writes it in F order.
        DenseStore::create(
            d,
            &WriteOptions::default(),
            Dtype::Float32,
            &[2, 3],
            &le(&[1.0, 4.0, 2.0, 5.0, 3.0, 6.0]),
        )
        .unwrap();
        std::fs::write(d.join("order.ninja"), "F").unwrap();
        DenseStore::extend(
            d,
            &WriteOptions::default(),
            Dtype::Float32,
            &[1, 3],
            &le(&[7.0, 8.0, 9.0]),
        )
        .unwrap();
        let s = DenseStore::open(d, Mode::ReadOnly).unwrap();
        assert_eq!((s.shape(), s.order()), (&[3, 3][..], Order::C));
        assert_eq!(s.bytes(), le(&[1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0]));
        assert_eq!(f_to_c(&[1, 4, 2, 5, 3, 6], &[1, 2, 3], 1), [1, 2, 3, 4, 5, 6]);
        assert!(!d
            .read_dir()
            .unwrap()
            .any(|e| e.unwrap().file_name().to_string_lossy().contains(".tmp-")));
    }

    #[test]
    fn f_to_c_handles_any_rank_itemsize_and_empty_axes() {
        // Element (i, j, k) of a 2 x 3 x 4 array is i*12 + j*4 + k; in F order it sits at i + 2*j + 6*k.
        let mut f = [0u16; 24];
        for (i, j, k) in (0..2).flat_map(|i| (0..3).flat_map(move |j| (0..4).map(move |k| (i, j, k)))) {
            f[i + 2 * j + 6 * k] = (i * 12 + j * 4 + k) as u16;
        }
        let bytes: Vec<u8> = f.iter().flat_map(|v| v.to_le_bytes()).collect();
        let want: Vec<u8> = (0u16..24).flat_map(|v| v.to_le_bytes()).collect();
        assert_eq!(f_to_c(&bytes, &[2, 3, 4], 2), want);
        assert!(f_to_c(&[], &[0, 3], 4).is_empty() && f_to_c(&[], &[3, 0], 4).is_empty());
    }

    #[test]
    fn extend_rejects_mismatches() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        DenseStore::create(d, &WriteOptions::default(), Dtype::Float32, &[1, 2], &le(&[1.0, 2.0])).unwrap();
        assert!(DenseStore::extend(d, &WriteOptions::default(), Dtype::Float64, &[1, 2], &[0; 16]).is_err());
        assert!(DenseStore::extend(d, &WriteOptions::default(), Dtype::Float32, &[1, 2], &[0; 4]).is_err());
        // Same bytes, other row shape: refused under the lock.
        assert!(DenseStore::extend(d, &WriteOptions::default(), Dtype::Float32, &[2, 1], &le(&[1.0, 2.0])).is_err());
        assert_eq!(DenseStore::open(d, Mode::ReadOnly).unwrap().shape(), [1, 2]);
    }

    #[test]
    fn order_is_read_for_dense_stores_of_two_axes_and_never_for_columns() {
        // `order.ninja` replaced by a directory: unreadable, so opening shows whether it was read.
        let dir = tempfile::tempdir().unwrap();
        for (shape, read) in [
            (vec![4u64], false),
            (vec![4, 1], true),
            (vec![1, 4], true),
            (vec![2, 2], true),
        ] {
            let d = dir.path().join(format!("{shape:?}"));
            DenseStore::create(&d, &WriteOptions::default(), Dtype::Int64, &shape, &[0; 32]).unwrap();
            std::fs::remove_file(d.join(format::ORDER_FILE)).unwrap();
            std::fs::create_dir(d.join(format::ORDER_FILE)).unwrap();
            assert_eq!(DenseStore::open(&d, Mode::ReadOnly).is_err(), read, "{shape:?}");
            if shape.len() == 1 || shape[1] == 1 {
                assert_eq!(crate::column::Column::open(&d).unwrap().len(), 4, "{shape:?}");
            }
        }
    }

    #[test]
    fn extending_an_f_order_store_of_one_row_rewrites_it_in_c_order() {
        // A (1, 3) array lies the same in both orders, but not once rows are added: [[1, 2, 3], [4, 5, 6]].
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        let options = WriteOptions::default();
        DenseStore::create(d, &options, Dtype::Float32, &[1, 3], &le(&[1.0, 2.0, 3.0])).unwrap();
        std::fs::write(d.join("order.ninja"), "F").unwrap();
        DenseStore::extend(d, &options, Dtype::Float32, &[1, 3], &le(&[4.0, 5.0, 6.0])).unwrap();
        let s = DenseStore::open(d, Mode::ReadOnly).unwrap();
        assert_eq!((s.shape(), s.order()), (&[2, 3][..], Order::C));
        assert_eq!(s.bytes(), le(&[1.0, 2.0, 3.0, 4.0, 5.0, 6.0]));
    }

    #[test]
    fn short_data_file_is_corrupt() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        DenseStore::create(d, &WriteOptions::default(), Dtype::Int64, &[2], &[0; 16]).unwrap();
        std::fs::write(d.join("shape.ninja"), format::encode_shape(&[3])).unwrap();
        assert!(matches!(
            DenseStore::open(d, Mode::ReadOnly),
            Err(Error::Corrupt { .. })
        ));
        std::fs::write(d.join("dtype.ninja"), "object").unwrap();
        assert!(matches!(
            DenseStore::open(d, Mode::ReadOnly),
            Err(Error::Corrupt { .. })
        ));
    }
}

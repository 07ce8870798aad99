//! The ragged store (`RaggedMmap`): items of different shapes, concatenated in one flat element buffer.
//! `starts/` and `ends/` hold element offsets, `flattened_shapes/` element counts, and `shapes/` either an
//! `(n, 1)` int64 column (every item 1-D or 0-d, `shapes_are_flat.ninja` = 1) or a nested flat ragged store
//! whose items are the int64 shape tuples. A stored shape `(0,)` over exactly one element is a 0-d scalar.

mod writer;

use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::Arc;

pub use writer::{place, RaggedWriter};

use crate::column::{self, Column};
use crate::commit::WriteOptions;
use crate::dense::{DenseStore, OrderFile};
use crate::error::{Error, Result};
use crate::files;
use crate::format::{self, Dtype, StoreKind};
use crate::mmap::{Mode, Region};
use crate::stream;

/// Batches at least this large are copied by several threads.
const PARALLEL_GATHER_BYTES: usize = 4 << 20;
/// Items of at least this many bytes are prefetched, gathered or viewed, when they are not in the page cache.
const PREFETCH_ITEM_BYTES: usize = 64 << 10;
/// Where the old flat shapes column waits while a store's shapes are rewritten as a nested store.
const FLAT_SHAPES_BACKUP_DIR: &str = "shapes.flat-old";

/// The location of one item in the flat buffer, in elements, with its shape (empty for a 0-d scalar).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Item {
    pub start: u64,
    pub end: u64,
    pub shape: Vec<u64>,
}

/// The items' shapes: one int64 per item when every item is 1-D or 0-d (mmap-ninja 0.9.0's flat shapes,
/// shaped `(n, 1)`), else a ragged store holding each item's shape as an item.
#[derive(Debug, Clone)]
pub(crate) enum Shapes {
    Flat(Column),
    Nested(Box<RaggedStore>),
}

/// An opened, non-empty ragged store.
#[derive(Debug, Clone)]
pub struct RaggedStore {
    dir: PathBuf,
    data: DenseStore,
    data_len: u64,
    starts: Column,
    ends: Column,
    shapes: Shapes,
    len: usize,
}

impl RaggedStore {
    /// Opens `dir`. `Ok(None)` is an empty store: the directory exists but nothing was committed yet.
    /// Reads are consistent with one commit: if a writer commits meanwhile, the open starts again.
    pub fn open(dir: &Path, mode: Mode) -> Result<Option<RaggedStore>> {
        let marker = dir.join(format::STARTS_DIR).join(format::SHAPE_FILE);
        let present = |held: &files::Marker| {
            crate::store::require_kind(dir, StoreKind::Ragged)?;
            if !files::exists(&dir.join(format::SHAPES_ARE_FLAT_FILE))? {
                return Ok(None);
            }
            let starts_shape = held.read(format::MAX_METADATA_BYTES)?;
            Self::open_committed(dir, mode, None, Some(starts_shape)).map(Some)
        };
        // No starts/: nothing committed (writers remove the flag before starts/ and add it after).
        let missing = || crate::store::require_empty_dir(dir, StoreKind::Ragged).map(|()| None);
        files::open_consistent(&marker, present, missing)
    }

    /// Opens a store whose commit marker exists. `items` is set for the nested shapes store of a store with
    /// that many items: its own `starts/` may list more (leftovers of a write that never committed, which the
    /// next writer overwrites, so that its other columns may briefly be shorter than its `starts/`).
    /// `starts_shape` holds the bytes of `starts/shape.ninja` when the caller has read them (the marker).
    fn open_committed(
        dir: &Path,
        mode: Mode,
        items: Option<usize>,
        starts_shape: Option<Vec<u8>>,
    ) -> Result<RaggedStore> {
        // starts/ first: writers replace it last, so every other file read after it is at least as new.
        let starts = Column::open_with_shape(&dir.join(format::STARTS_DIR), starts_shape)?;
        let data = DenseStore::open_dir(dir, mode, None, OrderFile::Read)?;
        let data_len = match data.shape() {
            [n] => *n,
            other => {
                return Err(Error::corrupt(
                    dir.join(format::SHAPE_FILE),
                    format!("flat buffer must be 1-D, found shape {other:?}"),
                ))
            }
        };
        let len = items.map_or(starts.len(), |n| n.min(starts.len()));
        let ends = Column::open(&dir.join(format::ENDS_DIR))?;
        require_len(&ends, len)?;
        let shapes = open_shapes(dir, len, items.is_some())?;
        match &shapes {
            Shapes::Flat(col) => require_len(col, len)?,
            Shapes::Nested(nested) if nested.len < len => {
                return Err(Error::corrupt(
                    &nested.dir,
                    format!("{} shapes for {len} items", nested.len),
                ))
            }
            Shapes::Nested(_) => {}
        }
        Ok(RaggedStore {
            dir: dir.to_path_buf(),
            data,
            data_len,
            starts,
            ends,
            shapes,
            len,
        })
    }

    /// Number of committed items.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Where the first `items` items end in the flat buffer (items are stored back to back): the offset a
    /// writer appends at. Anything past it is a leftover of a write that never committed.
    pub fn data_end(&self, items: usize) -> Result<u64> {
        match items {
            0 => Ok(0),
            n if n <= self.len => Ok(self.item(n - 1)?.end),
            n => Err(Error::corrupt(
                &self.dir,
                format!("{n} items expected, {} found", self.len),
            )),
        }
    }

    /// Where the committed items end in the flat buffer (`data_end(len())`), or the whole committed buffer
    /// when the last item is damaged (reading that item reports it).
    #[cfg(feature = "python")]
    pub(crate) fn snapshot_end(&self) -> u64 {
        self.data_end(self.len).unwrap_or(self.data_len)
    }

    /// Keeps only the first `len` items (a snapshot another process took, e.g. before pickling a reader).
    pub fn limit(&mut self, len: usize) {
        self.len = self.len.min(len);
        if let Shapes::Nested(nested) = &mut self.shapes {
            nested.limit(self.len);
        }
    }

    /// Up to `max` faults of the store, found by locating every item and checking its offsets against the
    /// buffer and its element count against its shape (`open` only checks what is O(1)).
    pub fn verify(&self, max: usize) -> Vec<Error> {
        (0..self.len).filter_map(|i| self.item(i).err()).take(max).collect()
    }

    /// True when no item is committed.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Element type.
    pub fn dtype(&self) -> Dtype {
        self.data.dtype()
    }

    /// The mapping of the flat buffer (`data.ninja`).
    pub fn region(&self) -> &Arc<Region> {
        self.data.region()
    }

    /// Committed elements of the flat buffer.
    pub fn data_len(&self) -> u64 {
        self.data_len
    }

    /// Where each item starts in the flat buffer, in elements (the first `len()` values are committed).
    #[cfg(feature = "python")]
    pub(crate) fn starts(&self) -> &Column {
        &self.starts
    }

    /// Where each item ends in the flat buffer, in elements (the first `len()` values are committed).
    #[cfg(feature = "python")]
    pub(crate) fn ends(&self) -> &Column {
        &self.ends
    }

    /// The items' shapes (the first `len()` are committed).
    #[cfg(feature = "python")]
    pub(crate) fn shapes(&self) -> &Shapes {
        &self.shapes
    }

    /// True when every item is 1-D or 0-d.
    pub fn is_flat(&self) -> bool {
        matches!(self.shapes, Shapes::Flat(_))
    }

    /// Locates item `index` (negative counts from the end).
    pub fn locate(&self, index: i64) -> Result<Item> {
        let i = format::resolve_index(index, self.len).ok_or(Error::IndexOutOfRange { index, len: self.len })?;
        self.item(i)
    }

    /// Locates many items in one call.
    pub fn locate_many(&self, indices: &[i64]) -> Result<Vec<Item>> {
        indices.iter().map(|&i| self.locate(i)).collect()
    }

    /// Copies the elements of located `items` back to back into `out` (at least `gather_len(items)` bytes), in
    /// parallel when the batch is large. Returns where each item landed in `out`, in elements, with its shape.
    pub fn gather(&self, items: Vec<Item>, out: &mut [u8]) -> Result<Vec<Item>> {
        let itemsize = self.dtype().itemsize();
        let data = self.data.bytes();
        let mut copies: Vec<(&[u8], &mut [u8])> = Vec::with_capacity(items.len());
        let mut placed = Vec::with_capacity(items.len());
        let mut rest = out;
        let mut at = 0u64;
        let mut cold_candidates = Vec::new();
        for item in items {
            let range = self.byte_range(&item);
            if range.len() > rest.len() {
                return Err(Error::InvalidArgument("gather output buffer is too small".into()));
            }
            if range.len() >= PREFETCH_ITEM_BYTES {
                cold_candidates.push(range.clone());
            }
            let src = &data[range];
            let (dst, tail) = std::mem::take(&mut rest).split_at_mut(src.len());
            rest = tail;
            copies.push((src, dst));
            let count = item.end - item.start;
            placed.push(Item {
                start: at,
                end: at + count,
                shape: item.shape,
            });
            at += count;
        }
        // Cold items are asked for all at once: their reads overlap each other and the copies.
        self.data.region().prefetch(&cold_candidates);
        copy_all(copies, at as usize * itemsize);
        Ok(placed)
    }

    /// Byte ranges of the large ones of `items`, which are about to be handed out as views, when the mapping
    /// is due a probe for them (`Region::views_due_probe`), else none; for `Region::prefetch_views`. Touched
    /// page by page, a cold item of a few hundred KB is read one readahead window per fault, each waited for
    /// (about 8 ms for 600 KB on a virtual disk, against 1 ms when asked for whole).
    pub fn views_to_probe(&self, items: &[Item]) -> Vec<Range<usize>> {
        let large = items
            .iter()
            .map(|item| self.byte_range(item))
            .filter(|range| range.len() >= PREFETCH_ITEM_BYTES);
        let count = large.clone().count();
        if count == 0 || !self.region().views_due_probe(count) {
            return Vec::new();
        }
        large.collect()
    }

    /// Where located `item`'s elements lie in the flat buffer, in bytes.
    fn byte_range(&self, item: &Item) -> Range<usize> {
        let itemsize = self.dtype().itemsize();
        item.start as usize * itemsize..item.end as usize * itemsize
    }

    /// Bytes `gather(items, ..)` needs.
    pub fn gather_len(&self, items: &[Item]) -> Result<usize> {
        items
            .iter()
            .try_fold(0usize, |total, item| {
                let bytes = usize::try_from(item.end - item.start)
                    .ok()?
                    .checked_mul(self.dtype().itemsize())?;
                total.checked_add(bytes)
            })
            .ok_or_else(|| Error::InvalidArgument("the batch is larger than the address space".into()))
    }

    /// Locates item `i < len`, checking offsets and shape against the buffer.
    fn item(&self, i: usize) -> Result<Item> {
        let (start, end) = column::span(&self.starts, &self.ends, i, self.len, self.data_len)?;
        let count = end - start;
        let stored = match &self.shapes {
            Shapes::Flat(col) => vec![col_value(col, i)?],
            Shapes::Nested(nested) => nested.int_item(i)?,
        };
        let shape = if stored == [0] && count == 1 {
            Vec::new()
        } else if format::element_count(&stored) == Some(count) {
            stored
        } else {
            return Err(Error::corrupt(
                self.shapes_dir(),
                format!("item {i} has shape {stored:?} but {count} elements"),
            ));
        };
        Ok(Item { start, end, shape })
    }

    /// Item `i` of an int64 store, as non-negative values (used for nested shapes).
    fn int_item(&self, i: usize) -> Result<Vec<u64>> {
        let item = self.item(i)?;
        if item.shape.len() > 1 || item.end - item.start > format::MAX_NDIM as u64 {
            return Err(Error::corrupt(&self.dir, format!("shape {i} is not a short 1-D tuple")));
        }
        let bytes = &self.data.bytes()[item.start as usize * 8..item.end as usize * 8];
        bytes
            .chunks_exact(8)
            .map(|c| {
                u64::try_from(i64::from_le_bytes(c.try_into().expect("8 bytes")))
                    .map_err(|_| Error::corrupt(&self.dir, format!("shape {i} has a negative axis")))
            })
            .collect()
    }

    fn shapes_dir(&self) -> PathBuf {
        self.dir.join(format::SHAPES_DIR)
    }

    /// Appends items to the ragged store in `dir` (created when missing or empty) and commits them.
    /// `items[k]` holds item k's little-endian elements in C order and `shapes[k]` its shape (empty for 0-d).
    pub fn extend(
        dir: &Path,
        options: &WriteOptions,
        dtype: Dtype,
        items: &[&[u8]],
        shapes: &[Vec<u64>],
    ) -> Result<()> {
        write_all(RaggedWriter::append(dir, options)?, dtype, items, shapes)
    }

    /// Writes a new store in `dir` holding the items, replacing any store that was there.
    pub fn create(
        dir: &Path,
        options: &WriteOptions,
        dtype: Dtype,
        items: &[&[u8]],
        shapes: &[Vec<u64>],
    ) -> Result<()> {
        write_all(RaggedWriter::replace(dir, options)?, dtype, items, shapes)
    }
}

fn write_all(mut writer: RaggedWriter, dtype: Dtype, items: &[&[u8]], shapes: &[Vec<u64>]) -> Result<()> {
    if items.len() != shapes.len() {
        return Err(Error::InvalidArgument(format!(
            "{} items but {} shapes",
            items.len(),
            shapes.len()
        )));
    }
    for (bytes, shape) in items.iter().zip(shapes) {
        writer.push(dtype, bytes, shape)?;
    }
    writer.commit()
}

/// Runs the copies (of `total` bytes in all), spread over scoped threads in runs of about equal bytes when the
/// batch is large, with streaming stores when it is larger still (see `crate::stream`). Scoped threads, not a
/// thread pool: a process forked after a gather (torch's DataLoader workers) inherits a pool without its
/// threads, and its jobs would wait forever.
fn copy_all(copies: Vec<(&[u8], &mut [u8])>, total: usize) {
    let stream = total >= stream::STREAM_BATCH_BYTES;
    let copy = |dst: &mut [u8], src: &[u8]| {
        if stream && src.len() >= stream::STREAM_ITEM_BYTES {
            stream::copy(dst, src)
        } else {
            dst.copy_from_slice(src)
        }
    };
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get()).min(8);
    if total < PARALLEL_GATHER_BYTES || threads == 1 {
        return copies.into_iter().for_each(|(src, dst)| copy(dst, src));
    }
    let share = total.div_ceil(threads);
    std::thread::scope(|scope| {
        let (mut run, mut bytes) = (Vec::new(), 0);
        for (src, dst) in copies {
            bytes += src.len();
            run.push((src, dst));
            if bytes >= share {
                let full = std::mem::take(&mut run);
                scope.spawn(move || full.into_iter().for_each(|(src, dst)| copy(dst, src)));
                bytes = 0;
            }
        }
        run.into_iter().for_each(|(src, dst)| copy(dst, src));
    });
}

/// Opens `shapes/`. When a flat store turns n-d, a writer swaps `shapes/` by two renames (the flat column to
/// `shapes.flat-old/`, then the new nested store in): each directory is read whole and unchanged, or read
/// again, and between the renames the old column is found in the backup.
fn open_shapes(dir: &Path, len: usize, nested: bool) -> Result<Shapes> {
    let candidates = [dir.join(format::SHAPES_DIR), dir.join(FLAT_SHAPES_BACKUP_DIR)];
    let mut last = None;
    for _ in 0..3 {
        for path in &candidates {
            let missing = || Err(Error::io(path)(std::io::ErrorKind::NotFound.into()));
            match files::open_consistent(path, |_| open_shapes_at(path, len, nested), missing) {
                Err(Error::Io { path, source }) if source.kind() == std::io::ErrorKind::NotFound => {
                    last = Some(Error::Io { path, source });
                }
                result => return result,
            }
        }
    }
    Err(last.expect("at least one attempt"))
}

fn open_shapes_at(shapes_dir: &Path, len: usize, nested: bool) -> Result<Shapes> {
    let kind = files::read_text_if_exists(&shapes_dir.join(format::TYPE_FILE), format::MAX_METADATA_BYTES)?;
    if kind.is_none_or(|k| k.trim() != StoreKind::Ragged.name()) {
        return Column::open(shapes_dir).map(Shapes::Flat);
    }
    if nested {
        return Err(Error::corrupt(shapes_dir, "shapes of shapes must be flat"));
    }
    let store = RaggedStore::open_committed(shapes_dir, Mode::ReadOnly, Some(len), None)?;
    if store.dtype() != Dtype::Int64 || !store.is_flat() {
        return Err(Error::corrupt(shapes_dir, "nested shapes must be a flat int64 store"));
    }
    Ok(Shapes::Nested(Box::new(store)))
}

fn require_len(col: &Column, len: usize) -> Result<()> {
    if col.len() < len {
        return Err(Error::corrupt(
            col.dir(),
            format!("{} values for {len} items", col.len()),
        ));
    }
    Ok(())
}

fn col_value(col: &Column, i: usize) -> Result<u64> {
    u64::try_from(col.get(i)?).map_err(|_| Error::corrupt(col.dir(), format!("value {i} is negative")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;
    use std::path::Path;

    /// Splits `values` into per-item little-endian byte vectors following `shapes`.
    fn per_item(values: &[i32], shapes: &[Vec<u64>]) -> Vec<Vec<u8>> {
        let mut rest = values;
        shapes
            .iter()
            .map(|s| {
                let (item, tail) = rest.split_at(format::element_count(s).unwrap() as usize);
                rest = tail;
                item.iter().flat_map(|v| v.to_le_bytes()).collect()
            })
            .collect()
    }

    fn extend_i32(dir: &Path, values: &[i32], shapes: &[Vec<u64>]) -> Result<()> {
        let items = per_item(values, shapes);
        let slices: Vec<&[u8]> = items.iter().map(Vec::as_slice).collect();
        RaggedStore::extend(dir, &WriteOptions::default(), Dtype::Int32, &slices, shapes)
    }

    fn create_i32(dir: &Path, values: &[i32], shapes: &[Vec<u64>]) -> Result<()> {
        let items = per_item(values, shapes);
        let slices: Vec<&[u8]> = items.iter().map(Vec::as_slice).collect();
        RaggedStore::create(dir, &WriteOptions::default(), Dtype::Int32, &slices, shapes)
    }

    fn items(store: &RaggedStore) -> Vec<Item> {
        (0..store.len() as i64).map(|i| store.locate(i).unwrap()).collect()
    }

    #[test]
    fn flat_store_with_scalar_and_empty_items() {
        let dir = tempfile::tempdir().unwrap();
        let shapes = vec![vec![3], vec![], vec![0]];
        create_i32(dir.path(), &[1, 2, 3, 9], &shapes).unwrap();
        let s = RaggedStore::open(dir.path(), Mode::ReadOnly).unwrap().unwrap();
        assert!(s.is_flat());
        assert_eq!(
            items(&s),
            [
                Item {
                    start: 0,
                    end: 3,
                    shape: vec![3]
                },
                Item {
                    start: 3,
                    end: 4,
                    shape: vec![]
                },
                Item {
                    start: 4,
                    end: 4,
                    shape: vec![0]
                },
            ]
        );
        assert_eq!(s.locate(-1).unwrap(), s.locate(2).unwrap());
        assert!(matches!(s.locate(3), Err(Error::IndexOutOfRange { .. })));
    }

    #[test]
    fn extend_flat_then_nd_converts_shapes() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path().join("r");
        extend_i32(&d, &[1, 2], &[vec![2]]).unwrap();
        extend_i32(&d, &[3, 4, 5, 6, 7, 8, 9], &[vec![2, 3], vec![]]).unwrap();
        let s = RaggedStore::open(&d, Mode::ReadOnly).unwrap().unwrap();
        assert!(!s.is_flat());
        assert_eq!(s.len(), 3);
        assert_eq!(s.locate(0).unwrap().shape, [2]);
        assert_eq!(
            s.locate(1).unwrap(),
            Item {
                start: 2,
                end: 8,
                shape: vec![2, 3]
            }
        );
        assert_eq!(
            s.locate(2).unwrap(),
            Item {
                start: 8,
                end: 9,
                shape: vec![]
            }
        );
        assert!(!d.join(FLAT_SHAPES_BACKUP_DIR).exists());
        extend_i32(&d, &[1], &[vec![1, 1]]).unwrap();
        let s = RaggedStore::open(&d, Mode::ReadOnly).unwrap().unwrap();
        assert_eq!(
            s.locate(3).unwrap(),
            Item {
                start: 9,
                end: 10,
                shape: vec![1, 1]
            }
        );
    }

    #[test]
    fn empty_dir_is_empty_store_and_dtype_must_match() {
        let dir = tempfile::tempdir().unwrap();
        assert!(RaggedStore::open(dir.path(), Mode::ReadOnly).unwrap().is_none());
        RaggedStore::create(dir.path(), &WriteOptions::default(), Dtype::Int32, &[], &[]).unwrap();
        assert!(RaggedStore::open(dir.path(), Mode::ReadOnly).unwrap().is_none());
        extend_i32(dir.path(), &[1], &[vec![1]]).unwrap();
        let err = RaggedStore::extend(
            dir.path(),
            &WriteOptions::default(),
            Dtype::Float32,
            &[&[0; 4]],
            &[vec![1]],
        )
        .unwrap_err();
        assert!(matches!(err, Error::InvalidArgument(_)));
        assert!(RaggedStore::extend(
            dir.path(),
            &WriteOptions::default(),
            Dtype::Int32,
            &[&[0; 3]],
            &[vec![1]]
        )
        .is_err());
    }

    #[test]
    fn a_replace_with_a_shape_int64_cannot_hold_keeps_the_store_that_was_there() {
        let dir = tempfile::tempdir().unwrap();
        create_i32(dir.path(), &[1, 2], &[vec![2]]).unwrap();
        // No elements (the item matches its shape), but an axis the shapes' int64 files cannot hold.
        let err = create_i32(dir.path(), &[], &[vec![1 << 63, 0]]).unwrap_err();
        assert!(matches!(err, Error::InvalidArgument(_)), "{err}");
        let store = RaggedStore::open(dir.path(), Mode::ReadOnly).unwrap().unwrap();
        assert_eq!((store.len(), store.locate(0).unwrap().shape), (1, vec![2]));
    }

    #[test]
    fn gather_packs_items_back_to_back() {
        let dir = tempfile::tempdir().unwrap();
        create_i32(dir.path(), &[1, 2, 3, 4, 5, 6, 7], &[vec![2], vec![], vec![2, 2]]).unwrap();
        let s = RaggedStore::open(dir.path(), Mode::ReadOnly).unwrap().unwrap();
        let items = s.locate_many(&[2, 0, -2]).unwrap();
        let mut out = vec![0u8; s.gather_len(&items).unwrap()];
        let placed = s.gather(items.clone(), &mut out).unwrap();
        let values: Vec<i32> = out
            .chunks_exact(4)
            .map(|c| i32::from_le_bytes(c.try_into().unwrap()))
            .collect();
        assert_eq!(values, [4, 5, 6, 7, 1, 2, 3]);
        let spans: Vec<_> = placed.iter().map(|i| (i.start, i.end, i.shape.clone())).collect();
        assert_eq!(spans, [(0, 4, vec![2, 2]), (4, 6, vec![2]), (6, 7, vec![])]);
        assert!(s.gather(items, &mut [0u8; 27]).is_err());
        assert!(matches!(s.locate_many(&[3]), Err(Error::IndexOutOfRange { .. })));
    }

    #[test]
    fn tampered_offsets_are_corrupt_not_wrong_bytes() {
        let dir = tempfile::tempdir().unwrap();
        create_i32(dir.path(), &[1, 2, 3], &[vec![1], vec![2]]).unwrap();
        let ends = dir.path().join("ends/data.ninja");
        let mut raw = fs::read(&ends).unwrap();
        raw[8..16].copy_from_slice(&100i64.to_le_bytes());
        fs::write(&ends, raw).unwrap();
        let mut s = RaggedStore::open(dir.path(), Mode::ReadOnly).unwrap().unwrap();
        assert!(s.locate(0).is_ok());
        assert!(matches!(s.locate(1), Err(Error::Corrupt { .. })));
        assert!(matches!(s.verify(10).as_slice(), [Error::Corrupt { .. }]));
        s.limit(1);
        assert!(s.verify(10).is_empty() && s.len() == 1);
    }

    #[test]
    fn uncommitted_tail_is_ignored_and_skipped() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        create_i32(d, &[1, 2], &[vec![2]]).unwrap();
        // A crashed writer left bytes past the committed end of the data and of a column.
        let mut f = fs::OpenOptions::new().append(true).open(d.join("data.ninja")).unwrap();
        std::io::Write::write_all(&mut f, &[0xAB; 6]).unwrap();
        let mut f = fs::OpenOptions::new()
            .append(true)
            .open(d.join("ends/data.ninja"))
            .unwrap();
        std::io::Write::write_all(&mut f, &[0xCD; 8]).unwrap();
        let s = RaggedStore::open(d, Mode::ReadOnly).unwrap().unwrap();
        assert_eq!(s.len(), 1);
        extend_i32(d, &[7], &[vec![1]]).unwrap();
        let s = RaggedStore::open(d, Mode::ReadOnly).unwrap().unwrap();
        let item = s.locate(1).unwrap();
        let bytes = &s.region().bytes()[item.start as usize * 4..item.end as usize * 4];
        assert_eq!(bytes, 7i32.to_le_bytes());
    }
}

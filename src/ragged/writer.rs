//! `RaggedWriter`: how items get into a ragged store. Items are pushed one by one and their elements stream
//! straight into the data file (bounded memory, whatever the batch size); `commit` then appends the index
//! tails and makes every pushed item visible at once, renaming `starts/shape.ninja` last (see `commit`).
//! A new store is written into a temporary data file that the first commit renames into place; a store being
//! replaced stays untouched until then, so bad input loses nothing and its readers keep their mappings.
//! Nothing is created on disk before the first push or commit, unless `data_file` asks for the data file.
//! Other processes may write items into the data file (`place`) for the writer to take them (`adopt`).

use std::fs::{self, File, OpenOptions};
use std::io::{BufWriter, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use super::{RaggedStore, FLAT_SHAPES_BACKUP_DIR};
use crate::column::{self, Column};
use crate::commit::{self, Commit, WriteOptions};
use crate::dense;
use crate::error::{Error, Result};
use crate::files;
use crate::format::{self, Dtype, StoreKind};
use crate::lock::WriteLock;
use crate::mmap::Mode;

/// Where a nested shapes store is built before it is renamed into place.
const NESTED_SHAPES_TMP_DIR: &str = "shapes.nested-tmp";
/// Buffer between pushed items and the data file: smaller items are gathered into writes of up to this size,
/// an item of this size or more is written straight from its own memory (std's `BufWriter`), without a copy.
const WRITE_BUFFER_BYTES: usize = 64 << 10;

/// What a writer knows of the committed store: its item count and how it keeps shapes. Every index column is
/// written at the item count (never at the column's own length, which a crashed writer may have left longer).
#[derive(Debug, Clone, Copy)]
struct Committed {
    len: u64,
    flat: bool,
}

/// A write session on one ragged store; it holds the store's lock until dropped.
#[derive(Debug)]
pub struct RaggedWriter {
    dir: PathBuf,
    /// The store's lock (`None` for the nested shapes store, which its parent's lock covers).
    lock: Option<WriteLock>,
    durable: bool,
    /// The committed store; `None` while the store is new (nothing committed yet).
    store: Option<Committed>,
    dtype: Option<Dtype>,
    /// The open data file, from the first push on.
    data: Option<BufWriter<File>>,
    /// The temporary data file of a new store, renamed to `data.ninja` by the first commit.
    data_tmp: Option<PathBuf>,
    /// Element offset of the next pushed item in the data file.
    next: u64,
    /// Element count and shape of each pushed, uncommitted item.
    pending: Vec<(u64, Vec<u64>)>,
}

impl RaggedWriter {
    /// Locks `dir` (created with its parents when missing) and opens it to append items. New items are
    /// written where the last committed item ends, over whatever an interrupted writer left past it.
    pub fn append(dir: &Path, options: &WriteOptions) -> Result<RaggedWriter> {
        let lock = WriteLock::acquire(dir, options.wait)?;
        crate::store::require_kind(dir, StoreKind::Ragged)?;
        wait_for_placements(&dir.join(format::DATA_FILE))?;
        finish_interrupted_conversion(dir)?;
        let mut writer = match RaggedStore::open(dir, Mode::ReadOnly)? {
            Some(store) => Self::appending(dir, &store, options.durable)?,
            None => Self::new_store(dir, options.durable),
        };
        writer.lock = Some(lock);
        Ok(writer)
    }

    /// Locks `dir` and starts a new store there, replacing any single store when the first commit lands (a
    /// sharded store is refused). Until then the old store stays as it is; during that commit, readers opening
    /// the store may see it empty.
    pub fn replace(dir: &Path, options: &WriteOptions) -> Result<RaggedWriter> {
        let lock = WriteLock::acquire(dir, options.wait)?;
        crate::store::refuse_sharded(dir, StoreKind::Ragged)?;
        let mut writer = Self::new_store(dir, options.durable);
        writer.lock = Some(lock);
        Ok(writer)
    }

    fn new_store(dir: &Path, durable: bool) -> RaggedWriter {
        RaggedWriter {
            dir: dir.to_path_buf(),
            lock: None,
            durable,
            store: None,
            dtype: None,
            data: None,
            data_tmp: None,
            next: 0,
            pending: Vec::new(),
        }
    }

    /// A writer appending to the committed `store` in `dir`, without a lock of its own.
    fn appending(dir: &Path, store: &RaggedStore, durable: bool) -> Result<RaggedWriter> {
        let committed = Committed {
            len: store.len() as u64,
            flat: store.is_flat(),
        };
        Self::appending_at(dir, committed, store.data_end(store.len())?, store.dtype(), durable)
    }

    /// A writer appending items after `committed` ones, data from element `next` on.
    fn appending_at(dir: &Path, committed: Committed, next: u64, dtype: Dtype, durable: bool) -> Result<RaggedWriter> {
        let data = open_data_at(&dir.join(format::DATA_FILE), next, dtype)?;
        Ok(RaggedWriter {
            dir: dir.to_path_buf(),
            lock: None,
            durable,
            store: Some(committed),
            dtype: Some(dtype),
            data: Some(data),
            data_tmp: None,
            next,
            pending: Vec::new(),
        })
    }

    /// The data file, opened on first use: a new store's temporary file (creating the directory) is made here,
    /// holding `format::EMPTY_DATA` until items are written over it. (Written now, before `data_file` hands
    /// the path to workers that place items from its start: written at the first commit, it could land on
    /// theirs.)
    fn data_writer(&mut self) -> Result<&mut BufWriter<File>> {
        if self.data.is_none() {
            use std::os::unix::fs::FileExt;
            commit::create_dir(&self.dir)?;
            let tmp = commit::temp_path(&self.dir.join(format::DATA_FILE));
            let file = File::create(&tmp).map_err(Error::io(&tmp))?;
            file.write_all_at(format::EMPTY_DATA, 0).map_err(Error::io(&tmp))?;
            self.data_tmp = Some(tmp);
            self.data = Some(BufWriter::with_capacity(WRITE_BUFFER_BYTES, file));
        }
        Ok(self.data.as_mut().expect("opened above"))
    }

    /// The store's element type (`None` until the first item of a new store).
    pub fn dtype(&self) -> Option<Dtype> {
        self.dtype
    }

    /// Items pushed since the last commit.
    pub fn pending(&self) -> usize {
        self.pending.len()
    }

    /// Writes one item: `bytes` holds its little-endian elements in C order, `shape` its shape (empty for 0-d).
    /// It becomes visible at the next `commit`.
    pub fn push(&mut self, dtype: Dtype, bytes: &[u8], shape: &[u64]) -> Result<()> {
        self.push_all(dtype, [(bytes, shape)])
    }

    /// Writes many items, as `push` does one; the writer's process is checked once (a `getpid` per item was
    /// a fifth of the time of building a store of small items).
    pub fn push_all<'a>(&mut self, dtype: Dtype, items: impl IntoIterator<Item = (&'a [u8], &'a [u64])>) -> Result<()> {
        self.check_process()?;
        items
            .into_iter()
            .try_for_each(|(bytes, shape)| self.push_item(dtype, bytes, shape))
    }

    fn push_item(&mut self, dtype: Dtype, bytes: &[u8], shape: &[u64]) -> Result<()> {
        self.set_dtype(dtype)?;
        if shape.len() > format::MAX_NDIM {
            return Err(Error::InvalidArgument(format!(
                "an item has more than {} axes",
                format::MAX_NDIM
            )));
        }
        let count = checked_element_count(shape, dtype)
            .filter(|c| c.checked_mul(dtype.itemsize() as u64) == Some(bytes.len() as u64))
            .ok_or_else(|| {
                Error::InvalidArgument(format!("{} bytes do not hold shape {shape:?} of {dtype}", bytes.len()))
            })?;
        let next = self.next_after(count)?;
        let written = self.data_writer()?.write_all(bytes);
        written.map_err(|source| Error::Io {
            path: self.data_path(),
            source,
        })?;
        self.next = next;
        self.pending.push((count, shape.to_vec()));
        Ok(())
    }

    /// Takes `dtype` as the store's, or checks that it is.
    fn set_dtype(&mut self, dtype: Dtype) -> Result<()> {
        self.require_dtype(dtype)?;
        self.dtype = Some(dtype);
        Ok(())
    }

    /// Checks that items of `dtype` can join the store.
    fn require_dtype(&self, dtype: Dtype) -> Result<()> {
        match self.dtype {
            Some(own) if own != dtype => Err(Error::InvalidArgument(format!(
                "cannot append {dtype} items to a {own} store"
            ))),
            _ => Ok(()),
        }
    }

    /// The element offset after `count` more elements, if the store stays within 2^63 elements.
    fn next_after(&self, count: u64) -> Result<u64> {
        let next = self.next.checked_add(count).filter(|&n| i64::try_from(n).is_ok());
        next.ok_or_else(|| Error::InvalidArgument("the store would exceed 2^63 elements".into()))
    }

    /// Where the next item's bytes go in the data file (0 until a new store gets its first item).
    pub fn position(&self) -> u64 {
        self.dtype.map_or(0, |d| self.next.saturating_mul(d.itemsize() as u64))
    }

    /// The data file items are written to, created now for a new store: until the first commit a
    /// temporary file, which that commit renames to `data.ninja`.
    pub fn data_file(&mut self) -> Result<PathBuf> {
        self.data_writer()?;
        Ok(self.data_path())
    }

    /// Takes items that another process placed in the data file (`place`), as `push` takes items: their
    /// elements (of `dtype`, with `shapes`) must lie back to back from `start`, the byte where the next item
    /// goes, and the file must reach their end. Visible at the next commit, as pushed items.
    pub fn adopt(&mut self, dtype: Dtype, start: u64, shapes: &[Vec<u64>]) -> Result<()> {
        self.check_process()?;
        self.require_dtype(dtype)?;
        let counts = shapes
            .iter()
            .map(|shape| {
                checked_element_count(shape, dtype).ok_or_else(|| {
                    Error::InvalidArgument(format!("shape {shape:?} of {dtype} is too large or has too many axes"))
                })
            })
            .collect::<Result<Vec<u64>>>()?;
        let total = counts.iter().try_fold(0u64, |sum, &c| sum.checked_add(c));
        let next = self.next_after(total.unwrap_or(u64::MAX))?;
        let position = self.position(); // (a store without a dtype yet has no element either)
        if start != position {
            return Err(Error::InvalidArgument(format!(
                "items placed at byte {start}, but the next item goes at byte {position}"
            )));
        }
        let end = next
            .checked_mul(dtype.itemsize() as u64)
            .ok_or_else(|| Error::InvalidArgument("the data would exceed 2^64 bytes".into()))?;
        let path = self.data_path();
        let data = self.data_writer()?;
        data.flush().map_err(Error::io(&path))?;
        let file = data.get_mut();
        let len = file.metadata().map_err(Error::io(&path))?.len();
        if len < end {
            return Err(Error::InvalidArgument(format!(
                "items placed up to byte {end}, but the data file holds {len} bytes"
            )));
        }
        file.seek(SeekFrom::Start(end)).map_err(Error::io(&path))?;
        self.dtype = Some(dtype);
        self.next = next;
        self.pending.extend(counts.into_iter().zip(shapes.iter().cloned()));
        Ok(())
    }

    fn data_path(&self) -> PathBuf {
        self.data_tmp
            .clone()
            .unwrap_or_else(|| self.dir.join(format::DATA_FILE))
    }

    /// Makes every pushed item visible in one atomic step. A new store with nothing pushed becomes an empty
    /// store (just `type.ninja`).
    pub fn commit(&mut self) -> Result<()> {
        self.check_process()?;
        let mut commit = Commit::new(self.durable);
        self.stage(&mut commit)?;
        commit.apply()?;
        if !self.pending.is_empty() {
            let len = self.store.map_or(0, |c| c.len) + self.pending.len() as u64;
            let flat = self.store.is_none_or(|c| c.flat) && self.pending.iter().all(|(_, s)| s.len() <= 1);
            self.store = Some(Committed { len, flat });
        }
        self.pending.clear();
        // The commit landed, so the flat shapes column a conversion moved aside is garbage. Failing to remove
        // it must not report the commit as failed (a caller who retried would append the items twice): the
        // next commit tries again, and readers ignore the backup while `shapes/` exists.
        let _ = files::remove_if_exists(&self.dir.join(FLAT_SHAPES_BACKUP_DIR));
        Ok(())
    }

    /// Writes the index tails of the pending items and stages the metadata replacements into `commit`, the
    /// store's `starts/shape.ninja` last.
    fn stage(&mut self, commit: &mut Commit) -> Result<()> {
        if let Some(data) = self.data.as_mut() {
            data.flush().map_err(Error::io(self.data_path()))?;
        }
        if self.data_tmp.is_none() && self.data.is_some() {
            commit.record(self.data_path()); // a new store's data file is recorded once renamed
        }
        let (Some(dtype), false) = (self.dtype, self.pending.is_empty()) else {
            if self.store.is_none() {
                commit::create_dir(&self.dir)?;
                remove_store_files(&self.dir)?;
                commit.stage(self.dir.join(format::TYPE_FILE), StoreKind::Ragged.name().into());
            }
            return Ok(());
        };
        let first = self.next - self.pending.iter().map(|(c, _)| c).sum::<u64>();
        let (starts, ends) = column::offsets(first, self.pending.iter().map(|(c, _)| *c))?;
        let counts = to_i64(&self.pending.iter().map(|(c, _)| *c).collect::<Vec<_>>())?;
        let shapes: Vec<Vec<u64>> = self.pending.iter().map(|(_, s)| s.clone()).collect();
        match self.store {
            None => self.stage_new(dtype, &starts, &ends, &counts, &shapes, commit)?,
            Some(Committed { len, flat }) => {
                column::write_rows(&self.dir.join(format::ENDS_DIR), len, &ends, false, commit)?;
                column::write_rows(
                    &self.dir.join(format::FLATTENED_SHAPES_DIR),
                    len,
                    &counts,
                    false,
                    commit,
                )?;
                let shapes_dir = self.dir.join(format::SHAPES_DIR);
                if flat && shapes.iter().all(|s| s.len() <= 1) {
                    column::write_rows(&shapes_dir, len, &flat_shapes(&shapes)?, true, commit)?;
                } else if flat {
                    convert_to_nested(&self.dir, len, &shapes, commit)?;
                } else {
                    // Written at our item count: shapes past it are leftovers of a write that never committed.
                    let shapes_store =
                        RaggedStore::open_committed(&shapes_dir, Mode::ReadOnly, Some(len as usize), None)?;
                    let next = shapes_store.data_end(len as usize)?;
                    let committed = Committed { len, flat: true };
                    let mut nested =
                        RaggedWriter::appending_at(&shapes_dir, committed, next, Dtype::Int64, self.durable)?;
                    nested.push_shapes(&shapes)?;
                    nested.stage(commit)?;
                }
                commit.stage(self.dir.join(format::SHAPE_FILE), format::encode_shape(&[self.next]));
                column::write_rows(&self.dir.join(format::STARTS_DIR), len, &starts, false, commit)?;
            }
        }
        Ok(())
    }

    /// The first commit of a new store: the data file moves into place and every other file is written.
    fn stage_new(
        &mut self,
        dtype: Dtype,
        starts: &[i64],
        ends: &[i64],
        counts: &[i64],
        shapes: &[Vec<u64>],
        commit: &mut Commit,
    ) -> Result<()> {
        let Some(tmp) = self.data_tmp.take() else {
            return Err(Error::InvalidArgument(
                "an earlier commit failed; open a new writer".into(),
            ));
        };
        // Shapes are checked before the old store goes: every axis must fit the int64 files.
        let flat = shapes.iter().all(|s| s.len() <= 1);
        let flat_shapes = if flat {
            Some(flat_shapes(shapes)?)
        } else {
            shapes.iter().try_for_each(|shape| to_i64(shape).map(drop))?;
            None
        };
        remove_store_files(&self.dir)?;
        let data_path = self.dir.join(format::DATA_FILE);
        fs::rename(&tmp, &data_path).map_err(Error::io(&data_path))?;
        commit.record(data_path.clone());
        self.data = Some(open_data_at(&data_path, self.next, dtype)?);
        dense::write_meta(&self.dir, dtype, &[self.next], commit)?;
        Column::create(&self.dir.join(format::ENDS_DIR), ends, false, commit)?;
        Column::create(&self.dir.join(format::FLATTENED_SHAPES_DIR), counts, false, commit)?;
        let shapes_dir = self.dir.join(format::SHAPES_DIR);
        if let Some(flat_shapes) = flat_shapes {
            Column::create(&shapes_dir, &flat_shapes, true, commit)?;
        } else {
            let mut nested = RaggedWriter::new_store(&shapes_dir, self.durable);
            nested.push_shapes(shapes)?;
            nested.commit()?;
        }
        Column::create(&self.dir.join(format::STARTS_DIR), starts, false, commit)?;
        commit.stage(
            self.dir.join(format::SHAPES_ARE_FLAT_FILE),
            format::encode_flag(flat).to_vec(),
        );
        commit.stage(self.dir.join(format::TYPE_FILE), StoreKind::Ragged.name().into());
        Ok(())
    }

    /// Pushes shape tuples as the items of a nested int64 shapes store (0-d shapes as `(0,)`).
    fn push_shapes(&mut self, shapes: &[Vec<u64>]) -> Result<()> {
        for shape in shapes {
            let tuple = if shape.is_empty() { vec![0] } else { shape.clone() };
            let bytes: Vec<u8> = to_i64(&tuple)?.iter().flat_map(|v| v.to_le_bytes()).collect();
            self.push(Dtype::Int64, &bytes, &[tuple.len() as u64])?;
        }
        Ok(())
    }
}

impl RaggedWriter {
    /// Refuses to write from a forked child of the process that locked the store.
    fn check_process(&self) -> Result<()> {
        self.lock.as_ref().map_or(Ok(()), WriteLock::check_process)
    }
}

impl Drop for RaggedWriter {
    fn drop(&mut self) {
        // Unwritten pushed bytes are dropped, never flushed: they are uncommitted anyway, and a flush here
        // could land after the lock is released, or (in a forked child, which shares the file's position)
        // in the middle of what the parent writes next.
        if let Some(data) = self.data.take() {
            drop(data.into_parts());
        }
        // A forked child's copy must not delete the temporary file its parent is still writing.
        if let (Some(tmp), Ok(())) = (self.data_tmp.take(), self.check_process()) {
            let _ = fs::remove_file(tmp);
        }
    }
}

/// Writes `items` back to back from byte `start` into a store's data file, for its writer (in another
/// process) to `adopt` them: the file is the first of `paths` that exists, and only if it is still the
/// writer's (`identity`: device and inode), whichever name it has by then (the first commit renames it), and
/// the writer is still at work: `owner` is a file its process holds an exclusive `flock` on for as long as it
/// adopts placed items. Returns where the items end, or `None` when the file is not the writer's any more or
/// the writer is gone.
///
/// A placement holds a shared `flock` on the data file from before it checks `owner` until its last byte is
/// written, and a writer that takes over the store waits for an exclusive one first (`wait_for_placements`):
/// so the workers of a writer that was killed either see it gone, or finish writing before the next writer
/// starts. Without that, they would write over what the next writer appended and committed.
pub fn place(
    paths: &[PathBuf],
    identity: (u64, u64),
    owner: &Path,
    start: u64,
    items: &[&[u8]],
) -> Result<Option<u64>> {
    use std::os::unix::fs::{FileExt, MetadataExt};
    let Some((path, file)) = paths
        .iter()
        .find_map(|p| Some((p, OpenOptions::new().write(true).open(p).ok()?)))
    else {
        return Ok(None);
    };
    let meta = file.metadata().map_err(Error::io(path))?;
    if (meta.dev(), meta.ino()) != identity {
        return Ok(None);
    }
    file.lock_shared().map_err(Error::io(path))?;
    if !held_by_another(owner)? {
        return Ok(None);
    }
    let mut at = start;
    for item in items {
        file.write_all_at(item, at).map_err(Error::io(path))?;
        at = at
            .checked_add(item.len() as u64)
            .ok_or_else(|| Error::InvalidArgument("the data would exceed 2^64 bytes".into()))?;
    }
    Ok(Some(at))
}

/// True while some other open file holds a `flock` on `path` that excludes a shared one (an exclusive one).
fn held_by_another(path: &Path) -> Result<bool> {
    let file = match File::open(path) {
        Ok(file) => file,
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => return Ok(false),
        Err(err) => return Err(Error::io(path)(err)),
    };
    match file.try_lock_shared() {
        Ok(()) => Ok(false),
        Err(std::fs::TryLockError::WouldBlock) => Ok(true),
        Err(std::fs::TryLockError::Error(err)) => Err(Error::io(path)(err)),
    }
}

/// Waits until no worker of an earlier writer is placing items in the data file at `path` (see `place`); the
/// caller holds the store's lock, so no placement starts after this returns, except by workers that then see
/// their writer gone.
fn wait_for_placements(path: &Path) -> Result<()> {
    match File::open(path) {
        Ok(file) => file.lock().map_err(Error::io(path)),
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(err) => Err(Error::io(path)(err)),
    }
}

/// The element count of an item of `shape`, `None` past `MAX_NDIM` axes or 2^64 bytes of `dtype`.
fn checked_element_count(shape: &[u64], dtype: Dtype) -> Option<u64> {
    let count = format::element_count(shape).filter(|_| shape.len() <= format::MAX_NDIM)?;
    count.checked_mul(dtype.itemsize() as u64).map(|_| count)
}

/// Opens the data file to write from element `next` on (the committed end: bytes past it are leftovers of a
/// write that never committed, which no reader looks at).
fn open_data_at(path: &Path, next: u64, dtype: Dtype) -> Result<BufWriter<File>> {
    let mut file = OpenOptions::new().write(true).open(path).map_err(Error::io(path))?;
    let offset = next
        .checked_mul(dtype.itemsize() as u64)
        .ok_or_else(|| Error::corrupt(path, "data length overflows"))?;
    file.seek(SeekFrom::Start(offset)).map_err(Error::io(path))?;
    Ok(BufWriter::with_capacity(WRITE_BUFFER_BYTES, file))
}

/// Rewrites a flat store's shapes as a nested store holding the committed and the pending shapes. The old
/// column is kept as a backup until the commit lands, so readers always find a valid shapes directory.
fn convert_to_nested(dir: &Path, len: u64, pending: &[Vec<u64>], commit: &mut Commit) -> Result<()> {
    let col = Column::open(&dir.join(format::SHAPES_DIR))?;
    let tmp = dir.join(NESTED_SHAPES_TMP_DIR);
    files::remove_if_exists(&tmp)?;
    let mut nested = RaggedWriter::new_store(&tmp, commit.is_durable());
    for i in 0..len as usize {
        nested.push_shapes(&[vec![super::col_value(&col, i)?]])?;
    }
    nested.push_shapes(pending)?;
    nested.commit()?;
    drop(nested);
    let shapes_dir = dir.join(format::SHAPES_DIR);
    let backup = dir.join(FLAT_SHAPES_BACKUP_DIR);
    fs::rename(&shapes_dir, &backup).map_err(Error::io(&shapes_dir))?;
    fs::rename(&tmp, &shapes_dir).map_err(Error::io(&shapes_dir))?;
    commit.replace_now(&dir.join(format::SHAPES_ARE_FLAT_FILE), &[&format::encode_flag(false)])
}

/// Repairs what a writer killed inside `convert_to_nested` left (the caller holds the lock): between its two
/// renames `shapes/` is missing (the committed flat column waits in the backup: put it back and drop the
/// unfinished nested store); after them, a nested `shapes/` may still be flagged flat (clear the flag, which
/// mmap-ninja 0.9.0 relies on).
fn finish_interrupted_conversion(dir: &Path) -> Result<()> {
    let (shapes, backup) = (dir.join(format::SHAPES_DIR), dir.join(FLAT_SHAPES_BACKUP_DIR));
    if !files::exists(&backup)? {
        return Ok(());
    }
    if !files::exists(&shapes)? {
        fs::rename(&backup, &shapes).map_err(Error::io(&shapes))?;
        return files::remove_if_exists(&dir.join(NESTED_SHAPES_TMP_DIR));
    }
    let nested = files::read_text_if_exists(&shapes.join(format::TYPE_FILE), format::MAX_METADATA_BYTES)?
        .is_some_and(|kind| kind.trim() == StoreKind::Ragged.name());
    if nested {
        commit::replace_file_parts(
            &dir.join(format::SHAPES_ARE_FLAT_FILE),
            &[&format::encode_flag(false)],
            false,
        )?;
    }
    Ok(())
}

fn to_i64(values: &[u64]) -> Result<Vec<i64>> {
    values
        .iter()
        .map(|&v| i64::try_from(v).map_err(|_| Error::InvalidArgument(format!("{v} does not fit in int64"))))
        .collect()
}

/// Flat stored shapes: the length of a 1-D item, 0 for a 0-d one.
fn flat_shapes(shapes: &[Vec<u64>]) -> Result<Vec<i64>> {
    to_i64(
        &shapes
            .iter()
            .map(|s| s.first().copied().unwrap_or(0))
            .collect::<Vec<_>>(),
    )
}

/// Removes the files of a previous store in `dir` (if any): the flag first, so readers see an empty store.
/// Files are unlinked, never truncated, so readers that mapped them keep valid memory.
fn remove_store_files(dir: &Path) -> Result<()> {
    for name in [
        format::SHAPES_ARE_FLAT_FILE,
        format::STARTS_DIR,
        format::ENDS_DIR,
        format::FLATTENED_SHAPES_DIR,
        format::SHAPES_DIR,
        FLAT_SHAPES_BACKUP_DIR,
        NESTED_SHAPES_TMP_DIR,
    ] {
        files::remove_if_exists(&dir.join(name))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn le(values: &[i16]) -> Vec<u8> {
        values.iter().flat_map(|v| v.to_le_bytes()).collect()
    }

    fn values(store: &RaggedStore, index: i64) -> Vec<i16> {
        let item = store.locate(index).unwrap();
        let bytes = &store.region().bytes()[item.start as usize * 2..item.end as usize * 2];
        bytes
            .chunks_exact(2)
            .map(|c| i16::from_le_bytes([c[0], c[1]]))
            .collect()
    }

    /// Writes `bytes` at `at` into `path` through a handle of its own, as a worker process does.
    fn write_at(path: &Path, at: u64, bytes: &[u8]) {
        use std::os::unix::fs::FileExt;
        OpenOptions::new()
            .write(true)
            .open(path)
            .unwrap()
            .write_all_at(bytes, at)
            .unwrap();
    }

    #[test]
    fn adopted_items_are_read_as_pushed_ones_and_pushes_continue_after_them() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path().join("store");
        let mut w = RaggedWriter::replace(&d, &WriteOptions::default()).unwrap();
        assert_eq!(w.position(), 0);
        w.push(Dtype::Int16, &le(&[1, 2]), &[2]).unwrap();
        let path = w.data_file().unwrap();
        write_at(&path, 4, &le(&[3, 4, 5, 6, 7]));
        w.adopt(Dtype::Int16, 4, &[vec![2, 2], vec![]]).unwrap();
        w.commit().unwrap(); // renames the data file: placing continues in data.ninja
        assert_eq!(w.data_file().unwrap(), d.join(format::DATA_FILE));
        w.push(Dtype::Int16, &le(&[8]), &[1]).unwrap();
        assert_eq!(w.position(), 16);
        write_at(&w.data_file().unwrap(), 16, &le(&[9, 10]));
        w.adopt(Dtype::Int16, 16, &[vec![2]]).unwrap();
        w.commit().unwrap();
        drop(w);
        let s = RaggedStore::open(&d, Mode::ReadOnly).unwrap().unwrap();
        let got: Vec<_> = (0..5).map(|i| values(&s, i)).collect();
        assert_eq!(got, [vec![1, 2], vec![3, 4, 5, 6], vec![7], vec![8], vec![9, 10]]);
        assert_eq!(s.locate(1).unwrap().shape, [2, 2]);
        assert_eq!(s.locate(2).unwrap().shape, Vec::<u64>::new());
    }

    #[test]
    fn adopting_refuses_a_gap_an_overlap_missing_bytes_and_another_dtype() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path().join("store");
        let mut w = RaggedWriter::replace(&d, &WriteOptions::default()).unwrap();
        w.push(Dtype::Int16, &le(&[1, 2]), &[2]).unwrap();
        let path = w.data_file().unwrap();
        write_at(&path, 4, &le(&[3, 4]));
        for (dtype, start, shapes) in [
            (Dtype::Int16, 6, vec![vec![1]]),  // a gap after the pushed item
            (Dtype::Int16, 2, vec![vec![1]]),  // over the pushed item
            (Dtype::Int16, 4, vec![vec![3]]),  // 6 bytes, but only 4 are there
            (Dtype::Uint16, 4, vec![vec![2]]), // another dtype
        ] {
            let err = w.adopt(dtype, start, &shapes).unwrap_err();
            assert!(matches!(err, Error::InvalidArgument(_)), "{err}");
        }
        w.adopt(Dtype::Int16, 4, &[vec![2]]).unwrap();
        w.commit().unwrap();
        let s = RaggedStore::open(&d, Mode::ReadOnly).unwrap().unwrap();
        assert_eq!((s.len(), values(&s, 1)), (2, vec![3, 4]));
        // A refused adopt leaves a new store's dtype open.
        let mut w = RaggedWriter::replace(&dir.path().join("new"), &WriteOptions::default()).unwrap();
        assert!(w.adopt(Dtype::Uint16, 2, &[vec![1]]).is_err());
        assert_eq!(w.dtype(), None);
        w.push(Dtype::Int16, &le(&[5]), &[1]).unwrap();
    }

    #[test]
    fn placing_writes_items_back_to_back_into_the_writers_file_only_while_the_writer_is_at_work() {
        use std::os::unix::fs::MetadataExt;
        let dir = tempfile::tempdir().unwrap();
        let (tmp, data) = (dir.path().join("data.ninja.tmp"), dir.path().join("data.ninja"));
        std::fs::write(&tmp, [0u8; 2]).unwrap();
        let meta = std::fs::metadata(&tmp).unwrap();
        let identity = (meta.dev(), meta.ino());
        let paths = [tmp.clone(), data.clone()];
        let owner_path = dir.path().join("slots");
        let owner = File::create(&owner_path).unwrap();
        owner.lock().unwrap(); // the writer at work
        let end = place(&paths, identity, &owner_path, 2, &[&le(&[1, 2]), &le(&[3])]).unwrap();
        assert_eq!(
            (end, std::fs::read(&tmp).unwrap()),
            (Some(8), [&[0, 0][..], &le(&[1, 2, 3])].concat())
        );
        std::fs::rename(&tmp, &data).unwrap(); // as the first commit does: the next path is the same file
        assert_eq!(place(&paths, identity, &owner_path, 8, &[&le(&[4])]).unwrap(), Some(10));
        // The writer gone (its lock released with its last descriptor, or its file removed): nothing placed.
        drop(owner);
        assert_eq!(place(&paths, identity, &owner_path, 10, &[&le(&[5])]).unwrap(), None);
        std::fs::remove_file(&owner_path).unwrap();
        assert_eq!(place(&paths, identity, &owner_path, 10, &[&le(&[5])]).unwrap(), None);
        assert_eq!(std::fs::metadata(&data).unwrap().len(), 10);
        let owner = File::create(&owner_path).unwrap();
        owner.lock().unwrap();
        std::fs::rename(&data, dir.path().join("kept")).unwrap(); // (kept: its inode number is not reused)
        std::fs::write(&data, []).unwrap(); // another file at the path
        assert_eq!(place(&paths, identity, &owner_path, 10, &[&le(&[5])]).unwrap(), None);
        assert_eq!(std::fs::read(&data).unwrap(), Vec::<u8>::new());
    }

    #[test]
    fn a_writer_waits_for_placements_in_progress_before_it_appends() {
        use std::sync::atomic::{AtomicBool, Ordering};
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path().join("s");
        let mut w = RaggedWriter::append(&d, &WriteOptions::default()).unwrap();
        w.push(Dtype::Int16, &le(&[1]), &[1]).unwrap();
        w.commit().unwrap();
        drop(w);
        // A worker of a killed writer, writing: it holds a shared lock on the data file (see `place`).
        let placing = File::open(d.join(format::DATA_FILE)).unwrap();
        placing.lock_shared().unwrap();
        let appended = AtomicBool::new(false);
        std::thread::scope(|scope| {
            let next = scope.spawn(|| {
                let w = RaggedWriter::append(&d, &WriteOptions::default()).unwrap();
                appended.store(true, Ordering::SeqCst);
                w
            });
            std::thread::sleep(std::time::Duration::from_millis(200));
            assert!(
                !appended.load(Ordering::SeqCst),
                "the next writer started during a placement"
            );
            drop(placing);
            next.join().unwrap();
        });
        assert!(appended.load(Ordering::SeqCst));
    }

    #[test]
    fn pushed_items_appear_only_at_commit_and_sessions_commit_repeatedly() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path().join("new/store");
        let mut w = RaggedWriter::append(&d, &WriteOptions::default()).unwrap();
        w.push(Dtype::Int16, &le(&[1, 2]), &[2]).unwrap();
        assert!(RaggedStore::open(&d, Mode::ReadOnly).unwrap().is_none());
        w.commit().unwrap();
        w.push(Dtype::Int16, &le(&[3, 4, 5, 6]), &[2, 2]).unwrap();
        assert_eq!(RaggedStore::open(&d, Mode::ReadOnly).unwrap().unwrap().len(), 1);
        w.commit().unwrap();
        w.push(Dtype::Int16, &le(&[7]), &[]).unwrap();
        w.commit().unwrap();
        drop(w);
        let s = RaggedStore::open(&d, Mode::ReadOnly).unwrap().unwrap();
        assert_eq!(
            (s.len(), values(&s, 0), values(&s, 1), values(&s, 2)),
            (3, vec![1, 2], vec![3, 4, 5, 6], vec![7])
        );
        assert_eq!(s.locate(1).unwrap().shape, [2, 2]);
        assert_eq!(
            std::fs::read_dir(&d)
                .unwrap()
                .filter(|e| e.as_ref().unwrap().file_name().to_string_lossy().contains(".tmp"))
                .count(),
            0
        );
    }

    #[test]
    fn replace_keeps_the_old_store_until_commit_and_old_readers_valid() {
        let dir = tempfile::tempdir().unwrap();
        RaggedStore::create(
            dir.path(),
            &WriteOptions::default(),
            Dtype::Int16,
            &[&le(&[9, 9, 9])],
            &[vec![3]],
        )
        .unwrap();
        let old = RaggedStore::open(dir.path(), Mode::ReadOnly).unwrap().unwrap();
        let mut w = RaggedWriter::replace(dir.path(), &WriteOptions::default()).unwrap();
        w.push(Dtype::Int16, &le(&[1]), &[1]).unwrap();
        assert_eq!(
            values(&RaggedStore::open(dir.path(), Mode::ReadOnly).unwrap().unwrap(), 0),
            [9, 9, 9]
        );
        w.commit().unwrap();
        assert_eq!(values(&old, 0), [9, 9, 9]);
        assert_eq!(
            values(&RaggedStore::open(dir.path(), Mode::ReadOnly).unwrap().unwrap(), 0),
            [1]
        );
    }

    #[test]
    fn columns_a_crashed_writer_left_longer_are_written_at_the_item_count() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        RaggedStore::create(d, &WriteOptions::default(), Dtype::Int16, &[&le(&[1, 2])], &[vec![2]]).unwrap();
        // A writer died after renaming the shape files of ends/, flattened_shapes/ and the data, before starts/.
        for column in ["ends", "flattened_shapes"] {
            let mut bytes = std::fs::read(d.join(column).join("data.ninja")).unwrap();
            bytes.extend_from_slice(&999i64.to_le_bytes());
            std::fs::write(d.join(column).join("data.ninja"), bytes).unwrap();
            std::fs::write(d.join(column).join("shape.ninja"), format::encode_shape(&[2])).unwrap();
        }
        std::fs::write(d.join("data.ninja"), le(&[1, 2, 8, 8, 8, 8])).unwrap();
        std::fs::write(d.join("shape.ninja"), format::encode_shape(&[6])).unwrap();
        assert_eq!(RaggedStore::open(d, Mode::ReadOnly).unwrap().unwrap().len(), 1);
        RaggedStore::extend(
            d,
            &WriteOptions::default(),
            Dtype::Int16,
            &[&le(&[3, 4, 5])],
            &[vec![3]],
        )
        .unwrap();
        let s = RaggedStore::open(d, Mode::ReadOnly).unwrap().unwrap();
        assert_eq!((s.len(), values(&s, 0), values(&s, 1)), (2, vec![1, 2], vec![3, 4, 5]));
        assert_eq!((s.data_len(), s.verify(10).len()), (5, 0));
    }

    #[test]
    fn one_writer_at_a_time_and_uncommitted_tails_are_written_over() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        let options = WriteOptions::default();
        RaggedStore::create(d, &options, Dtype::Int16, &[&le(&[1, 2])], &[vec![2]]).unwrap();
        let mut first = RaggedWriter::append(d, &options).unwrap();
        assert!(matches!(RaggedWriter::append(d, &options), Err(Error::Locked { .. })));
        assert!(matches!(RaggedWriter::replace(d, &options), Err(Error::Locked { .. })));
        // The first writer streams 1000 elements, then goes away without committing.
        first.push(Dtype::Int16, &le(&[7; 1000]), &[1000]).unwrap();
        first.data.as_mut().unwrap().flush().unwrap();
        drop(first);
        let data = d.join(format::DATA_FILE);
        assert_eq!(std::fs::metadata(&data).unwrap().len(), 2004);
        RaggedStore::extend(d, &options, Dtype::Int16, &[&le(&[3])], &[vec![1]]).unwrap();
        assert_eq!(std::fs::metadata(&data).unwrap().len(), 2004);
        let s = RaggedStore::open(d, Mode::ReadOnly).unwrap().unwrap();
        assert_eq!(
            (s.len(), values(&s, 0), values(&s, 1), s.data_len()),
            (2, vec![1, 2], vec![3], 3)
        );
    }

    #[test]
    fn nested_shapes_left_longer_by_a_crash_open_and_are_written_over() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        let options = WriteOptions::default();
        RaggedStore::create(d, &options, Dtype::Int16, &[&le(&[1, 2])], &[vec![1, 2]]).unwrap();
        // A writer died after the nested shapes store committed a second shape, before the parent's starts/.
        let starts = d.join("shapes/starts");
        std::fs::write(starts.join("data.ninja"), [0i64, 2].map(i64::to_le_bytes).concat()).unwrap();
        std::fs::write(starts.join("shape.ninja"), format::encode_shape(&[2])).unwrap();
        assert_eq!(RaggedStore::open(d, Mode::ReadOnly).unwrap().unwrap().len(), 1);
        let mut w = RaggedWriter::append(d, &options).unwrap();
        w.push(Dtype::Int16, &le(&[3, 4, 5]), &[3, 1]).unwrap();
        // Until this commit lands, the nested ends/ (1 row) stays shorter than its starts/ (2 rows).
        let mut commit = Commit::new(false);
        w.stage(&mut commit).unwrap();
        assert_eq!(RaggedStore::open(d, Mode::ReadOnly).unwrap().unwrap().len(), 1);
        commit.apply().unwrap();
        let s = RaggedStore::open(d, Mode::ReadOnly).unwrap().unwrap();
        assert_eq!(
            (s.len(), s.locate(1).unwrap().shape, values(&s, 1)),
            (2, vec![3, 1], vec![3, 4, 5])
        );
    }

    #[test]
    fn a_conversion_killed_between_its_renames_is_finished_by_the_next_writer() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        let options = WriteOptions::default();
        RaggedStore::create(d, &options, Dtype::Int16, &[&le(&[1, 2])], &[vec![2]]).unwrap();
        // Killed after moving the flat column aside, before moving the nested store in.
        fs::rename(d.join("shapes"), d.join(FLAT_SHAPES_BACKUP_DIR)).unwrap();
        fs::create_dir(d.join(NESTED_SHAPES_TMP_DIR)).unwrap();
        assert_eq!(RaggedStore::open(d, Mode::ReadOnly).unwrap().unwrap().len(), 1); // readers use the backup
        RaggedStore::extend(d, &options, Dtype::Int16, &[&le(&[3, 4])], &[vec![1, 2]]).unwrap();
        let s = RaggedStore::open(d, Mode::ReadOnly).unwrap().unwrap();
        assert_eq!(
            (s.len(), s.locate(1).unwrap().shape, values(&s, 1)),
            (2, vec![1, 2], vec![3, 4])
        );
        assert!(!d.join(FLAT_SHAPES_BACKUP_DIR).exists() && !d.join(NESTED_SHAPES_TMP_DIR).exists());
        assert_eq!(
            fs::read(d.join(format::SHAPES_ARE_FLAT_FILE)).unwrap(),
            format::encode_flag(false)
        );
        // Killed after both renames, before clearing the flag: the next writer clears it.
        fs::write(d.join(format::SHAPES_ARE_FLAT_FILE), format::encode_flag(true)).unwrap();
        fs::create_dir(d.join(FLAT_SHAPES_BACKUP_DIR)).unwrap();
        RaggedStore::extend(d, &options, Dtype::Int16, &[&le(&[5])], &[vec![1]]).unwrap();
        assert_eq!(
            fs::read(d.join(format::SHAPES_ARE_FLAT_FILE)).unwrap(),
            format::encode_flag(false)
        );
        assert_eq!(RaggedStore::open(d, Mode::ReadOnly).unwrap().unwrap().len(), 3);
    }

    #[test]
    fn a_commit_that_landed_succeeds_even_when_a_leftover_backup_cannot_be_removed() {
        use std::process::Command;
        /// Clears the immutable flag again, whatever the test did.
        struct Immutable(PathBuf);
        impl Drop for Immutable {
            fn drop(&mut self) {
                let _ = Command::new("chattr").arg("-i").arg(&self.0).status();
            }
        }
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        let options = WriteOptions::default();
        RaggedStore::create(d, &options, Dtype::Int16, &[&le(&[1, 2])], &[vec![1, 2]]).unwrap();
        // A backup a crashed conversion left, which cannot be removed (as on an I/O error).
        let stuck = d.join(FLAT_SHAPES_BACKUP_DIR).join("stuck");
        fs::create_dir(d.join(FLAT_SHAPES_BACKUP_DIR)).unwrap();
        fs::write(&stuck, b"").unwrap();
        let immutable = Command::new("chattr").arg("+i").arg(&stuck).output();
        let _restore = Immutable(stuck.clone());
        if !immutable.is_ok_and(|out| out.status.success()) || fs::remove_file(&stuck).is_ok() {
            eprintln!("skipped: chattr +i is not available here");
            return;
        }
        RaggedStore::extend(d, &options, Dtype::Int16, &[&le(&[3])], &[vec![1, 1]]).unwrap();
        let s = RaggedStore::open(d, Mode::ReadOnly).unwrap().unwrap();
        assert_eq!((s.len(), values(&s, 1)), (2, vec![3]));
    }

    #[test]
    fn items_around_the_write_buffer_size_keep_their_order() {
        // Small items are buffered, large ones written straight from their memory: the order must hold.
        let half = WRITE_BUFFER_BYTES / 4; // i16 elements in half a buffer
        let lens = [3, 2 * half, 1, half, half + 1, 4 * half, 0, 5];
        let dir = tempfile::tempdir().unwrap();
        let mut w = RaggedWriter::append(dir.path(), &WriteOptions::default()).unwrap();
        let item = |k: usize, n: usize| -> Vec<i16> { (0..n).map(|j| (k * 1000 + j % 1000) as i16).collect() };
        for (k, &n) in lens.iter().enumerate() {
            w.push(Dtype::Int16, &le(&item(k, n)), &[n as u64]).unwrap();
        }
        w.commit().unwrap();
        drop(w);
        let s = RaggedStore::open(dir.path(), Mode::ReadOnly).unwrap().unwrap();
        for (k, &n) in lens.iter().enumerate() {
            assert_eq!(values(&s, k as i64), item(k, n), "item {k}");
        }
    }

    #[test]
    fn nested_shapes_grow_across_commits() {
        let dir = tempfile::tempdir().unwrap();
        let mut w = RaggedWriter::append(dir.path(), &WriteOptions::default()).unwrap();
        for k in 1..=3u64 {
            let n = (k * 2) as usize;
            w.push(Dtype::Int16, &le(&vec![k as i16; n]), &[k, 2]).unwrap();
            w.commit().unwrap();
        }
        drop(w);
        let s = RaggedStore::open(dir.path(), Mode::ReadOnly).unwrap().unwrap();
        let shapes: Vec<_> = (0..3).map(|i| s.locate(i).unwrap().shape).collect();
        assert_eq!(shapes, [vec![1, 2], vec![2, 2], vec![3, 2]]);
        assert_eq!(values(&s, 2), [3; 6]);
    }

    #[test]
    fn uncommitted_new_store_leaves_no_files_and_wrong_input_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let mut w = RaggedWriter::append(dir.path(), &WriteOptions::default()).unwrap();
        w.push(Dtype::Int16, &le(&[1]), &[1]).unwrap();
        assert!(matches!(
            w.push(Dtype::Int32, &[0; 4], &[1]),
            Err(Error::InvalidArgument(_))
        ));
        assert!(matches!(
            w.push(Dtype::Int16, &[0; 3], &[1]),
            Err(Error::InvalidArgument(_))
        ));
        drop(w);
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
        crate::DenseStore::create(dir.path(), &WriteOptions::default(), Dtype::Int16, &[1], &le(&[5])).unwrap();
        assert!(matches!(
            RaggedWriter::append(dir.path(), &WriteOptions::default()),
            Err(Error::InvalidArgument(_))
        ));
        assert_eq!(
            crate::DenseStore::open(dir.path(), Mode::ReadOnly).unwrap().bytes(),
            le(&[5])
        );
    }
}

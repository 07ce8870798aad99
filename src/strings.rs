//! The string store (`StringsMmap`): UTF-8 strings concatenated in `data.ninja`, with byte offsets in the
//! `starts/` and `ends/` columns. Optionally every item is one zstd frame (`zstd_level.ninja`), compressed
//! with a trained dictionary (`zstd_dict.ninja`), exactly as mmap-ninja 0.9.0 writes them.

use std::borrow::Cow;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use crate::column::{self, Column};
use crate::commit::{self, Commit, WriteOptions};
use crate::error::{Error, Result};
use crate::files;
use crate::format::{self, StoreKind};
use crate::lock::WriteLock;
use crate::mmap::{Mode, Region};

/// Compression options for a new store.
#[derive(Debug, Clone, Copy)]
pub struct ZstdOptions {
    /// zstd level written to `zstd_level.ninja`.
    pub level: i32,
    /// Train a dictionary of at most this many bytes from the strings.
    pub dictionary_size: Option<usize>,
}

/// The per-item zstd codec of a compressed store.
struct Codec {
    level: i32,
    dictionary: Vec<u8>,
    decompressor: Mutex<zstd::bulk::Decompressor<'static>>,
}

impl std::fmt::Debug for Codec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Codec")
            .field("level", &self.level)
            .finish_non_exhaustive()
    }
}

impl Codec {
    fn open(dir: &Path) -> Result<Option<Codec>> {
        let level_path = dir.join(format::ZSTD_LEVEL_FILE);
        let Some(level) = files::read_text_if_exists(&level_path, format::MAX_METADATA_BYTES)? else {
            return Ok(None);
        };
        let level = format::parse_zstd_level(&level).map_err(|reason| Error::corrupt(&level_path, reason))?;
        let dict_path = dir.join(format::ZSTD_DICT_FILE);
        let dictionary = files::read_if_exists(&dict_path, format::MAX_ZSTD_DICT_BYTES)?.unwrap_or_default();
        Codec::new(level, dictionary, &dict_path).map(Some)
    }

    fn new(level: i32, dictionary: Vec<u8>, dict_path: &Path) -> Result<Codec> {
        let decompressor = zstd::bulk::Decompressor::with_dictionary(&dictionary)
            .map_err(|e| Error::corrupt(dict_path, format!("unusable zstd dictionary: {e}")))?;
        Ok(Codec {
            level,
            dictionary,
            decompressor: Mutex::new(decompressor),
        })
    }

    fn compress(&self, items: &[&str]) -> Result<Vec<Vec<u8>>> {
        let mut compressor = zstd::bulk::Compressor::with_dictionary(self.level, &self.dictionary)
            .map_err(|e| Error::InvalidArgument(format!("zstd level {}: {e}", self.level)))?;
        items
            .iter()
            .map(|s| {
                compressor
                    .compress(s.as_bytes())
                    .map_err(|e| Error::InvalidArgument(format!("zstd: {e}")))
            })
            .collect()
    }

    fn decompress(&self, frame: &[u8], path: &Path, i: usize) -> Result<Vec<u8>> {
        let size = match zstd::zstd_safe::get_frame_content_size(frame) {
            Ok(Some(size)) if size <= format::MAX_DECOMPRESSED_ITEM_BYTES => size as usize,
            _ => {
                return Err(Error::corrupt(
                    path,
                    format!("item {i} is not a zstd frame with a sane content size"),
                ))
            }
        };
        let mut decompressor = self
            .decompressor
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let out = decompressor
            .decompress(frame, size)
            .map_err(|e| Error::corrupt(path, format!("item {i}: zstd: {e}")))?;
        if out.len() != size {
            return Err(Error::corrupt(
                path,
                format!("item {i}: zstd frame size disagrees with its header"),
            ));
        }
        Ok(out)
    }
}

/// An opened, non-empty string store.
#[derive(Debug)]
pub struct StringStore {
    dir: PathBuf,
    data: Arc<Region>,
    starts: Column,
    ends: Column,
    len: usize,
    codec: Option<Codec>,
}

impl StringStore {
    /// Opens `dir`. `Ok(None)` is an empty store (nothing committed yet). Reads are consistent with one
    /// commit: if a writer commits meanwhile, the open starts again.
    pub fn open(dir: &Path) -> Result<Option<StringStore>> {
        let marker = dir.join(format::STARTS_DIR).join(format::SHAPE_FILE);
        let missing = || crate::store::require_empty_dir(dir, StoreKind::String).map(|()| None);
        files::open_consistent(&marker, |held| Self::open_committed(dir, held), missing)
    }

    /// Opens a store whose commit marker (`starts/shape.ninja`) exists: `open_consistent` holds it meanwhile.
    fn open_committed(dir: &Path, marker: &files::Marker) -> Result<Option<StringStore>> {
        crate::store::require_kind(dir, StoreKind::String)?;
        let starts_shape = marker.read(format::MAX_METADATA_BYTES)?;
        let starts = Column::open_with_shape(&dir.join(format::STARTS_DIR), Some(starts_shape))?;
        let len = starts.len();
        let ends = Column::open(&dir.join(format::ENDS_DIR))?;
        if ends.len() < len {
            return Err(Error::corrupt(
                ends.dir(),
                format!("{} ends for {len} strings", ends.len()),
            ));
        }
        let data = Arc::new(Region::open(&dir.join(format::DATA_FILE), Mode::ReadOnly)?);
        Ok(Some(StringStore {
            dir: dir.to_path_buf(),
            data,
            starts,
            ends,
            len,
            codec: Codec::open(dir)?,
        }))
    }

    /// Number of committed strings.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Keeps only the first `len` strings (a snapshot another process took, e.g. before pickling a reader).
    pub fn limit(&mut self, len: usize) {
        self.len = self.len.min(len);
    }

    /// Up to `max` faults of the store, found by decoding every string (offsets, zstd frames, UTF-8).
    pub fn verify(&self, max: usize) -> Vec<Error> {
        (0..self.len as i64)
            .filter_map(|i| self.with_str(i, |_| ()).err())
            .take(max)
            .collect()
    }

    /// Where each string's bytes start in the data file (the first `len()` values are committed).
    #[cfg(feature = "python")]
    pub(crate) fn starts(&self) -> &Column {
        &self.starts
    }

    /// Where each string's bytes end in the data file (the first `len()` values are committed).
    #[cfg(feature = "python")]
    pub(crate) fn ends(&self) -> &Column {
        &self.ends
    }

    /// True when no string is committed.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The mapping of the data file.
    pub fn region(&self) -> &Arc<Region> {
        &self.data
    }

    /// True when items are zstd frames.
    pub fn is_compressed(&self) -> bool {
        self.codec.is_some()
    }

    /// String `index` (negative counts from the end), decoded.
    pub fn get(&self, index: i64) -> Result<String> {
        self.with_str(index, str::to_owned)
    }

    /// Calls `f` with string `index` (negative counts from the end), decoded. The bytes are copied out of the
    /// mapping before they are checked as UTF-8, and only the copy is handed to `f`: mapped bytes may change
    /// under us (another process's `set` writes in place), and a `&str` must stay valid UTF-8 as long as it
    /// lives. Strings of up to `STACK_STRING_BYTES` are copied to the stack, so `f` can make its own string of
    /// them with no allocation in between.
    pub fn with_str<T>(&self, index: i64, f: impl FnOnce(&str) -> T) -> Result<T> {
        let i = format::resolve_index(index, self.len).ok_or(Error::IndexOutOfRange { index, len: self.len })?;
        let raw = self.raw(i)?;
        let mut stack = [0u8; STACK_STRING_BYTES];
        let heap;
        let bytes: &[u8] = match &self.codec {
            None if raw.len() <= STACK_STRING_BYTES => {
                stack[..raw.len()].copy_from_slice(raw);
                &stack[..raw.len()]
            }
            None => {
                heap = raw.to_vec();
                &heap
            }
            Some(codec) => {
                heap = codec.decompress(raw, self.data.path(), i)?;
                &heap
            }
        };
        std::str::from_utf8(bytes)
            .map(f)
            .map_err(|_| not_utf8(self.data.path(), i))
    }

    /// The stored bytes of item `i < len`, bounds-checked against the data file.
    fn raw(&self, i: usize) -> Result<&[u8]> {
        let (start, end) = self.span(i)?;
        Ok(&self.data.bytes()[start..end])
    }

    fn span(&self, i: usize) -> Result<(usize, usize)> {
        let (start, end) = column::span(&self.starts, &self.ends, i, self.len, self.data.len() as u64)?;
        Ok((start as usize, end as usize))
    }

    /// Overwrites strings in place, `indices[k]` by `values[k]`, each with one of the same UTF-8 byte length
    /// (uncompressed stores only). Every replacement is checked before any is written; then all are written under
    /// one hold of the store's lock (waiting as `options` says), and only into the data file this reader opened:
    /// a store replaced since is refused (`Error::Replaced`), since its offsets are not this reader's.
    pub fn set(&self, options: &WriteOptions, indices: &[i64], values: &[&str]) -> Result<()> {
        if self.codec.is_some() {
            return Err(Error::InvalidArgument(
                "In-place modification is not supported for compressed StringsMmap.".into(),
            ));
        }
        if indices.len() != values.len() {
            return Err(Error::InvalidArgument(format!(
                "{} items selected but {} values given",
                indices.len(),
                values.len()
            )));
        }
        let mut writes = Vec::with_capacity(indices.len());
        for (&index, &value) in indices.iter().zip(values) {
            let i = format::resolve_index(index, self.len).ok_or(Error::IndexOutOfRange { index, len: self.len })?;
            let (start, end) = self.span(i)?;
            if value.len() != end - start {
                return Err(Error::InvalidArgument(format!(
                    "string {i} holds {} UTF-8 bytes; a replacement must have the same length, not {}",
                    end - start,
                    value.len()
                )));
            }
            writes.push((start as u64, value.as_bytes()));
        }
        let _lock = WriteLock::acquire(&self.dir, options.wait)?;
        let path = self.dir.join(format::DATA_FILE);
        if files::identity(&path)? != Some(self.data.identity()) {
            return Err(Error::Replaced { path: self.dir.clone() });
        }
        writes
            .into_iter()
            .try_for_each(|(at, bytes)| commit::write_at(&path, at, &[bytes]))
    }

    /// Locks `dir` and appends strings to its store, creating an uncompressed one when empty. The data goes
    /// where the last committed string ends, over anything an interrupted writer left there.
    pub fn extend(dir: &Path, options: &WriteOptions, items: &[&str]) -> Result<()> {
        let _lock = WriteLock::acquire(dir, options.wait)?;
        let Some(store) = StringStore::open(dir)? else {
            return Self::create_locked(dir, options.durable, items, None);
        };
        if items.is_empty() {
            return Ok(());
        }
        let encoded = encode(store.codec.as_ref(), items)?;
        let parts: Vec<&[u8]> = encoded.iter().map(AsRef::as_ref).collect();
        let mut commit = Commit::new(options.durable);
        let first = match store.len {
            0 => 0,
            len => store.span(len - 1)?.1 as u64,
        };
        commit.write_at(&dir.join(format::DATA_FILE), first, &parts)?;
        let (starts, ends) = column::offsets(first, encoded.iter().map(|e| e.len() as u64))?;
        let len = store.len as u64;
        column::write_rows(&dir.join(format::ENDS_DIR), len, &ends, false, &mut commit)?;
        column::write_rows(&dir.join(format::STARTS_DIR), len, &starts, false, &mut commit)?;
        commit.apply()
    }

    /// Writes a new string store in `dir` holding `items`, replacing any store that was there. An empty
    /// `items` writes only `type.ninja`, which both this library and mmap-ninja 0.9.0 open as empty.
    pub fn create(dir: &Path, options: &WriteOptions, items: &[&str], zstd: Option<ZstdOptions>) -> Result<()> {
        let _lock = WriteLock::acquire(dir, options.wait)?;
        crate::store::require_kind(dir, StoreKind::String)?;
        Self::create_locked(dir, options.durable, items, zstd)
    }

    fn create_locked(dir: &Path, durable: bool, items: &[&str], zstd: Option<ZstdOptions>) -> Result<()> {
        // Everything that can refuse the input (the level, dictionary training, compression) runs before the old
        // store's files are removed: a create that fails leaves the store that was there.
        // (An empty store has no frames: nothing to train a dictionary on.)
        let zstd = zstd.filter(|_| !items.is_empty());
        let codec = zstd.map(|options| new_codec(dir, items, options)).transpose()?;
        let encoded = encode(codec.as_ref(), items)?;
        let mut commit = Commit::new(durable);
        for name in [
            format::STARTS_DIR,
            format::ENDS_DIR,
            format::ZSTD_LEVEL_FILE,
            format::ZSTD_DICT_FILE,
        ] {
            files::remove_if_exists(&dir.join(name))?;
        }
        if items.is_empty() {
            commit.stage(dir.join(format::TYPE_FILE), StoreKind::String.name().into());
            return commit.apply();
        }
        commit.replace_now(&dir.join(format::TYPE_FILE), &[StoreKind::String.name().as_bytes()])?;
        if let Some(codec) = &codec {
            if !codec.dictionary.is_empty() {
                commit.replace_now(&dir.join(format::ZSTD_DICT_FILE), &[&codec.dictionary])?;
            }
            commit.replace_now(
                &dir.join(format::ZSTD_LEVEL_FILE),
                &[codec.level.to_string().as_bytes()],
            )?;
        }
        let parts: Vec<&[u8]> = encoded.iter().map(AsRef::as_ref).collect();
        commit.replace_now(&dir.join(format::DATA_FILE), format::data_parts(&parts))?;
        let (starts, ends) = column::offsets(0, encoded.iter().map(|e| e.len() as u64))?;
        Column::create(&dir.join(format::ENDS_DIR), &ends, false, &mut commit)?;
        Column::create(&dir.join(format::STARTS_DIR), &starts, false, &mut commit)?;
        commit.apply()
    }
}

/// The bytes stored for `items`: their UTF-8, or with `codec` one zstd frame each.
fn encode<'a>(codec: Option<&Codec>, items: &[&'a str]) -> Result<Vec<Cow<'a, [u8]>>> {
    Ok(match codec {
        None => items.iter().map(|s| Cow::Borrowed(s.as_bytes())).collect(),
        Some(codec) => codec.compress(items)?.into_iter().map(Cow::Owned).collect(),
    })
}

/// The codec of a new compressed store: the level checked (zstd would clamp one out of range, and the store
/// would then not open), and the dictionary trained when asked for. Writes nothing.
fn new_codec(dir: &Path, items: &[&str], options: ZstdOptions) -> Result<Codec> {
    if !format::ZSTD_LEVELS.contains(&options.level) {
        return Err(Error::InvalidArgument(format!(
            "zstd level {} is not in {:?}",
            options.level,
            format::ZSTD_LEVELS
        )));
    }
    let dictionary = match options.dictionary_size {
        None => Vec::new(),
        Some(size) => {
            let samples: Vec<&[u8]> = items.iter().map(|s| s.as_bytes()).collect();
            zstd::dict::from_samples(&samples, size)
                .map_err(|e| Error::InvalidArgument(format!("cannot train a {size}-byte zstd dictionary: {e}")))?
        }
    };
    Codec::new(options.level, dictionary, &dir.join(format::ZSTD_DICT_FILE))
}

/// Strings up to this many bytes are copied out of the mapping to the stack by `StringStore::with_str`.
const STACK_STRING_BYTES: usize = 64;

fn not_utf8(path: &Path, i: usize) -> Error {
    Error::corrupt(path, format!("string {i} is not valid UTF-8"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lock::Wait;
    use std::fs;

    fn all(store: &StringStore) -> Vec<String> {
        (0..store.len() as i64).map(|i| store.get(i).unwrap()).collect()
    }

    #[test]
    fn create_extend_get_set() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path().join("nested/s");
        StringStore::create(&d, &WriteOptions::default(), &["Torba", "", "日本語"], None).unwrap();
        StringStore::extend(&d, &WriteOptions::default(), &["🥷", "x"]).unwrap();
        let s = StringStore::open(&d).unwrap().unwrap();
        assert_eq!(all(&s), ["Torba", "", "日本語", "🥷", "x"]);
        assert_eq!(s.get(-1).unwrap(), "x");
        let o = WriteOptions::default();
        s.set(&o, &[0], &["Korba"]).unwrap();
        assert!(matches!(s.set(&o, &[0], &["too long"]), Err(Error::InvalidArgument(_))));
        assert_eq!(StringStore::open(&d).unwrap().unwrap().get(0).unwrap(), "Korba");
        // Under another writer's lock: refused. In a store replaced since it was opened: refused, untouched.
        let lock = WriteLock::acquire(&d, Wait::No).unwrap();
        assert!(matches!(s.set(&o, &[0], &["Porba"]), Err(Error::Locked { .. })));
        drop(lock);
        StringStore::create(&d, &o, &["abcde"], None).unwrap();
        assert!(matches!(s.set(&o, &[0], &["Porba"]), Err(Error::Replaced { .. })));
        assert_eq!(StringStore::open(&d).unwrap().unwrap().get(0).unwrap(), "abcde");
    }

    #[test]
    fn empty_and_all_empty_stores() {
        let dir = tempfile::tempdir().unwrap();
        StringStore::create(dir.path(), &WriteOptions::default(), &[], None).unwrap();
        assert!(StringStore::open(dir.path()).unwrap().is_none());
        StringStore::extend(dir.path(), &WriteOptions::default(), &["", ""]).unwrap();
        assert_eq!(all(&StringStore::open(dir.path()).unwrap().unwrap()), ["", ""]);
    }

    #[test]
    fn zstd_with_and_without_dictionary() {
        let strings: Vec<String> = (0..120)
            .map(|i| format!("{} sample {i}", ["Torba", "popo"][i % 2]))
            .collect();
        let refs: Vec<&str> = strings.iter().map(String::as_str).collect();
        for dictionary_size in [None, Some(256)] {
            let dir = tempfile::tempdir().unwrap();
            StringStore::create(
                dir.path(),
                &WriteOptions::default(),
                &refs,
                Some(ZstdOptions {
                    level: 3,
                    dictionary_size,
                }),
            )
            .unwrap();
            StringStore::extend(dir.path(), &WriteOptions::default(), &["tail"]).unwrap();
            let s = StringStore::open(dir.path()).unwrap().unwrap();
            assert!(s.is_compressed());
            assert_eq!(all(&s)[..120], strings[..]);
            assert_eq!(s.get(-1).unwrap(), "tail");
            assert!(s.set(&WriteOptions::default(), &[0], &["x"]).is_err());
        }
    }

    #[test]
    fn a_create_that_refuses_its_input_keeps_the_store_that_was_there() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        StringStore::create(d, &WriteOptions::default(), &["a", "bc"], None).unwrap();
        let zstd = |level, dictionary_size| Some(ZstdOptions { level, dictionary_size });
        // A level zstd would clamp (the store would then not open), and a dictionary too large for the samples.
        for refused in [zstd(23, None), zstd(-131073, None), zstd(3, Some(1 << 20))] {
            let err = StringStore::create(d, &WriteOptions::default(), &["x"], refused).unwrap_err();
            assert!(matches!(err, Error::InvalidArgument(_)), "{err}");
            assert_eq!(all(&StringStore::open(d).unwrap().unwrap()), ["a", "bc"]);
        }
        for level in [22, -131072] {
            StringStore::create(d, &WriteOptions::default(), &["x"], zstd(level, None)).unwrap();
            assert_eq!(all(&StringStore::open(d).unwrap().unwrap()), ["x"]);
        }
        StringStore::create(d, &WriteOptions::default(), &[], zstd(3, Some(1024))).unwrap();
        assert!(StringStore::open(d).unwrap().is_none());
    }

    #[test]
    fn ends_a_crashed_writer_left_longer_are_written_at_the_item_count() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        StringStore::create(d, &WriteOptions::default(), &["a", "b"], None).unwrap();
        StringStore::extend(d, &WriteOptions::default(), &["lost"]).unwrap();
        // As if that extend died after renaming ends/shape.ninja, before starts/shape.ninja.
        fs::write(d.join("starts/shape.ninja"), crate::format::encode_shape(&[2])).unwrap();
        assert_eq!(StringStore::open(d).unwrap().unwrap().len(), 2);
        StringStore::extend(d, &WriteOptions::default(), &["new"]).unwrap();
        assert_eq!(all(&StringStore::open(d).unwrap().unwrap()), ["a", "b", "new"]);
    }

    #[test]
    fn strings_on_either_side_of_the_stack_buffer_decode_and_are_checked() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        // "é" is two bytes: a string one byte over the buffer may end inside a character it cut.
        let strings: Vec<String> = [STACK_STRING_BYTES - 1, STACK_STRING_BYTES, STACK_STRING_BYTES + 1]
            .into_iter()
            .flat_map(|n| ["x".repeat(n), format!("{}é", "x".repeat(n - 2))])
            .collect();
        let refs: Vec<&str> = strings.iter().map(String::as_str).collect();
        StringStore::create(d, &WriteOptions::default(), &refs, None).unwrap();
        assert_eq!(all(&StringStore::open(d).unwrap().unwrap()), strings);
        // Each string's last byte made 0xff, never valid in UTF-8: every one is refused, short or long.
        let mut data = fs::read(d.join("data.ninja")).unwrap();
        let mut end = 0;
        for s in &strings {
            end += s.len();
            data[end - 1] = 0xff;
        }
        fs::write(d.join("data.ninja"), data).unwrap();
        let s = StringStore::open(d).unwrap().unwrap();
        for i in 0..strings.len() as i64 {
            assert!(matches!(s.get(i), Err(Error::Corrupt { .. })), "string {i}");
        }
    }

    #[test]
    fn invalid_utf8_is_corrupt() {
        let dir = tempfile::tempdir().unwrap();
        StringStore::create(dir.path(), &WriteOptions::default(), &["ab"], None).unwrap();
        fs::write(dir.path().join("data.ninja"), [0xff, 0xfe]).unwrap();
        let mut s = StringStore::open(dir.path()).unwrap().unwrap();
        assert!(matches!(s.get(0), Err(Error::Corrupt { .. })));
        assert_eq!(s.verify(10).len(), 1);
        s.limit(0);
        assert!(s.verify(10).is_empty());
    }
}

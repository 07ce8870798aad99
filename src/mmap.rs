//! A mapping of one whole file: shared read-only (mode `r`), shared writable (`r+`) or private copy-on-write
//! (`c`). This is the crate's only place that maps files and turns mapped memory into a Rust slice;
//! `crate::readahead` asks the kernel about its pages.

use std::ops::Range;
use std::path::{Path, PathBuf};

use memmap2::{MmapOptions, MmapRaw};

use crate::error::{Error, Result};
use crate::readahead::Readahead;

/// How a file is mapped: numpy's memmap modes `r`, `r+` and `c`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Shared and read-only (`r`): views are read-only.
    ReadOnly,
    /// Shared and writable (`r+`): writes through views reach the file (the page cache at once).
    ReadWrite,
    /// Private and writable (`c`): writes through views go to private copies of the pages they touch and
    /// never reach the file; pages not written show the file.
    CopyOnWrite,
}

impl Mode {
    /// The mode numpy names `mode` (`r`, `r+` or `c`), `None` for any other name.
    pub fn from_name(mode: &str) -> Option<Mode> {
        match mode {
            "r" => Some(Mode::ReadOnly),
            "r+" => Some(Mode::ReadWrite),
            "c" => Some(Mode::CopyOnWrite),
            _ => None,
        }
    }
}

/// One file mapped as it was when opened. Cheap to share behind an `Arc`; unmapped on drop.
#[derive(Debug)]
pub struct Region {
    /// `None` for an empty file (nothing to map).
    map: Option<MmapRaw>,
    mode: Mode,
    path: PathBuf,
    /// Device and inode of the mapped file: a replaced store has a new data file, an extended one the same.
    identity: (u64, u64),
    /// What this mapping's page-cache probes found so far.
    readahead: Readahead,
}

impl Region {
    /// Maps the whole of `path` in `mode`; for `Mode::ReadWrite` the file must be writable.
    pub fn open(path: &Path, mode: Mode) -> Result<Region> {
        let (file, meta) = crate::files::open_regular(path, mode == Mode::ReadWrite)?;
        let (len, identity) = {
            use std::os::unix::fs::MetadataExt;
            (meta.len(), (meta.dev(), meta.ino()))
        };
        let len = usize::try_from(len).map_err(|_| Error::corrupt(path, "file larger than the address space"))?;
        let map = if len == 0 {
            None
        } else {
            let mut options = MmapOptions::new();
            options.len(len);
            let map = match mode {
                Mode::ReadOnly => options.map_raw_read_only(&file),
                Mode::ReadWrite => options.map_raw(&file),
                // SAFETY: memmap2 marks `map_copy` unsafe because the `MmapMut` it returns derefs to a slice
                // that changes if the file does. That slice is never used: the mapping is turned into an
                // `MmapRaw` at once, and `bytes` below (the crate's one slice of mapped memory) states the
                // invariant for every mode. What is particular to this mode: the mapping is private, so
                // writes through it never reach the file, and a read-only descriptor suffices.
                Mode::CopyOnWrite => unsafe { options.map_copy(&file) }.map(MmapRaw::from),
            };
            Some(map.map_err(Error::io(path))?)
        };
        Ok(Region {
            map,
            mode,
            path: path.to_path_buf(),
            identity,
            readahead: Readahead::default(),
        })
    }

    /// The mapped bytes.
    pub fn bytes(&self) -> &[u8] {
        match &self.map {
            None => &[],
            // SAFETY: `map` is a live mapping of exactly `map.len()` bytes that stays mapped until `self`
            // drops, and the returned slice borrows `self`, so it cannot outlive the mapping. The pages stay
            // backed because this crate never truncates a store file (writers write past the committed end, or
            // write a new file and rename it over the old one, which leaves this inode intact). What could
            // still break this is
            // another program truncating the file: mmap-ninja 0.9.0 does (it rewrites `data.ninja` in place
            // with mode "wb" when it recreates a store), so a reader of ours mapping a store that 0.9.0
            // recreates at the same moment can get SIGBUS; the README says so. Contents may change under
            // us (another process, or a writable view in mode r+ or c); they are plain bytes with no validity
            // invariant, and every offset read from them is bounds-checked before use.
            Some(map) => unsafe { std::slice::from_raw_parts(map.as_ptr(), map.len()) },
        }
    }

    /// The mapping, for `crate::readahead`'s advice; `None` for an empty file.
    pub(crate) fn raw(&self) -> Option<&MmapRaw> {
        self.map.as_ref()
    }

    /// Starts reading those of `ranges` that are not in the page cache, for a copy (`Readahead::prefetch`).
    pub fn prefetch(&self, ranges: &[Range<usize>]) {
        self.readahead.prefetch(self, ranges);
    }

    /// Whether views of `count` more large items are due a probe (`Readahead::views_due_probe`).
    pub fn views_due_probe(&self, count: usize) -> bool {
        self.readahead.views_due_probe(count)
    }

    /// Starts reading those of `ranges`, about to be handed out as views, that are not in the page cache,
    /// unless views go unread here (`Readahead::prefetch_views`).
    pub fn prefetch_views(&self, ranges: &[Range<usize>]) {
        self.readahead.prefetch_views(self, ranges);
    }

    /// Base pointer for writable buffer export, `None` when the region is read-only or empty.
    pub fn writable_ptr(&self) -> Option<*mut u8> {
        match &self.map {
            Some(map) if self.mode != Mode::ReadOnly => Some(map.as_mut_ptr()),
            _ => None,
        }
    }

    /// Writes what was written through a shared writable mapping to disk and waits for it (`msync`); a
    /// read-only, copy-on-write or empty mapping has nothing to write.
    pub fn flush(&self) -> Result<()> {
        match &self.map {
            Some(map) if self.mode == Mode::ReadWrite => map.flush().map_err(Error::io(&self.path)),
            _ => Ok(()),
        }
    }

    /// Mapped length in bytes.
    pub fn len(&self) -> usize {
        self.map.as_ref().map_or(0, MmapRaw::len)
    }

    /// True for an empty file.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// How the file is mapped.
    pub fn mode(&self) -> Mode {
        self.mode
    }

    /// Device and inode of the mapped file when it was opened.
    pub fn identity(&self) -> (u64, u64) {
        self.identity
    }

    /// The mapped file.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn maps_whole_file_and_empty_file() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("f");
        std::fs::write(&p, b"hello").unwrap();
        let r = Region::open(&p, Mode::ReadOnly).unwrap();
        assert_eq!(r.bytes(), b"hello");
        assert!(r.writable_ptr().is_none());
        std::fs::write(dir.path().join("e"), b"").unwrap();
        let e = Region::open(&dir.path().join("e"), Mode::ReadWrite).unwrap();
        assert!(e.is_empty() && e.bytes().is_empty());
        let w = Region::open(&p, Mode::ReadWrite).unwrap();
        w.flush().unwrap();
        let c = Region::open(&p, Mode::CopyOnWrite).unwrap();
        assert!(c.writable_ptr().is_some() && w.writable_ptr().is_some());
        assert_eq!(c.bytes(), b"hello");
        c.flush().unwrap();
        r.flush().unwrap();
        e.flush().unwrap();
        let missing = Region::open(&dir.path().join("nope"), Mode::ReadOnly).unwrap_err();
        assert!(matches!(missing, Error::Io { ref source, .. } if source.kind() == std::io::ErrorKind::NotFound));
    }
}

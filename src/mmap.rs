//! A read-only (or, for mode `r+`, writable) shared mapping of one whole file. This is the crate's only
//! place that turns mapped memory into a Rust slice; `crate::readahead` asks the kernel about its pages.

use std::ops::Range;
use std::path::{Path, PathBuf};

use memmap2::{MmapOptions, MmapRaw};

use crate::error::{Error, Result};
use crate::readahead::Readahead;

/// One file mapped as it was when opened. Cheap to share behind an `Arc`; unmapped on drop.
#[derive(Debug)]
pub struct Region {
    /// `None` for an empty file (nothing to map).
    map: Option<MmapRaw>,
    writable: bool,
    path: PathBuf,
    /// Device and inode of the mapped file: a replaced store has a new data file, an extended one the same.
    identity: (u64, u64),
    /// What this mapping's page-cache probes found so far.
    readahead: Readahead,
}

impl Region {
    /// Maps the whole of `path` (shared). `writable` maps it read-write; the file must then be writable.
    pub fn open(path: &Path, writable: bool) -> Result<Region> {
        let (file, meta) = crate::files::open_regular(path, writable)?;
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
            let map = if writable {
                options.map_raw(&file)
            } else {
                options.map_raw_read_only(&file)
            };
            Some(map.map_err(Error::io(path))?)
        };
        Ok(Region {
            map,
            writable,
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
            // us (another process, or a writable view in mode r+); they are plain bytes with no validity
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
            Some(map) if self.writable => Some(map.as_mut_ptr()),
            _ => None,
        }
    }

    /// Writes what was written through a writable mapping to disk and waits for it (`msync`); a read-only or
    /// empty mapping has nothing to write.
    pub fn flush(&self) -> Result<()> {
        match &self.map {
            Some(map) if self.writable => map.flush().map_err(Error::io(&self.path)),
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

    /// True when mapped read-write.
    pub fn is_writable(&self) -> bool {
        self.writable
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
        let r = Region::open(&p, false).unwrap();
        assert_eq!(r.bytes(), b"hello");
        assert!(r.writable_ptr().is_none());
        std::fs::write(dir.path().join("e"), b"").unwrap();
        let e = Region::open(&dir.path().join("e"), true).unwrap();
        assert!(e.is_empty() && e.bytes().is_empty());
        let w = Region::open(&p, true).unwrap();
        w.flush().unwrap();
        r.flush().unwrap();
        e.flush().unwrap();
        let missing = Region::open(&dir.path().join("nope"), false).unwrap_err();
        assert!(matches!(missing, Error::Io { ref source, .. } if source.kind() == std::io::ErrorKind::NotFound));
    }
}

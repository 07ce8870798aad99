//! Small-file reads with a size cap, so a hostile metadata file cannot make us allocate without bound.

use std::fs::File;
use std::io::Read;
use std::path::Path;

use crate::error::{Error, Result};

/// Reads `path` whole, refusing files larger than `cap` bytes.
pub fn read_capped(path: &Path, cap: u64) -> Result<Vec<u8>> {
    let file = File::open(path).map_err(Error::io(path))?;
    let mut bytes = Vec::new();
    file.take(cap + 1).read_to_end(&mut bytes).map_err(Error::io(path))?;
    if bytes.len() as u64 > cap {
        return Err(Error::corrupt(
            path,
            format!("file is larger than the {cap}-byte limit"),
        ));
    }
    Ok(bytes)
}

/// Reads a small ASCII/UTF-8 metadata file.
pub fn read_text(path: &Path, cap: u64) -> Result<String> {
    String::from_utf8(read_capped(path, cap)?).map_err(|_| Error::corrupt(path, "metadata is not UTF-8 text"))
}

/// Reads a small metadata file, `None` when it does not exist (one open instead of a stat and an open).
pub fn read_text_if_exists(path: &Path, cap: u64) -> Result<Option<String>> {
    match read_text(path, cap) {
        Ok(text) => Ok(Some(text)),
        Err(Error::Io { source, .. }) if source.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(err) => Err(err),
    }
}

/// True when `path` exists (an I/O error other than not-found is reported, not hidden).
pub fn exists(path: &Path) -> Result<bool> {
    path.try_exists().map_err(Error::io(path))
}

/// How many times `open_consistent` tries before giving up on a store that keeps changing.
const OPEN_ATTEMPTS: usize = 100;

/// Device, inode, size and change times of `path` (`None` when missing): a rename over the file changes them
/// (the times and size too, should the file system hand the freed inode number to the new file).
fn identity(path: &Path) -> Result<Option<[i64; 6]>> {
    use std::os::unix::fs::MetadataExt;
    match std::fs::metadata(path) {
        Ok(m) => Ok(Some([
            m.dev() as i64,
            m.ino() as i64,
            m.size() as i64,
            m.mtime_nsec(),
            m.ctime(),
            m.ctime_nsec(),
        ])),
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(err) => Err(Error::io(path)(err)),
    }
}

/// Runs `open` (which reads several files of one store) until no commit landed while it ran: `marker` is the
/// file a writer replaces last, so an unchanged marker means every file read belongs to the same commit.
pub fn open_consistent<T>(marker: &Path, mut open: impl FnMut() -> Result<T>) -> Result<T> {
    for _ in 0..OPEN_ATTEMPTS {
        let before = identity(marker)?;
        let result = open();
        if identity(marker)? == before {
            return result;
        }
        std::thread::yield_now();
    }
    Err(Error::corrupt(
        marker,
        "the store kept changing while it was being opened",
    ))
}

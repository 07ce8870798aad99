//! Small-file reads with a size cap, so a hostile metadata file cannot make us allocate without bound.

use std::fs::{File, Metadata};
use std::path::Path;

use crate::error::{Error, Result};

/// Opens `path` (a file or a directory) for reading, and writing when `writable`, without blocking (a FIFO
/// planted in a store would otherwise hang the reader until someone writes to it) and without ever making a
/// terminal planted there the process's controlling terminal.
fn open_nonblocking(path: &Path, writable: bool) -> Result<File> {
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::OpenOptions::new()
        .read(true)
        .write(writable)
        .custom_flags(libc::O_NONBLOCK | libc::O_NOCTTY)
        .open(path)
        .map_err(Error::io(path))
}

/// Opens `path` as `open_nonblocking` does, refusing anything but a regular file; also returns its metadata
/// (one `fstat` serves both).
pub fn open_regular(path: &Path, writable: bool) -> Result<(File, Metadata)> {
    let file = open_nonblocking(path, writable)?;
    let meta = file.metadata().map_err(Error::io(path))?;
    if !meta.is_file() {
        return Err(Error::corrupt(path, "not a regular file"));
    }
    Ok((file, meta))
}

/// Reads `path` whole, refusing files larger than `cap` bytes and anything but a regular file. The type is
/// checked before reading: a symlink planted in a store could otherwise make us read `/dev/zero` up to the
/// cap, or take what is waiting on a terminal or a pipe.
pub fn read_capped(path: &Path, cap: u64) -> Result<Vec<u8>> {
    let (file, meta) = open_regular(path, false)?;
    read_open(&file, &meta, path, cap)
}

/// Reads the open `file` (at `path`, `meta` its metadata) whole, from its start whatever its position, as
/// `read_capped`.
fn read_open(file: &File, meta: &Metadata, path: &Path, cap: u64) -> Result<Vec<u8>> {
    use std::os::unix::fs::FileExt;
    if !meta.is_file() {
        return Err(Error::corrupt(path, "not a regular file"));
    }
    // Room for a byte more than fstat's size: one read that returns exactly that size stopped at the end of
    // the file, so it is done without the read that returns 0. Anything else (a short read, a file that
    // changed size, a procfs file that fstat calls empty) reads on to the end, since a shape file cut short
    // would parse as a shorter shape. At most a byte past `cap` is read, to tell a file over it.
    let limit = usize::try_from(cap).unwrap_or(usize::MAX).saturating_add(1);
    let mut bytes = vec![0u8; (meta.len().min(cap) as usize).saturating_add(1)];
    let mut filled = 0;
    while filled < limit {
        if filled == bytes.len() {
            bytes.resize(bytes.len().saturating_mul(2).min(limit), 0);
        }
        let read = match file.read_at(&mut bytes[filled..], filled as u64) {
            Err(err) if err.kind() == std::io::ErrorKind::Interrupted => continue,
            other => other.map_err(Error::io(path))?,
        };
        filled += read;
        if read == 0 || (filled as u64 == meta.len() && filled < bytes.len()) {
            break;
        }
    }
    if filled as u64 > cap {
        return Err(Error::corrupt(
            path,
            format!("file is larger than the {cap}-byte limit"),
        ));
    }
    bytes.truncate(filled);
    Ok(bytes)
}

/// Reads a small ASCII/UTF-8 metadata file.
pub fn read_text(path: &Path, cap: u64) -> Result<String> {
    String::from_utf8(read_capped(path, cap)?).map_err(|_| Error::corrupt(path, "metadata is not UTF-8 text"))
}

/// `result` with a not-found I/O error turned into `None`.
fn unless_missing<T>(result: Result<T>) -> Result<Option<T>> {
    match result {
        Ok(value) => Ok(Some(value)),
        Err(Error::Io { source, .. }) if source.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(err) => Err(err),
    }
}

/// Reads `path` whole (capped), `None` when it does not exist (one open instead of a stat and an open).
pub fn read_if_exists(path: &Path, cap: u64) -> Result<Option<Vec<u8>>> {
    unless_missing(read_capped(path, cap))
}

/// Reads a small metadata file, `None` when it does not exist.
pub fn read_text_if_exists(path: &Path, cap: u64) -> Result<Option<String>> {
    unless_missing(read_text(path, cap))
}

/// Removes the file or directory tree at `path` if there is one (unlinking: memory mapped from it stays valid).
pub fn remove_if_exists(path: &Path) -> Result<()> {
    let removed = match std::fs::symlink_metadata(path) {
        Ok(meta) if meta.is_dir() => std::fs::remove_dir_all(path),
        Ok(_) => std::fs::remove_file(path),
        Err(err) => Err(err),
    };
    unless_missing(removed.map_err(Error::io(path))).map(drop)
}

/// True when `path` exists (an I/O error other than not-found is reported, not hidden).
pub fn exists(path: &Path) -> Result<bool> {
    path.try_exists().map_err(Error::io(path))
}

/// How many times `open_consistent` tries before giving up on a store that keeps changing.
const OPEN_ATTEMPTS: usize = 100;

/// Device and inode of `path`, `None` when missing.
pub(crate) fn identity(path: &Path) -> Result<Option<(u64, u64)>> {
    use std::os::unix::fs::MetadataExt;
    match std::fs::metadata(path) {
        Ok(m) => Ok(Some((m.dev(), m.ino()))),
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(err) => Err(Error::io(path)(err)),
    }
}

/// The commit marker `open_consistent` holds open while a store is read.
pub struct Marker<'a> {
    path: &'a Path,
    file: File,
    meta: Metadata,
}

impl Marker<'_> {
    /// The marker's bytes (a regular file of at most `cap` bytes), read from the held file: the very commit
    /// whose identity `open_consistent` checks, without opening it a second time.
    pub fn read(&self, cap: u64) -> Result<Vec<u8>> {
        read_open(&self.file, &self.meta, self.path, cap)
    }
}

/// Runs `open` (which reads several files of one store) until no commit landed while it ran: `marker` is the
/// file a writer replaces last, so a marker still naming the same file means every file read belongs to one
/// commit. The marker is held open meanwhile (and handed to `open`), so its inode number cannot be freed and
/// handed to a new file. A missing marker is answered by `missing` without reading anything else (reading
/// other files then could mix two commits that both came and went while the marker was absent).
pub fn open_consistent<T>(
    marker: &Path,
    mut open: impl FnMut(&Marker) -> Result<T>,
    missing: impl FnOnce() -> Result<T>,
) -> Result<T> {
    use std::os::unix::fs::MetadataExt;
    for _ in 0..OPEN_ATTEMPTS {
        let file = match open_nonblocking(marker, false) {
            Ok(file) => file,
            Err(Error::Io { source, .. }) if source.kind() == std::io::ErrorKind::NotFound => return missing(),
            Err(err) => return Err(err),
        };
        let meta = file.metadata().map_err(Error::io(marker))?;
        let before = (meta.dev(), meta.ino());
        let held = Marker {
            path: marker,
            file,
            meta,
        };
        let result = open(&held);
        if identity(marker)? == Some(before) {
            return result;
        }
        drop(held);
        std::thread::yield_now();
    }
    Err(Error::corrupt(
        marker,
        "the store kept changing while it was being opened",
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fifos_devices_and_directories_are_refused_without_blocking() {
        let dir = tempfile::tempdir().unwrap();
        let fifo = dir.path().join("shape.ninja");
        let made = std::process::Command::new("mkfifo").arg(&fifo).status().unwrap();
        assert!(made.success());
        assert!(matches!(read_capped(&fifo, 64), Err(Error::Corrupt { .. })));
        // Devices, and a pipe with bytes waiting (what a symlink to /dev/stdin finds): refused unread.
        for device in ["/dev/null", "/dev/zero"] {
            assert!(
                matches!(read_capped(Path::new(device), 1 << 30), Err(Error::Corrupt { .. })),
                "{device}"
            );
        }
        let (reader, mut writer) = std::io::pipe().unwrap();
        std::io::Write::write_all(&mut writer, b"float64").unwrap();
        let fd = std::os::fd::AsRawFd::as_raw_fd(&reader);
        let piped = std::path::PathBuf::from(format!("/proc/self/fd/{fd}"));
        assert!(matches!(read_capped(&piped, 64), Err(Error::Corrupt { .. })));
        let mut waiting = [0u8; 7];
        std::io::Read::read_exact(&mut &reader, &mut waiting).unwrap();
        assert_eq!(&waiting, b"float64");
        assert!(matches!(
            read_capped(dir.path(), 64),
            Err(Error::Corrupt { .. }) | Err(Error::Io { .. })
        ));
    }

    #[test]
    fn reads_up_to_the_cap_and_refuses_more() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        for cap in [0u64, 8, 4096, 8191, 8192, 1 << 15] {
            let exact = vec![7u8; cap as usize];
            std::fs::write(&path, &exact).unwrap();
            assert_eq!(read_capped(&path, cap).unwrap(), exact, "cap {cap}");
            std::fs::write(&path, vec![7u8; cap as usize + 1]).unwrap();
            assert!(
                matches!(read_capped(&path, cap), Err(Error::Corrupt { .. })),
                "cap {cap}"
            );
        }
    }

    #[test]
    fn reads_on_when_the_size_fstat_reports_is_not_the_whole_file() {
        // procfs files are regular files that fstat reports as empty: the first read returns more than that.
        let path = Path::new("/proc/self/cmdline");
        let whole = std::fs::read(path).unwrap();
        assert!(whole.len() > 1);
        assert_eq!(read_capped(path, 1 << 20).unwrap(), whole);
        assert!(matches!(read_capped(path, 1), Err(Error::Corrupt { .. })));
    }

    #[test]
    fn remove_and_read_if_exists_treat_missing_as_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let (file, tree) = (dir.path().join("f"), dir.path().join("t"));
        std::fs::write(&file, b"x").unwrap();
        std::fs::create_dir_all(tree.join("sub")).unwrap();
        std::fs::write(tree.join("sub/g"), b"y").unwrap();
        assert_eq!(read_if_exists(&file, 8).unwrap(), Some(b"x".to_vec()));
        for path in [&file, &tree] {
            remove_if_exists(path).unwrap();
            assert!(!path.exists());
            remove_if_exists(path).unwrap();
        }
        assert_eq!(read_if_exists(&file, 8).unwrap(), None);
        assert_eq!(read_text_if_exists(&file, 8).unwrap(), None);
    }
}

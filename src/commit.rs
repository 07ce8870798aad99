//! How a write becomes visible. Data and index tails are written past the committed ends of their files
//! (never over committed bytes, never truncating a file a reader may map); then each changed `shape.ninja`
//! is replaced by writing a temporary file and renaming it over the old one. A store's length is defined by
//! one such file (`starts/shape.ninja` for ragged and string stores, `shape.ninja` for dense ones), which a
//! writer replaces last: one rename makes the whole extend visible.

use std::fs::{self, File, OpenOptions};
use std::io::{BufWriter, Seek, SeekFrom, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};

/// Writes `bytes` at `offset` of `path`, creating the file if needed. Used for positional tails: whatever
/// lies past the committed end is an uncommitted leftover that no reader looks at.
pub fn write_at(path: &Path, offset: u64, bytes: &[u8]) -> Result<()> {
    let file = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(false)
        .open(path)
        .map_err(Error::io(path))?;
    file.write_all_at(bytes, offset).map_err(Error::io(path))
}

/// Appends `parts` back to back at the end of `path` (creating it), after padding the file to a multiple of
/// `align`. Small parts are coalesced; returns the offset the first byte was written at.
pub fn append_aligned(path: &Path, align: u64, parts: &[&[u8]]) -> Result<u64> {
    let mut file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(path)
        .map_err(Error::io(path))?;
    let end = file.seek(SeekFrom::End(0)).map_err(Error::io(path))?;
    let offset = end.div_ceil(align) * align;
    file.seek(SeekFrom::Start(offset)).map_err(Error::io(path))?;
    let mut writer = BufWriter::with_capacity(1 << 20, file);
    for part in parts {
        writer.write_all(part).map_err(Error::io(path))?;
    }
    writer.flush().map_err(Error::io(path))?;
    Ok(offset)
}

/// Replaces `path` with `bytes` atomically: readers see the old file or the new one, never a mix.
pub fn replace_file(path: &Path, bytes: &[u8]) -> Result<()> {
    replace_file_parts(path, &[bytes])
}

/// Replaces `path` with `parts` written back to back, atomically (temporary file, then rename).
pub fn replace_file_parts(path: &Path, parts: &[&[u8]]) -> Result<()> {
    let tmp = temp_path(path);
    let result = (|| {
        let mut writer = BufWriter::with_capacity(1 << 20, File::create(&tmp).map_err(Error::io(&tmp))?);
        for part in parts {
            writer.write_all(part).map_err(Error::io(&tmp))?;
        }
        writer.into_inner().map_err(|e| Error::io(&tmp)(e.into_error()))?;
        fs::rename(&tmp, path).map_err(Error::io(path))
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
}

/// Creates `dir` and its parents.
pub fn create_dir(dir: &Path) -> Result<()> {
    fs::create_dir_all(dir).map_err(Error::io(dir))
}

fn temp_path(path: &Path) -> PathBuf {
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(format!(".tmp-{}", std::process::id()));
    path.with_file_name(name)
}

/// Metadata replacements staged during a write and applied in order at the end, so that the file that
/// defines the store's length is renamed last.
#[derive(Default, Debug)]
pub struct Commit {
    staged: Vec<(PathBuf, Vec<u8>)>,
}

impl Commit {
    /// Stages the replacement of `path` by `bytes`.
    pub fn stage(&mut self, path: PathBuf, bytes: Vec<u8>) {
        self.staged.push((path, bytes));
    }

    /// Appends another commit's replacements after ours.
    pub fn merge(&mut self, other: Commit) {
        self.staged.extend(other.staged);
    }

    /// Applies every replacement in staging order.
    pub fn apply(self) -> Result<()> {
        for (path, bytes) in self.staged {
            replace_file(&path, &bytes)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replace_is_whole_and_leaves_no_temp() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("shape.ninja");
        replace_file(&p, b"one").unwrap();
        replace_file(&p, b"two!").unwrap();
        assert_eq!(fs::read(&p).unwrap(), b"two!");
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 1);
    }

    #[test]
    fn append_aligned_pads_to_element_boundary() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("data.ninja");
        assert_eq!(append_aligned(&p, 8, &[b"abc"]).unwrap(), 0);
        assert_eq!(append_aligned(&p, 8, &[b"x", b"", b"y"]).unwrap(), 8);
        assert_eq!(fs::read(&p).unwrap(), b"abc\0\0\0\0\0xy");
    }

    #[test]
    fn write_at_overwrites_only_past_offset() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("d");
        fs::write(&p, b"committedjunk!").unwrap();
        write_at(&p, 9, b"NEW").unwrap();
        assert_eq!(fs::read(&p).unwrap(), b"committedNEWk!");
    }
}

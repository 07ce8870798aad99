//! How a write becomes visible. Data and index tails are written past the committed ends of their files
//! (never over committed bytes, never truncating a file a reader may map); then each changed `shape.ninja`
//! is replaced by writing a temporary file and renaming it over the old one. A store's length is defined by
//! one such file (`starts/shape.ninja` for ragged and string stores, `shape.ninja` for dense ones), which a
//! writer replaces last: one rename makes the whole extend visible.

use std::fs::{self, File, OpenOptions};
use std::io::{BufWriter, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};
use crate::lock::Wait;

/// Writes `parts` back to back at `offset` of `path`, creating the file if needed. Used for tails: whatever
/// lies past the committed end is an uncommitted leftover that no reader looks at.
pub(crate) fn write_at(path: &Path, offset: u64, parts: &[&[u8]]) -> Result<()> {
    let mut file = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(false)
        .open(path)
        .map_err(Error::io(path))?;
    file.seek(SeekFrom::Start(offset)).map_err(Error::io(path))?;
    let mut writer = BufWriter::with_capacity(1 << 20, file);
    for part in parts {
        writer.write_all(part).map_err(Error::io(path))?;
    }
    writer.flush().map_err(Error::io(path))
}

/// Replaces `path` with `parts` written back to back, atomically (temporary file, then rename); `durable`
/// flushes the temporary file to disk before the rename.
pub(crate) fn replace_file_parts(path: &Path, parts: &[&[u8]], durable: bool) -> Result<()> {
    let tmp = temp_path(path);
    let result = (|| {
        let mut writer = BufWriter::with_capacity(1 << 20, File::create(&tmp).map_err(Error::io(&tmp))?);
        for part in parts {
            writer.write_all(part).map_err(Error::io(&tmp))?;
        }
        let file = writer.into_inner().map_err(|e| Error::io(&tmp)(e.into_error()))?;
        if durable {
            file.sync_all().map_err(Error::io(&tmp))?;
        }
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

/// The temporary file a replacement of `path` is written to (per process, so writers cannot collide).
pub(crate) fn temp_path(path: &Path) -> PathBuf {
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(format!(".tmp-{}", std::process::id()));
    path.with_file_name(name)
}

/// True for a name `temp_path` gives: `<name>.tmp-<pid>`.
pub(crate) fn is_temp_name(name: &str) -> bool {
    name.rsplit_once(".tmp-")
        .is_some_and(|(stem, pid)| !stem.is_empty() && !pid.is_empty() && pid.bytes().all(|b| b.is_ascii_digit()))
}

/// Removes the temporary files (`temp_path`'s) that writers killed before they renamed them left in the store
/// at `dir` and its columns (a new store's data file among them: a build killed before its first commit
/// leaves all of its data there). Only the holder of the store's lock may call this: every writer writes its
/// temporary files under the lock, so none of them is being written.
pub(crate) fn remove_stale_temps(dir: &Path) -> Result<()> {
    remove_temps_in(dir, 0)
}

fn remove_temps_in(dir: &Path, depth: usize) -> Result<()> {
    // Columns, and the columns of a nested shapes store: never another store (a sharded store's shards have
    // writers of their own).
    const COLUMNS: [&str; 4] = [
        crate::format::STARTS_DIR,
        crate::format::ENDS_DIR,
        crate::format::SHAPES_DIR,
        crate::format::FLATTENED_SHAPES_DIR,
    ];
    let entries = match fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(err)
            if matches!(
                err.kind(),
                std::io::ErrorKind::NotFound | std::io::ErrorKind::NotADirectory
            ) =>
        {
            return Ok(())
        }
        Err(err) => return Err(Error::io(dir)(err)),
    };
    for entry in entries {
        let entry = entry.map_err(Error::io(dir))?;
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        let kind = entry.file_type().map_err(Error::io(entry.path()))?;
        if kind.is_file() && is_temp_name(name) {
            crate::files::remove_if_exists(&entry.path())?;
        } else if kind.is_dir() && depth < 2 && COLUMNS.contains(&name) {
            remove_temps_in(&entry.path(), depth + 1)?;
        }
    }
    Ok(())
}

/// Flushes a file's (or a directory's entries') data to disk.
fn sync(path: &Path) -> Result<()> {
    #[cfg(test)]
    tests::SYNCED.with_borrow_mut(|synced| synced.push(path.to_path_buf()));
    File::open(path).and_then(|f| f.sync_all()).map_err(Error::io(path))
}

/// How a write goes about it: whether it waits for another writer, and whether it survives power loss.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct WriteOptions {
    /// How long to wait for another writer of the same store (default: not at all).
    pub wait: Wait,
    /// fsync the data, then the commit, then the directories (default off: a commit survives the process
    /// being killed at any moment, but not a power loss or kernel crash).
    pub durable: bool,
}

/// One write: the files it wrote before committing, and the metadata replacements staged to be applied in
/// order at the end, so that the file that defines the store's length is renamed last.
#[derive(Default, Debug)]
pub struct Commit {
    durable: bool,
    written: Vec<PathBuf>,
    staged: Vec<(PathBuf, Vec<u8>)>,
}

impl Commit {
    /// A commit that is `durable` (see `WriteOptions`) or not.
    pub fn new(durable: bool) -> Commit {
        Commit {
            durable,
            ..Commit::default()
        }
    }

    /// True when this commit flushes to disk.
    pub fn is_durable(&self) -> bool {
        self.durable
    }

    /// Records a file the caller wrote itself, to be flushed before the commit when durable.
    pub fn record(&mut self, path: PathBuf) {
        self.written.push(path);
    }

    /// Writes `parts` at `offset` of `path` now (see `write_at`).
    pub fn write_at(&mut self, path: &Path, offset: u64, parts: &[&[u8]]) -> Result<()> {
        write_at(path, offset, parts)?;
        self.record(path.to_path_buf());
        Ok(())
    }

    /// Replaces `path` by `parts` now (for files that readers only look at once the commit lands).
    pub fn replace_now(&mut self, path: &Path, parts: &[&[u8]]) -> Result<()> {
        replace_file_parts(path, parts, self.durable)?;
        self.record(path.to_path_buf());
        Ok(())
    }

    /// Stages the replacement of `path` by `bytes`.
    pub fn stage(&mut self, path: PathBuf, bytes: Vec<u8>) {
        self.staged.push((path, bytes));
    }

    /// Appends another commit's files and replacements after ours.
    pub fn merge(&mut self, other: Commit) {
        self.written.extend(other.written);
        self.staged.extend(other.staged);
    }

    /// Applies every replacement in staging order. When durable: the written files are flushed first, then
    /// every replacement but the last and the directories holding them, and only then the last one (the
    /// store's length) and its directory.
    pub fn apply(mut self) -> Result<()> {
        let last = self.staged.pop();
        if self.durable {
            self.written.iter().try_for_each(|path| sync(path))?;
        }
        for (path, bytes) in &self.staged {
            replace_file_parts(path, &[bytes], self.durable)?;
        }
        if self.durable {
            let paths = self.written.iter().chain(self.staged.iter().map(|(path, _)| path));
            // Parents hold the renamed entries; grandparents the entries of directories this write created.
            let mut dirs: Vec<&Path> = paths
                .flat_map(|p| p.ancestors().skip(1).take(2))
                .map(|d| if d.as_os_str().is_empty() { Path::new(".") } else { d })
                .collect();
            dirs.sort();
            dirs.dedup();
            dirs.into_iter().try_for_each(sync)?;
        }
        if let Some((path, bytes)) = last {
            replace_file_parts(&path, &[&bytes], self.durable)?;
            if let (true, Some(dir)) = (self.durable, path.parent()) {
                sync(if dir.as_os_str().is_empty() {
                    Path::new(".")
                } else {
                    dir
                })?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use std::cell::RefCell;

    #[test]
    fn stale_temporary_files_are_removed_from_the_store_and_its_columns_only() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        let stale = [
            "data.ninja.tmp-123",
            "starts/shape.ninja.tmp-9",
            "shapes/ends/data.ninja.tmp-77",
        ];
        let kept = [
            "data.ninja",
            "notes.tmp-x",
            ".tmp-5",
            "starts/shape.ninja",
            "shard-00000/data.ninja.tmp-5", // another store: a shard has writers of its own
            "shapes.nested-tmp/data.ninja.tmp-3",
        ];
        for name in stale.iter().chain(&kept) {
            let path = d.join(name);
            fs::create_dir_all(path.parent().unwrap()).unwrap();
            fs::write(&path, b"x").unwrap();
        }
        remove_stale_temps(d).unwrap();
        assert!(stale.iter().all(|name| !d.join(name).exists()));
        assert!(kept.iter().all(|name| d.join(name).exists()));
        remove_stale_temps(&d.join("missing")).unwrap();
        remove_stale_temps(&d.join("data.ninja")).unwrap();
        assert!(is_temp_name(
            temp_path(&d.join("shape.ninja")).file_name().unwrap().to_str().unwrap()
        ));
    }

    thread_local! {
        /// Every path `sync` flushed on this thread, in order.
        pub(crate) static SYNCED: RefCell<Vec<PathBuf>> = const { RefCell::new(Vec::new()) };
    }

    fn commit_two(dir: &Path, durable: bool) -> Vec<PathBuf> {
        SYNCED.with_borrow_mut(Vec::clear);
        let mut commit = Commit::new(durable);
        commit.write_at(&dir.join("data.ninja"), 0, &[b"rows"]).unwrap();
        commit.stage(dir.join("ends.ninja"), b"e".to_vec());
        commit.stage(dir.join("shape.ninja"), b"s".to_vec());
        commit.apply().unwrap();
        assert_eq!(fs::read(dir.join("shape.ninja")).unwrap(), b"s");
        SYNCED.with_borrow(Clone::clone)
    }

    #[test]
    fn durable_commit_flushes_data_then_directories_then_the_length() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("store");
        create_dir(&dir).unwrap();
        assert!(commit_two(&dir, false).is_empty());
        let synced = commit_two(&dir, true);
        assert_eq!(synced[0], dir.join("data.ninja"));
        assert!(synced.contains(&dir) && synced.contains(&tmp.path().to_path_buf()));
        // The length file's directory is flushed last, after the other replacement's directory was.
        assert_eq!(synced.last(), Some(&dir));
        assert_eq!(synced.iter().filter(|p| **p == dir).count(), 2);
    }

    #[test]
    fn replace_is_whole_and_leaves_no_temp() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("shape.ninja");
        replace_file_parts(&p, &[b"one"], false).unwrap();
        replace_file_parts(&p, &[b"tw", b"o!"], true).unwrap();
        assert_eq!(fs::read(&p).unwrap(), b"two!");
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 1);
    }

    #[test]
    fn write_at_overwrites_only_past_offset() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("d");
        fs::write(&p, b"committedjunk!").unwrap();
        write_at(&p, 9, &[b"NE", b"W"]).unwrap();
        assert_eq!(fs::read(&p).unwrap(), b"committedNEWk!");
    }
}

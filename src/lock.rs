//! One writer at a time per store: a write takes an exclusive `flock` on the store's directory for as long as
//! it runs. Taking it also removes the temporary files of writers killed before they committed
//! (`commit::remove_stale_temps`): only the holder may. Locking the directory itself leaves the store's files
//! exactly as mmap-ninja 0.9.0 writes them (no lock file). Readers never lock: they rely on the commit protocol
//! (see `commit`). The lock belongs to the process that took it; a forked child that inherited it is refused
//! (`check_process`).
//!
//! A child process started while a lock is held (by any thread: `std::process::Command`, Python's
//! `subprocess`, multiprocessing's fork start method) shares the locked open file, until it `exec`s or for as
//! long as it lives. The owner therefore releases the lock explicitly (`LOCK_UN`, which releases it for every
//! copy) rather than by closing its descriptor: a child's copy never keeps a released lock held. Only a lock
//! whose owner died without releasing it stays held by such a child, until it `exec`s or exits (the Python
//! package closes the writers a forked child inherits). A writer that would fail at once keeps trying for
//! `GRACE` all the same, which costs nothing when the store is free.

use std::fs::{File, TryLockError};
use std::io::ErrorKind;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::error::{Error, Result};

/// How long a writer waits for another writer to finish.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Wait {
    /// Fail when the store is still locked after `GRACE`.
    #[default]
    No,
    /// Wait at most this long.
    For(Duration),
    /// Wait until the other writer is done.
    Forever,
}

/// How often a waiting writer tries the lock again (during `GRACE`: every `GRACE_POLL`).
const POLL: Duration = Duration::from_millis(10);
const GRACE_POLL: Duration = Duration::from_millis(1);

/// How long a writer that does not wait (`Wait::No`) tries the lock (see the module's documentation): far
/// longer than a child takes from `fork` to `exec`, too short for a user to notice.
pub const GRACE: Duration = Duration::from_millis(50);

/// An exclusive lock on a store directory, released on drop.
#[derive(Debug)]
pub struct WriteLock {
    dir: PathBuf,
    /// Holds the `flock`, released explicitly on drop.
    file: File,
    pid: u32,
    /// How many levels of `dir` (itself, its parent, ...) the lock created; those still empty on drop are
    /// removed, so a write that failed before writing anything leaves no trace.
    created: usize,
}

impl WriteLock {
    /// Locks `dir` (creating it and its parents), waiting as `wait` says.
    pub fn acquire(dir: &Path, wait: Wait) -> Result<WriteLock> {
        let started = Instant::now();
        let (deadline, poll) = match wait {
            Wait::No => (started.checked_add(GRACE), GRACE_POLL),
            Wait::For(limit) => (started.checked_add(limit), POLL),
            Wait::Forever => (None, POLL),
        };
        loop {
            let created = create_levels(dir)?;
            let file = match File::open(dir) {
                Ok(file) => file,
                // The previous holder removed the directory (empty) since it was created: create it again.
                Err(err) if err.kind() == ErrorKind::NotFound => continue,
                Err(err) => return Err(Error::io(dir)(err)),
            };
            match file.try_lock() {
                // The previous holder may have removed the (empty) directory meanwhile: lock the one there now.
                Ok(()) if same_file(&file, dir)? => {
                    let lock = WriteLock {
                        dir: dir.to_path_buf(),
                        file,
                        pid: std::process::id(),
                        created,
                    };
                    crate::commit::remove_stale_temps(dir)?;
                    return Ok(lock);
                }
                Ok(()) => continue,
                Err(TryLockError::WouldBlock) => {}
                Err(TryLockError::Error(err)) => return Err(Error::io(dir)(err)),
            }
            let now = Instant::now();
            if deadline.is_some_and(|d| now >= d) {
                return Err(Error::Locked {
                    path: dir.to_path_buf(),
                });
            }
            // The last try is at the deadline.
            std::thread::sleep(deadline.map_or(poll, |d| d.saturating_duration_since(now).min(poll)));
        }
    }

    /// The locked store directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Refuses to write from a process other than the one that took the lock: a forked child shares the
    /// parent's lock and would write concurrently with it.
    pub fn check_process(&self) -> Result<()> {
        let current = std::process::id();
        if current != self.pid {
            return Err(Error::ForeignProcess {
                owner: self.pid,
                current,
            });
        }
        Ok(())
    }
}

/// Creates `dir` and its missing parents; returns how many levels of `dir` (itself, its parent, ...) this
/// call created: counted as they are created, since another writer may create or remove them meanwhile.
fn create_levels(dir: &Path) -> Result<usize> {
    let levels: Vec<&Path> = dir.ancestors().filter(|a| !a.as_os_str().is_empty()).collect();
    let mut missing = 0;
    while missing < levels.len() && !crate::files::exists(levels[missing])? {
        missing += 1;
    }
    let mut created = 0;
    for level in levels[..missing].iter().rev() {
        match std::fs::create_dir(level) {
            Ok(()) => created += 1,
            // Created by someone else: neither it nor the levels above it are this lock's to remove.
            Err(err) if err.kind() == ErrorKind::AlreadyExists => created = 0,
            // A parent was removed since it was found (by the lock that created it): start again.
            Err(err) if err.kind() == ErrorKind::NotFound => return create_levels(dir),
            Err(err) => return Err(Error::io(level)(err)),
        }
    }
    Ok(created)
}

/// True when `file` is still the directory found at `dir`.
fn same_file(file: &File, dir: &Path) -> Result<bool> {
    use std::os::unix::fs::MetadataExt;
    let held = file.metadata().map_err(Error::io(dir))?;
    Ok(crate::files::identity(dir).ok().flatten() == Some((held.dev(), held.ino())))
}

impl Drop for WriteLock {
    fn drop(&mut self) {
        // A forked child's copy only closes its descriptor: unlocking would release the lock its parent holds.
        if self.check_process().is_ok() {
            // `remove_dir` removes only empty directories: anything written stays.
            let created = self.dir.ancestors().take(self.created);
            let _ = created.map(std::fs::remove_dir).take_while(|r| r.is_ok()).count();
            let _ = self.file.unlock();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn second_lock_fails_until_first_is_dropped_and_waits_time_out() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path().join("new/store");
        let first = WriteLock::acquire(&d, Wait::No).unwrap();
        assert!(matches!(WriteLock::acquire(&d, Wait::No), Err(Error::Locked { .. })));
        let started = Instant::now();
        let waited = WriteLock::acquire(&d, Wait::For(GRACE * 2));
        assert!(matches!(waited, Err(Error::Locked { .. })) && started.elapsed() >= GRACE * 2);
        first.check_process().unwrap();
        let releaser = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(30));
            drop(first);
        });
        let last = WriteLock::acquire(&d, Wait::Forever).unwrap();
        releaser.join().unwrap();
        // Directories the lock created and nothing was written to go away with it; others stay.
        drop(last);
        assert!(!dir.path().join("new").exists());
        std::fs::create_dir_all(&d).unwrap();
        std::fs::write(d.join("type.ninja"), "ragged").unwrap();
        drop(WriteLock::acquire(&d, Wait::No).unwrap());
        assert!(d.join("type.ninja").exists());
    }

    #[test]
    fn writers_racing_for_a_new_store_do_not_fail_when_the_other_removes_its_directories() {
        // Each drop removes the directories its lock created, possibly while the other writer creates them.
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path().join("new/store");
        std::thread::scope(|scope| {
            for _ in 0..2 {
                scope.spawn(|| {
                    for _ in 0..300 {
                        drop(WriteLock::acquire(&d, Wait::Forever).unwrap());
                    }
                });
            }
        });
    }

    #[test]
    fn a_child_process_being_started_meanwhile_does_not_make_a_released_lock_look_held() {
        // Between `fork` and `exec` a child shares the lock's open file: released by closing it (before the
        // explicit release, and without `GRACE`), about one writer in ten that ran while another thread
        // started processes failed with `Locked`.
        let dir = tempfile::tempdir().unwrap();
        let _ = std::process::Command::new("true").status(); // its binary in the page cache: children exec fast
        let done = std::sync::atomic::AtomicBool::new(false);
        std::thread::scope(|scope| {
            scope.spawn(|| {
                for _ in 0..30 {
                    let _ = std::process::Command::new("true").status();
                }
                done.store(true, std::sync::atomic::Ordering::Relaxed);
            });
            let mut taken = 0;
            while !done.load(std::sync::atomic::Ordering::Relaxed) || taken < 100 {
                drop(WriteLock::acquire(dir.path(), Wait::No).unwrap());
                taken += 1;
            }
        });
    }
}

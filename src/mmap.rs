//! A read-only (or, for mode `r+`, writable) shared mapping of one whole file. This is the crate's only
//! place that turns mapped memory into a Rust slice, and that asks the kernel about it (`prefetch`).

use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};

#[cfg(target_os = "linux")]
use memmap2::Advice;
use memmap2::{MmapOptions, MmapRaw};

use crate::error::{Error, Result};

/// One file mapped as it was when opened. Cheap to share behind an `Arc`; unmapped on drop.
#[derive(Debug)]
pub struct Region {
    /// `None` for an empty file (nothing to map).
    map: Option<MmapRaw>,
    writable: bool,
    path: PathBuf,
    /// Device and inode of the mapped file: a replaced store has a new data file, an extended one the same.
    identity: (u64, u64),
    /// Set once the file system turned down a page-cache probe (`prefetch`): no more are tried.
    no_probes: AtomicBool,
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
            no_probes: AtomicBool::new(false),
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

    /// Starts reading the bytes of each of `ranges` into the page cache unless the page holding its first byte
    /// is there already: a one-byte `preadv2(RWF_NOWAIT)` asks (it fails with EAGAIN instead of reading from
    /// the disk, though finding the data on disk may still block briefly), and a cold range gets one
    /// `madvise(MADV_WILLNEED)`, which queues its reads and returns (the kernel caps one call at the larger
    /// of the device's readahead and request sizes). Touched page by page instead, a cold range is read one
    /// readahead window around each fault, each read waited for before the next is asked for.
    ///
    /// `madvise` alone would do, but on a range already in memory it costs about 12 us per 600 KB, the probe
    /// about 1 us; and when the first `WARM_AFTER_PROBES` ranges are all in memory, the rest are taken to be
    /// too and are not probed (their misses fault as they would without this), so a warm batch pays a few
    /// probes, not one per item. The price: with a fraction p of the items in memory, a batch goes
    /// unprefetched with probability p^8. The file is opened for the call (a store keeps no descriptor open)
    /// and must still be the one mapped. A hint: nothing changes when a call fails; a file system without
    /// RWF_NOWAIT (some network file systems) gets no prefetch, and no more probes, from then on.
    pub fn prefetch(&self, ranges: &[Range<usize>]) {
        #[cfg(target_os = "linux")]
        {
            use std::os::unix::fs::MetadataExt;
            let Some(map) = &self.map else { return };
            let mut ranges = ranges.iter().filter(|r| !r.is_empty() && r.end <= map.len()).peekable();
            if ranges.peek().is_none() || self.no_probes.load(Ordering::Relaxed) {
                return;
            }
            let Ok((file, meta)) = crate::files::open_regular(&self.path, false) else {
                return;
            };
            if (meta.dev(), meta.ino()) != self.identity {
                return;
            }
            let mut all_cached = true;
            for (k, range) in ranges.enumerate() {
                if all_cached && k == WARM_AFTER_PROBES {
                    return;
                }
                match is_cached(&file, range.start as u64) {
                    Ok(true) => {}
                    Ok(false) => {
                        all_cached = false;
                        drop(map.advise_range(Advice::WillNeed, range.start, range.len()));
                    }
                    Err(Unanswered::Unsupported) => return self.no_probes.store(true, Ordering::Relaxed),
                    Err(Unanswered::Failed) => return,
                }
            }
        }
        #[cfg(not(target_os = "linux"))]
        let _ = ranges;
    }

    /// Base pointer for writable buffer export, `None` when the region is read-only or empty.
    pub fn writable_ptr(&self) -> Option<*mut u8> {
        match &self.map {
            Some(map) if self.writable => Some(map.as_mut_ptr()),
            _ => None,
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

/// `Region::prefetch` stops probing after this many ranges all found in memory.
#[cfg(target_os = "linux")]
const WARM_AFTER_PROBES: usize = 8;

/// Why `is_cached` could not tell.
#[cfg(target_os = "linux")]
#[derive(Debug, PartialEq, Eq)]
enum Unanswered {
    /// The system or file system has no RWF_NOWAIT reads: asking again is pointless.
    Unsupported,
    /// An I/O error, or `offset` past the end of the file (which shrank).
    Failed,
}

/// Whether the byte at `offset` of `file` is in the page cache. On Linux 5.9 and later a miss also starts
/// a small read-ahead at `offset`.
#[cfg(target_os = "linux")]
fn is_cached(file: &std::fs::File, offset: u64) -> std::result::Result<bool, Unanswered> {
    use rustix::io::{preadv2, Errno, ReadWriteFlags};
    let mut byte = [0u8; 1];
    loop {
        match preadv2(
            file,
            &mut [std::io::IoSliceMut::new(&mut byte)],
            offset,
            ReadWriteFlags::NOWAIT,
        ) {
            Ok(0) => return Err(Unanswered::Failed),
            Ok(_) => return Ok(true),
            Err(Errno::AGAIN) => return Ok(false),
            Err(Errno::INTR) => continue,
            Err(Errno::OPNOTSUPP | Errno::NOSYS | Errno::INVAL) => return Err(Unanswered::Unsupported),
            Err(_) => return Err(Unanswered::Failed),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Bytes of `path` in the page cache, by util-linux's `fincore`; `None` without it.
    #[cfg(target_os = "linux")]
    fn cached_bytes(path: &Path) -> Option<u64> {
        let out = std::process::Command::new("fincore")
            .args(["--bytes", "--noheadings", "--output", "RES"])
            .arg(path)
            .output()
            .ok()?;
        String::from_utf8(out.stdout).ok()?.trim().parse().ok()
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn prefetch_reads_cold_ranges_into_the_page_cache_and_nothing_else() {
        // Under target/, on the disk the build uses: /tmp may be a tmpfs, whose pages cannot be dropped.
        let target = Path::new(env!("CARGO_MANIFEST_DIR")).join("target");
        let dir = tempfile::tempdir_in(&target).or_else(|_| tempfile::tempdir()).unwrap();
        let path = dir.path().join("f");
        std::fs::write(&path, vec![7u8; 8 << 20]).unwrap();
        std::fs::File::open(&path).unwrap().sync_all().unwrap();
        // GNU dd's `iflag=nocache count=0` drops the file's pages (posix_fadvise DONTNEED).
        let dropped = std::process::Command::new("dd")
            .args([
                format!("if={}", path.display()),
                "iflag=nocache".into(),
                "count=0".into(),
            ])
            .output()
            .is_ok_and(|out| out.status.success());
        let region = Region::open(&path, false).unwrap();
        // A probe at the end of the file reads nothing, and tells whether the system has RWF_NOWAIT.
        let probes = is_cached(&std::fs::File::open(&path).unwrap(), 8 << 20) == Err(Unanswered::Failed);
        if !dropped || !probes || cached_bytes(&path) != Some(0) {
            eprintln!(
                "skipped: no dd, fincore or RWF_NOWAIT, or the page cache of {} cannot be dropped (tmpfs?)",
                path.display()
            );
            return;
        }
        // Two ranges of 128 KiB (within any device's readahead limit, which caps what one WILLNEED reads),
        // far apart; the rest of the file must stay out. (Polled with fincore: a probe of a cold page would
        // start reading it.)
        let ranges = [0..128 << 10, (4 << 20)..(4 << 20) + (128 << 10)];
        region.prefetch(&ranges);
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        let mut cached = 0;
        while cached < 256 << 10 && std::time::Instant::now() < deadline {
            std::thread::sleep(std::time::Duration::from_millis(1));
            cached = cached_bytes(&path).unwrap();
        }
        assert!((256 << 10..4 << 20).contains(&cached), "{cached} bytes cached");
        let file = std::fs::File::open(&path).unwrap();
        assert!(ranges
            .iter()
            .all(|r| is_cached(&file, r.start as u64) == Ok(true) && is_cached(&file, r.end as u64 - 1) == Ok(true)));
        // Already cached: nothing more is read. Out of bounds and empty ranges are ignored.
        region.prefetch(&[0..128 << 10, 0..(9 << 20), 10..10]);
        assert_eq!(cached_bytes(&path), Some(cached));
        // After WARM_AFTER_PROBES cached ranges, the rest is not even probed (a probe of a cold page would
        // start reading it); one cold range among the first ones keeps every range probed.
        let far = (6 << 20)..(6 << 20) + (128 << 10);
        region.prefetch(&[vec![0..4096; WARM_AFTER_PROBES], vec![far.clone()]].concat());
        std::thread::sleep(std::time::Duration::from_millis(50));
        assert_eq!(
            cached_bytes(&path),
            Some(cached),
            "a range past the warm probes was read"
        );
        region.prefetch(&[vec![0..4096; WARM_AFTER_PROBES - 1], vec![far]].concat());
        while cached_bytes(&path) < Some(cached + (128 << 10)) {
            assert!(
                std::time::Instant::now() < deadline + std::time::Duration::from_secs(5),
                "never read"
            );
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
    }

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
        let missing = Region::open(&dir.path().join("nope"), false).unwrap_err();
        assert!(matches!(missing, Error::Io { ref source, .. } if source.kind() == std::io::ErrorKind::NotFound));
    }
}

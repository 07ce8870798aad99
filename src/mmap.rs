//! A read-only (or, for mode `r+`, writable) shared mapping of one whole file. This is the crate's only
//! place that turns mapped memory into a Rust slice, and that asks the kernel about it (`prefetch`).

use std::ops::Range;
use std::path::{Path, PathBuf};

use memmap2::{Advice, MmapOptions, MmapRaw};

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

    /// Starts reading the bytes in `range` into the page cache unless the page holding its first byte is there
    /// already: one `mincore` of that page and, for a cold range, one `madvise(MADV_WILLNEED)`, which queues
    /// the reads (up to the device's readahead limit) and returns. Touched page by page instead, a cold range
    /// is read one readahead window around each fault, each read waited for before the next is asked for.
    /// `madvise` alone would do, but on a range already in memory it costs about 12 us per 600 KB, the probe
    /// well under 1 us. Linux answers `mincore` truthfully only to the file's owner or to a process that may
    /// write it (others see every page resident): for them, and off Linux, nothing is prefetched. A hint:
    /// nothing changes when a call fails.
    pub fn prefetch(&self, range: Range<usize>) {
        let Some(map) = &self.map else { return };
        if range.is_empty() || range.end > map.len() || is_resident(map, range.start) {
            return;
        }
        let _ = map.advise_range(Advice::WillNeed, range.start, range.len());
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

/// Whether the page of `map` holding byte `offset` (within the map) is in memory. An error reads as resident:
/// then nothing is prefetched.
#[cfg(target_os = "linux")]
fn is_resident(map: &MmapRaw, offset: usize) -> bool {
    let mut status = 0u8;
    // SAFETY: `sysconf` only reads a constant. `mincore` writes one status byte per page of the queried range
    // into its third argument; the range is one byte long, so it writes exactly one byte, into `status`,
    // which lives across the call. It only reads the page tables: an address outside any mapping or not
    // page-aligned is an error (ENOMEM, EINVAL), never undefined behaviour, and `page` lies within `map`
    // anyway, since `offset` does and the mapping starts on a page boundary. What would break it: a range
    // longer than one page with a one-byte `status`.
    let failed = unsafe {
        let page_size = usize::try_from(libc::sysconf(libc::_SC_PAGESIZE))
            .unwrap_or(4096)
            .max(1);
        let page = (map.as_ptr() as usize + offset) / page_size * page_size;
        libc::mincore(page as *mut libc::c_void, 1, &raw mut status) != 0
    };
    failed || status & 1 == 1
}

/// Elsewhere every page reads as resident (`mincore` differs between systems): nothing is prefetched.
#[cfg(not(target_os = "linux"))]
fn is_resident(_map: &MmapRaw, _offset: usize) -> bool {
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefetch_reads_a_cold_range_into_the_page_cache() {
        // Under target/, on the disk the build uses: /tmp may be a tmpfs, whose pages cannot be dropped.
        let target = Path::new(env!("CARGO_MANIFEST_DIR")).join("target");
        let dir = tempfile::tempdir_in(&target).or_else(|_| tempfile::tempdir()).unwrap();
        let path = dir.path().join("f");
        std::fs::write(&path, vec![7u8; 4 << 20]).unwrap();
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
        let map = region.map.as_ref().unwrap();
        if !dropped || is_resident(map, 0) || is_resident(map, 3 << 20) {
            eprintln!(
                "skipped: the page cache of {} cannot be dropped here (tmpfs?)",
                path.display()
            );
            return;
        }
        // 128 KiB: within any device's readahead limit, which caps what one WILLNEED reads.
        region.prefetch(0..128 << 10);
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        while !(is_resident(map, 0) && is_resident(map, (128 << 10) - 1)) {
            assert!(
                std::time::Instant::now() < deadline,
                "the prefetched range never arrived"
            );
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
        assert!(!is_resident(map, 3 << 20), "a range not prefetched was read too");
        // Out of bounds and empty ranges are ignored.
        region.prefetch(0..(5 << 20));
        region.prefetch(10..10);
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

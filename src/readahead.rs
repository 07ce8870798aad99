//! Reading cold items ahead. Touched page by page, a mapped item of a few hundred KB that is not in the page
//! cache is read one readahead window around each fault, each read waited for before the next is asked for
//! (about 8 ms for 600 KB on this project's virtual disk); asked for whole with `madvise(MADV_WILLNEED)`, its
//! reads are queued at once (about 1 ms). A probe, a one-byte `preadv2(RWF_NOWAIT)`, first tells whether a
//! range is in memory: `madvise` alone would do, but on a range already in memory it costs about 12 us per
//! 600 KB, the probe about 1 us. Everything here is a hint: nothing changes when a call fails, and a file
//! system without RWF_NOWAIT (some network file systems) gets no readahead, and no more probes, from then on.

use std::ops::Range;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use crate::mmap::Region;

/// `Readahead::prefetch` stops probing after this many ranges all found in memory.
const WARM_AFTER_PROBES: usize = 8;

/// `Readahead::views_due_probe` probes every view until this many in a row were found in memory, and then
/// once per `PROBE_VIEWS_EVERY`.
const WARM_VIEWS: usize = 256;
const PROBE_VIEWS_EVERY: usize = 1024;

/// Large views handed out without a probe after a view asked for went unread.
const UNREAD_VIEW_SKIPS: usize = 1024;

/// What one mapping's probes found so far. Threads racing on it only blur a hint.
#[derive(Debug, Default)]
pub struct Readahead {
    /// Set once the file system turned down a probe: no more are tried.
    no_probes: AtomicBool,
    /// Views found in memory in a row (up to `WARM_VIEWS`), and large views handed out since the last probe.
    warm_views: AtomicUsize,
    unprobed_views: AtomicUsize,
    /// Address of a page of the view asked for last (0: none), looked at when the next cold views come.
    asked_view: AtomicUsize,
    /// Large views still to hand out without a probe.
    unread_skips: AtomicUsize,
}

/// What a call's probes found: every probed range in memory (how many), or at least one not.
#[derive(Debug, PartialEq, Eq)]
enum Probed {
    Warm(usize),
    Cold,
}

impl Readahead {
    /// Starts reading each of `ranges` of `region`, which are about to be copied, unless the page holding its
    /// first byte is in memory already. When the first `WARM_AFTER_PROBES` ranges are all in memory, the rest
    /// are taken to be too and are not probed (their misses fault as they would without this), so a warm
    /// batch pays a few probes, not one per item; with a fraction p of the items in memory, a batch goes
    /// unprefetched with probability p^8. The file is opened for the call (a store keeps no descriptor open)
    /// and must still be the one mapped.
    pub fn prefetch(&self, region: &Region, ranges: &[Range<usize>]) {
        self.probe(region, ranges, |_| true);
    }

    /// Whether views of `count` more large items are due a probe (`prefetch_views`): every time until the
    /// probes found `WARM_VIEWS` views in a row in memory, then once per `PROBE_VIEWS_EVERY` views; none for
    /// `UNREAD_VIEW_SKIPS` views after views went unread.
    ///
    /// The numbers weigh a probe (about 5 us: an open, a one-byte read, a close) against a cold item read
    /// fault by fault (milliseconds): a store that misses more than about one item in a thousand had better
    /// be probed every time, so only a long run of hits stops that; a warm store then pays a few nanoseconds
    /// per view, and one that goes cold again is noticed within about `PROBE_VIEWS_EVERY` / (its miss rate)
    /// views.
    pub fn views_due_probe(&self, count: usize) -> bool {
        if self.no_probes.load(Ordering::Relaxed) {
            return false;
        }
        let skips = self.unread_skips.load(Ordering::Relaxed);
        if skips > 0 {
            self.unread_skips.store(skips.saturating_sub(count), Ordering::Relaxed);
            return false;
        }
        if self.warm_views.load(Ordering::Relaxed) < WARM_VIEWS {
            return true;
        }
        let seen = self
            .unprobed_views
            .fetch_add(count, Ordering::Relaxed)
            .saturating_add(count);
        if seen < PROBE_VIEWS_EVERY {
            return false;
        }
        self.unprobed_views.store(0, Ordering::Relaxed);
        true
    }

    /// `prefetch` for ranges about to be handed out as views, which their reader may never touch (a scan of
    /// the items' shapes): a view asked for is remembered, and when the next call finds cold views while its
    /// middle page is still not mapped in this process, views go unread here: that call's cold views are not
    /// asked for, and the next `UNREAD_VIEW_SKIPS` views are not even probed. Also counts views found in
    /// memory, for `views_due_probe`.
    pub fn prefetch_views(&self, region: &Region, ranges: &[Range<usize>]) {
        let mut read = None;
        let mut asked = None;
        let found = self.probe(region, ranges, |range| {
            let ask = *read.get_or_insert_with(|| self.views_read());
            if ask && asked.is_none() {
                asked = Some(page_address(region, range.start + range.len() / 2));
            }
            ask
        });
        if let Some(Some(address)) = asked {
            self.asked_view.store(address, Ordering::Relaxed);
        }
        match found {
            Some(Probed::Warm(found)) => {
                let warm = self.warm_views.load(Ordering::Relaxed).saturating_add(found);
                self.warm_views.store(warm.min(WARM_VIEWS), Ordering::Relaxed);
            }
            Some(Probed::Cold) => self.warm_views.store(0, Ordering::Relaxed),
            None => {}
        }
    }

    /// Whether this call's cold views are to be asked for (see `prefetch_views`).
    fn views_read(&self) -> bool {
        let asked = self.asked_view.swap(0, Ordering::Relaxed);
        if asked != 0 && is_mapped(asked) == Some(false) {
            self.unread_skips.store(UNREAD_VIEW_SKIPS, Ordering::Relaxed);
            return false;
        }
        true
    }

    /// Probes `ranges` of `region` and asks for the cold ones that `ask` accepts; what the probes found,
    /// `None` when nothing was probed.
    fn probe(
        &self,
        region: &Region,
        ranges: &[Range<usize>],
        mut ask: impl FnMut(&Range<usize>) -> bool,
    ) -> Option<Probed> {
        #[cfg(target_os = "linux")]
        {
            use std::os::unix::fs::MetadataExt;
            let map = region.raw()?;
            let mut ranges = ranges.iter().filter(|r| !r.is_empty() && r.end <= map.len()).peekable();
            if ranges.peek().is_none() || self.no_probes.load(Ordering::Relaxed) {
                return None;
            }
            let (file, meta) = crate::files::open_regular(region.path(), false).ok()?;
            if (meta.dev(), meta.ino()) != region.identity() {
                return None;
            }
            let (mut warm, mut cold) = (0, false);
            for range in ranges {
                if !cold && warm == WARM_AFTER_PROBES {
                    break;
                }
                match is_cached(&file, range.start as u64) {
                    Ok(true) => warm += 1,
                    Ok(false) => {
                        cold = true;
                        if ask(range) {
                            drop(map.advise_range(memmap2::Advice::WillNeed, range.start, range.len()));
                        }
                    }
                    Err(Unanswered::Unsupported) => {
                        self.no_probes.store(true, Ordering::Relaxed);
                        return None;
                    }
                    Err(Unanswered::Failed) => break,
                }
            }
            match (cold, warm) {
                (true, _) => Some(Probed::Cold),
                (false, 0) => None,
                (false, found) => Some(Probed::Warm(found)),
            }
        }
        #[cfg(not(target_os = "linux"))]
        {
            let _ = (region, ranges, &mut ask);
            None
        }
    }
}

/// The address of the page holding byte `offset` of `region`'s mapping.
fn page_address(region: &Region, offset: usize) -> Option<usize> {
    let base = region.raw()?.as_ptr() as usize;
    Some(base.checked_add(offset)? & !(page_size() - 1))
}

fn page_size() -> usize {
    #[cfg(target_os = "linux")]
    return rustix::param::page_size();
    #[cfg(not(target_os = "linux"))]
    return 4096;
}

/// Whether the page at `address` is mapped in this process's page tables (it is once read through the
/// mapping, and never while it is out of the page cache), from `/proc/self/pagemap`; `None` when that
/// cannot tell.
fn is_mapped(address: usize) -> Option<bool> {
    #[cfg(target_os = "linux")]
    {
        use std::os::unix::fs::FileExt;
        let pagemap = std::fs::File::open("/proc/self/pagemap").ok()?;
        let mut entry = [0u8; 8];
        let at = (address / page_size()).checked_mul(8)?;
        pagemap.read_exact_at(&mut entry, at as u64).ok()?;
        Some(u64::from_ne_bytes(entry) >> 63 == 1)
    }
    #[cfg(not(target_os = "linux"))]
    {
        let _ = address;
        None
    }
}

/// Why `is_cached` could not tell.
#[cfg(target_os = "linux")]
#[derive(Debug, PartialEq, Eq)]
enum Unanswered {
    /// The system or file system has no RWF_NOWAIT reads: asking again is pointless.
    Unsupported,
    /// An I/O error, or `offset` past the end of the file (which shrank).
    Failed,
}

/// Whether the byte at `offset` of `file` is in the page cache (it fails with EAGAIN instead of reading
/// from the disk, though finding the data on disk may still block briefly). On Linux 5.9 and later a miss
/// also starts a small read-ahead at `offset`.
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

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use std::path::{Path, PathBuf};
    use std::time::{Duration, Instant};

    use super::*;

    /// Bytes of `path` in the page cache, by util-linux's `fincore`; `None` without it.
    fn cached_bytes(path: &Path) -> Option<u64> {
        let out = std::process::Command::new("fincore")
            .args(["--bytes", "--noheadings", "--output", "RES"])
            .arg(path)
            .output()
            .ok()?;
        String::from_utf8(out.stdout).ok()?.trim().parse().ok()
    }

    /// An 8 MiB file under target/ (on the disk the build uses: /tmp may be a tmpfs, whose pages cannot be
    /// dropped), out of the page cache when `cold`; `None` (the test is skipped) without dd, fincore or
    /// RWF_NOWAIT, or where the page cache cannot be dropped.
    fn file(cold: bool) -> Option<(tempfile::TempDir, PathBuf)> {
        let target = Path::new(env!("CARGO_MANIFEST_DIR")).join("target");
        let dir = tempfile::tempdir_in(&target).or_else(|_| tempfile::tempdir()).unwrap();
        let path = dir.path().join("f");
        std::fs::write(&path, vec![7u8; 8 << 20]).unwrap();
        std::fs::File::open(&path).unwrap().sync_all().unwrap();
        // A probe at the end of the file reads nothing, and tells whether the system has RWF_NOWAIT.
        let probes = is_cached(&std::fs::File::open(&path).unwrap(), 8 << 20) == Err(Unanswered::Failed);
        // GNU dd's `iflag=nocache count=0` drops the file's pages (posix_fadvise DONTNEED).
        let dropped = !cold
            || std::process::Command::new("dd")
                .args([
                    format!("if={}", path.display()),
                    "iflag=nocache".into(),
                    "count=0".into(),
                ])
                .output()
                .is_ok_and(|out| out.status.success());
        if !probes || !dropped || (cold && cached_bytes(&path) != Some(0)) {
            eprintln!(
                "skipped: no dd, fincore or RWF_NOWAIT, or the page cache of {} cannot be dropped (tmpfs?)",
                path.display()
            );
            return None;
        }
        Some((dir, path))
    }

    /// Waits (up to 5 s) until at least `bytes` of `path` are in the page cache; returns how many are.
    fn await_cached(path: &Path, bytes: u64) -> u64 {
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            let cached = cached_bytes(path).unwrap();
            if cached >= bytes || Instant::now() > deadline {
                return cached;
            }
            std::thread::sleep(Duration::from_millis(1));
        }
    }

    #[test]
    fn prefetch_reads_cold_ranges_into_the_page_cache_and_nothing_else() {
        let Some((_dir, path)) = file(true) else { return };
        let region = Region::open(&path, false).unwrap();
        // Two ranges of 128 KiB (within any device's readahead limit, which caps what one WILLNEED reads),
        // far apart; the rest of the file must stay out. (Polled with fincore: a probe of a cold page would
        // start reading it.)
        let ranges = [0..128 << 10, (4 << 20)..(4 << 20) + (128 << 10)];
        region.prefetch(&ranges);
        let cached = await_cached(&path, 256 << 10);
        assert!((256 << 10..4 << 20).contains(&cached), "{cached} bytes cached");
        let file = std::fs::File::open(&path).unwrap();
        assert!(ranges
            .iter()
            .all(|r| is_cached(&file, r.start as u64) == Ok(true) && is_cached(&file, r.end as u64 - 1) == Ok(true)));
        // Already cached: nothing more is read. Out of bounds and empty ranges are ignored.
        // (At most as many bytes as before: the kernel may evict some meanwhile.)
        region.prefetch(&[0..128 << 10, 0..(9 << 20), 10..10]);
        assert!(cached_bytes(&path) <= Some(cached));
        // After WARM_AFTER_PROBES cached ranges, the rest is not even probed (a probe of a cold page would
        // start reading it); one cold range among the first ones keeps every range probed.
        let far = (6 << 20)..(6 << 20) + (128 << 10);
        region.prefetch(&[vec![0..4096; WARM_AFTER_PROBES], vec![far.clone()]].concat());
        std::thread::sleep(Duration::from_millis(50));
        assert!(
            cached_bytes(&path) <= Some(cached),
            "a range past the warm probes was read"
        );
        region.prefetch(&[vec![0..4096; WARM_AFTER_PROBES - 1], vec![far]].concat());
        assert!(
            await_cached(&path, cached + (128 << 10)) >= cached + (128 << 10),
            "never read"
        );
    }

    /// `prefetch_views` for the one view of `range`.
    fn view(region: &Region, range: Range<usize>) {
        region.prefetch_views(std::slice::from_ref(&range));
    }

    #[test]
    fn views_are_probed_until_a_long_run_is_in_memory_then_once_in_a_while() {
        let Some((_dir, path)) = file(false) else { return };
        let region = Region::open(&path, false).unwrap();
        for _ in 0..WARM_VIEWS {
            assert!(region.views_due_probe(1));
            view(&region, 0..4096);
        }
        let due = (0..3 * PROBE_VIEWS_EVERY).filter(|_| region.views_due_probe(1)).count();
        assert_eq!(due, 3);
        // A batch counts each of its views.
        assert!(!region.views_due_probe(PROBE_VIEWS_EVERY - 1));
        assert!(region.views_due_probe(1));
    }

    #[test]
    fn cold_views_are_asked_for_while_their_reader_touches_them() {
        let Some((_dir, path)) = file(true) else { return };
        const MIB: usize = 1 << 20;
        // The reader touches the middle page (the one `prefetch_views` looks at): touched page by page, the view's
        // pages marked for read-ahead would start reads of the rest of this small file.
        let touch = |region: &Region, range: Range<usize>| region.bytes()[(range.start + range.end) / 2];
        let region = Region::open(&path, false).unwrap();
        view(&region, 0..128 << 10);
        let cached = await_cached(&path, 128 << 10);
        assert!(cached >= 128 << 10, "{cached} bytes cached");
        assert_eq!(touch(&region, 0..128 << 10), 7);
        view(&region, MIB..MIB + (128 << 10));
        let cached = await_cached(&path, 256 << 10);
        assert!(cached >= 256 << 10, "{cached} bytes cached");
        drop(region);

        // A view asked for and never read: the next cold views are not asked for. (Their probe starts a
        // small read-ahead of its own, far less than the 2 MiB asked for would be.)
        let region = Region::open(&path, false).unwrap();
        view(&region, 2 * MIB..2 * MIB + (128 << 10));
        let cached = await_cached(&path, 384 << 10);
        assert!(cached >= 384 << 10, "{cached} bytes cached");
        view(&region, 4 * MIB..6 * MIB);
        std::thread::sleep(Duration::from_millis(100));
        let after = cached_bytes(&path).unwrap();
        assert!(
            after < cached + MIB as u64,
            "an unread view's successor was asked for: {after} bytes cached"
        );
        assert!(!region.views_due_probe(UNREAD_VIEW_SKIPS));
        assert!(region.views_due_probe(1));
    }
}

//! Reading cold items ahead. Touched page by page, a mapped item of a few hundred KB that is not in the page
//! cache is read one readahead window around each fault, each read waited for before the next is asked for
//! (about 8 ms for 600 KB on this project's virtual disk, whose 8 MiB readahead also reads about 13 times the
//! item's bytes); asked for with `madvise(MADV_WILLNEED)`, its reads are queued at once (about 1 ms). The
//! kernel caps what one such call reads at the device's readahead or request size, so items are asked for in
//! `ADVICE_CHUNK` pieces, up to `MAX_ADVICE` bytes each. A probe, a one-byte `preadv2(RWF_NOWAIT)`, first
//! tells whether a range is in memory: `madvise` alone would do, but on a range already in memory it costs
//! about 12 us per 600 KB, the probe about 1 us. Everything here is a hint: nothing changes when a call
//! fails. A mapping whose file cannot be probed (a file system without RWF_NOWAIT, as some network ones; a
//! data file replaced or removed since it was mapped; any system but Linux) gets no readahead, and no more
//! probes, from then on.

use std::ops::Range;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Mutex;

use crate::mmap::Region;

/// `Readahead::prefetch` stops probing after this many ranges all found in memory.
#[cfg(target_os = "linux")]
const WARM_AFTER_PROBES: usize = 8;

/// `Readahead::views_due_probe` probes every view until this many in a row were found in memory, and then
/// once per `PROBE_VIEWS_EVERY`.
const WARM_VIEWS: usize = 256;
const PROBE_VIEWS_EVERY: usize = 1024;

/// A view asked for is judged read or unread once this many large views came after it (a batch whose views
/// are all touched after the last is handed out, as `np.stack` of a list of gets, is read too), and
/// forgotten unjudged after `4 * JUDGE_AFTER` (its pages may have been evicted since).
const JUDGE_AFTER: usize = 128;

/// Large views handed out without a probe after a view asked for went unread, doubled for each further
/// unread verdict in a row (up to 16 times).
const UNREAD_VIEW_SKIPS: usize = 1024;

/// One `madvise` call asks for at most this many bytes (the smallest common readahead), and one item for at
/// most `MAX_ADVICE`.
#[cfg(target_os = "linux")]
const ADVICE_CHUNK: usize = 128 << 10;
#[cfg(target_os = "linux")]
const MAX_ADVICE: usize = 16 << 20;

/// What one mapping's probes found so far. Threads racing on it only blur a hint.
#[derive(Debug)]
pub struct Readahead {
    /// Set once probes turned out impossible: no more are tried.
    no_probes: AtomicBool,
    /// Large views handed out so far.
    views: AtomicUsize,
    /// Views found in memory in a row (up to `WARM_VIEWS`).
    warm_views: AtomicUsize,
    /// Large views handed out since the last probe of a warm mapping.
    unprobed_views: AtomicUsize,
    /// Large views still to hand out without a probe, after views went unread.
    unread_skips: AtomicUsize,
    /// Unread verdicts in a row.
    unread_verdicts: AtomicUsize,
    /// A view asked for, to be judged read or unread (see `prefetch_views`).
    asked: Mutex<Option<Asked>>,
}

/// A view asked for: a page of it, the count of large views when it was handed out, and the process that
/// did (a forked child's page tables start without the parent's pages of the mapping).
#[derive(Debug, Clone, Copy)]
struct Asked {
    page: usize,
    view: usize,
    pid: u32,
}

impl Default for Readahead {
    fn default() -> Self {
        Readahead {
            no_probes: AtomicBool::new(!cfg!(target_os = "linux")),
            views: AtomicUsize::new(0),
            warm_views: AtomicUsize::new(0),
            unprobed_views: AtomicUsize::new(0),
            unread_skips: AtomicUsize::new(0),
            unread_verdicts: AtomicUsize::new(0),
            asked: Mutex::new(None),
        }
    }
}

/// What a call's probes found: every probed range in memory (how many), or at least one not.
#[cfg_attr(not(target_os = "linux"), allow(dead_code))]
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
    /// a while after views went unread.
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
        self.views.fetch_add(count, Ordering::Relaxed);
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
    /// the items' shapes). One view asked for is remembered; at the first call that finds cold views
    /// `JUDGE_AFTER` views later, it was read if its middle page is mapped in this process by then. If not,
    /// views go unread here: that call's cold views are not asked for, and the next `UNREAD_VIEW_SKIPS` views
    /// (more after further unread verdicts) are not even probed. A scan of shapes so reads about
    /// `JUDGE_AFTER` items of every `UNREAD_VIEW_SKIPS`, less and less; a reader who touches each view, or
    /// each batch of views before the next, keeps its views asked for. Also counts views found in memory,
    /// for `views_due_probe`.
    pub fn prefetch_views(&self, region: &Region, ranges: &[Range<usize>]) {
        let mut read = None;
        let mut first_asked = None;
        let found = self.probe(region, ranges, |range| {
            let ask = *read.get_or_insert_with(|| self.views_read());
            if ask && first_asked.is_none() {
                first_asked = page_address(region, range.start + range.len() / 2);
            }
            ask
        });
        if let Some(page) = first_asked {
            let mut asked = self.asked.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
            if asked.is_none() {
                let (view, pid) = (self.views.load(Ordering::Relaxed), std::process::id());
                *asked = Some(Asked { page, view, pid });
            }
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
        let mut asked = self.asked.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        let Some(view) = *asked else { return true };
        let age = self.views.load(Ordering::Relaxed).saturating_sub(view.view);
        if age < JUDGE_AFTER && view.pid == std::process::id() {
            return true;
        }
        *asked = None;
        if age > 4 * JUDGE_AFTER || view.pid != std::process::id() || is_mapped(view.page) != Some(false) {
            self.unread_verdicts.store(0, Ordering::Relaxed);
            return true;
        }
        let verdicts = self.unread_verdicts.fetch_add(1, Ordering::Relaxed).min(4);
        self.unread_skips
            .store(UNREAD_VIEW_SKIPS << verdicts, Ordering::Relaxed);
        false
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
            let file = crate::files::open_regular(region.path(), false)
                .ok()
                .filter(|(_, meta)| (meta.dev(), meta.ino()) == region.identity());
            let Some((file, _)) = file else {
                self.no_probes.store(true, Ordering::Relaxed);
                return None;
            };
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
                            advise(map, range);
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

/// Asks for the first `MAX_ADVICE` bytes of `range` of `map`, `ADVICE_CHUNK` at a time.
#[cfg(target_os = "linux")]
fn advise(map: &memmap2::MmapRaw, range: &Range<usize>) {
    let end = range.end.min(range.start.saturating_add(MAX_ADVICE));
    for start in (range.start..end).step_by(ADVICE_CHUNK) {
        let len = ADVICE_CHUNK.min(end - start);
        if map.advise_range(memmap2::Advice::WillNeed, start, len).is_err() {
            return;
        }
    }
}

/// The address of the page holding byte `offset` of `region`'s mapping (Linux only: see `is_mapped`).
fn page_address(region: &Region, offset: usize) -> Option<usize> {
    #[cfg(target_os = "linux")]
    {
        let base = region.raw()?.as_ptr() as usize;
        Some(base.checked_add(offset)? & !(rustix::param::page_size() - 1))
    }
    #[cfg(not(target_os = "linux"))]
    {
        let _ = (region, offset);
        None
    }
}

/// Whether the page at `address` is mapped in this process's page tables, from `/proc/self/pagemap`;
/// `None` when that cannot tell. A page of a shared file mapping is mapped once this process reads it (or
/// reads next to it: a fault maps the cached pages around it too), and unmapped when it leaves the page
/// cache; a forked child starts with none.
fn is_mapped(address: usize) -> Option<bool> {
    #[cfg(target_os = "linux")]
    {
        use std::os::unix::fs::FileExt;
        let pagemap = std::fs::File::open("/proc/self/pagemap").ok()?;
        let mut entry = [0u8; 8];
        let at = (address / rustix::param::page_size()).checked_mul(8)?;
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

    use crate::mmap::Mode;

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

    /// Waits (up to 60 s: a shared disk under load can be slow) until at least `bytes` of `path` are in the
    /// page cache; returns how many are.
    fn await_cached(path: &Path, bytes: u64) -> u64 {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let cached = cached_bytes(path).unwrap();
            if cached >= bytes || Instant::now() > deadline {
                return cached;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    #[test]
    fn prefetch_reads_cold_ranges_into_the_page_cache_and_nothing_else() {
        let Some((_dir, path)) = file(true) else { return };
        let region = Region::open(&path, Mode::ReadOnly).unwrap();
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
        assert!(cached_bytes(&path).unwrap() <= cached);
        // After WARM_AFTER_PROBES cached ranges, the rest is not even probed (a probe of a cold page would
        // start reading it); one cold range among the first ones keeps every range probed.
        let far = (6 << 20)..(6 << 20) + (128 << 10);
        region.prefetch(&[vec![0..4096; WARM_AFTER_PROBES], vec![far.clone()]].concat());
        std::thread::sleep(Duration::from_millis(50));
        assert!(
            cached_bytes(&path).unwrap() <= cached,
            "a range past the warm probes was read"
        );
        // (Counted from just before: pages read earlier may have been evicted since.)
        let before = cached_bytes(&path).unwrap();
        region.prefetch(&[vec![0..4096; WARM_AFTER_PROBES - 1], vec![far]].concat());
        let after = await_cached(&path, before + (128 << 10));
        assert!(
            after >= before + (128 << 10),
            "never read: {before} then {after} bytes cached"
        );
    }

    /// A large view of `range` handed out, as `RaggedStore` does it (counted, probed whether due or not).
    fn view(region: &Region, range: Range<usize>) {
        region.views_due_probe(1);
        region.prefetch_views(std::slice::from_ref(&range));
    }

    #[test]
    fn views_are_probed_until_a_long_run_is_in_memory_then_once_in_a_while() {
        let Some((_dir, path)) = file(false) else { return };
        let region = Region::open(&path, Mode::ReadOnly).unwrap();
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
    fn cold_views_are_asked_for_unless_their_reader_leaves_them_unread() {
        let Some((_dir, path)) = file(true) else { return };
        const MIB: usize = 1 << 20;
        const RANGE: usize = 128 << 10;
        // The reader touches the middle page (the one `prefetch_views` looks at): touched page by page, the
        // view's pages marked for read-ahead would start reads of the rest of this small file.
        let touch = |region: &Region, at: usize| region.bytes()[at + RANGE / 2];
        // A view asked for: its 128 KiB come in (the probe alone reads 16 KiB; some slack for pages the kernel
        // evicts meanwhile).
        let asked = |region: &Region, at: usize| {
            let before = cached_bytes(&path).unwrap();
            view(region, at..at + RANGE);
            let cached = await_cached(&path, before + RANGE as u64);
            assert!(
                cached >= before + RANGE as u64 / 2,
                "{cached} bytes cached, {before} before"
            );
        };

        // A view read by the time it is judged: the next cold view is asked for.
        let region = Region::open(&path, Mode::ReadOnly).unwrap();
        asked(&region, 0);
        assert_eq!(touch(&region, 0), 7);
        region.views_due_probe(JUDGE_AFTER);
        asked(&region, MIB);

        // Views not yet judged (a batch touched once whole) are asked for, read or not.
        let region = Region::open(&path, Mode::ReadOnly).unwrap();
        asked(&region, 2 * MIB);
        asked(&region, 3 * MIB);

        // Judged unread: the next cold views are not asked for (their probe starts a small read-ahead of its
        // own, far less than the 2 MiB asked for would be), and the next views are not even probed.
        region.views_due_probe(JUDGE_AFTER);
        let cached = cached_bytes(&path).unwrap();
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

//! The sharded store: a directory of ordinary stores (shards) of one kind, plus `shards.ninja`, the manifest
//! naming them in order with the number of items each contributes. The manifest is written last and replaced
//! in one rename, so a reader sees every shard of one write or none; shards it does not list are invisible
//! (a failed write's leftovers) and are removed by the next writer. Each shard stays an ordinary store that
//! mmap-ninja 0.9.0 can open on its own.
//!
//! `shards.ninja` is UTF-8 text, one record per line:
//!
//! ```text
//! mmap_ninja sharded 1
//! kind ragged
//! generation 5f1c0a9e3b2d4c68
//! shard shard-00000-1a2b3c4d5e6f7a8b 1500
//! shard shard-00001-90e1d2c3b4a59687 1498
//! ```

use std::collections::HashSet;
use std::hash::{BuildHasher, RandomState};
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::commit::{Commit, WriteOptions};
use crate::dense::DenseStore;
use crate::error::{Error, Result};
use crate::files;
use crate::format::{self, StoreKind};
use crate::lock::WriteLock;
use crate::mmap::Mode;
use crate::ragged::RaggedStore;
use crate::store;
use crate::strings::StringStore;

/// First line of `shards.ninja`: the format and its version.
const HEADER: &str = "mmap_ninja sharded 1";

/// One shard: a store directory inside the sharded store's directory, and how many of its items belong to
/// the dataset (its first `items`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Shard {
    pub name: String,
    pub items: u64,
}

/// A validated manifest: the shards' kind, the generation that wrote them, the shards in order, and where
/// each shard's items start in the dataset's global numbering.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Manifest {
    kind: StoreKind,
    generation: String,
    shards: Vec<Shard>,
    /// `starts[k]` = global index of shard k's first item; one more entry, the total, at the end.
    starts: Vec<u64>,
}

/// Part of a batch in one shard: `(shard, indices within it, positions in the batch)`.
pub type Group = (usize, Vec<u64>, Vec<usize>);

/// The dtype and row shape of a dense shard, which every dense shard of a store shares.
type Rows = (format::Dtype, Vec<u64>);

/// True when `name` can name a shard: 1-255 ASCII letters, digits, `_`, `-` and `.`, not starting with `.`.
/// So a manifest's names never leave its directory (no `/`, no `..`, no absolute paths); a shard that is a
/// symlink is followed, as a store's own files are.
pub fn valid_shard_name(name: &str) -> bool {
    let bytes = name.as_bytes();
    (1..=255).contains(&bytes.len())
        && bytes[0] != b'.'
        && bytes.iter().all(|b| b.is_ascii_alphanumeric() || b"_-.".contains(b))
}

/// A fresh name for partition `part`'s shard: `shard-{part:05}-{random}`. Names with the `shard-` prefix
/// that no manifest lists are a failed write's leftovers, which writers remove.
pub fn shard_name(part: u64) -> String {
    format!("{}{part:05}-{}", format::GENERATED_SHARD_PREFIX, token())
}

/// 16 hex digits unlikely to repeat across processes and machines: a hash, under the standard library's
/// randomly keyed hasher, of the process id, the time and a counter.
fn token() -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    let count = COUNTER.fetch_add(1, Ordering::Relaxed);
    let hash = RandomState::new().hash_one((std::process::id(), now, count));
    format!("{hash:016x}")
}

impl Manifest {
    /// A manifest of `shards` (in order) of `kind`, under a fresh generation. Refuses invalid or repeated
    /// names and item counts whose sum overflows.
    pub fn new(kind: StoreKind, shards: Vec<Shard>) -> Result<Manifest> {
        Self::validated(kind, token(), shards).map_err(Error::InvalidArgument)
    }

    fn validated(kind: StoreKind, generation: String, shards: Vec<Shard>) -> std::result::Result<Manifest, String> {
        let mut seen = HashSet::with_capacity(shards.len());
        let mut starts = Vec::with_capacity(shards.len() + 1);
        let mut total: u64 = 0;
        for shard in &shards {
            if !valid_shard_name(&shard.name) {
                return Err(format!("invalid shard name {:?}", truncated(&shard.name)));
            }
            if !seen.insert(shard.name.as_str()) {
                return Err(format!("shard {:?} is listed twice", shard.name));
            }
            starts.push(total);
            total = total
                .checked_add(shard.items)
                .filter(|t| *t <= i64::MAX as u64)
                .ok_or("the shards' item counts overflow")?;
        }
        starts.push(total);
        Ok(Manifest {
            kind,
            generation,
            shards,
            starts,
        })
    }

    /// True when `dir` holds a sharded store (a manifest).
    pub fn exists(dir: &Path) -> Result<bool> {
        files::exists(&dir.join(format::SHARDS_FILE))
    }

    /// Reads and validates `dir/shards.ninja` (a missing manifest is a not-found I/O error).
    pub fn read(dir: &Path) -> Result<Manifest> {
        let missing = || Error::io(dir.join(format::SHARDS_FILE))(std::io::ErrorKind::NotFound.into());
        Self::read_if_exists(dir)?.ok_or_else(missing)
    }

    /// Reads and validates `dir/shards.ninja`, `None` when there is none.
    pub fn read_if_exists(dir: &Path) -> Result<Option<Manifest>> {
        let path = dir.join(format::SHARDS_FILE);
        let Some(text) = files::read_text_if_exists(&path, format::MAX_MANIFEST_BYTES)? else {
            return Ok(None);
        };
        Self::parse(&text)
            .map(Some)
            .map_err(|reason| Error::corrupt(&path, reason))
    }

    fn parse(text: &str) -> std::result::Result<Manifest, String> {
        let mut lines = text.lines();
        if lines.next() != Some(HEADER) {
            return Err(format!(
                "not a sharded-store manifest (the first line must be {HEADER:?})"
            ));
        }
        let mut value = |key: &str, number: usize| {
            lines
                .next()
                .and_then(|line| line.strip_prefix(key)?.strip_prefix(' '))
                .ok_or_else(|| format!("line {number}: expected \"{key} ...\""))
        };
        let kind = value("kind", 2)?;
        let kind = StoreKind::parse(kind).ok_or_else(|| format!("unknown shard kind {:?}", truncated(kind)))?;
        let generation = value("generation", 3)?.to_owned();
        if !valid_shard_name(&generation) || generation.len() > 64 {
            return Err(format!("invalid generation {:?}", truncated(&generation)));
        }
        let mut shards = Vec::new();
        for (number, line) in (4..).zip(lines) {
            let (name, items) = line
                .strip_prefix("shard ")
                .and_then(|rest| rest.split_once(' '))
                .and_then(|(name, items)| Some((name, items.parse::<u64>().ok()?)))
                .ok_or_else(|| format!("line {number}: expected \"shard NAME ITEMS\""))?;
            shards.push(Shard {
                name: name.to_owned(),
                items,
            });
        }
        Self::validated(kind, generation, shards)
    }

    /// The manifest as written to `shards.ninja`.
    pub fn to_text(&self) -> String {
        let mut text = format!("{HEADER}\nkind {}\ngeneration {}\n", self.kind.name(), self.generation);
        for shard in &self.shards {
            text.push_str(&format!("shard {} {}\n", shard.name, shard.items));
        }
        text
    }

    /// The kind of every shard.
    pub fn kind(&self) -> StoreKind {
        self.kind
    }

    /// Random text naming the write that produced this manifest: a new write, a new generation.
    pub fn generation(&self) -> &str {
        &self.generation
    }

    /// The shards, in order.
    pub fn shards(&self) -> &[Shard] {
        &self.shards
    }

    /// Total number of items.
    pub fn len(&self) -> u64 {
        self.starts[self.shards.len()]
    }

    /// True when no shard holds an item.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// `(shard, index within the shard)` of global item `index` (negative counts from the end).
    pub fn locate(&self, index: i64) -> Result<(usize, u64)> {
        let len = self.len();
        let out_of_range = || Error::IndexOutOfRange {
            index,
            len: len as usize,
        };
        let global = if index < 0 {
            len.checked_sub(index.unsigned_abs()).ok_or_else(out_of_range)?
        } else {
            index as u64
        };
        if global >= len {
            return Err(out_of_range());
        }
        // The last shard starting at or before `global` that is not empty.
        let shard = self.starts.partition_point(|&start| start <= global) - 1;
        Ok((shard, global - self.starts[shard]))
    }

    /// A batch grouped by shard, in order of first appearance: `(shard, indices within it, positions in the
    /// batch)`. Reading each group with one call and placing item j at position j rebuilds the batch.
    pub fn group(&self, indices: &[i64]) -> Result<Vec<Group>> {
        let mut groups: Vec<Group> = Vec::new();
        let mut slot = vec![usize::MAX; self.shards.len()];
        for (position, &index) in indices.iter().enumerate() {
            let (shard, local) = self.locate(index)?;
            if slot[shard] == usize::MAX {
                slot[shard] = groups.len();
                groups.push((shard, Vec::new(), Vec::new()));
            }
            let group = &mut groups[slot[shard]];
            group.1.push(local);
            group.2.push(position);
        }
        Ok(groups)
    }
}

fn truncated(text: &str) -> String {
    text.chars().take(64).collect()
}

/// The one writer of a sharded store. It holds the directory's lock from `open` until dropped, so shards can
/// be written into the directory meanwhile (by other processes too) and committed together by `commit`.
#[derive(Debug)]
pub struct ShardedWriter {
    lock: WriteLock,
    durable: bool,
    /// The shards the committed manifest lists.
    listed: HashSet<String>,
    /// Generated shards no manifest listed when the writer opened: leftovers of earlier failed writes.
    stale: HashSet<String>,
}

impl ShardedWriter {
    /// Locks `dir` (creating it), which must be empty or hold a sharded store: anything else in it is refused,
    /// so a single store is never turned into a sharded one by accident.
    pub fn open(dir: &Path, options: &WriteOptions) -> Result<ShardedWriter> {
        let lock = WriteLock::acquire(dir, options.wait)?;
        let listed = Self::listed(dir)?;
        let mut stale = HashSet::new();
        for name in entries(dir)? {
            if !(is_ours(&name) || listed.contains(&name)) {
                return Err(Error::InvalidArgument(format!(
                    "{} holds {name:?}, which is not part of a sharded store: write a sharded store into an empty \
                     or new directory",
                    dir.display()
                )));
            }
            if is_generated(&name) && !listed.contains(&name) {
                stale.insert(name);
            }
        }
        Ok(ShardedWriter {
            lock,
            durable: options.durable,
            listed,
            stale,
        })
    }

    /// The store's directory.
    pub fn dir(&self) -> &Path {
        self.lock.dir()
    }

    /// Makes `shards` (directories inside `dir`, in order) the store's content in one rename of the manifest.
    /// Each shard must have a generated name (`shard_name`: so a shard a later commit drops is one the next
    /// writer may remove, and no shard is taken for a temporary manifest) and be a store of `kind` holding at
    /// least the items listed; dense shards must share their dtype and row shape. Then removes, as far as it
    /// can, the shards the old manifest listed and the new one does not, and the leftovers found on opening;
    /// shards written since are left for `discard`. Returns the new manifest.
    pub fn commit(&mut self, kind: StoreKind, shards: Vec<Shard>) -> Result<Manifest> {
        self.lock.check_process()?;
        let manifest = Manifest::new(kind, shards)?;
        let mut rows: Option<Rows> = None;
        for shard in manifest.shards() {
            if !is_generated(&shard.name) {
                return Err(Error::InvalidArgument(format!(
                    "shard {:?} was not named by shard_name (write shards with write_shard)",
                    shard.name
                )));
            }
            let dir = self.dir().join(&shard.name);
            let (len, layout) = open_shard(&dir, kind)?;
            if len < shard.items {
                return Err(Error::InvalidArgument(format!(
                    "shard {:?} holds {len} items, fewer than the {} listed",
                    shard.name, shard.items
                )));
            }
            match (&rows, layout) {
                (Some(first), Some(this)) if *first != this => {
                    return Err(Error::InvalidArgument(format!(
                        "shard {:?} holds {} rows of shape {:?}; the first shard's are {} rows of shape {:?}",
                        shard.name, this.0, this.1, first.0, first.1
                    )))
                }
                (None, layout) => rows = layout,
                _ => {}
            }
        }
        let mut commit = Commit::new(self.durable);
        commit.stage(self.dir().join(format::SHARDS_FILE), manifest.to_text().into_bytes());
        commit.apply()?;
        // Committed: what follows is clean-up, which must not make the commit look failed.
        let listed: HashSet<String> = manifest.shards().iter().map(|s| s.name.clone()).collect();
        let dropped: Vec<String> = self
            .listed
            .union(&self.stale)
            .filter(|n| !listed.contains(*n))
            .cloned()
            .collect();
        self.remove(dropped);
        (self.listed, self.stale) = (listed, HashSet::new());
        Ok(manifest)
    }

    /// Removes, as far as it can, every generated shard the committed manifest does not list (what a failed or
    /// abandoned write left behind) and leftover temporary manifests. The committed store is untouched.
    pub fn discard(&mut self) -> Result<()> {
        self.lock.check_process()?;
        let unlisted: Vec<String> = entries(self.dir())?
            .into_iter()
            .filter(|name| is_temp_manifest(name) || (is_generated(name) && !self.listed.contains(name)))
            .collect();
        self.remove(unlisted);
        self.stale.clear();
        Ok(())
    }

    /// Names the manifest in `dir` lists (none when there is no manifest).
    fn listed(dir: &Path) -> Result<HashSet<String>> {
        let shards = Manifest::read_if_exists(dir)?.map_or_else(Vec::new, |m| m.shards);
        Ok(shards.into_iter().map(|s| s.name).collect())
    }

    /// Removes the entries `names` of the store's directory, skipping any that cannot be removed (on NFS, a
    /// file another client still has open, say): they are unlisted, so never read, and the next writer tries
    /// again.
    fn remove(&self, names: impl IntoIterator<Item = String>) {
        for name in names {
            let _ = files::remove_if_exists(&self.dir().join(name));
        }
    }
}

/// The names in `dir` (lossily decoded: a name that is not UTF-8 is never one of ours).
fn entries(dir: &Path) -> Result<Vec<String>> {
    let mut names = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(Error::io(dir))? {
        names.push(
            entry
                .map_err(Error::io(dir))?
                .file_name()
                .to_string_lossy()
                .into_owned(),
        );
    }
    Ok(names)
}

/// True for the entries a sharded store's writer creates: the manifest, its temporary files and generated
/// shards.
fn is_ours(name: &str) -> bool {
    name == format::SHARDS_FILE || is_temp_manifest(name) || is_generated(name)
}

/// True for a temporary manifest (`commit`'s `shards.ninja.tmp-<pid>`), left behind if a writer was killed.
fn is_temp_manifest(name: &str) -> bool {
    name.strip_prefix(format::SHARDS_FILE)
        .is_some_and(|rest| rest.starts_with(".tmp-"))
}

/// True for a shard name a writer generated (see `shard_name`).
fn is_generated(name: &str) -> bool {
    name.starts_with(format::GENERATED_SHARD_PREFIX) && valid_shard_name(name)
}

/// Opens the shard in `dir` as a store of `kind`: its committed length and, for dense shards, the dtype and
/// row shape every shard must share.
fn open_shard(dir: &Path, kind: StoreKind) -> Result<(u64, Option<Rows>)> {
    store::require_typed(dir, kind)?;
    Ok(match kind {
        StoreKind::Ragged => (
            RaggedStore::open(dir, Mode::ReadOnly)?.map_or(0, |s| s.len() as u64),
            None,
        ),
        StoreKind::String => (StringStore::open(dir)?.map_or(0, |s| s.len() as u64), None),
        StoreKind::Numpy => {
            let dense = DenseStore::open(dir, Mode::ReadOnly)?;
            let shape = dense.shape();
            let rows = shape.first().copied().ok_or_else(|| {
                Error::InvalidArgument(format!("{} is a 0-d array, which has no rows to shard", dir.display()))
            })?;
            (rows, Some((dense.dtype(), shape[1..].to_vec())))
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shard(name: &str, items: u64) -> Shard {
        Shard {
            name: name.into(),
            items,
        }
    }

    #[test]
    fn manifest_round_trips_and_locates_across_empty_shards() {
        let m = Manifest::new(StoreKind::Ragged, vec![shard("a", 2), shard("b", 0), shard("c", 3)]).unwrap();
        let back = Manifest::parse(&m.to_text()).unwrap();
        assert_eq!(back, m);
        assert_eq!(m.len(), 5);
        let located: Vec<_> = (0..5).map(|i| m.locate(i).unwrap()).collect();
        assert_eq!(located, [(0, 0), (0, 1), (2, 0), (2, 1), (2, 2)]);
        assert_eq!(m.locate(-1).unwrap(), (2, 2));
        assert!(matches!(m.locate(5), Err(Error::IndexOutOfRange { .. })));
        assert!(matches!(m.locate(-6), Err(Error::IndexOutOfRange { .. })));
        let groups = m.group(&[4, 0, 3, 1]).unwrap();
        assert_eq!(groups, vec![(2, vec![2, 1], vec![0, 2]), (0, vec![0, 1], vec![1, 3])]);
    }

    #[test]
    fn hostile_manifests_are_refused() {
        let good = "mmap_ninja sharded 1\nkind ragged\ngeneration g1\nshard a 1\n";
        assert!(Manifest::parse(good).is_ok());
        for bad in [
            "",
            "mmap_ninja sharded 2\nkind ragged\ngeneration g\n",
            "mmap_ninja sharded 1\nkind sharded\ngeneration g\n",
            "mmap_ninja sharded 1\ngeneration g\nkind ragged\n",
            "mmap_ninja sharded 1\nkind ragged\ngeneration ../g\n",
            "mmap_ninja sharded 1\nkind ragged\ngeneration g\nshard ../../etc 1\n",
            "mmap_ninja sharded 1\nkind ragged\ngeneration g\nshard /abs 1\n",
            "mmap_ninja sharded 1\nkind ragged\ngeneration g\nshard .. 1\n",
            "mmap_ninja sharded 1\nkind ragged\ngeneration g\nshard a/b 1\n",
            "mmap_ninja sharded 1\nkind ragged\ngeneration g\nshard a 1\nshard a 2\n",
            "mmap_ninja sharded 1\nkind ragged\ngeneration g\nshard a -1\n",
            "mmap_ninja sharded 1\nkind ragged\ngeneration g\nshard a 9223372036854775807\nshard b 1\n",
            "mmap_ninja sharded 1\nkind ragged\ngeneration g\nshard a\n",
            "mmap_ninja sharded 1\nkind ragged\ngeneration g\nshard a 1 2\n",
        ] {
            assert!(Manifest::parse(bad).is_err(), "accepted {bad:?}");
        }
    }

    #[test]
    fn writer_commits_collects_garbage_and_refuses_foreign_directories() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().join("sharded");
        let options = WriteOptions::default();
        // A killed writer's shard, found on opening: the first commit removes it.
        let leftover = root.join(shard_name(2));
        std::fs::create_dir_all(&leftover).unwrap();
        let mut writer = ShardedWriter::open(&root, &options).unwrap();
        assert!(matches!(
            ShardedWriter::open(&root, &options),
            Err(Error::Locked { .. })
        ));
        let (a, b) = (shard_name(0), shard_name(1));
        assert_ne!(a, b);
        for (name, items) in [(&a, &[1i64, 2, 3][..]), (&b, &[4][..])] {
            let dir = root.join(name);
            StringStore::create(&dir, &options, &items.iter().map(|_| "x").collect::<Vec<_>>(), None).unwrap();
        }
        let listed = vec![shard(&a, 3), shard(&b, 1)];
        assert!(matches!(
            writer.commit(StoreKind::Ragged, listed.clone()),
            Err(Error::InvalidArgument(_))
        ));
        for foreign in ["mine", "shards.ninja.tmp-1"] {
            let dir = root.join(foreign);
            StringStore::create(&dir, &options, &["x"], None).unwrap();
            assert!(matches!(
                writer.commit(StoreKind::String, vec![shard(foreign, 1)]),
                Err(Error::InvalidArgument(_))
            ));
            std::fs::remove_dir_all(dir).unwrap();
        }
        let too_many = vec![shard(&a, 4)];
        assert!(matches!(
            writer.commit(StoreKind::String, too_many),
            Err(Error::InvalidArgument(_))
        ));
        assert!(!Manifest::exists(&root).unwrap());
        let manifest = writer.commit(StoreKind::String, listed).unwrap();
        assert_eq!(Manifest::read(&root).unwrap(), manifest);
        assert!(!leftover.exists() && root.join(&a).exists());
        // A shard written after the commit survives the next commit (it may still be in the making); the one
        // that commit drops goes; `discard` removes what no commit listed.
        let late = root.join(shard_name(3));
        StringStore::create(&late, &options, &["y"], None).unwrap();
        writer.commit(StoreKind::String, vec![shard(&a, 3)]).unwrap();
        assert!(!root.join(&b).exists() && late.exists() && root.join(&a).exists());
        writer.discard().unwrap();
        assert!(!late.exists() && root.join(&a).exists());
        drop(writer);

        let foreign = tmp.path().join("single");
        StringStore::create(&foreign, &options, &["x"], None).unwrap();
        assert!(matches!(
            ShardedWriter::open(&foreign, &options),
            Err(Error::InvalidArgument(_))
        ));
        assert!(!valid_shard_name(".."));
    }
}

//! Which kind of store a directory holds, from its `type.ninja`.

use std::path::Path;

use crate::error::{Error, Result};
use crate::files;
use crate::format::{self, StoreKind};

/// Reads and validates `dir/type.ninja`. A missing directory or file is a not-found I/O error.
pub fn kind(dir: &Path) -> Result<StoreKind> {
    let path = dir.join(format::TYPE_FILE);
    let text = files::read_text(&path, format::MAX_METADATA_BYTES)?;
    StoreKind::parse(text.trim()).ok_or_else(|| Error::UnknownStoreType {
        path,
        name: text.chars().take(64).collect(),
    })
}

/// What a directory holds: one store, or a sharded store (a directory of stores with a manifest).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Layout {
    Single(StoreKind),
    Sharded,
}

/// The layout of `dir`: sharded when it has a `shards.ninja`, else the kind its `type.ninja` names.
pub fn layout(dir: &Path) -> Result<Layout> {
    if crate::sharded::Manifest::exists(dir)? {
        return Ok(Layout::Sharded);
    }
    kind(dir).map(Layout::Single)
}

/// Refuses to open `dir` as `expected` when its `type.ninja` names another kind, or when it holds a sharded
/// store (which has no `type.ninja`). A missing file is fine otherwise: an empty directory, or a store the
/// reference wrote before it had type files.
pub fn require_kind(dir: &Path, expected: StoreKind) -> Result<()> {
    let Some(text) = files::read_text_if_exists(&dir.join(format::TYPE_FILE), format::MAX_METADATA_BYTES)? else {
        return refuse_sharded(dir, expected);
    };
    match StoreKind::parse(text.trim()) {
        Some(kind) if kind == expected => Ok(()),
        Some(kind) => Err(Error::InvalidArgument(format!(
            "{} holds a {} store, not a {} one",
            dir.display(),
            kind.name(),
            expected.name()
        ))),
        None => Err(Error::UnknownStoreType {
            path: dir.join(format::TYPE_FILE),
            name: text.chars().take(64).collect(),
        }),
    }
}

/// Refuses `dir` when it holds a sharded store (its manifest): a single store of kind `expected` written there
/// would be hidden by the manifest, and would stop the next sharded writer.
pub fn refuse_sharded(dir: &Path, expected: StoreKind) -> Result<()> {
    if crate::sharded::Manifest::exists(dir)? {
        return Err(Error::InvalidArgument(format!(
            "{} holds a sharded store, not a {} store: open it with mmap_ninja.open_existing",
            dir.display(),
            expected.name()
        )));
    }
    Ok(())
}

/// Refuses `dir` unless its `type.ninja` names `expected` (a missing one too: writers always write it). A
/// missing directory is not found.
pub fn require_typed(dir: &Path, expected: StoreKind) -> Result<()> {
    if !files::exists(dir)? {
        return Err(Error::io(dir)(std::io::ErrorKind::NotFound.into()));
    }
    if !files::exists(&dir.join(format::TYPE_FILE))? {
        return Err(Error::corrupt(dir.join(format::TYPE_FILE), "missing"));
    }
    require_kind(dir, expected)
}

/// An existing directory that may hold an empty store of kind `expected` (a missing directory is not found).
pub fn require_empty_dir(dir: &Path, expected: StoreKind) -> Result<()> {
    if !files::exists(dir)? {
        return Err(Error::io(dir)(std::io::ErrorKind::NotFound.into()));
    }
    require_kind(dir, expected)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_known_kinds_and_rejects_others() {
        let dir = tempfile::tempdir().unwrap();
        assert!(matches!(kind(dir.path()), Err(Error::Io { .. })));
        std::fs::write(dir.path().join("type.ninja"), "ragged").unwrap();
        assert_eq!(kind(dir.path()).unwrap(), StoreKind::Ragged);
        std::fs::write(dir.path().join("type.ninja"), "asd").unwrap();
        assert!(matches!(kind(dir.path()), Err(Error::UnknownStoreType { .. })));
    }
}

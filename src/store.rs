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

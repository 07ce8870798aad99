//! An offset column: a dense directory of little-endian int64 values, shaped `(n,)` or `(n, 1)`. Ragged
//! and string stores keep their starts, ends, element counts and flat shapes in columns.

use std::path::Path;

use crate::commit::Commit;
use crate::dense::{DenseStore, OrderFile};
use crate::error::{Error, Result};
use crate::format::{self, Dtype};
use crate::mmap::Mode;

/// An opened int64 column.
#[derive(Debug, Clone)]
pub struct Column {
    store: DenseStore,
    len: usize,
}

impl Column {
    /// Opens and validates the column in `dir`.
    pub fn open(dir: &Path) -> Result<Column> {
        Self::open_with_shape(dir, None)
    }

    /// Opens the column in `dir` whose `shape.ninja` bytes the caller has read already (`None`: not yet).
    pub fn open_with_shape(dir: &Path, shape: Option<Vec<u8>>) -> Result<Column> {
        let store = DenseStore::open_dir(dir, Mode::ReadOnly, shape, OrderFile::Ignore)?;
        let shape = store.shape();
        let len = match (store.dtype(), shape) {
            (Dtype::Int64, [n]) | (Dtype::Int64, [n, 1]) => *n,
            _ => {
                return Err(Error::corrupt(
                    dir,
                    format!(
                        "expected an int64 column of shape (n,) or (n, 1), found {} {shape:?}",
                        store.dtype()
                    ),
                ))
            }
        };
        let len = usize::try_from(len).map_err(|_| Error::corrupt(dir, "column too long"))?;
        Ok(Column { store, len })
    }

    /// Writes a new column holding `values`; `two_d` gives it shape `(n, 1)` (flat ragged shapes).
    pub fn create(dir: &Path, values: &[i64], two_d: bool, commit: &mut Commit) -> Result<()> {
        let n = values.len() as u64;
        let shape: &[u64] = if two_d { &[n, 1] } else { &[n] };
        crate::dense::write_layout(dir, Dtype::Int64, shape, &[&encode(values)], commit)?;
        commit.stage(dir.join(format::TYPE_FILE), b"numpy".to_vec());
        Ok(())
    }

    /// Number of committed values.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Value `i`; an error (never a panic) when `i` is past the end.
    pub fn get(&self, i: usize) -> Result<i64> {
        let bytes = i
            .checked_mul(8)
            .and_then(|at| self.store.bytes().get(at..at + 8))
            .ok_or_else(|| Error::corrupt(self.store.dir(), format!("value {i} is past the end")))?;
        Ok(i64::from_le_bytes(bytes.try_into().expect("8-byte slice")))
    }

    /// The mapping of the values (`data.ninja`): value `i` is its bytes `8 * i..8 * i + 8`.
    #[cfg(feature = "python")]
    pub(crate) fn region(&self) -> &std::sync::Arc<crate::mmap::Region> {
        self.store.region()
    }

    /// The directory, for error messages.
    pub fn dir(&self) -> &Path {
        self.store.dir()
    }
}

/// Item `i`'s `[start, end)` from the `starts` and `ends` columns of a store of `len` items whose data holds
/// `limit` units. Items are stored back to back, so `start` must be where item `i - 1` ends (0 for the first)
/// and `end` where item `i + 1` starts: a damaged offset is reported, never read as a mix of two items.
pub fn span(starts: &Column, ends: &Column, i: usize, len: usize, limit: u64) -> Result<(u64, u64)> {
    let (start, end) = (starts.get(i)?, ends.get(i)?);
    let previous_end = if i == 0 { 0 } else { ends.get(i - 1)? };
    let next_start = if i + 1 < len { starts.get(i + 1)? } else { end };
    if start != previous_end || end != next_start || start < 0 || start > end || end as u64 > limit {
        return Err(Error::corrupt(
            starts.dir(),
            format!(
                "item {i} spans [{start}, {end}) but the previous item ends at {previous_end}, the next starts at \
                 {next_start} and the data holds {limit}"
            ),
        ));
    }
    Ok((start as u64, end as u64))
}

/// Writes `values` into the column in `dir` from row `at` on and stages its new length (`two_d`: `(n, 1)`).
/// Writers pass the store's item count as `at`: rows past it are leftovers of a write that never committed
/// (a crashed writer may even have renamed this column's `shape.ninja`), so they are overwritten.
pub fn write_rows(dir: &Path, at: u64, values: &[i64], two_d: bool, commit: &mut Commit) -> Result<()> {
    commit.write_at(&dir.join(format::DATA_FILE), at * 8, &[&encode(values)])?;
    let rows = at + values.len() as u64;
    let shape: &[u64] = if two_d { &[rows, 1] } else { &[rows] };
    commit.stage(dir.join(format::SHAPE_FILE), format::encode_shape(shape));
    Ok(())
}

/// Start and end offsets of consecutive items of the given lengths, the first starting at `first`.
pub fn offsets(first: u64, lengths: impl IntoIterator<Item = u64>) -> Result<(Vec<i64>, Vec<i64>)> {
    let (mut starts, mut ends) = (Vec::new(), Vec::new());
    let mut at = first;
    for length in lengths {
        let end = at.checked_add(length).filter(|&e| i64::try_from(e).is_ok());
        let end = end.ok_or_else(|| Error::InvalidArgument("offsets exceed int64".into()))?;
        starts.push(at as i64);
        ends.push(end as i64);
        at = end;
    }
    Ok((starts, ends))
}

fn encode(values: &[i64]) -> Vec<u8> {
    values.iter().flat_map(|v| v.to_le_bytes()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn create_append_get() {
        let dir = tempfile::tempdir().unwrap();
        let mut c = Commit::default();
        Column::create(dir.path(), &[1, -2], true, &mut c).unwrap();
        c.apply().unwrap();
        let mut c = Commit::default();
        write_rows(dir.path(), 2, &[7], true, &mut c).unwrap();
        c.apply().unwrap();
        let col = Column::open(dir.path()).unwrap();
        assert_eq!(col.len(), 3);
        assert_eq!(
            (col.get(0).unwrap(), col.get(1).unwrap(), col.get(2).unwrap()),
            (1, -2, 7)
        );
        assert!(col.get(3).is_err());
    }
}

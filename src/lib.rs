//! mmap_ninja: datasets in memory-mapped files, read zero-copy from many processes.
//!
//! Three stores share one on-disk format with mmap-ninja 0.9.0 (see `format`): a dense array
//! ([`DenseStore`]), a list of arrays of different shapes ([`RaggedStore`]) and a list of strings
//! ([`StringStore`]); a sharded store ([`sharded`]) lists stores of one kind as one dataset. Writes append
//! past the committed ends and become visible in one rename ([`commit`]), one writer at a time ([`lock`]).
//! The `python` feature adds the PyO3 bindings (`mmap_ninja._native`).

mod column;
pub mod commit;
pub mod dense;
pub mod error;
mod files;
pub mod format;
pub mod lock;
pub mod mmap;
pub mod ragged;
mod readahead;
pub mod sharded;
pub mod store;
mod stream;
pub mod strings;

#[cfg(feature = "python")]
mod python;

pub use commit::WriteOptions;
pub use dense::DenseStore;
pub use error::{Error, Result};
pub use format::{Dtype, Order, StoreKind, TimeUnit};
pub use lock::{Wait, WriteLock};
pub use mmap::{Mode, Region};
pub use ragged::{Item, RaggedStore};
pub use sharded::{Manifest, Shard, ShardedWriter};
pub use strings::{StringStore, ZstdOptions};

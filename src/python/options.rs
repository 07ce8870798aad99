//! Options from Python: the mode of an open (`r`, `r+`, `c`), the write options (`wait` in seconds,
//! `durable`) and the lock wait, done in short slices with the GIL released so that Ctrl-C still interrupts a
//! writer waiting for another.

use std::time::{Duration, Instant};

use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;

use crate::commit::WriteOptions;
use crate::error::{Error, Result};
use crate::lock::Wait;
use crate::mmap::Mode;

/// How long one slice of a wait lasts before signals are checked.
const SLICE: Duration = Duration::from_millis(100);

/// Parses the mode of an open, refusing any name but `r`, `r+` and `c` (a ValueError in Python).
pub fn parse_mode(mode: &str) -> Result<Mode> {
    Mode::from_name(mode).ok_or_else(|| Error::InvalidArgument(format!("mode must be 'r', 'r+' or 'c', not {mode:?}")))
}

/// Runs `write` (which takes the store's lock first thing, so it can be retried) with the GIL released. While
/// another writer holds the lock it is retried for up to `wait` seconds (`inf`: until the lock is free).
pub fn locked<T: Send>(
    py: Python<'_>,
    wait: f64,
    durable: bool,
    write: impl Fn(&WriteOptions) -> Result<T> + Sync,
) -> PyResult<T> {
    if wait.is_nan() || wait < 0.0 {
        return Err(PyValueError::new_err(format!(
            "wait must be a non-negative number of seconds, not {wait}"
        )));
    }
    let deadline = Duration::try_from_secs_f64(wait)
        .ok()
        .and_then(|d| Instant::now().checked_add(d));
    loop {
        let slice = match deadline {
            None => SLICE,
            Some(d) => d.saturating_duration_since(Instant::now()).min(SLICE),
        };
        let wait = if slice.is_zero() { Wait::No } else { Wait::For(slice) };
        match py.detach(|| write(&WriteOptions { wait, durable })) {
            Err(Error::Locked { .. }) if deadline.is_none_or(|d| Instant::now() < d) => py.check_signals()?,
            result => return Ok(result?),
        }
    }
}

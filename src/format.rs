//! The on-disk layout shared with mmap-ninja 0.9.0: file names, dtype names, shape encoding, and the
//! parsing/validation of metadata with checked arithmetic. No I/O happens here.

use std::fmt;

/// Raw element bytes of a numpy-style directory (no header).
pub const DATA_FILE: &str = "data.ninja";
/// ASCII numpy dtype name, e.g. `uint8`.
pub const DTYPE_FILE: &str = "dtype.ninja";
/// One little-endian u64 per axis.
pub const SHAPE_FILE: &str = "shape.ninja";
/// ASCII `C` or `F`.
pub const ORDER_FILE: &str = "order.ninja";
/// ASCII `numpy`, `ragged` or `string`.
pub const TYPE_FILE: &str = "type.ninja";
/// Little-endian i32, 1 iff every ragged item is 1-D or 0-d.
pub const SHAPES_ARE_FLAT_FILE: &str = "shapes_are_flat.ninja";
/// ASCII zstd level of a compressed string store.
pub const ZSTD_LEVEL_FILE: &str = "zstd_level.ninja";
/// Raw zstd dictionary of a compressed string store.
pub const ZSTD_DICT_FILE: &str = "zstd_dict.ninja";
/// Sub-directory of int64 start offsets (elements for ragged, bytes for strings).
pub const STARTS_DIR: &str = "starts";
/// Sub-directory of int64 end offsets.
pub const ENDS_DIR: &str = "ends";
/// Sub-directory of int64 element counts (ragged only).
pub const FLATTENED_SHAPES_DIR: &str = "flattened_shapes";
/// Sub-directory of item shapes (ragged only): a numpy dir when flat, a nested ragged dir otherwise.
pub const SHAPES_DIR: &str = "shapes";

/// The manifest of a sharded store (see `sharded`): its shards in order, with their item counts.
pub const SHARDS_FILE: &str = "shards.ninja";
/// Prefix of the shard names writers generate; unlisted directories with it are a failed write's leftovers.
pub const GENERATED_SHARD_PREFIX: &str = "shard-";

/// What a new data file holds when it has no element: one zero byte past the committed end, as mmap-ninja
/// 0.9.0 writes it (numpy's memmap, which 0.9.0 reads with, cannot map an empty file). Readers ignore bytes
/// past the committed end and writers write over them.
pub const EMPTY_DATA: &[u8] = &[0];

/// The `parts` of a new data file, or `EMPTY_DATA` when they hold no byte.
pub fn data_parts<'a>(parts: &'a [&'a [u8]]) -> &'a [&'a [u8]] {
    if parts.iter().all(|part| part.is_empty()) {
        &[EMPTY_DATA]
    } else {
        parts
    }
}

/// What can be stored, in words (the allowlist `Dtype::parse` enforces), for error messages in every layer.
pub const ALLOWED_DTYPES: &str =
    "bool, (u)int8-64, float16-128, complex64-256, datetime64 and timedelta64 (one unit, no multiple)";
/// Largest metadata file (dtype, shape, order, type, flags, level) read before parsing.
pub const MAX_METADATA_BYTES: u64 = 4096;
/// Largest sharded-store manifest read (about a million shards).
pub const MAX_MANIFEST_BYTES: u64 = 64 << 20;
/// Largest zstd dictionary accepted.
pub const MAX_ZSTD_DICT_BYTES: u64 = 1 << 30;
/// Largest number of axes of an array or item.
pub const MAX_NDIM: usize = 32;
/// Largest decompressed size of one zstd string item.
pub const MAX_DECOMPRESSED_ITEM_BYTES: u64 = 1 << 31;

/// The kind of store a directory holds, from `type.ninja`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StoreKind {
    Numpy,
    Ragged,
    String,
}

impl StoreKind {
    /// Parses the contents of `type.ninja`.
    pub fn parse(text: &str) -> Option<StoreKind> {
        match text {
            "numpy" => Some(StoreKind::Numpy),
            "ragged" => Some(StoreKind::Ragged),
            "string" => Some(StoreKind::String),
            _ => None,
        }
    }

    /// The name written to `type.ninja`.
    pub fn name(self) -> &'static str {
        match self {
            StoreKind::Numpy => "numpy",
            StoreKind::Ragged => "ragged",
            StoreKind::String => "string",
        }
    }
}

/// An element type from the allowlist. Elements are stored little-endian (long doubles as the machine's).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Dtype {
    Bool,
    Int8,
    Int16,
    Int32,
    Int64,
    Uint8,
    Uint16,
    Uint32,
    Uint64,
    Float16,
    Float32,
    Float64,
    /// numpy's `longdouble` where it is 16 bytes (x86-64: 80-bit extended precision, padded; aarch64: IEEE
    /// quadruple precision). The bytes are stored as they are: a store written on one reads as other numbers
    /// on the other, as with mmap-ninja 0.9.0.
    Float128,
    Complex64,
    Complex128,
    /// Two `Float128`s (numpy's `clongdouble` where it is 32 bytes).
    Complex256,
    /// An int64 count of `TimeUnit`s since 1970-01-01 (numpy's `datetime64[unit]`; the minimum is NaT).
    Datetime64(TimeUnit),
    /// An int64 count of `TimeUnit`s (numpy's `timedelta64[unit]`; the minimum is NaT).
    Timedelta64(TimeUnit),
}

/// The element types that take no unit.
const FIXED: [Dtype; 16] = [
    Dtype::Bool,
    Dtype::Int8,
    Dtype::Int16,
    Dtype::Int32,
    Dtype::Int64,
    Dtype::Uint8,
    Dtype::Uint16,
    Dtype::Uint32,
    Dtype::Uint64,
    Dtype::Float16,
    Dtype::Float32,
    Dtype::Float64,
    Dtype::Float128,
    Dtype::Complex64,
    Dtype::Complex128,
    Dtype::Complex256,
];

/// The unit of a `Datetime64` or `Timedelta64` element: numpy's, without multiples (`[5s]` is not on the
/// allowlist).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TimeUnit {
    /// No unit (`datetime64`, `timedelta64`): what numpy gives NaTs and counts made without one.
    Generic,
    Years,
    Months,
    Weeks,
    Days,
    Hours,
    Minutes,
    Seconds,
    Millis,
    Micros,
    Nanos,
    Picos,
    Femtos,
    Attos,
}

/// Each unit with numpy's names of a datetime64 and a timedelta64 in it, in the order of `TimeUnit`.
const TIME_UNITS: [(TimeUnit, &str, &str); 14] = [
    (TimeUnit::Generic, "datetime64", "timedelta64"),
    (TimeUnit::Years, "datetime64[Y]", "timedelta64[Y]"),
    (TimeUnit::Months, "datetime64[M]", "timedelta64[M]"),
    (TimeUnit::Weeks, "datetime64[W]", "timedelta64[W]"),
    (TimeUnit::Days, "datetime64[D]", "timedelta64[D]"),
    (TimeUnit::Hours, "datetime64[h]", "timedelta64[h]"),
    (TimeUnit::Minutes, "datetime64[m]", "timedelta64[m]"),
    (TimeUnit::Seconds, "datetime64[s]", "timedelta64[s]"),
    (TimeUnit::Millis, "datetime64[ms]", "timedelta64[ms]"),
    (TimeUnit::Micros, "datetime64[us]", "timedelta64[us]"),
    (TimeUnit::Nanos, "datetime64[ns]", "timedelta64[ns]"),
    (TimeUnit::Picos, "datetime64[ps]", "timedelta64[ps]"),
    (TimeUnit::Femtos, "datetime64[fs]", "timedelta64[fs]"),
    (TimeUnit::Attos, "datetime64[as]", "timedelta64[as]"),
];

impl Dtype {
    /// Every element type of the allowlist.
    pub fn all() -> impl Iterator<Item = Dtype> {
        let timed = TIME_UNITS
            .into_iter()
            .flat_map(|(u, _, _)| [Dtype::Datetime64(u), Dtype::Timedelta64(u)]);
        FIXED.into_iter().chain(timed)
    }

    /// Parses a numpy dtype name as written by `np.dtype(x).name`; `None` outside the allowlist.
    pub fn parse(name: &str) -> Option<Dtype> {
        Self::all().find(|d| d.name() == name)
    }

    /// The numpy name written to `dtype.ninja`.
    pub fn name(self) -> &'static str {
        match self {
            Dtype::Bool => "bool",
            Dtype::Int8 => "int8",
            Dtype::Int16 => "int16",
            Dtype::Int32 => "int32",
            Dtype::Int64 => "int64",
            Dtype::Uint8 => "uint8",
            Dtype::Uint16 => "uint16",
            Dtype::Uint32 => "uint32",
            Dtype::Uint64 => "uint64",
            Dtype::Float16 => "float16",
            Dtype::Float32 => "float32",
            Dtype::Float64 => "float64",
            Dtype::Float128 => "float128",
            Dtype::Complex64 => "complex64",
            Dtype::Complex128 => "complex128",
            Dtype::Complex256 => "complex256",
            Dtype::Datetime64(unit) => TIME_UNITS[unit as usize].1,
            Dtype::Timedelta64(unit) => TIME_UNITS[unit as usize].2,
        }
    }

    /// True for `Datetime64` and `Timedelta64`, whose elements are int64 counts of a unit.
    pub fn is_time(self) -> bool {
        matches!(self, Dtype::Datetime64(_) | Dtype::Timedelta64(_))
    }

    /// Bytes per element.
    pub fn itemsize(self) -> usize {
        match self {
            Dtype::Bool | Dtype::Int8 | Dtype::Uint8 => 1,
            Dtype::Int16 | Dtype::Uint16 | Dtype::Float16 => 2,
            Dtype::Int32 | Dtype::Uint32 | Dtype::Float32 => 4,
            Dtype::Int64 | Dtype::Uint64 | Dtype::Float64 | Dtype::Complex64 => 8,
            Dtype::Datetime64(_) | Dtype::Timedelta64(_) => 8,
            Dtype::Float128 | Dtype::Complex128 => 16,
            Dtype::Complex256 => 32,
        }
    }
}

impl fmt::Display for Dtype {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Memory order of a numpy-style directory.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Order {
    C,
    F,
}

impl Order {
    /// Parses `order.ninja`.
    pub fn parse(text: &str) -> Option<Order> {
        match text {
            "C" => Some(Order::C),
            "F" => Some(Order::F),
            _ => None,
        }
    }

    /// The letter written to `order.ninja`.
    pub fn name(self) -> &'static str {
        match self {
            Order::C => "C",
            Order::F => "F",
        }
    }
}

/// Decodes `shape.ninja`: one little-endian u64 per axis (an empty file is a 0-d shape).
pub fn parse_shape(bytes: &[u8]) -> Result<Vec<u64>, String> {
    if !bytes.len().is_multiple_of(8) {
        return Err(format!("shape has {} bytes, not a multiple of 8", bytes.len()));
    }
    if bytes.len() / 8 > MAX_NDIM {
        return Err(format!("shape has {} axes, more than {MAX_NDIM}", bytes.len() / 8));
    }
    Ok(bytes
        .chunks_exact(8)
        .map(|c| u64::from_le_bytes(c.try_into().expect("chunks_exact(8)")))
        .collect())
}

/// Encodes a shape for `shape.ninja`.
pub fn encode_shape(shape: &[u64]) -> Vec<u8> {
    shape.iter().flat_map(|d| d.to_le_bytes()).collect()
}

/// Product of the axes, or `None` on overflow.
pub fn element_count(shape: &[u64]) -> Option<u64> {
    shape.iter().try_fold(1u64, |acc, &d| acc.checked_mul(d))
}

/// Bytes taken by `shape` elements of `dtype`, or `None` on overflow (including beyond `usize`).
pub fn byte_len(shape: &[u64], dtype: Dtype) -> Option<usize> {
    let bytes = element_count(shape)?.checked_mul(dtype.itemsize() as u64)?;
    usize::try_from(bytes).ok()
}

/// Decodes `shapes_are_flat.ninja` (a little-endian i32: 0 or 1).
pub fn parse_flag(bytes: &[u8]) -> Result<bool, String> {
    match <[u8; 4]>::try_from(bytes).map(i32::from_le_bytes) {
        Ok(0) => Ok(false),
        Ok(1) => Ok(true),
        Ok(v) => Err(format!("flag holds {v}, expected 0 or 1")),
        Err(_) => Err(format!("flag has {} bytes, expected 4", bytes.len())),
    }
}

/// Encodes `shapes_are_flat.ninja`.
pub fn encode_flag(flag: bool) -> [u8; 4] {
    i32::from(flag).to_le_bytes()
}

/// The zstd levels a store may name (zstd's own range; it clamps others silently).
pub const ZSTD_LEVELS: std::ops::RangeInclusive<i32> = -131072..=22;

/// Decodes `zstd_level.ninja` (ASCII integer).
pub fn parse_zstd_level(text: &str) -> Result<i32, String> {
    text.trim()
        .parse::<i32>()
        .ok()
        .filter(|l| ZSTD_LEVELS.contains(l))
        .ok_or_else(|| format!("zstd level {text:?} is not an integer in {ZSTD_LEVELS:?}"))
}

/// Maps a Python-style index (negative counts from the end) into `0..len`.
pub fn resolve_index(index: i64, len: usize) -> Option<usize> {
    let len_i = i64::try_from(len).ok()?;
    let i = if index < 0 { index.checked_add(len_i)? } else { index };
    (0..len_i).contains(&i).then_some(i as usize)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_data_file_without_elements_holds_one_zero_byte() {
        assert_eq!(data_parts(&[]), &[EMPTY_DATA]);
        assert_eq!(data_parts(&[b"", b""]), &[EMPTY_DATA]);
        assert_eq!(data_parts(&[b"", b"ab"]), &[b"" as &[u8], b"ab"]);
    }

    #[test]
    fn dtype_names_round_trip_and_allowlist_rejects_the_rest() {
        let all: Vec<Dtype> = Dtype::all().collect();
        assert_eq!(all.len(), 16 + 2 * 14);
        for (k, d) in all.iter().enumerate() {
            assert_eq!(Dtype::parse(d.name()), Some(*d));
            assert!(all[..k].iter().all(|other| other.name() != d.name()), "{d}");
        }
        assert_eq!(
            TIME_UNITS.iter().map(|(u, _, _)| *u as usize).collect::<Vec<_>>(),
            (0..14).collect::<Vec<_>>()
        );
        assert_eq!(Dtype::parse("datetime64[ns]"), Some(Dtype::Datetime64(TimeUnit::Nanos)));
        assert_eq!(Dtype::parse("timedelta64"), Some(Dtype::Timedelta64(TimeUnit::Generic)));
        assert_eq!(Dtype::Datetime64(TimeUnit::Days).itemsize(), 8);
        assert_eq!(
            (
                Dtype::Float128.itemsize(),
                Dtype::Complex256.itemsize(),
                Dtype::Bool.itemsize()
            ),
            (16, 32, 1)
        );
        for bad in [
            "object",
            "str352",
            "bytes8",
            "void16",
            "float96",
            "datetime64[5s]",
            "datetime64[ns",
            "timedelta64[]",
            "<M8[ns]",
            "",
            "int64 ",
        ] {
            assert_eq!(Dtype::parse(bad), None, "{bad}");
        }
    }

    #[test]
    fn shape_round_trips_and_rejects_bad_lengths() {
        let shape = [3u64, 0, u64::MAX];
        assert_eq!(parse_shape(&encode_shape(&shape)).unwrap(), shape);
        assert_eq!(parse_shape(&[]).unwrap(), Vec::<u64>::new());
        assert!(parse_shape(&[0; 7]).is_err());
        assert!(parse_shape(&[0; 8 * (MAX_NDIM + 1)]).is_err());
        assert_eq!(encode_shape(&[1]), [1, 0, 0, 0, 0, 0, 0, 0]);
    }

    #[test]
    fn byte_len_is_checked() {
        assert_eq!(byte_len(&[2, 3], Dtype::Float32), Some(24));
        assert_eq!(byte_len(&[], Dtype::Int64), Some(8));
        assert_eq!(byte_len(&[u64::MAX, 2], Dtype::Uint8), None);
        assert_eq!(byte_len(&[u64::MAX / 4], Dtype::Int64), None);
    }

    #[test]
    fn flag_and_level_parse() {
        assert_eq!(parse_flag(&encode_flag(true)), Ok(true));
        assert_eq!(parse_flag(&encode_flag(false)), Ok(false));
        assert!(parse_flag(&2i32.to_le_bytes()).is_err());
        assert!(parse_flag(&[1]).is_err());
        assert_eq!(parse_zstd_level("3"), Ok(3));
        assert!(parse_zstd_level("99").is_err());
        assert!(parse_zstd_level("x").is_err());
    }

    #[test]
    fn indices_resolve_like_python() {
        assert_eq!(resolve_index(0, 3), Some(0));
        assert_eq!(resolve_index(-1, 3), Some(2));
        assert_eq!(resolve_index(-3, 3), Some(0));
        assert_eq!(resolve_index(3, 3), None);
        assert_eq!(resolve_index(-4, 3), None);
        assert_eq!(resolve_index(i64::MIN, 3), None);
        assert_eq!(resolve_index(0, 0), None);
    }

    #[test]
    fn kinds_and_orders_parse() {
        for k in [StoreKind::Numpy, StoreKind::Ragged, StoreKind::String] {
            assert_eq!(StoreKind::parse(k.name()), Some(k));
        }
        assert_eq!(StoreKind::parse("asd"), None);
        assert_eq!(Order::parse("F"), Some(Order::F));
        assert_eq!(Order::parse("c"), None);
    }
}

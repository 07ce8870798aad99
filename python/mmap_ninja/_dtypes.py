"""Which element types a store may hold, and exact conversion of user arrays into them.

Stores hold little-endian bool, (u)int8-64, float16-64 and complex64/128 elements. Anything else (object,
str, bytes, structured, datetime, long double) is refused with a TypeError before anything is written. A value
the store's dtype cannot hold exactly raises a ValueError instead of being silently cast, with one exception:
floats stored as narrower floats are rounded, as numpy's ``astype`` does (float64 features in a float32 store),
unless a finite value would become infinite.
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np

ALLOWED = frozenset(
    "bool int8 int16 int32 int64 uint8 uint16 uint32 uint64 float16 float32 float64 complex64 complex128".split()
)


def taken_as_is(item: Any, dtype: np.dtype[Any]) -> bool:
    """True when the native writer takes ``item`` straight from its memory into a store of ``dtype`` (a
    little-endian store dtype): exactly an ndarray (no subclass), of ``dtype``, at least 1-D, C-contiguous."""
    return type(item) is np.ndarray and item.dtype == dtype and item.ndim > 0 and item.flags.c_contiguous


def store_dtype(dtype: Any) -> np.dtype[Any]:
    """The little-endian dtype used to store ``dtype``; TypeError outside the allowlist."""
    dt: np.dtype[Any] = np.dtype(dtype)
    if dt.fields is not None or dt.subdtype is not None or dt.name not in ALLOWED:
        hint = " (use StringsMmap for text)" if dt.kind in "USO" else ""
        raise TypeError(
            f"mmap_ninja cannot store dtype {dt!r}: only bool, (u)int8-64, float16-64 and complex64/128{hint}"
        )
    return dt.newbyteorder("<")


def to_store(value: Any, dtype: np.dtype[Any] | None, what: str = "item") -> np.ndarray:
    """``value`` as a C-contiguous little-endian array of ``dtype`` (its own dtype when None), exactly."""
    arr = np.asarray(value)
    own = store_dtype(arr.dtype)
    target = own if dtype is None else dtype
    if arr.dtype == target:
        return _c_contiguous(arr)
    if np.can_cast(arr.dtype, target, "safe"):
        return arr.astype(target, order="C")
    with np.errstate(all="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        converted = arr.astype(target)
        if _rounds(arr.dtype, target):
            if np.any(np.isfinite(arr) & ~np.isfinite(converted)):
                raise ValueError(f"{what} has {arr.dtype.name} values too large for {target.name}")
            return _c_contiguous(converted)
        back = converted.astype(arr.dtype)
    exact = np.array_equal(back, arr, equal_nan=arr.dtype.kind in "fc")
    if not exact:
        raise ValueError(
            f"{what} has {arr.dtype.name} values that {target.name} cannot hold exactly; "
            f"convert it explicitly (e.g. np.asarray(x, dtype={target.name!r})) if that is what you want"
        )
    return _c_contiguous(converted)


def _rounds(source: np.dtype[Any], target: np.dtype[Any]) -> bool:
    """True when ``source`` values go into ``target`` rounded rather than checked: floats (or complex numbers)
    into narrower floats (or complex numbers). Integers, fractions stored as integers and imaginary parts
    dropped by a real store are checked exactly."""
    return source.kind in "fc" and target.kind in "fc" and not (source.kind == "c" and target.kind == "f")


def _c_contiguous(arr: np.ndarray) -> np.ndarray:
    # np.ascontiguousarray would turn a 0-d array into a 1-d one.
    return arr if arr.flags.c_contiguous else arr.copy(order="C")

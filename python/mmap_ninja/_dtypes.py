"""Which element types a store may hold, and exact conversion of user arrays into them.

Stores hold little-endian bool, (u)int8-64, float16-128, complex64-256, datetime64 and timedelta64 elements
(the last two in any of numpy's units, without multiples such as ``[5s]``). Anything else (object, str, bytes,
structured) is refused with a TypeError before anything is written. A value the store's dtype cannot hold
exactly raises a ValueError instead of being silently cast, with one exception: floats stored as narrower floats
are rounded, as numpy's ``astype`` does (float64 features in a float32 store), unless a finite value would
become infinite. Times go only into stores of their own kind (datetime64 or timedelta64), in any unit that
holds them exactly.
"""

from __future__ import annotations

import datetime
import warnings
from typing import Any

import numpy as np

from . import _native

_UNITS = ("", "[Y]", "[M]", "[W]", "[D]", "[h]", "[m]", "[s]", "[ms]", "[us]", "[ns]", "[ps]", "[fs]", "[as]")
_NUMBERS = (
    "bool int8 int16 int32 int64 uint8 uint16 uint32 uint64 float16 float32 float64 float128 complex64 complex128 "
    "complex256"
)
ALLOWED = frozenset(_NUMBERS.split() + [f"{kind}64{unit}" for kind in ("datetime", "timedelta") for unit in _UNITS])
# The kinds of datetime64 and timedelta64, whose values are int64 counts of their unit.
_TIMES = "Mm"


def taken_as_is(item: Any, dtype: np.dtype[Any]) -> bool:
    """True when the native writer takes ``item`` straight from its memory into a store of ``dtype`` (a
    little-endian store dtype): exactly an ndarray (no subclass), of ``dtype``, at least 1-D, C-contiguous, and
    not of times (numpy exports no buffer of them: they go through ``exported``)."""
    return (
        type(item) is np.ndarray
        and item.dtype == dtype
        and item.ndim > 0
        and item.flags.c_contiguous
        and dtype.kind not in _TIMES
    )


def exported(arr: np.ndarray) -> np.ndarray:
    """``arr`` as the native layer reads it through the buffer protocol: times as their int64 counts, since
    numpy exports no buffer of datetime64 or timedelta64 elements; long doubles (and their complex numbers)
    spelt in the native byte order, the only one numpy exports them in (``store_dtype`` spells it ``<``: the
    same bytes on the little-endian machines this package builds for); anything else as it is."""
    if arr.dtype.kind in _TIMES:
        return arr.view("<i8")
    return arr.view(arr.dtype.newbyteorder("=")) if arr.dtype.char in "gG" else arr


def store_dtype(dtype: Any) -> np.dtype[Any]:
    """The little-endian dtype used to store ``dtype``; TypeError outside the allowlist."""
    dt: np.dtype[Any] = np.dtype(dtype)
    if dt.fields is not None or dt.subdtype is not None or dt.name not in ALLOWED:
        hint = " (use StringsMmap for text)" if dt.kind in "USO" else ""
        raise TypeError(f"mmap_ninja cannot store dtype {dt!r}: only {_native.ALLOWED_DTYPES}{hint}")
    return dt.newbyteorder("<")


def to_store(value: Any, dtype: np.dtype[Any] | None, what: str = "item") -> np.ndarray:
    """``value`` as a C-contiguous little-endian array of ``dtype`` (its own dtype when None), exactly."""
    arr = np.asarray(value)
    if arr.dtype == object:
        arr = _times_of_objects(arr)
    own = store_dtype(arr.dtype)
    if own.kind in _TIMES and not isinstance(value, np.ndarray):
        _check_times(value, own, what)
    target = own if dtype is None else dtype
    if arr.dtype == target:
        return _c_contiguous(arr)
    if (arr.dtype.kind in _TIMES or target.kind in _TIMES) and (
        arr.dtype.kind != target.kind or (_unitless(arr.dtype) and not np.all(np.isnat(arr)))
    ):
        raise TypeError(
            f"{what} has {arr.dtype.name} values, which a {target.name} store does not take; "
            f"convert them explicitly (e.g. np.asarray(x, dtype={target.name!r})) if that is what you want"
        )
    # (numpy calls finer time units safe, but a time too far from 1970 overflows them: times are checked.)
    if _exactly_safe(arr.dtype, target):
        return arr.astype(target, order="C")
    with np.errstate(all="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        converted = arr.astype(target)
        if _rounds(arr.dtype, target):
            if np.any(np.isfinite(arr) & ~np.isfinite(converted)):
                raise ValueError(f"{what} has {arr.dtype.name} values too large for {target.name}")
            return _c_contiguous(converted)
        back = converted.astype(arr.dtype)
    # (A time unit that cannot hold the values, such as datetime64 without one, keeps the values' unit.)
    exact = converted.dtype == target and np.array_equal(back, arr, equal_nan=arr.dtype.kind in "fc" + _TIMES)
    if arr.dtype.kind in "iu" and target.kind in "iu" and arr.size:
        # (-1 as uint8 is 255, which goes back to -1: between signed and unsigned, the range decides.)
        info = np.iinfo(target)
        exact = exact and info.min <= int(arr.min()) and int(arr.max()) <= info.max
    if not exact:
        raise ValueError(
            f"{what} has {arr.dtype.name} values that {target.name} cannot hold exactly; "
            f"convert it explicitly (e.g. np.asarray(x, dtype={target.name!r})) if that is what you want"
        )
    return _c_contiguous(converted)


def _exactly_safe(source: np.dtype[Any], target: np.dtype[Any]) -> bool:
    """True when every ``source`` value converts to ``target`` exactly, so nothing needs checking: numpy's
    "safe" casts, except into times (a finer unit overflows for times far from 1970) and integers into floats
    with fewer mantissa bits than the integers have (numpy calls int64 into float64 safe, but 2**53 + 1
    becomes 2**53)."""
    if target.kind in _TIMES or not np.can_cast(source, target, "safe"):
        return False
    if source.kind in "iu" and target.kind in "fc":
        return np.finfo(target).nmant + 1 >= 8 * source.itemsize - (source.kind == "i")
    return True


def _times_of_objects(arr: np.ndarray) -> np.ndarray:
    """Python dates and datetimes (what a 0-d datetime64 item reads back as) or timedeltas as numpy times in
    their own unit (days for dates, microseconds otherwise); anything else as it is, to be refused."""
    for kind, types in (("M8", datetime.date), ("m8", datetime.timedelta)):
        if arr.size and all(isinstance(x, types) for x in arr.flat):
            return arr.astype(kind)
    return arr


def _unitless(dtype: np.dtype[Any]) -> bool:
    """True for ``datetime64`` and ``timedelta64`` without a unit: their values are counts of nothing yet."""
    return np.datetime_data(dtype)[0] == "generic"


def _check_times(value: Any, dtype: np.dtype[Any], what: str) -> None:
    """Checks each time of ``value`` (a list or scalar that numpy turned into times of ``dtype``) against
    ``dtype``: numpy gives a list of several units the finest and wraps around the times that overflow it."""
    if isinstance(value, list | tuple):
        for element in value:
            _check_times(element, dtype, what)
    elif not isinstance(value, np.ndarray) or value.dtype != dtype:
        to_store(np.asarray(value), dtype, what)


def _rounds(source: np.dtype[Any], target: np.dtype[Any]) -> bool:
    """True when ``source`` values go into ``target`` rounded rather than checked: floats (or complex numbers)
    into narrower floats (or complex numbers). Integers, fractions stored as integers and imaginary parts
    dropped by a real store are checked exactly."""
    return source.kind in "fc" and target.kind in "fc" and not (source.kind == "c" and target.kind == "f")


def _c_contiguous(arr: np.ndarray) -> np.ndarray:
    # np.ascontiguousarray would turn a 0-d array into a 1-d one.
    return arr if arr.flags.c_contiguous else arr.copy(order="C")

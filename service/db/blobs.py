"""Arrays to bytes and back, safely: np.save/np.load without pickle, guarded by sha256."""

from __future__ import annotations

import hashlib
import io
from collections.abc import Sequence

import numpy as np


class BlobError(ValueError):
    """Stored bytes that must not be loaded: corrupted, tampered with, or unsafe."""


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def verify_sha256(data: bytes, expected: str, what: str) -> None:
    """Raise BlobError unless data hashes to expected (checked before any parsing)."""
    actual = sha256_hex(data)
    if actual != expected:
        raise BlobError(
            f"{what}: sha256 mismatch (stored {expected}, data hashes to {actual});"
            " the bytes were corrupted or modified, refusing to load them"
        )


def pack_arrays(arrays: Sequence[np.ndarray]) -> tuple[bytes, list[list[int]], str, str]:
    """Write arrays one after another with np.save(allow_pickle=False).

    Returns (data, shapes, dtype, sha256); dtype is the common dtype name, or the
    comma-joined names if they differ. Object arrays are refused (they need pickle).
    """
    buf = io.BytesIO()
    shapes: list[list[int]] = []
    dtypes: list[str] = [""] if not arrays else []
    for a in arrays:
        a = np.asarray(a)
        if a.dtype.hasobject:
            raise BlobError("object arrays cannot be stored (they would need pickle)")
        np.save(buf, a, allow_pickle=False)
        shapes.append([int(n) for n in a.shape])
        dtypes.append(a.dtype.str if a.dtype.byteorder == ">" else a.dtype.name)
    data = buf.getvalue()
    dtype = dtypes[0] if len(set(dtypes)) == 1 else ",".join(dtypes)  # "" for no arrays
    return data, shapes, dtype, sha256_hex(data)


def unpack_arrays(
    data: bytes, shapes: Sequence[Sequence[int]], sha256: str, what: str = "weights"
) -> list[np.ndarray]:
    """Inverse of pack_arrays: checks sha256 first, then loads each array without pickle."""
    verify_sha256(data, sha256, what)
    buf = io.BytesIO(data)
    arrays: list[np.ndarray] = []
    for i, shape in enumerate(shapes):
        try:
            a = np.load(buf, allow_pickle=False)
        except ValueError as exc:  # numpy's refusal of object arrays lands here
            raise BlobError(f"{what}: array {i} cannot be loaded safely: {exc}") from exc
        if not isinstance(a, np.ndarray) or a.dtype.hasobject:
            raise BlobError(f"{what}: array {i} is not a plain numeric array")
        if list(a.shape) != list(shape):
            raise BlobError(f"{what}: array {i} has shape {a.shape}, recorded {tuple(shape)}")
        arrays.append(a)
    if buf.tell() != len(data):
        raise BlobError(f"{what}: {len(data) - buf.tell()} unexpected bytes after the arrays")
    return arrays

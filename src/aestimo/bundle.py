"""Tensors plus metadata, stored as safetensors (weights, task vectors, caches, λ).

Never a pickle: safetensors holds raw tensors and a string-to-string header,
where the metadata travels as one JSON string. Saving writes a temporary file
beside the target and renames it into place, so a run killed mid-save never
leaves a half-written file that looks complete. No Kedro here: the catalog's
dataset (:mod:`aestimo.datasets`) is a thin wrapper over these functions.

Per-image tables (the image store, backbone features) can be larger than
memory: :class:`BundleWriter` writes one in place, row block by row block, and
``load_bundle(path, mmap=True)`` maps it, so that indexing rows reads only
those rows from disk. A mapped tensor sent to another process travels as its
file and key (:func:`mapped_origin`), never as a copy of its values.
"""

from __future__ import annotations

import json
import os
import struct
import weakref
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors import safe_open
from safetensors.torch import save_file


class BundleError(ValueError):
    """A file that should hold a tensor bundle cannot be read as one."""


@dataclass
class TensorBundle(Mapping[str, torch.Tensor]):
    """Named tensors plus JSON-able metadata (ids, names, config); a read-only mapping of the tensors."""

    tensors: dict[str, torch.Tensor]
    meta: dict[str, Any] = field(default_factory=dict)
    #: the file the tensors are mapped from (``load_bundle(..., mmap=True)``); None when in memory
    path: Path | None = field(default=None, compare=False)
    #: True for a file a node wrote in scratch space: saving it moves the file into place
    scratch: bool = field(default=False, compare=False)

    def __getitem__(self, key: str) -> torch.Tensor:
        return self.tensors[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self.tensors)

    def __len__(self) -> int:
        return len(self.tensors)

    def __repr__(self) -> str:
        n = sum(t.numel() for t in self.tensors.values())
        keys = list(self.tensors)
        shown = ", ".join(keys[:4]) + (f", … (+{len(keys) - 4})" if len(keys) > 4 else "")
        return f"TensorBundle({len(keys)} tensors, {n:,} values: {shown}; meta keys {sorted(self.meta)})"


def save_bundle(bundle: TensorBundle | Mapping[str, torch.Tensor], path: str | Path) -> None:
    """Write ``bundle`` to ``path`` atomically (temporary file, then rename)."""
    if not isinstance(bundle, TensorBundle):
        bundle = TensorBundle(dict(bundle))
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if bundle.scratch and bundle.path is not None:  # written in place already: move it, never load it
        _move(bundle.path, path)
        bundle.path, bundle.scratch = path, False
        return
    tensors = {k: v.detach().contiguous().cpu() for k, v in bundle.tensors.items()}
    header = {"aestimo": json.dumps(bundle.meta)}
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    try:
        save_file(tensors, str(tmp), metadata=header)
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


def load_bundle(path: str | Path, mmap: bool = False) -> TensorBundle:
    """Read a bundle; a missing file raises FileNotFoundError, an unreadable one :class:`BundleError`.

    With ``mmap=True`` the tensors are mapped from the file (copy-on-write, CPU): nothing is read
    until rows are indexed, so a table larger than memory can be opened.
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path} does not exist")
    if mmap:
        return _mapped_bundle(path)
    try:
        with safe_open(str(path), framework="pt") as f:
            tensors = {k: f.get_tensor(k) for k in f.keys()}
            header = f.metadata() or {}
    except Exception as err:  # safetensors raises its own error types
        raise BundleError(f"{path} is not a readable safetensors file: {err}") from err
    return TensorBundle(tensors, json.loads(header.get("aestimo", "{}")))


# --------------------------------------------------------------------------- mapped and streamed bundles

_DTYPES = {
    torch.uint8: ("U8", np.uint8), torch.int8: ("I8", np.int8), torch.int16: ("I16", np.int16),
    torch.int32: ("I32", np.int32), torch.int64: ("I64", np.int64), torch.float16: ("F16", np.float16),
    torch.float32: ("F32", np.float32), torch.float64: ("F64", np.float64), torch.bool: ("BOOL", np.bool_),
}
_NUMPY_OF = {code: npt for code, npt in _DTYPES.values()}
_TORCH_OF = {code: t for t, (code, _) in _DTYPES.items()}
#: storage address of a mapped tensor -> (file, key, shape): how it travels to another process
_ORIGINS: dict[int, tuple[str, str, tuple[int, ...]]] = {}


def _move(src: Path, dst: Path) -> None:
    try:
        os.replace(src, dst)
    except OSError:  # another file system: copy beside the target, then rename into place
        import shutil

        tmp = dst.with_name(f".{dst.name}.tmp{os.getpid()}")
        try:
            shutil.copyfile(src, tmp)
            os.replace(tmp, dst)
        finally:
            tmp.unlink(missing_ok=True)
        src.unlink()


def _header(path: Path) -> tuple[int, dict]:
    with open(path, "rb") as f:
        (n,) = struct.unpack("<Q", f.read(8))
        return 8 + n, json.loads(f.read(n))


def _map(path: Path, start: int, spec: dict, mode: str = "r") -> np.ndarray:
    begin, end = spec["data_offsets"]
    shape = tuple(spec["shape"])
    if end == begin:
        return np.empty(shape, dtype=_NUMPY_OF[spec["dtype"]])
    return np.memmap(path, dtype=_NUMPY_OF[spec["dtype"]], mode=mode, offset=start + begin, shape=shape)


def _spec(path: Path, key: str) -> tuple[int, dict]:
    """Where the data of ``path`` starts, and tensor ``key``'s entry of its header."""
    try:
        start, header = _header(path)
        return start, header[key]
    except (OSError, KeyError, ValueError, struct.error) as err:
        raise BundleError(f"{path} is not a readable safetensors file with tensor {key!r}: {err}") from err


def mapped_tensor(path: str | Path, key: str) -> torch.Tensor:
    """One tensor of a safetensors file, mapped copy-on-write (see :func:`mapped_origin`): reads come
    from the file's pages, a write (none is expected) stays private to the process, the file never changes."""
    path = Path(path)
    t = torch.from_numpy(_map(path, *_spec(path, key), mode="c"))
    if t.numel():
        ptr = t.untyped_storage().data_ptr()
        _ORIGINS[ptr] = (str(path), key, tuple(t.shape))
        weakref.finalize(t, _ORIGINS.pop, ptr, None)
    return t


def mapped_origin(t: torch.Tensor) -> tuple[str, str] | None:
    """``(file, key)`` of a tensor mapped by :func:`mapped_tensor` (a whole one, not a slice); else None."""
    if t.device.type != "cpu" or not t.numel() or t.storage_offset() or not t.is_contiguous():
        return None
    origin = _ORIGINS.get(t.untyped_storage().data_ptr())
    return origin[:2] if origin is not None and origin[2] == tuple(t.shape) else None


def _mapped_bundle(path: Path) -> TensorBundle:
    try:
        _, header = _header(path)
    except (OSError, ValueError, struct.error) as err:
        raise BundleError(f"{path} is not a readable safetensors file: {err}") from err
    meta = json.loads((header.get("__metadata__") or {}).get("aestimo", "{}"))
    keys = [k for k in header if k != "__metadata__"]
    return TensorBundle({k: mapped_tensor(path, k) for k in keys}, meta, path=path)


class BundleWriter:
    """A bundle written in place, block by block, for tables larger than memory.

    ``specs`` gives each tensor's dtype and shape up front; the file is laid out at once
    (in ``folder``, under a temporary name) and :meth:`rows` writes a tensor's rows in place
    (several threads may fill disjoint rows). Leaving the ``with`` block
    without an error returns the finished bundle, mapped and marked as scratch
    (:func:`save_bundle` moves it into place); an error removes the file, so nothing
    half-written is left that looks complete.
    """

    def __init__(self, folder: str | Path, specs: Mapping[str, tuple[torch.dtype, tuple[int, ...]]], meta: dict | None = None):
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        import tempfile

        fd, name = tempfile.mkstemp(prefix=".bundle-", suffix=".safetensors.tmp", dir=folder)
        os.close(fd)
        self.path = Path(name)
        header: dict[str, Any] = {"__metadata__": {"aestimo": json.dumps(meta or {})}}
        offset = 0
        for key, (dtype, shape) in specs.items():
            size = int(np.prod(shape, dtype=np.int64)) * torch.empty((), dtype=dtype).element_size()
            header[key] = {"dtype": _DTYPES[dtype][0], "shape": list(shape), "data_offsets": [offset, offset + size]}
            offset += size
        raw = json.dumps(header, separators=(",", ":")).encode()
        raw += b" " * (-len(raw) % 8)
        with open(self.path, "wb") as f:
            f.write(struct.pack("<Q", len(raw)) + raw)
            f.truncate(8 + len(raw) + offset)
        self.start, self.header = 8 + len(raw), header
        self.bundle: TensorBundle | None = None
        self._writers: list[RowWriter] = []

    def rows(self, key: str) -> RowWriter:
        """Tensor ``key`` of the file, written row by row (``out[i] = row``, ``out[a:b] = block``)
        with ``os.pwrite``: unlike a map, the rows written never count in the process's memory."""
        spec = self.header[key]
        out = RowWriter(self.path, self.start + spec["data_offsets"][0], tuple(spec["shape"]), np.dtype(_NUMPY_OF[spec["dtype"]]))
        self._writers.append(out)
        return out

    def __enter__(self) -> BundleWriter:
        return self

    def __exit__(self, kind, err, tb) -> None:
        for w in self._writers:
            w.close()
        if kind is not None:
            self.path.unlink(missing_ok=True)
            return
        self.bundle = _mapped_bundle(self.path)
        self.bundle.scratch = True


class RowWriter:
    """Rows of one tensor of a file laid out by :class:`BundleWriter`, written in place with
    ``os.pwrite`` (threads may write disjoint rows at once: each call names its own offset)."""

    def __init__(self, path: Path, offset: int, shape: tuple[int, ...], dtype: np.dtype):
        self.path, self.offset, self.shape, self.dtype = path, offset, shape, dtype
        self._row_bytes = int(np.prod(shape[1:], dtype=np.int64)) * dtype.itemsize
        self._fd = os.open(path, os.O_WRONLY)

    def __len__(self) -> int:
        return self.shape[0]

    def __setitem__(self, index: int | slice, value) -> None:
        start, stop = (index, index + 1) if isinstance(index, int) else index.indices(len(self))[:2]
        if isinstance(index, slice) and index.step not in (None, 1):
            raise IndexError("RowWriter writes consecutive rows only")
        data = np.ascontiguousarray(value, dtype=self.dtype)
        if data.size * self.dtype.itemsize != (stop - start) * self._row_bytes or not 0 <= start <= stop <= len(self):
            raise ValueError(f"rows {start}..{stop} of {self.path.name}: got {data.shape}, rows are {self.shape[1:]}")
        view, at = memoryview(data).cast("B"), self.offset + start * self._row_bytes
        while len(view):  # pwrite may write less than asked
            done = os.pwrite(self._fd, view, at)
            view, at = view[done:], at + done

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def __del__(self) -> None:
        self.close()


class StoredRows:
    """The rows of one tensor of a safetensors file, read from disk when indexed (``os.preadv``).

    Unlike a mapped tensor it keeps nothing of the file in the process: the memory that rows once
    read occupied is freed with them, so reading every row of a store larger than memory, batch after
    batch, leaves the process's resident size where it was (a map would count every page touched).
    Indexing takes an int, a slice or a 1-D sequence of rows and returns a new CPU tensor; runs of
    consecutive rows are read in one call. Travels to another process as its file and key.
    """

    def __init__(self, path: str | Path, key: str):
        path = Path(path)
        start, spec = _spec(path, key)
        self.path, self.key = str(path), key
        self.shape = tuple(spec["shape"])
        self._numpy = np.dtype(_NUMPY_OF[spec["dtype"]])
        self.dtype = _TORCH_OF[spec["dtype"]]
        self._offset = start + spec["data_offsets"][0]
        self._row_bytes = int(np.prod(self.shape[1:], dtype=np.int64)) * self._numpy.itemsize
        self._fd: int | None = None

    def __len__(self) -> int:
        return self.shape[0]

    def numel(self) -> int:
        return int(np.prod(self.shape, dtype=np.int64))

    def __getstate__(self) -> dict:
        return {**self.__dict__, "_fd": None}  # each process opens the file for itself

    def __del__(self) -> None:
        if getattr(self, "_fd", None) is not None:
            os.close(self._fd)

    def __getitem__(self, index) -> torch.Tensor:
        if isinstance(index, int):
            return self[[index]][0]
        if isinstance(index, slice):
            start, stop, step = index.indices(len(self))
            rows = np.arange(start, stop, step, dtype=np.int64)
        else:
            rows = np.asarray(index.cpu() if isinstance(index, torch.Tensor) else index, dtype=np.int64).reshape(-1)
        if len(rows) and (rows.min() < 0 or rows.max() >= len(self)):
            raise IndexError(f"rows outside 0..{len(self) - 1} of {self.key!r} in {self.path}")
        out = np.empty((len(rows), *self.shape[1:]), dtype=self._numpy)
        if not len(rows):
            return torch.from_numpy(out)
        if self._fd is None:
            self._fd = os.open(self.path, os.O_RDONLY)
        flat = out.reshape(len(rows), -1).view(np.uint8)
        k = 0
        while k < len(rows):  # one read per run of consecutive rows
            end = k + 1
            while end < len(rows) and rows[end] == rows[end - 1] + 1:
                end += 1
            want = (end - k) * self._row_bytes
            got = os.preadv(self._fd, [memoryview(flat[k:end]).cast("B")], self._offset + int(rows[k]) * self._row_bytes)
            if got != want:
                raise BundleError(f"{self.path}: short read of {self.key!r} rows {rows[k]}..{rows[end - 1]} (file truncated?)")
            k = end
        return torch.from_numpy(out)

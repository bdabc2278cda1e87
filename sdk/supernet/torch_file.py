"""Reading a PyTorch ``.pth`` file without PyTorch, and without running any code it holds.

A ``.pth`` file is a pickle: either a zip archive (``torch.save`` since PyTorch 1.6) holding
``<name>/data.pkl`` and one record ``<name>/data/<key>`` of raw bytes per storage, or the legacy
stream (a magic number, a protocol number, system info, the main pickle, the list of storage keys,
then each storage as an int64 element count and its bytes). In both, tensors are pickled as calls
of ``torch._utils._rebuild_tensor_v2(storage, offset, size, stride, ...)`` on storages named by
persistent ids ``("storage", torch.FloatStorage, key, location, numel[, view])``
(``torch/serialization.py`` ``_save``/``_legacy_save`` in pytorch/pytorch).

The unpickler here resolves only those globals — the tensor rebuild functions, the storage
types, ``collections.OrderedDict`` — and refuses any other with one line, so a file cannot run
code (pickle's only way to call something is a global it looks up). Tensors come back as numpy
arrays; plain containers, numbers and strings as they are.
"""
from __future__ import annotations

import collections
import io
import pickle
import struct
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edgetailor.errors import WeightsError

LEGACY_MAGIC = 0x1950A86A20F9469CFC6C  # torch/serialization.py MAGIC_NUMBER
LEGACY_PROTOCOL = 1001                 # torch/serialization.py PROTOCOL_VERSION

# torch storage type -> numpy dtype (little-endian; the archive's ``byteorder`` record may say big)
_STORAGES = {"FloatStorage": "f4", "DoubleStorage": "f8", "HalfStorage": "f2", "BFloat16Storage": "u2",
             "LongStorage": "i8", "IntStorage": "i4", "ShortStorage": "i2", "CharStorage": "i1",
             "ByteStorage": "u1", "BoolStorage": "?"}
_REBUILDS = {"_rebuild_tensor", "_rebuild_tensor_v2", "_rebuild_parameter"}


@dataclass(frozen=True)
class _StorageType:
    name: str


@dataclass
class _Storage:
    key: str
    dtype: str
    numel: int
    data: np.ndarray | None = None   # filled once its bytes are read


@dataclass(frozen=True)
class _Tensor:
    storage: _Storage
    offset: int
    size: tuple[int, ...]
    stride: tuple[int, ...]


def _rebuild_tensor(storage, offset, size, stride, *_ignored):
    if not isinstance(storage, _Storage):
        raise pickle.UnpicklingError("a tensor without a storage")
    return _Tensor(storage, int(offset), tuple(int(s) for s in size), tuple(int(s) for s in stride))


def _rebuild_parameter(data, *_ignored):
    return data


class _Unpickler(pickle.Unpickler):
    """Resolves only tensors, storages and OrderedDicts; storages by persistent id."""

    def __init__(self, stream, storages: dict[str, _Storage]):
        super().__init__(stream)
        self.storages = storages

    def find_class(self, module: str, name: str):
        if module == "collections" and name == "OrderedDict":
            return collections.OrderedDict
        if module == "torch._utils" and name in _REBUILDS:
            return _rebuild_parameter if name == "_rebuild_parameter" else _rebuild_tensor
        if module == "torch" and name in _STORAGES:
            return _StorageType(name)
        raise _Refused(f"{module}.{name}")

    def persistent_load(self, pid):
        if not (isinstance(pid, tuple) and len(pid) in (5, 6) and pid[0] == "storage"
                and isinstance(pid[1], _StorageType)):
            raise pickle.UnpicklingError(f"unknown persistent id {pid!r:.80}")
        if len(pid) == 6 and pid[5] is not None:
            raise pickle.UnpicklingError("storage views (PyTorch before 1.0) are not supported")
        key = str(pid[2])
        if key not in self.storages:
            self.storages[key] = _Storage(key, _STORAGES[pid[1].name], int(pid[4]))
        return self.storages[key]


class _Refused(Exception):
    """A global the reader does not rebuild."""


def read(path: str | Path):
    """The object saved in ``path`` with tensors as numpy arrays; a file that is not a readable
    ``torch.save`` file (or asks for anything but tensors) is one ``WeightsError`` line."""
    path = Path(path)
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise WeightsError(f"cannot read {path}: {exc.strerror or exc}") from None
    try:
        if zipfile.is_zipfile(io.BytesIO(raw)):
            return _read_zip(raw)
        if raw.startswith(b"PK\x03\x04"):
            raise zipfile.BadZipFile("a zip archive without its directory at the end")
        return _read_legacy(raw)
    except _Refused as exc:
        raise WeightsError(f"{path} is not plain PyTorch weights: it asks to run {exc} (only tensors and "
                           "OrderedDicts are read, so a checkpoint cannot run code)") from None
    except (pickle.UnpicklingError, EOFError, zipfile.BadZipFile, KeyError, ValueError, TypeError,
            IndexError, AttributeError, struct.error, MemoryError, RecursionError) as exc:
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise WeightsError(f"{path} is not a readable PyTorch checkpoint (cut short or corrupt? {reason})") from None


def _read_zip(raw: bytes):
    with zipfile.ZipFile(io.BytesIO(raw)) as archive:
        names = archive.namelist()
        pickles = [n for n in names if n.endswith("/data.pkl")]
        if len(pickles) != 1:
            raise pickle.UnpicklingError("a zip file without one <name>/data.pkl: not a torch.save file")
        root = pickles[0][: -len("data.pkl")]
        big = f"{root}byteorder" in names and archive.read(f"{root}byteorder").strip() == b"big"
        storages: dict[str, _Storage] = {}
        result = _Unpickler(io.BytesIO(archive.read(pickles[0])), storages).load()
        for storage in storages.values():
            data = archive.read(f"{root}data/{storage.key}")
            storage.data = _array(data, storage, big)
    return _resolve(result)


def _read_legacy(raw: bytes):
    stream = io.BytesIO(raw)
    header = [_Unpickler(stream, {}).load() for _ in range(3)]  # magic, protocol, system info
    if header[0] != LEGACY_MAGIC or header[1] != LEGACY_PROTOCOL:
        raise pickle.UnpicklingError("no PyTorch magic number: not a torch.save file")
    big = isinstance(header[2], dict) and not header[2].get("little_endian", True)
    storages: dict[str, _Storage] = {}
    result = _Unpickler(stream, storages).load()
    keys = _Unpickler(stream, {}).load()
    if not isinstance(keys, list) or set(map(str, keys)) != set(storages):
        raise pickle.UnpicklingError("the storage list does not match the tensors")
    for key in map(str, keys):
        storage = storages[key]
        (count,) = struct.unpack("<q" if not big else ">q", _take(stream, 8))
        if count != storage.numel:
            raise pickle.UnpicklingError(f"storage {key} holds {count} values, its tensors say {storage.numel}")
        storage.data = _array(_take(stream, count * np.dtype(storage.dtype).itemsize), storage, big)
    return _resolve(result)


def _take(stream: io.BytesIO, size: int) -> bytes:
    data = stream.read(size)
    if len(data) != size:
        raise EOFError("the file ends inside a tensor's data")
    return data


def _array(data: bytes, storage: _Storage, big: bool) -> np.ndarray:
    dtype = np.dtype(storage.dtype).newbyteorder(">" if big else "<")
    if len(data) != storage.numel * dtype.itemsize:
        raise ValueError(f"storage {storage.key} has {len(data)} bytes, not {storage.numel} values")
    values = np.frombuffer(data, dtype).astype(dtype.newbyteorder("="))
    if storage.dtype == "u2":  # bfloat16: the top half of a float32
        values = (values.astype(np.uint32) << 16).view(np.float32)
    return values


def _resolve(value):
    """Replace every tensor reference inside ``value`` by a numpy array (a copy)."""
    if isinstance(value, _Tensor):
        data = value.storage.data
        itemsize = data.dtype.itemsize
        if value.offset < 0 or any(s < 0 for s in value.stride + value.size):
            raise ValueError("a tensor with a negative offset, size or stride")
        view = np.ndarray(value.size, data.dtype, data, value.offset * itemsize,  # bounds checked by numpy
                          tuple(s * itemsize for s in value.stride))
        return np.array(view)
    if isinstance(value, collections.OrderedDict):
        return collections.OrderedDict((k, _resolve(v)) for k, v in value.items())
    if isinstance(value, dict):
        return {k: _resolve(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(_resolve(v) for v in value)
    if isinstance(value, (_Storage, _StorageType)):
        raise ValueError("a bare storage outside a tensor")
    return value

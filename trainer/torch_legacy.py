"""Read tensors from a legacy (PyTorch < 1.6, non-zip) ``torch.save`` file with numpy only.

The format is five pickles in a row (magic number, protocol version, system info, the saved object
whose tensors point at storages by persistent id, the list of storage keys) followed by each
storage's raw bytes, each prefixed by its element count as a little-endian int64. Unpickling is
restricted to the few classes such files reference, so a hostile file cannot run code.
"""

from __future__ import annotations

import pickle
import struct
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import numpy as np

LEGACY_MAGIC = 0x1950A86A20F9469CFC6C
LEGACY_PROTOCOL = 1001

STORAGE_DTYPES: dict[str, np.dtype] = {
    "FloatStorage": np.dtype("<f4"),
    "DoubleStorage": np.dtype("<f8"),
    "HalfStorage": np.dtype("<f2"),
    "LongStorage": np.dtype("<i8"),
    "IntStorage": np.dtype("<i4"),
    "ShortStorage": np.dtype("<i2"),
    "CharStorage": np.dtype("i1"),
    "ByteStorage": np.dtype("u1"),
    "BoolStorage": np.dtype("?"),
}


class TorchFormatError(ValueError):
    """The file is not a legacy torch pickle this reader understands."""


@dataclass(frozen=True)
class _StorageType:
    dtype: np.dtype


@dataclass(frozen=True)
class _TensorRef:
    """A tensor whose storage bytes come after the pickles; resolved once they are read."""

    storage_key: str
    offset: int
    size: tuple[int, ...]
    stride: tuple[int, ...]


def _rebuild_tensor(storage: tuple[str, np.dtype], offset: int, size: Any, stride: Any, *_: Any) -> _TensorRef:
    return _TensorRef(storage[0], int(offset), tuple(size), tuple(stride))


class _RestrictedUnpickler(pickle.Unpickler):
    def __init__(self, file: IO[bytes], storage_dtypes: dict[str, np.dtype]) -> None:
        super().__init__(file, encoding="latin1")
        self._storage_dtypes = storage_dtypes

    def find_class(self, module: str, name: str) -> Any:
        if module == "collections" and name == "OrderedDict":
            return OrderedDict
        if module == "torch._utils" and name in ("_rebuild_tensor_v2", "_rebuild_tensor"):
            return _rebuild_tensor
        if module == "torch" and name in STORAGE_DTYPES:
            return _StorageType(STORAGE_DTYPES[name])
        raise TorchFormatError(f"unsupported class {module}.{name} in the torch file")

    def persistent_load(self, saved_id: Any) -> tuple[str, np.dtype]:
        kind, storage_type, key, _location, _size = saved_id[:5]
        if kind != "storage" or not isinstance(storage_type, _StorageType):
            raise TorchFormatError(f"unsupported persistent id {saved_id!r}")
        self._storage_dtypes[str(key)] = storage_type.dtype
        return str(key), storage_type.dtype


def _read_storages(file: IO[bytes], keys: list[str], dtypes: dict[str, np.dtype]) -> dict[str, np.ndarray]:
    storages: dict[str, np.ndarray] = {}
    for key in keys:
        (count,) = struct.unpack("<q", file.read(8))
        dtype = dtypes[key]
        data = file.read(count * dtype.itemsize)
        if len(data) != count * dtype.itemsize:
            raise TorchFormatError(f"storage {key} is truncated")
        storages[key] = np.frombuffer(data, dtype=dtype)
    return storages


def _materialise(ref: _TensorRef, storages: dict[str, np.ndarray]) -> np.ndarray:
    storage = storages[ref.storage_key]
    item = storage.itemsize
    view = np.lib.stride_tricks.as_strided(
        storage[ref.offset :], shape=ref.size, strides=tuple(s * item for s in ref.stride), writeable=False
    )
    return np.array(view, dtype=storage.dtype.newbyteorder("="))


def load_legacy_state_dict(path: Path) -> dict[str, np.ndarray]:
    """Return ``{name: array}`` of a legacy ``torch.save(state_dict)`` file."""
    with open(path, "rb") as file:
        try:
            magic = pickle.load(file)
            protocol = pickle.load(file)
        except (pickle.UnpicklingError, EOFError) as error:
            raise TorchFormatError(f"{path} is not a legacy torch pickle: {error}") from error
        if magic != LEGACY_MAGIC or protocol != LEGACY_PROTOCOL:
            raise TorchFormatError(f"{path} is not a legacy torch pickle (zip-format files need torch)")
        pickle.load(file)  # system info: endianness and type sizes, little-endian on every platform torch ships
        dtypes: dict[str, np.dtype] = {}
        saved = _RestrictedUnpickler(file, dtypes).load()
        keys = [str(key) for key in pickle.load(file)]
        storages = _read_storages(file, keys, dtypes)
    if not isinstance(saved, dict):
        raise TorchFormatError(f"{path} holds a {type(saved).__name__}, not a state dict")
    return {name: _materialise(ref, storages) for name, ref in saved.items() if isinstance(ref, _TensorRef)}

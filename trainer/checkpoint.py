"""Checked loading of state dicts: every name and shape must match, or nothing is loaded.

A silent partial load (Paddle's ``set_state_dict`` only warns) would leave random layers in a model
that looks trained; :func:`load_checked` refuses and lists every difference instead.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path

import numpy as np
import paddle

MAX_LISTED = 20


class CheckpointMismatch(ValueError):
    """A state dict does not fit a layer; ``missing``, ``unexpected`` and ``mismatched`` say how."""

    def __init__(
        self,
        missing: list[str],
        unexpected: list[str],
        mismatched: list[tuple[str, tuple[int, ...], tuple[int, ...]]],
        source: str = "checkpoint",
    ) -> None:
        self.missing = missing
        self.unexpected = unexpected
        self.mismatched = mismatched
        super().__init__(self._describe(source))

    def _describe(self, source: str) -> str:
        parts = [f"{source} does not match the model:"]
        for title, items in (
            ("missing from the checkpoint", self.missing),
            ("not in the model", self.unexpected),
            ("shape differs (model vs checkpoint)", [f"{n}: {list(m)} vs {list(c)}" for n, m, c in self.mismatched]),
        ):
            if items:
                listed = "\n    ".join(items[:MAX_LISTED])
                more = f"\n    … and {len(items) - MAX_LISTED} more" if len(items) > MAX_LISTED else ""
                parts.append(f"  {len(items)} {title}:\n    {listed}{more}")
        return "\n".join(parts)


def _skipped(name: str, prefixes: Iterable[str]) -> bool:
    return any(name.startswith(prefix) for prefix in prefixes)


def _as_array(value: object) -> np.ndarray:
    return value.numpy() if isinstance(value, paddle.Tensor) else np.asarray(value)


def compare_state(
    layer: paddle.nn.Layer, state: Mapping[str, object], skip_prefixes: Iterable[str] = ()
) -> CheckpointMismatch | None:
    """The differences between ``layer.state_dict()`` and ``state`` (names under ``skip_prefixes`` ignored)."""
    prefixes = tuple(skip_prefixes)
    own = {name: tuple(tensor.shape) for name, tensor in layer.state_dict().items() if not _skipped(name, prefixes)}
    given = {name: tuple(np.shape(_as_array(value))) for name, value in state.items() if not _skipped(name, prefixes)}
    missing = [name for name in own if name not in given]
    unexpected = [name for name in given if name not in own]
    mismatched = [(name, own[name], given[name]) for name in own if name in given and own[name] != given[name]]
    if missing or unexpected or mismatched:
        return CheckpointMismatch(missing, unexpected, mismatched)
    return None


def load_checked(
    layer: paddle.nn.Layer, state: Mapping[str, object], skip_prefixes: Iterable[str] = (), source: str = "checkpoint"
) -> list[str]:
    """Copy ``state`` into ``layer`` after checking every name and shape; return the names loaded.

    Entries under ``skip_prefixes`` are ignored on both sides (e.g. ``("head.",)`` for a classifier
    with another class count). Raises :class:`CheckpointMismatch` before touching any parameter.
    """
    prefixes = tuple(skip_prefixes)
    mismatch = compare_state(layer, state, prefixes)
    if mismatch is not None:
        raise CheckpointMismatch(mismatch.missing, mismatch.unexpected, mismatch.mismatched, source)
    loaded = []
    for name, tensor in layer.state_dict().items():
        if _skipped(name, prefixes):
            continue
        array = _as_array(state[name])
        tensor.set_value(array.astype(tensor.numpy().dtype, copy=False))
        loaded.append(name)
    return loaded


def read_pdparams(path: Path) -> dict[str, np.ndarray]:
    """A ``.pdparams`` file (``paddle.save`` of a state dict, as PaddleClas writes) as ``{name: array}``."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint {path} does not exist")
    state = paddle.load(str(path), return_numpy=True)
    if not isinstance(state, dict):
        raise ValueError(f"{path} holds a {type(state).__name__}, not a state dict")
    # Optimizer-free checkpoints may still carry bookkeeping entries such as "StructuredToParameterName@@".
    return {name: np.asarray(value) for name, value in state.items() if not isinstance(value, dict | str)}

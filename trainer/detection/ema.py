"""Exponential moving average of a model's weights (PaddleDetection's ``ModelEMA``, "threshold" decay).

The average starts as a copy of the weights, so it needs no bias correction. Its decay ramps up as
``min(decay, (1 + step) / (10 + step))`` so that the first steps are not frozen to the random init;
``cycle_epoch`` restarts the average from the current weights every that many epochs (PicoDet: 20).
BatchNorm running statistics are averaged too: the exported model uses them.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import numpy as np
import paddle


class ModelEMA:
    def __init__(self, model: paddle.nn.Layer, decay: float = 0.9998, cycle_epoch: int = 0) -> None:
        self.model = model
        self.decay = decay
        self.cycle_epoch = cycle_epoch
        self.step = 0
        self.average = self._current()

    def _current(self) -> dict[str, paddle.Tensor]:
        return {
            name: tensor.detach().clone()
            for name, tensor in self.model.state_dict().items()
            if paddle.is_floating_point(tensor)
        }

    def current_decay(self) -> float:
        return min(self.decay, (1 + self.step) / (10 + self.step))

    def update(self) -> None:
        decay = self.current_decay()
        with paddle.no_grad():
            for name, tensor in self.model.state_dict().items():
                if name in self.average:
                    self.average[name] = decay * self.average[name] + (1.0 - decay) * tensor.detach()
        self.step += 1

    def end_epoch(self, epoch: int) -> None:
        """``epoch`` counts from 1; restarts the average at the end of every ``cycle_epoch``-th epoch."""
        if self.cycle_epoch > 0 and epoch % self.cycle_epoch == 0:
            self.average = self._current()
            self.step = 0

    @contextmanager
    def applied(self) -> Iterator[paddle.nn.Layer]:
        """The model with the averaged weights inside the block (for evaluation and export), its own after."""
        own = self._current()
        self._load(self.average)
        try:
            yield self.model
        finally:
            self._load(own)

    def _load(self, weights: dict[str, paddle.Tensor]) -> None:
        with paddle.no_grad():
            for name, tensor in self.model.state_dict().items():
                if name in weights:
                    paddle.assign(weights[name], output=tensor)

    def state_dict(self) -> dict[str, object]:
        return {"step": self.step, "average": {name: value.numpy() for name, value in self.average.items()}}

    def set_state_dict(self, state: dict[str, object]) -> None:
        self.step = int(state["step"])  # type: ignore[call-overload]  # an int, saved by state_dict
        average = state["average"]
        if not isinstance(average, dict) or set(average) != set(self.average):
            raise ValueError("the checkpoint's EMA weights do not match the model")
        self.average = {name: paddle.to_tensor(np.asarray(value)) for name, value in average.items()}

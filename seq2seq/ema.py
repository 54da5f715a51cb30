"""An exponential moving average of a model's weights, kept beside the weights being trained.

Averaging the weights of the last updates smooths out the noise of the final steps; for runs
that end while the loss still falls (a 30-minute CPU budget) it stands in for checkpoint
averaging without saving and reloading checkpoints. The decay warms up as (1 + step) / (10 + step),
so that the average of a young model is not dominated by its random initialisation.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch
from torch import nn


class WeightAverage:
    def __init__(self, model: nn.Module, decay: float):
        self.model = model
        self.decay = decay
        self.parameters = [p for p in model.parameters() if p.is_floating_point()]
        self.average = [p.detach().clone() for p in self.parameters]

    @torch.no_grad()
    def update(self, step: int) -> None:
        """Call after optimizer step number `step` (1-based)."""
        weight = 1.0 - min(self.decay, (1 + step) / (10 + step))
        for average, parameter in zip(self.average, self.parameters):
            average.lerp_(parameter, weight)

    @contextlib.contextmanager
    def swapped_in(self) -> Iterator[None]:
        """The model holds the average inside the block and its trained weights again after it."""
        with torch.no_grad():
            trained = [p.detach().clone() for p in self.parameters]
            for parameter, average in zip(self.parameters, self.average):
                parameter.copy_(average)
        try:
            yield
        finally:
            with torch.no_grad():
                for parameter, weights in zip(self.parameters, trained):
                    parameter.copy_(weights)

    def averaged_state_dict(self) -> dict[str, torch.Tensor]:
        """The model's state dict with the averaged weights (copies, so later updates leave it alone).

        Names that share one tensor (tied or shared embeddings) share one copy, so the checkpoint
        stores it once, as it stores the trained weights.
        """
        copies: dict[tuple, torch.Tensor] = {}
        with self.swapped_in():
            state = self.model.state_dict()
            for value in state.values():
                copies.setdefault(_storage_key(value), value.clone())
            return {name: copies[_storage_key(value)] for name, value in state.items()}

    @torch.no_grad()
    def take_from_model(self) -> None:
        """Restore: the model was loaded with an averaged state dict; that becomes the average."""
        for average, parameter in zip(self.average, self.parameters):
            average.copy_(parameter)


def _storage_key(tensor: torch.Tensor) -> tuple:
    return tensor.data_ptr(), tuple(tensor.shape), tuple(tensor.stride())


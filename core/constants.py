"""Constant tensors made once per device and shared: a tensor built from host values each step costs a copy that
waits for a GPU (`torch.tensor(..., device="cuda")` synchronises), and a small table rebuilt each step costs launches.

Cached tensors are shared by every caller: never write to them.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import TypeVar

import torch
from torch import Tensor

F = TypeVar("F", bound=Callable[..., Tensor])


def device_constant(fn: F) -> F:
    """Cache `fn`'s tensor per argument tuple (hashable arguments: sizes, a device, a dtype). Built outside
    inference mode, so autograd may save the constant for a backward pass wherever it was first asked for."""

    @functools.lru_cache(maxsize=64)
    def cached(*args):
        with torch.inference_mode(False), torch.no_grad():
            return fn(*args)

    @functools.wraps(fn)
    def wrapper(*args):
        return cached(*args)

    wrapper.cache_clear = cached.cache_clear  # type: ignore[attr-defined]
    return wrapper  # type: ignore[return-value]


@device_constant
def constant(values: tuple[float, ...], dtype: torch.dtype, device: torch.device) -> Tensor:
    """The 1-D tensor of `values` [n] on `device` (copied there once)."""
    return torch.tensor(values, dtype=dtype).to(device)

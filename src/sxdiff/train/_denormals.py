"""Flush subnormal floats to zero while StateXDiff trains or predicts on a CPU."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch

__all__ = ["flush_denormals"]


def _flushing() -> bool:
    """Whether this thread currently flushes subnormals (torch has no getter: test one)."""
    return torch.tensor([1e-39]).mul(1.0).item() == 0.0


@contextlib.contextmanager
def flush_denormals() -> Iterator[None]:
    """Treat subnormal floats as zero inside the block (CPU), then restore the thread's previous setting.

    Adam's moment estimates of parameters whose gradients are tiny or zero decay into the subnormal range,
    where every floating-point operation on x86 CPUs is about 100 times slower. Measured on the bundled
    glioblastoma counts: 200 training steps took 591 s with subnormals and 28 s without (2 CPU cores). Values
    that small (< 1.2e-38) carry no information for the model.

    The setting is per thread. Threads of torch's CPU pool inherit it when they are created, so threads created
    before the block keep theirs: call ``torch.set_flush_denormal(True)`` at the start of a session (before
    any torch work) to cover them too; the block then leaves it on.

    Examples
    --------
    >>> import torch
    >>> with flush_denormals():
    ...     torch.tensor([1e-39]).mul(1.0).item() == 0.0 or not torch.set_flush_denormal(True)
    True
    """
    before = _flushing()
    supported = torch.set_flush_denormal(True)
    try:
        yield
    finally:
        if supported:
            torch.set_flush_denormal(before)

"""Applying a predicted change of mean log expression to source cells, without a bias from the floor at zero."""

from __future__ import annotations

import torch

__all__ = ["apply_log_change"]


def apply_log_change(
    log_values: torch.Tensor, change: torch.Tensor, mean: torch.Tensor | None, *, nonnegative: bool
) -> torch.Tensor:
    """Source cells' log expression plus a predicted change, with no bias from a floor at zero.

    Values that may be negative (z-scores, L1000) get the change added. Non-negative values (counts,
    log-normalised data) get increases added and decreases applied multiplicatively, as the fraction
    ``change / mean`` of the gene's mean among the sources: a cell at 0 stays at 0, the others fall in
    proportion, and the mean over the sources falls by the predicted amount (down to 0) instead of by the
    part a clamp at 0 would leave.

    Parameters
    ----------
    log_values
        ``(cells, genes)`` log expression of the source cells (log1p per 10,000 for counts, the values otherwise).
    change
        ``(cells, genes)`` predicted change of the mean.
    mean
        ``(genes,)`` or ``(cells, genes)``: the genes' mean log expression among the source cells (only used,
        and only needed, for non-negative values).
    nonnegative
        Whether the values are non-negative (decreases are then applied in proportion).

    Examples
    --------
    >>> cells = torch.tensor([[0.0, 2.0], [0.0, 4.0]])
    >>> change = torch.tensor([[1.0, -1.5], [1.0, -1.5]])
    >>> out = apply_log_change(cells, change, cells.mean(dim=0), nonnegative=True)
    >>> out.mean(dim=0)  # both means move by exactly the predicted amount; no cell goes below 0
    tensor([1.0000, 1.5000])
    """
    if not nonnegative:
        return log_values + change
    factor = (1 + change / mean.clamp_min(1e-6)).clamp_min(0.0)
    return torch.where(change >= 0, log_values + change, log_values * factor)

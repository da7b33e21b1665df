"""The quality-aware triplet of StateXDiff: which cells are negatives, and the hinge on velocity cosines."""

from __future__ import annotations

import torch
from torch import nn

__all__ = ["mismatch_partners", "quality_triplet"]


def mismatch_partners(
    groups: torch.Tensor, mask: torch.Tensor, max_tries: int = 8
) -> tuple[torch.Tensor, torch.Tensor]:
    """For each row, another row of the batch whose perturbation set differs in its targets.

    Neither set's target groups contain the other's, so ``A`` is no negative for ``A+B``, and drugs with the same
    targets (one group) are not pushed apart. Tries the next ``max_tries - 1`` rows in turn.

    Parameters
    ----------
    groups
        ``(cells, members)`` target group of each member of each row's perturbation set.
    mask
        ``(cells, members)`` which members are real (the others are padding).

    Returns
    -------
    ``(partner, found)``: the partner row of each row (itself where none was found) and whether one was found.

    Examples
    --------
    >>> groups = torch.tensor([[0, 0], [0, 1], [2, 0]])
    >>> mask = torch.tensor([[True, False], [True, True], [True, False]])
    >>> mismatch_partners(groups, mask)
    (tensor([2, 2, 0]), tensor([True, True, True]))
    """
    n = groups.shape[0]
    same = groups[:, None, :, None] == groups[None, :, None, :]  # (i, j, member of i, member of j)
    in_other = (same & mask[None, :, None, :]).any(dim=3)  # member k of i's set is in j's set
    i_in_j = (in_other | ~mask[:, None, :]).all(dim=2)
    valid = ~(i_in_j | i_in_j.T)
    rows = torch.arange(n, device=groups.device)
    partner, found = rows.clone(), torch.zeros(n, dtype=torch.bool, device=groups.device)
    for step in range(1, min(n, max_tries)):
        candidate = (rows + step) % n
        take = ~found & valid[rows, candidate]
        partner = torch.where(take, candidate, partner)
        found |= take
    return partner, found


def quality_triplet(
    v_true: torch.Tensor,
    v_mismatched: torch.Tensor,
    target: torch.Tensor,
    quality: torch.Tensor,
    found: torch.Tensor,
    margin: float,
) -> torch.Tensor:
    """``mean over found rows of q * max(0, cos(v_mis, v) - cos(v_true, v) + margin)``.

    The velocity predicted under the cell's own perturbation set should point closer to the target velocity than
    the one predicted under a mismatched set, by ``margin`` in cosine; ``quality`` weighs each cell (the VMCS
    quality score). Rows without a partner (``found`` False) do not count.

    Examples
    --------
    >>> target = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    >>> ok = torch.ones(2, dtype=torch.bool)
    >>> float(quality_triplet(target, -target, target, torch.ones(2), ok, margin=0.1))
    0.0
    >>> float(quality_triplet(-target, target, target, torch.ones(2), ok, margin=0.1))
    2.0999999046325684
    """
    if not found.any():
        return torch.zeros((), device=v_true.device)
    cos_true = nn.functional.cosine_similarity(v_true, target, dim=1)
    cos_mis = nn.functional.cosine_similarity(v_mismatched, target, dim=1)
    hinge = torch.relu(cos_mis - cos_true + margin)
    return (quality * hinge)[found].mean()

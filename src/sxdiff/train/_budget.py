"""The training budget: how many epochs each StateXDiff stage runs."""

from __future__ import annotations

from ._paired_data import PairedPerturbationData

__all__ = ["DEFAULT_STEPS", "stage_epochs"]

DEFAULT_STEPS = 2000


def stage_epochs(
    stage: str,
    max_epochs: int | None,
    state_epochs: int | None,
    train_steps: int | None,
    data: PairedPerturbationData,
    state_data: PairedPerturbationData,
) -> list[tuple[str, int]]:
    """Epochs of each stage to run: from ``max_epochs`` (split 60/40 unless ``state_epochs``), or from a step budget.

    Without ``max_epochs`` the budget (``train_steps``, default ``DEFAULT_STEPS``) is split 60 % / 40 % between the
    state and the diffusion stage, and each stage's epochs follow from *its own* number of steps per epoch (stage 1
    also trains on the control cells, so its epochs are longer).
    """
    names = ["state", "diffusion"] if stage == "all" else [stage]
    if max_epochs is not None:
        if stage != "all":
            return [(stage, max_epochs)]
        first = state_epochs if state_epochs is not None else max(1, round(0.6 * max_epochs))
        return [("state", first), ("diffusion", max(1, max_epochs - first))]
    budget = DEFAULT_STEPS if train_steps is None else train_steps
    shares = {"state": 0.6, "diffusion": 0.4} if stage == "all" else {stage: 1.0}
    out = []
    for name in names:
        cells = state_data.n_train if name == "state" else data.n_train
        steps_per_epoch = max(1, cells // data.batch_size)
        epochs = max(2, round(shares[name] * budget / steps_per_epoch))
        if name == "state" and state_epochs is not None:
            epochs = state_epochs
        out.append((name, epochs))
    return out

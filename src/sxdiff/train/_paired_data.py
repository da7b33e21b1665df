"""Minibatches of (perturbed cell, matched control cell) pairs for the Lightning trainer."""

from __future__ import annotations

import lightning.pytorch as pl
import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, Sampler

from sxdiff.data._control_matcher import ControlMatcher

__all__ = ["PairedPerturbationData", "ot_partners"]


class _FixedPermutation(Sampler):
    """The same random order every time it is iterated (a function of the seed only).

    A DataLoader with ``shuffle=True`` draws its order from a generator whose state depends on how often the
    trainer iterated it, which differs between a fresh and a resumed run.
    """

    def __init__(self, n: int, seed: int) -> None:
        self.n, self.seed = n, seed

    def __len__(self) -> int:
        return self.n

    def __iter__(self):
        return iter(np.random.default_rng(self.seed).permutation(self.n).tolist())


class _BlockPermutation(Sampler):
    """A random order that keeps blocks of consecutive cells together, for reading from disk.

    The cells are cut into blocks of ``block`` consecutive positions; blocks are shuffled, then positions are
    shuffled within windows of ``window`` blocks. A minibatch then holds runs of nearby cells (a few reads each)
    while still mixing ``window`` distant parts of the data, as in scDataset / annbatch block sampling. A
    function of the seed only, like :class:`_FixedPermutation`.
    """

    def __init__(self, n: int, seed: int, block: int = 16, window: int = 64) -> None:
        self.n, self.seed, self.block, self.window = n, seed, block, window

    def __len__(self) -> int:
        return self.n

    def __iter__(self):
        rng = np.random.default_rng(self.seed)
        blocks = np.array_split(np.arange(self.n), max(1, -(-self.n // self.block)))
        order = [blocks[b] for b in rng.permutation(len(blocks))]
        out = []
        for start in range(0, len(order), self.window):
            positions = np.concatenate(order[start : start + self.window])
            out.append(rng.permutation(positions))
        return iter(np.concatenate(out).tolist() if out else [])


class _PairDataset(Dataset):
    """Perturbed cells paired with controls redrawn every epoch (different controls each time)."""

    def __init__(self, owner: PairedPerturbationData, cells: np.ndarray, seed: int) -> None:
        self.owner, self.cells, self.seed, self.epoch = owner, cells, seed, 0
        self.partners = self._draw()

    def _draw(self) -> np.ndarray:
        rng = np.random.default_rng(self.seed + self.epoch)
        if self.owner.states is None or len(self.cells) == 0:
            return self.owner.matcher.sample(self.cells, 1, rng=rng)[:, 0]
        return ot_partners(self.owner, self.cells, rng)

    def set_epoch(self, epoch: int) -> None:
        """Partners of this epoch (a function of the seed and the epoch, so a resumed run draws the same)."""
        if epoch != self.epoch:
            self.epoch = epoch
            self.partners = self._draw()

    def __len__(self) -> int:
        return len(self.cells)

    def __getitem__(self, i: int) -> int:
        return i

    def collate(self, positions: list[int]) -> dict[str, torch.Tensor]:
        index = self.cells[positions]
        partner = self.partners[positions]
        o = self.owner
        batch = {
            "x": torch.as_tensor(o.expression[index]),
            "x_control": torch.as_tensor(o.expression[partner]),
            "drug_index": torch.as_tensor(o.drug_index[index]),
            "drug_dose": torch.as_tensor(o.drug_dose[index]),
            "drug_mask": torch.as_tensor(o.drug_mask[index]),
        }
        if o.protein is not None:
            batch["protein"] = torch.as_tensor(o.protein[index])
            batch["protein_control"] = torch.as_tensor(o.protein[partner])
        return batch


def ot_partners(owner: PairedPerturbationData, cells: np.ndarray, rng: np.random.Generator, chunk: int = 512):
    """Control partners by minibatch optimal transport on cell states.

    Within each (context, batch, perturbation, dose) group, controls of the same context are drawn and
    assigned to the perturbed cells minimising the summed squared distance of their states. The pairs
    keep both marginals but pair each cell with a *similar* control, so the change to learn is mostly
    the perturbation's effect rather than cell-to-cell variation.
    """
    from scipy.optimize import linear_sum_assignment

    matcher = owner.matcher
    batches = matcher.batches if matcher.batches is not None else np.full(len(matcher.contexts), None, dtype=object)
    signature = owner.drug_index * owner.drug_mask + owner.drug_dose * 1e-3
    keys: dict[tuple, list[int]] = {}
    for position, cell in enumerate(cells):
        key = (matcher.contexts[cell], batches[cell], signature[cell].tobytes())
        keys.setdefault(key, []).append(position)
    partners = np.empty(len(cells), dtype=np.int64)
    for (context, batch, _), positions in keys.items():
        pool = matcher.controls_of(context, batch)
        positions = np.asarray(positions)
        for start in range(0, len(positions), chunk):
            group = positions[start : start + chunk]
            drawn = rng.choice(pool, size=len(group), replace=len(pool) < len(group))
            a, b = owner.states[cells[group]], owner.states[drawn]
            cost = (a**2).sum(1)[:, None] + (b**2).sum(1)[None, :] - 2 * a @ b.T
            rows, columns = linear_sum_assignment(cost)
            partners[group[rows]] = drawn[columns]
    return partners


class PairedPerturbationData(pl.LightningDataModule):
    """Training and validation pairs: each perturbed cell with a control of its context (and batch).

    Parameters
    ----------
    expression
        Cells x genes float32 array (the registered expression), or a ``sxdiff.data._on_disk.RowReader`` that reads the
        rows of each minibatch from disk (then training cells are shuffled in blocks of consecutive cells).
    protein
        Cells x proteins float32 array, or ``None``.
    drug_index, drug_dose, drug_mask
        Padded perturbation sets (see :func:`sxdiff.data.encode_perturbation_sets`).
    matcher
        Control matcher over the same cells (only controls allowed as partners).
    train_cells, validation_cells
        Indices of perturbed cells used for training / validation.
    batch_size
        Pairs per minibatch.
    seed
        Seed of shuffling and of control draws.
    states
        Cell states (e.g. the stage-1 VMCS states): when given, controls are paired with perturbed cells by
        minibatch optimal transport (:func:`ot_partners`) instead of at random.
    """

    def __init__(
        self,
        expression: np.ndarray,
        protein: np.ndarray | None,
        drug_index: np.ndarray,
        drug_dose: np.ndarray,
        drug_mask: np.ndarray,
        matcher: ControlMatcher,
        train_cells: np.ndarray,
        validation_cells: np.ndarray,
        batch_size: int = 256,
        seed: int = 0,
        states: np.ndarray | None = None,
    ) -> None:
        super().__init__()
        self.states = states
        self.expression, self.protein = expression, protein
        self.drug_index, self.drug_dose, self.drug_mask = drug_index, drug_dose, drug_mask
        self.matcher = matcher
        self.batch_size, self.seed = batch_size, seed
        self.train_set = _PairDataset(self, np.asarray(train_cells), seed)
        self.validation_set = _PairDataset(self, np.asarray(validation_cells), seed + 10_000)
        self.n_train, self.n_val = len(train_cells), len(validation_cells)

    def with_controls(self) -> PairedPerturbationData:
        """The same data with every allowed control cell added to the training cells (for the state stage).

        Stage 1 then learns states from all cells available at training time, the controls of contexts that have
        no perturbed training cell included (transductive: the contexts to be predicted are represented by their
        controls' states, so those states must not be out of distribution for the encoder).
        """
        controls = np.flatnonzero(self.matcher.is_control)
        return self.with_cells(np.union1d(self.train_set.cells, controls), self.validation_set.cells)

    def with_cells(self, train_cells: np.ndarray, validation_cells: np.ndarray) -> PairedPerturbationData:
        """The same data (and states) with other training and validation cells."""
        return PairedPerturbationData(
            self.expression,
            self.protein,
            self.drug_index,
            self.drug_dose,
            self.drug_mask,
            self.matcher,
            train_cells,
            validation_cells,
            batch_size=self.batch_size,
            seed=self.seed,
            states=self.states,
        )

    def use_states(self, states: np.ndarray) -> None:
        """Pair by minibatch optimal transport on these cell states from now on (redraws both sets)."""
        self.states = states
        self.train_set.partners = self.train_set._draw()
        self.validation_set.partners = self.validation_set._draw()

    @property
    def on_disk(self) -> bool:
        """Whether expression rows are read from disk per minibatch (block-shuffled order)."""
        return bool(getattr(self.expression, "on_disk", False))

    def training_pairs(self, max_pairs: int | None = None):
        """The current training pairs in order, without shuffling or redrawing (e.g. for statistics).

        With ``max_pairs``, at most that many evenly spaced pairs.
        """
        positions = self._pair_positions(max_pairs)
        collate = self.train_set.collate
        return DataLoader(positions.tolist(), batch_size=self.batch_size, shuffle=False, collate_fn=collate)

    def _pair_positions(self, max_pairs: int | None) -> np.ndarray:
        positions = np.arange(len(self.train_set))
        if max_pairs is not None and len(positions) > max_pairs:
            positions = positions[np.linspace(0, len(positions) - 1, max_pairs).round().astype(int)]
        return positions

    def perturbations_in(self, cells: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
        """The distinct drug indices in the perturbation sets of ``cells``, and those applied alone in some cell."""
        index, mask = self.drug_index[cells], self.drug_mask[cells].astype(bool)
        single = mask.sum(axis=1) == 1
        return torch.as_tensor(np.unique(index[mask])), torch.as_tensor(np.unique(index[single][mask[single]]))

    def training_pair_cells(self, max_pairs: int | None = None) -> np.ndarray:
        """The perturbed cell of each pair :meth:`training_pairs` yields, in the same order."""
        return self.train_set.cells[self._pair_positions(max_pairs)]

    def train_dataloader(self) -> DataLoader:
        """Shuffled pairs with the controls of the trainer's current epoch (redrawn every epoch).

        The trainer calls it every epoch when ``reload_dataloaders_every_n_epochs=1`` (StateXDiff sets it); the
        draws depend only on ``(seed, epoch)``, so a run resumed from a checkpoint sees the same pairs.
        """
        trainer = getattr(self, "trainer", None)
        epoch = trainer.current_epoch if trainer is not None else 0
        self.train_set.set_epoch(epoch)
        order = _BlockPermutation if self.on_disk else _FixedPermutation
        return DataLoader(
            self.train_set,
            batch_size=self.batch_size,
            sampler=order(len(self.train_set), self.seed + 1 + epoch),
            collate_fn=self.train_set.collate,
            generator=torch.Generator().manual_seed(self.seed + 1 + epoch),  # or iterating draws from torch's RNG
            drop_last=len(self.train_set) > self.batch_size,
        )

    def val_dataloader(self) -> DataLoader:
        """Validation pairs (fixed controls, so validation losses are comparable across epochs)."""
        return DataLoader(
            self.validation_set,
            batch_size=self.batch_size,
            shuffle=False,
            collate_fn=self.validation_set.collate,
            generator=torch.Generator().manual_seed(self.seed),
        )

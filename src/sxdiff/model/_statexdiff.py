"""StateXDiff: the scvi-tools model (registration, training, prediction into AnnData)."""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Literal

import numpy as np
import torch
from anndata import AnnData
from mudata import MuData
from scvi import REGISTRY_KEYS
from scvi.model.base import BaseModelClass
from scvi.train import TrainRunner

from sxdiff.data._control_matcher import ControlMatcher
from sxdiff.data._on_disk import is_on_disk
from sxdiff.data._perturbation_field import decode_perturbation_field
from sxdiff.data._validation import resolve_obs_column
from sxdiff.drugs._features import DrugFeatures
from sxdiff.module._statexdiff import Stage, StateXDiffModule
from sxdiff.train import PairedPerturbationData, StateXDiffTrainingPlan
from sxdiff.train._budget import stage_epochs
from sxdiff.train._checkpoint import resume_checkpointing
from sxdiff.train._denormals import flush_denormals
from sxdiff.train._history import merge_history
from sxdiff.train._perturbation_holdout import hold_out_perturbations

from ._context_transfer import choose_context_transfer
from ._measured_effects import fit_measured_effects
from ._novelty_shrinkage import choose_novelty_shrinkage
from ._safe_io import SafeSaveLoadMixin
from ._statexdiff_predict import StateXDiffPredictMixin
from ._statexdiff_setup import PERTURBATION_KEY, StateXDiffSetupMixin
from ._variation_scale import check_factor_setting, choose_variation_scale

__all__ = ["StateXDiff"]

logger = logging.getLogger(__name__)

NOVEL_FINETUNE_SHARE = 0.25  # extra diffusion epochs on all perturbations once λ is chosen on held-out ones


class StateXDiff(SafeSaveLoadMixin, StateXDiffSetupMixin, StateXDiffPredictMixin, BaseModelClass):
    """Predict single-cell responses to perturbations in unseen contexts, drugs and combinations.

    Stage 1 learns a Virtual Multimodal Cell State (:class:`~sxdiff.module.VMCS`) from RNA and protein
    context; stage 2 a conditional latent diffusion of the change from a control cell's state to its
    perturbed state, conditioned on the control state, its protein context and mechanism-aware drug
    tokens (:class:`~sxdiff.module.DrugEncoder`). See the user guide for the equations.

    Parameters
    ----------
    adata
        AnnData / MuData registered with :meth:`setup_anndata` / :meth:`setup_mudata`, with drug features
        from :func:`sxdiff.pp.drug_features`.
    n_latent, n_hidden
        VMCS view dimension ``d`` (the state has ``3 d`` dimensions, see :class:`~sxdiff.module.VMCS`) and MLP width.
    use_protein, reliability_weighting, drug_template, denoiser, triplet_weight
        Switches for ablations (protein context; reliability weighting; ``"both"``/``"structure"``/
        ``"targets"`` drug template; ``"dit"``/``"mlp"`` denoiser; triplet-loss weight, 0 to disable).
    triplet_fraction
        Share of a training batch's rows (those with a mismatched partner) on which the triplet loss is computed
        each step, drawn at random: the mismatched velocity needs a second pass of the diffusion Transformer, so
        this sets most of the triplet's cost. ``1.0`` uses every row.
    d_model, n_blocks, n_heads, n_chunks
        Size of the diffusion Transformer.
    cfg_dropout, min_snr_gamma, ema_decay
        Classifier-free-guidance drop rate, min-SNR weighting (``None`` disables), EMA decay.
    shift_head
        Learn the expected change given the perturbation set and the source cell's state with a deterministic,
        compositional path (:class:`~sxdiff.module.PerturbationComposer`, MSE on the latent and the log-expression
        change) and let the diffusion model the cell-level residual around it (``False``: the diffusion models the
        whole change, as in the paper).
    composition
        How the members of a perturbation set combine: ``"interaction"`` (sum of member effects plus a pairwise
        interaction that is 0 for singles, starts at 0 and is shrunk; default), ``"additive"`` (sum of member
        effects only) or ``"pooled"`` (one network on the summed member tokens: the first versions' behaviour,
        for the ablation).
    state_effects
        Let a perturbation's effect depend on the source cell's state (a context-free base effect plus a
        deviation shrunk towards it), so that cell states that respond differently are predicted differently.
    state_effect_penalty, interaction_penalty
        L2 shrinkage of the state-dependent deviation and of the interaction term (on their outputs).
    perturbation_identities
        Give every perturbation described at training time a learned identity vector next to its description, so
        that trained perturbations are reproduced as measured rather than only as far as their description explains
        them (perturbations described later have none and rely on their description alone).
    state_anchors
        Most state anchors: the state-dependent part of an effect reads a source cell through the nearest of up to
        this many k-means centroids of the training controls' states (at least 50 cells each), not through the
        cell's own state, which also encodes its noise (see :meth:`~sxdiff.module.StateXDiffModule.anchor`).
        ``0``: each cell's own state (the ablation).
    variation_scale
        Factor in [0, 1] on the diffusion's sampled residual, the cell-to-cell variation added around the predicted
        change. ``"auto"`` (default): chosen after training from 0, 0.25, ..., 1 by the energy distance between
        predicted and real cells of the validation conditions (see
        :func:`~sxdiff.model._variation_scale.choose_variation_scale`; the residual was learned as a perturbed cell
        minus its paired control, so at full size it adds a control's spread a second time). A number fixes it
        (``1.0``: the full residual, the ablation).
    state_spread
        Factor in [0, 1] on the cell-to-cell spread of the state-dependent change within a context (each context
        keeps its mean change). ``"auto"`` (default): chosen from 0, 0.5, 1 jointly with ``variation_scale`` by the
        same validation energy distance (Norman's K562 pairs: the per-cell change widens the predicted
        distribution beyond the real one). A number fixes it (``1.0``: as learned, the ablation).
    measured_effects
        Corrections of trained perturbations toward their measured mean change, fitted after training
        (:func:`~sxdiff.model._measured_effects.fit_measured_effects`): ``"raw"`` keeps all of the difference (as the
        additive baseline); ``"shrunk"`` per gene what exceeds the sampling noise; ``"off"`` none.
    context_transfer
        ``"auto"``: for source cells of a context without perturbed training cells (an unseen patient or cell line),
        weight the predicted change by ``τ`` and its state-dependent part by ``ν``, both fitted after training by
        predicting each training context's measured responses from the other contexts'
        (:func:`~sxdiff.model._context_transfer.choose_context_transfer`). ``"off"`` (default): carried over whole.
        Not the default because the fit judges the state-dependent part by per-state measured means, which are
        noisier than the network's own deviation: it halves the change where states do predict the response
        (synthetic sparse task: energy distance 0.40 vs 0.19) while it brings the McFaline unseen cell lines' MSE
        from twice no change's to no change's (see the model documentation).
    drug_features, protein_names, protein_reliability
        Filled by the model itself (recorded so that a saved model loads without the training data).

    Examples
    --------
    >>> import sxdiff
    >>> adata = sxdiff.datasets.glioblastoma_panobinostat()
    >>> sxdiff.pp.drug_features(adata, drug_key="perturbation")
    >>> sxdiff.model.StateXDiff.setup_anndata(adata, perturbation_key="perturbation", control_value="control",
    ...                                       dose_key="dose", context_key="context")
    >>> model = sxdiff.model.StateXDiff(adata)
    >>> model.train(max_epochs=2)  # doctest: +SKIP
    """

    _module_cls = StateXDiffModule

    def __init__(
        self,
        adata: AnnData | MuData | None = None,
        registry: dict | None = None,
        n_latent: int = 16,
        n_hidden: int = 128,
        use_protein: bool = True,
        reliability_weighting: bool = True,
        drug_template: Literal["both", "structure", "targets"] = "both",
        denoiser: Literal["dit", "mlp"] = "dit",
        d_model: int = 128,
        n_blocks: int = 2,
        n_heads: int = 4,
        n_chunks: int = 4,
        triplet_weight: float = 0.1,
        triplet_fraction: float = 0.25,
        cfg_dropout: float = 0.1,
        min_snr_gamma: float | None = 5.0,
        ema_decay: float = 0.999,
        shift_head: bool = True,
        composition: Literal["interaction", "additive", "pooled"] = "interaction",
        state_effects: bool = True,
        state_effect_penalty: float = 0.1,
        interaction_penalty: float = 1.0,
        perturbation_identities: bool = True,
        state_anchors: int = 16,
        variation_scale: float | Literal["auto"] = "auto",
        state_spread: float | Literal["auto"] = "auto",
        measured_effects: Literal["raw", "shrunk", "off"] = "raw",
        context_transfer: Literal["auto", "off"] = "off",
        drug_features: dict | None = None,
        protein_names: list[str] | None = None,
        protein_reliability: list[float] | None = None,
    ) -> None:
        if measured_effects not in ("shrunk", "raw", "off"):
            raise ValueError(f"measured_effects must be 'raw', 'shrunk' or 'off', not {measured_effects!r}.")
        if context_transfer not in ("auto", "off"):
            raise ValueError(f"context_transfer must be 'auto' or 'off', not {context_transfer!r}.")
        check_factor_setting("variation_scale", variation_scale)
        check_factor_setting("state_spread", state_spread)
        super().__init__(adata, registry)
        args = self.registry_["setup_args"]
        if adata is not None:
            key = args["drug_features_key"]
            if drug_features is None:
                if key not in adata.uns:
                    raise KeyError(
                        f"`adata.uns[{key!r}]` is missing: describe the perturbations first with "
                        f"`sxdiff.pp.drug_features(adata, drug_key={args['perturbation_key']!r})`."
                    )
                drug_features = dict(adata.uns[key])
            if protein_names is None:
                protein_names, protein_reliability = self._protein_info(adata, args)
        features = DrugFeatures.from_dict(drug_features)
        self.drug_features_ = drug_features
        self.gene_names_ = list(features.genes)
        self.protein_names_ = list(protein_names or [])
        self.protein_reliability_ = np.asarray(protein_reliability if protein_reliability is not None else [], float)
        scale = args["expression_scale"]
        self.module = self._module_cls(
            n_genes=self.summary_stats.n_vars,
            n_proteins=len(self.protein_names_),
            n_structure=features.structure.shape[1],
            n_template=features.template.shape[1],
            gene_likelihood="nb" if scale == "counts" else "normal",
            n_latent=n_latent,
            n_hidden=n_hidden,
            use_protein=use_protein,
            reliability_weighting=reliability_weighting,
            drug_template=drug_template,
            denoiser=denoiser,
            d_model=d_model,
            n_blocks=n_blocks,
            n_heads=n_heads,
            n_chunks=n_chunks,
            triplet_weight=triplet_weight,
            triplet_fraction=triplet_fraction,
            cfg_dropout=cfg_dropout,
            min_snr_gamma=min_snr_gamma,
            ema_decay=ema_decay,
            shift_head=shift_head,
            composition=composition,
            state_effects=state_effects,
            state_effect_penalty=state_effect_penalty,
            interaction_penalty=interaction_penalty,
            n_identities=len(features.names) if perturbation_identities else 0,
            n_state_anchors=state_anchors,
        )
        self._install_drug_features(features)
        self.variation_setting, self.spread_setting = variation_scale, state_spread
        self.measured_effects = measured_effects
        self.context_transfer = context_transfer
        self.perturbed_contexts_: list[str] | None = None
        self.context_transfer_: dict | None = None  # fitted weights (context_transfer="auto" only)
        if variation_scale != "auto":
            self.module.set_variation_scale(float(variation_scale))
        if state_spread != "auto":
            self.module.set_state_spread(float(state_spread))
        if len(self.protein_names_):
            self.module.set_protein_reliability(torch.as_tensor(self.protein_reliability_, dtype=torch.float32))
        self._model_summary_string = (
            f"StateXDiff: {self.summary_stats.n_vars} genes ({scale}), {len(self.protein_names_)} protein features, "
            f"{len(features.names)} perturbations, denoiser={denoiser}, drug_template={drug_template}"
        )
        self.init_params_ = self._get_init_params(locals())

    # ------------------------------------------------------------------------------------------ data
    def _install_drug_features(self, features: DrugFeatures) -> None:
        self.module.set_drug_features(
            torch.as_tensor(features.structure),
            torch.as_tensor(features.template),
            torch.as_tensor(features.has_structure),
            torch.as_tensor(features.has_targets),
        )

    def _features(self) -> DrugFeatures:
        return DrugFeatures.from_dict(self.drug_features_)

    # ------------------------------------------------------------------------------------------ training
    def train(
        self,
        max_epochs: int | None = None,
        *,
        train_steps: int | None = None,
        stage: Stage = "all",
        state_epochs: int | None = None,
        batch_size: int | None = None,
        lr: float = 1e-3,
        weight_decay: float = 1e-6,
        split_key: str | None = None,
        validation_fraction: float = 0.1,
        early_stopping: bool = False,
        pairing: Literal["ot", "random"] = "ot",
        storage: Literal["auto", "memory", "disk"] = "auto",
        seed: int = 0,
        checkpoint_dir: str | os.PathLike | None = None,
        accelerator: str = "auto",
        devices: int | str = "auto",
        **trainer_kwargs,
    ) -> None:
        """Train stage 1 (state), stage 2 (diffusion) or both in order, under the scvi-tools loop.

        Parameters
        ----------
        max_epochs
            Total epochs; with ``stage="all"``, ``state_epochs`` go to stage 1 and the rest to stage 2. Default: a
            budget of ``DEFAULT_STEPS`` (2,000) gradient steps, 60 % for stage 1 and 40 % for stage 2, each stage's
            epochs computed from its own steps per epoch (at least 2 epochs per stage).
        train_steps
            With ``max_epochs=None``: this many gradient steps instead of ``DEFAULT_STEPS``, e.g. a smaller budget for
            a quick run. Ignored when ``max_epochs`` is given.
        stage
            ``"state"``, ``"diffusion"`` (stage 1 frozen) or ``"all"``.
        state_epochs
            Epochs of stage 1 within ``"all"`` (default: 60 % of ``max_epochs`` or of the step budget: the diffusion
            can only be as good as the states it diffuses, and the autoencoder needs the longer training). Stage 1
            trains on the perturbed training cells *and every control cell* (the controls of contexts to be
            predicted included: transductive, so that their states are not out of distribution for the encoder).
        batch_size, lr, weight_decay
            Minibatch size (pairs of perturbed and control cells; default ``min(256, max(32, n_train // 8))`` so that
            small datasets still get several steps per epoch) and Adam settings.
        split_key
            ``obs`` column from :func:`sxdiff.pp.ood_split`: ``"train"`` cells train, ``"validation"`` cells
            validate (early stopping), ``"test"`` cells are never seen. Without it, a random
            ``validation_fraction`` of perturbed cells validates.
        early_stopping
            Stop a stage when the validation loss stops improving.
        pairing
            How the diffusion stage pairs perturbed cells with controls of their context: ``"ot"`` (minibatch
            optimal transport on the stage-1 states, the default) or ``"random"``.
        storage
            Where training reads expression values from. ``"memory"``: the registered matrix is loaded once as a
            dense float32 array (fastest; needs ``cells x genes x 4`` bytes). ``"disk"``: each minibatch reads its
            cells from where the matrix lives: for an AnnData opened with ``backed="r"`` (only ``X`` stays on disk),
            from the file, in runs of nearby rows (perturbed cells are shuffled in blocks of consecutive cells), so
            memory does not grow with the number of cells; for an in-memory sparse matrix, row by row without a
            dense copy. ``"auto"``: ``"disk"`` for a backed ``X``, else ``"memory"``. See the scaling guide.
        seed
            Seed of shuffling, control matching, noise and dropout (re-seeded every epoch): on CPU the same seed
            gives the same weights. Seed the initial weights with ``torch.manual_seed`` before creating the model.
        checkpoint_dir
            Write a checkpoint after every epoch (``<checkpoint_dir>/<stage>/last.ckpt``) and, when checkpoints
            are already there, resume from them: an interrupted ``train`` called again with the same arguments
            continues where it stopped and ends in the same state as an uninterrupted run. Checkpoints are
            Lightning files for your own runs; share trained models with :meth:`save`, not checkpoints.
        accelerator, devices, **trainer_kwargs
            Passed to the Lightning trainer (e.g. ``strategy="ddp"``, ``precision="bf16-mixed"``). ``"ddp"`` runs
            with ``find_unused_parameters=True`` (which parameters a batch uses depends on the data: drugs
            without SMILES, data without protein) and validation outside ``inference_mode`` (so that logged
            metrics can be all-reduced).
        """
        if stage not in ("state", "diffusion", "all"):
            raise ValueError(f"stage must be 'state', 'diffusion' or 'all', not {stage!r}.")
        import lightning.pytorch as pl

        pl.seed_everything(seed, verbose=False)
        if storage not in ("auto", "memory", "disk"):
            raise ValueError(f"storage must be 'auto', 'memory' or 'disk', not {storage!r}.")
        if storage == "auto":
            storage = "disk" if is_on_disk(self.adata_manager.get_from_registry(REGISTRY_KEYS.X_KEY)) else "memory"
        logger.info("Reading training cells from %s.", storage)
        data = self._paired_data(split_key, validation_fraction, batch_size, seed, storage)
        state_data = data.with_controls()  # stage 1 also learns the states of every control cell
        stages = stage_epochs(stage, max_epochs, state_epochs, train_steps, data, state_data)
        logger.info("Training %s.", ", ".join(f"{name}: {epochs} epochs" for name, epochs in stages))
        trainer_kwargs.setdefault("gradient_clip_val", 1.0)
        if "ddp" in str(trainer_kwargs.get("strategy", "")).lower():
            # Lightning all-reduces validation metrics in place; inference tensors do not allow it
            trainer_kwargs.setdefault("inference_mode", False)
            if trainer_kwargs["strategy"] in ("ddp", "ddp_spawn"):
                # which parameters a batch uses depends on the data (drugs without SMILES, no protein, ...)
                trainer_kwargs["strategy"] = f"{trainer_kwargs['strategy']}_find_unused_parameters_true"
        trainer_kwargs.setdefault("reload_dataloaders_every_n_epochs", 1)  # new control partners every epoch
        previous = dict(self.history_) if self.history_ else {}
        run = {"seed": seed, "lr": lr, "weight_decay": weight_decay, "accelerator": accelerator, "devices": devices}
        run.update(early_stopping=early_stopping, checkpoint_dir=checkpoint_dir, trainer_kwargs=trainer_kwargs)
        with flush_denormals():  # subnormal Adam moments make CPU training ~20x slower
            for name, epochs in stages:
                if name == "diffusion":
                    if pairing == "ot":
                        data.use_states(self.get_latent_representation(self.adata))
                    self._calibrate(data)
                    self.module.reset_ema()
                    self.module.mark_trained_perturbations(*data.perturbations_in(data.train_set.cells))
                    if self.module.composer is not None:  # fitted anew after the stage
                        self.module.composer.measured_correction.zero_()
                final = data
                previous = self._run_stage(name, epochs, state_data if name == "state" else data, previous, run)
                if name == "diffusion" and len(data.held_out_perturbations):
                    # λ from the perturbations held out, then a shorter run on all of them
                    self._choose_novelty_shrinkage(data)
                    everything = np.union1d(data.train_set.cells, data.validation_set.cells)
                    self.module.mark_trained_perturbations(*data.perturbations_in(everything))
                    all_data = data.with_cells(everything, data.validation_set.cells)
                    extra = max(1, round(NOVEL_FINETUNE_SHARE * epochs))
                    previous = self._run_stage("diffusion", extra, all_data, previous, run, "all_perturbations")
                    final = all_data
                if name == "diffusion" and self.measured_effects != "off":
                    fit_measured_effects(self, final, mode=self.measured_effects)
                if name == "diffusion" and "auto" in (self.variation_setting, self.spread_setting):
                    fixed = {"grid": None} if self.variation_setting != "auto" else {}
                    fixed.update({"spread_grid": None} if self.spread_setting != "auto" else {})
                    choose_variation_scale(self, data, **fixed)
                if name == "diffusion" and self.context_transfer == "auto" and self.module.composer is not None:
                    choose_context_transfer(self, final)
        trained = np.union1d(data.train_set.cells, data.validation_set.cells)
        self.perturbed_contexts_ = sorted(
            {str(c) for c in data.matcher.contexts[trained[~data.matcher.is_control[trained]]]}
        )
        self.history_ = previous
        self.module.set_stage(stage)
        self.module.eval()
        self.is_trained_ = True

    def _run_stage(self, name: str, epochs: int, data, previous: dict, run: dict, label: str | None = None) -> dict:
        """Run one training stage under the scvi-tools loop; returns the history with this stage's metrics appended."""
        stage_kwargs = dict(run["trainer_kwargs"])
        if "callbacks" in stage_kwargs:  # scvi-tools appends its own (early stopping) to the list it is given
            stage_kwargs["callbacks"] = list(stage_kwargs["callbacks"])
        label = label or name
        if run["checkpoint_dir"] is not None:
            stage_kwargs.update(resume_checkpointing(Path(run["checkpoint_dir"]) / label, stage_kwargs))
        self.module.set_stage(name)
        plan = StateXDiffTrainingPlan(
            self.module,
            seed=run["seed"],
            checkpoint_dir=None if run["checkpoint_dir"] is None else str(run["checkpoint_dir"]),
            lr=run["lr"],
            weight_decay=run["weight_decay"],
        )
        runner = TrainRunner(
            self,
            training_plan=plan,
            data_splitter=data,
            max_epochs=epochs,
            accelerator=run["accelerator"],
            devices=run["devices"],
            early_stopping=run["early_stopping"],
            check_val_every_n_epoch=1,
            **stage_kwargs,
        )
        self.is_trained_ = False  # scvi-tools would otherwise keep only the first stage's metric names
        runner()
        return merge_history(previous, self.history_ or {}, label)

    def _choose_novelty_shrinkage(self, data: PairedPerturbationData) -> None:
        choose_novelty_shrinkage(self, data)

    def _paired_data(
        self, split_key, validation_fraction, batch_size: int | None, seed, storage: str = "memory"
    ) -> PairedPerturbationData:
        adata, manager = self.adata, self.adata_manager
        found = self._parse(adata)
        features = self._features()
        vocabulary = manager.get_state_registry(PERTURBATION_KEY)["vocabulary"]
        unseen = [v for v in vocabulary if v not in set(features.names)]
        if unseen:
            raise KeyError(
                f"Perturbation(s) {unseen[:10]} of this data have no drug features; the model cannot train on them."
            )
        index, dose, mask = decode_perturbation_field(manager.get_from_registry(PERTURBATION_KEY))
        if list(features.names[: len(vocabulary)]) != list(vocabulary):
            # PerturbationSetField encodes against the drug features' names, so its indices are feature rows; only
            # data registered before predict() added perturbations to the model's features can list them in another
            # order (each appends the names it had not seen, sorted)
            index = np.asarray([features.index(name) for name in vocabulary], dtype=np.int64)[index]
        perturbed = np.flatnonzero(~found.is_control)
        validation = np.empty(0, dtype=np.int64)
        if split_key is not None:
            split = resolve_obs_column(adata, split_key).astype(str).to_numpy()
            train = perturbed[split[perturbed] == "train"]
            validation = perturbed[split[perturbed] == "validation"]
            allowed_controls = found.is_control & (split != "test")
        else:
            train = perturbed
            allowed_controls = found.is_control
        if len(train) == 0:
            raise ValueError(f"No perturbed training cells (split column {split_key!r}); check the split.")
        held_out = np.empty(0, dtype=np.int64)
        if len(validation) == 0:
            by_perturbation = hold_out_perturbations(index, mask, train, fraction=validation_fraction, seed=seed)
            if by_perturbation is not None:
                # many perturbations: whole ones validate (and tell how far descriptions transfer to new ones)
                train, validation, held_out = by_perturbation
            elif len(train) >= 20:  # hold out a random fraction of the training cells (never test cells)
                order = np.random.default_rng(seed).permutation(train)
                n_val = max(1, round(validation_fraction * len(order)))
                train, validation = np.sort(order[n_val:]), np.sort(order[:n_val])
            else:
                validation = train[: max(1, len(train) // 10)]  # too few cells to hold any out: monitoring only
        matcher = ControlMatcher(allowed_controls, found.contexts, found.batches)
        data = PairedPerturbationData(
            self._expression(adata, manager, storage),
            self._protein(adata, manager),
            index,
            dose.astype(np.float32),
            mask,
            matcher,
            train,
            validation,
            batch_size=batch_size if batch_size is not None else int(np.clip(len(train) // 8, 32, 256)),
            seed=seed,
        )
        data.held_out_perturbations = held_out
        return data

    @torch.no_grad()
    def _calibrate(self, data: PairedPerturbationData) -> None:
        """Calibrate the module on the training pairs (at most 20,000).

        See :meth:`~sxdiff.module.StateXDiffModule.calibrate`.
        """
        self.module.eval()
        changes, controls, smallest = [], [], np.inf
        for batch in data.training_pairs(max_pairs=20_000):
            batch = {k: v.to(self.device) for k, v in batch.items()}
            out = self.module.inference(batch)
            changes.append((out["state"].z - out["state_control"].z).cpu())
            controls.append(out["state_control"].z.cpu())
            smallest = min(smallest, float(batch["x"].min()), float(batch["x_control"].min()))
        self.module.calibrate(torch.cat(changes), torch.cat(controls), nonnegative=smallest >= 0, seed=data.seed)
        self.module.train()

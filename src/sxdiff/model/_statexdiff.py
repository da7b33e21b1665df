"""StateXDiff: the scvi-tools model (registration, training, prediction into AnnData)."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Literal

import numpy as np
import pandas as pd
import scipy.sparse as sp
import torch
from anndata import AnnData
from mudata import MuData
from scvi import REGISTRY_KEYS
from scvi.data import AnnDataManager, fields
from scvi.model.base import BaseModelClass
from scvi.train import TrainRunner

from sxdiff.data._control_matcher import ControlMatcher
from sxdiff.data._perturbation_sets import encode_perturbation_sets
from sxdiff.data._protein import clr
from sxdiff.data._validation import resolve_obs_column, validate_perturbation_data
from sxdiff.drugs._features import DrugFeatures
from sxdiff.drugs._table import DrugTable
from sxdiff.module._statexdiff import Stage, StateXDiffModule
from sxdiff.train import PairedPerturbationData, StateXDiffTrainingPlan

from ._statexdiff_io import conditions_frame, drug_table_for

__all__ = ["StateXDiff"]

logger = logging.getLogger(__name__)
PROTEIN_KEY = "protein"


class StateXDiff(BaseModelClass):
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
        VMCS view dimension and MLP width.
    use_protein, reliability_weighting, drug_template, denoiser, triplet_weight
        Switches for ablations (protein context; reliability weighting; ``"both"``/``"structure"``/
        ``"targets"`` drug template; ``"dit"``/``"mlp"`` denoiser; triplet-loss weight, 0 to disable).
    d_model, n_blocks, n_heads, n_chunks
        Size of the diffusion Transformer.
    cfg_dropout, min_snr_gamma, ema_decay
        Classifier-free-guidance drop rate, min-SNR weighting (``None`` disables), EMA decay.
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
        n_blocks: int = 4,
        n_heads: int = 4,
        n_chunks: int = 8,
        triplet_weight: float = 0.1,
        cfg_dropout: float = 0.1,
        min_snr_gamma: float | None = 5.0,
        ema_decay: float = 0.999,
        drug_features: dict | None = None,
        protein_names: list[str] | None = None,
        protein_reliability: list[float] | None = None,
    ) -> None:
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
            cfg_dropout=cfg_dropout,
            min_snr_gamma=min_snr_gamma,
            ema_decay=ema_decay,
        )
        self._install_drug_features(features)
        if len(self.protein_names_):
            self.module.reliability = torch.as_tensor(self.protein_reliability_, dtype=torch.float32)
        self._model_summary_string = (
            f"StateXDiff: {self.summary_stats.n_vars} genes ({scale}), {len(self.protein_names_)} protein features, "
            f"{len(features.names)} perturbations, denoiser={denoiser}, drug_template={drug_template}"
        )
        self.init_params_ = self._get_init_params(locals())

    # ------------------------------------------------------------------------------------------ setup
    @classmethod
    def setup_anndata(
        cls,
        adata: AnnData,
        perturbation_key: str,
        control_value: str,
        dose_key: str | None = None,
        context_key: str | None = None,
        batch_key: str | None = None,
        layer: str | None = None,
        protein_obsm_key: str | None = None,
        delimiter: str = "+",
        default_dose: float | None = None,
        drug_features_key: str = "sxdiff_drugs",
        expression_scale: Literal["auto", "counts", "log1p", "normal"] = "auto",
        **kwargs,
    ) -> None:
        """Register perturbation data (see the data contract in the docs).

        Parameters
        ----------
        adata
            Cells x genes; counts, log-normalised or general real values in ``X`` or ``layer``.
        perturbation_key, control_value, dose_key, context_key, batch_key, delimiter, default_dose
            As in :func:`sxdiff.data.validate_perturbation_data`.
        layer
            Layer with expression values.
        protein_obsm_key
            ``obsm`` key of protein features (e.g. from :func:`sxdiff.pp.protein_context`), with names and
            reliability in ``uns[protein_obsm_key]``.
        drug_features_key
            ``uns`` key written by :func:`sxdiff.pp.drug_features`.
        expression_scale
            Scale of the expression values; ``"auto"`` detects it.
        """
        setup_method_args = cls._get_setup_method_args(**locals())
        transferring = "source_registry" in kwargs
        found = validate_perturbation_data(
            adata,
            perturbation_key=perturbation_key,
            control_value=control_value,
            dose_key=dose_key,
            context_key=context_key,
            batch_key=batch_key,
            layer=layer,
            expression_scale=expression_scale,
            delimiter=delimiter,
            default_dose=default_dose,
            require_controls=not transferring,
        )
        if not transferring and drug_features_key not in adata.uns:
            raise KeyError(
                f"`adata.uns[{drug_features_key!r}]` is missing: run `sxdiff.pp.drug_features(adata, "
                f"drug_key={perturbation_key!r})` before `setup_anndata`."
            )
        if protein_obsm_key is not None:
            if protein_obsm_key not in adata.obsm:
                raise KeyError(f"`adata.obsm[{protein_obsm_key!r}]` is missing (obsm keys: {list(adata.obsm)}).")
            if "names" not in adata.uns.get(protein_obsm_key, {}):
                raise KeyError(f"`adata.uns[{protein_obsm_key!r}]['names']` is missing; use sxdiff.pp.protein_context.")
        setup_method_args["setup_args"]["expression_scale"] = (
            kwargs["source_registry"]["setup_args"]["expression_scale"] if transferring else found.expression_scale
        )
        anndata_fields = [
            fields.LayerField(REGISTRY_KEYS.X_KEY, layer, is_count_data=found.expression_scale == "counts")
        ]
        if protein_obsm_key is not None:
            anndata_fields.append(fields.ObsmField(PROTEIN_KEY, protein_obsm_key))
        manager = AnnDataManager(fields=anndata_fields, setup_method_args=setup_method_args)
        manager.register_fields(adata, **kwargs)
        cls.register_manager(manager)

    @classmethod
    def setup_mudata(
        cls,
        mdata: MuData,
        perturbation_key: str,
        control_value: str,
        dose_key: str | None = None,
        context_key: str | None = None,
        batch_key: str | None = None,
        rna_layer: str | None = None,
        protein_layer: str | None = None,
        modalities: dict[str, str] | None = None,
        delimiter: str = "+",
        default_dose: float | None = None,
        drug_features_key: str = "sxdiff_drugs",
        expression_scale: Literal["auto", "counts", "log1p", "normal"] = "auto",
        **kwargs,
    ) -> None:
        """Register a MuData with RNA and *measured* protein (antibody counts), as totalVI does.

        ``modalities`` names them, e.g. ``{"rna_layer": "rna", "protein_layer": "prot"}`` (the default);
        measured protein is CLR-normalised per cell and has reliability 1. Obs columns are read from
        ``mdata.obs`` or the RNA modality; ``uns[drug_features_key]`` from ``mdata.uns`` or the RNA
        modality.
        """
        setup_method_args = cls._get_setup_method_args(**locals())
        modalities = dict(modalities or {"rna_layer": "rna", "protein_layer": "prot"})
        setup_method_args["setup_args"]["modalities"] = modalities
        for role in ("rna_layer", "protein_layer"):
            if modalities.get(role) not in mdata.mod:
                raise KeyError(f"MuData has no {modalities.get(role)!r} modality for {role} ({list(mdata.mod)}).")
        transferring = "source_registry" in kwargs
        found = validate_perturbation_data(
            mdata,
            perturbation_key=perturbation_key,
            control_value=control_value,
            dose_key=dose_key,
            context_key=context_key,
            batch_key=batch_key,
            layer=rna_layer,
            modality=modalities["rna_layer"],
            expression_scale=expression_scale,
            delimiter=delimiter,
            default_dose=default_dose,
            require_controls=not transferring,
        )
        rna = mdata.mod[modalities["rna_layer"]]
        if not transferring and drug_features_key not in mdata.uns and drug_features_key not in rna.uns:
            raise KeyError(f"uns[{drug_features_key!r}] is missing: run `sxdiff.pp.drug_features(mdata, ...)` first.")
        setup_method_args["setup_args"]["expression_scale"] = (
            kwargs["source_registry"]["setup_args"]["expression_scale"] if transferring else found.expression_scale
        )
        mods = cls._create_modalities_attr_dict(modalities, setup_method_args)
        mudata_fields = [
            fields.MuDataLayerField(
                REGISTRY_KEYS.X_KEY,
                rna_layer,
                mod_key=mods.rna_layer,
                is_count_data=found.expression_scale == "counts",
                mod_required=True,
            ),
            fields.MuDataLayerField(
                PROTEIN_KEY, protein_layer, mod_key=mods.protein_layer, is_count_data=True, mod_required=True
            ),
        ]
        manager = AnnDataManager(fields=mudata_fields, setup_method_args=setup_method_args)
        manager.register_fields(mdata, **kwargs)
        cls.register_manager(manager)

    # ------------------------------------------------------------------------------------------ data
    @staticmethod
    def _protein_info(adata, args) -> tuple[list[str], list[float]]:
        if isinstance(adata, MuData):
            names = [str(p) for p in adata.mod[args["modalities"]["protein_layer"]].var_names]
            return names, [1.0] * len(names)
        key = args.get("protein_obsm_key")
        if key is None:
            return [], []
        info = adata.uns[key]
        names = [str(n) for n in info["names"]]
        return names, list(np.asarray(info.get("reliability", np.ones(len(names))), dtype=float))

    def _install_drug_features(self, features: DrugFeatures) -> None:
        self.module.drug_encoder.set_drug_features(
            torch.as_tensor(features.structure),
            torch.as_tensor(features.template),
            torch.as_tensor(features.has_structure),
            torch.as_tensor(features.has_targets),
        )

    def _features(self) -> DrugFeatures:
        return DrugFeatures.from_dict(self.drug_features_)

    def _expression(self, adata, manager) -> np.ndarray:
        values = manager.get_from_registry(REGISTRY_KEYS.X_KEY)
        return np.asarray(values.toarray() if sp.issparse(values) else values, dtype=np.float32)

    def _protein(self, adata, manager) -> np.ndarray | None:
        if not len(self.protein_names_):
            return None
        values = manager.get_from_registry(PROTEIN_KEY)
        values = values.to_numpy() if isinstance(values, pd.DataFrame) else values
        if isinstance(adata, MuData):
            return clr(values)
        return np.asarray(values.toarray() if sp.issparse(values) else values, dtype=np.float32)

    def _parse(self, adata, require_controls: bool = True):
        args = self.registry_["setup_args"]
        modality = args.get("modalities", {}).get("rna_layer", "rna")
        return validate_perturbation_data(
            adata,
            perturbation_key=args["perturbation_key"],
            control_value=args["control_value"],
            dose_key=args["dose_key"],
            context_key=args["context_key"],
            batch_key=args["batch_key"],
            layer=args.get("layer", args.get("rna_layer")),
            modality=modality,
            delimiter=args["delimiter"],
            default_dose=args["default_dose"],
            require_controls=require_controls,
        )

    # ------------------------------------------------------------------------------------------ training
    def train(
        self,
        max_epochs: int = 100,
        *,
        stage: Stage = "all",
        state_epochs: int | None = None,
        batch_size: int = 256,
        lr: float = 1e-3,
        weight_decay: float = 1e-6,
        split_key: str | None = None,
        validation_fraction: float = 0.1,
        early_stopping: bool = False,
        pairing: Literal["ot", "random"] = "ot",
        seed: int = 0,
        accelerator: str = "auto",
        devices: int | str = "auto",
        **trainer_kwargs,
    ) -> None:
        """Train stage 1 (state), stage 2 (diffusion) or both in order, under the scvi-tools loop.

        Parameters
        ----------
        max_epochs
            Total epochs; with ``stage="all"``, ``state_epochs`` go to stage 1 and the rest to stage 2.
        stage
            ``"state"``, ``"diffusion"`` (stage 1 frozen) or ``"all"``.
        state_epochs
            Epochs of stage 1 within ``"all"`` (default: a third of ``max_epochs``).
        batch_size, lr, weight_decay
            Minibatch size (pairs of perturbed and control cells) and Adam settings.
        split_key
            ``obs`` column from :func:`sxdiff.pp.ood_split`: ``"train"`` cells train, ``"validation"`` cells
            validate (early stopping), ``"test"`` cells are never seen. Without it, a random
            ``validation_fraction`` of perturbed cells validates.
        early_stopping
            Stop a stage when the validation loss stops improving.
        pairing
            How the diffusion stage pairs perturbed cells with controls of their context: ``"ot"`` (minibatch
            optimal transport on the stage-1 states, the default) or ``"random"``.
        seed
            Seed of initial draws, shuffling and control matching.
        accelerator, devices, **trainer_kwargs
            Passed to the Lightning trainer (e.g. ``strategy="ddp"``, ``precision="bf16-mixed"``).
        """
        if stage not in ("state", "diffusion", "all"):
            raise ValueError(f"stage must be 'state', 'diffusion' or 'all', not {stage!r}.")
        import lightning.pytorch as pl

        pl.seed_everything(seed, verbose=False)
        data = self._paired_data(split_key, validation_fraction, batch_size, seed)
        stages = [("state", max_epochs)] if stage == "state" else [("diffusion", max_epochs)]
        if stage == "all":
            first = state_epochs if state_epochs is not None else max(1, max_epochs // 3)
            stages = [("state", first), ("diffusion", max(1, max_epochs - first))]
        trainer_kwargs.setdefault("gradient_clip_val", 1.0)
        for name, epochs in stages:
            if name == "diffusion":
                if pairing == "ot":
                    data.states = self.get_latent_representation(self.adata)
                    data.train_set.partners = data.train_set._draw()
                    data.validation_set.partners = data.validation_set._draw()
                self._calibrate_state_scale(data)
                self.module.ema_denoiser.load_state_dict(self.module.denoiser.state_dict())
                self.module.ema_updates.zero_()
            self.module.stage = name
            plan = StateXDiffTrainingPlan(self.module, lr=lr, weight_decay=weight_decay)
            runner = TrainRunner(
                self,
                training_plan=plan,
                data_splitter=data,
                max_epochs=epochs,
                accelerator=accelerator,
                devices=devices,
                early_stopping=early_stopping,
                check_val_every_n_epoch=1,
                **trainer_kwargs,
            )
            runner()
        self.module.eval()
        self.is_trained_ = True

    def _paired_data(self, split_key, validation_fraction, batch_size, seed) -> PairedPerturbationData:
        adata, manager = self.adata, self.adata_manager
        found = self._parse(adata)
        features = self._features()
        index, dose, mask = encode_perturbation_sets(found.perturbation_sets, found.doses, features.names)
        perturbed = np.flatnonzero(~found.is_control)
        if split_key is not None:
            split = resolve_obs_column(adata, split_key).astype(str).to_numpy()
            train = perturbed[split[perturbed] == "train"]
            validation = perturbed[split[perturbed] == "validation"]
            allowed_controls = found.is_control & (split != "test")
        else:
            order = np.random.default_rng(seed).permutation(perturbed)
            n_val = max(1, round(validation_fraction * len(order)))
            train, validation = np.sort(order[n_val:]), np.sort(order[:n_val])
            allowed_controls = found.is_control
        if len(train) == 0:
            raise ValueError(f"No perturbed training cells (split column {split_key!r}); check the split.")
        if len(validation) == 0:
            rng = np.random.default_rng(seed)
            validation = rng.choice(train, size=max(1, len(train) // 10), replace=False)
        matcher = ControlMatcher(allowed_controls, found.contexts, found.batches)
        return PairedPerturbationData(
            self._expression(adata, manager),
            self._protein(adata, manager),
            index,
            dose.astype(np.float32),
            mask,
            matcher,
            train,
            validation,
            batch_size=batch_size,
            seed=seed,
        )

    @torch.no_grad()
    def _calibrate_state_scale(self, data: PairedPerturbationData) -> None:
        """Scale of state changes per dimension, so the diffusion target has unit variance."""
        self.module.eval()
        changes = []
        for batch in data.train_dataloader():
            batch = {k: v.to(self.device) for k, v in batch.items()}
            out = self.module.inference(batch)
            changes.append((out["state"].z - out["state_control"].z).cpu())
        scale = torch.cat(changes).std(dim=0).clamp_min(1e-3)
        self.module.state_scale = scale.to(self.device)
        self.module.train()

    # ------------------------------------------------------------------------------------------ prediction
    def _ensure_perturbations(self, names: Sequence[str], drug_table) -> DrugFeatures:
        features = self._features()
        missing = sorted({n for n in names if n not in features.names})
        if missing:
            params = self.drug_features_.get("params", {})
            table = drug_table_for(missing, drug_table, params.get("perturbation_type", "drug"))
            features = features.extend(table, missing)
            state = features.to_dict()
            state["params"] = params
            self.drug_features_ = state
            self._install_drug_features(features)
            logger.info("Featurised %d perturbation(s) unseen in training: %s", len(missing), missing[:10])
        return features

    @torch.no_grad()
    def predict(
        self,
        adata_control: AnnData,
        conditions: Sequence[str] | pd.DataFrame | str,
        *,
        n_samples_per_cell: int = 1,
        n_steps: int = 50,
        guidance_scale: float = 1.0,
        seed: int | None = None,
        batch_size: int = 1024,
        decode: Literal["residual", "direct"] = "residual",
        drug_table: DrugTable | pd.DataFrame | None = None,
        allow_non_control: bool = False,
    ) -> AnnData:
        """Predict each condition for each source cell; returns a new AnnData of predicted cells.

        Parameters
        ----------
        adata_control
            Source cells (controls of the target context), with the training genes in the same order.
        conditions
            Perturbation labels (``"A"``, ``"A+B"``), or a DataFrame with the perturbation column (and the
            dose column when the model uses doses). Drugs never seen in training are featurised from
            ``drug_table`` or the bundled tables, with the stored statistics.
        n_samples_per_cell
            Predicted cells per (source cell, condition): samples of the predictive distribution.
        n_steps
            DDIM steps.
        guidance_scale
            Classifier-free guidance (1: conditional model only).
        seed
            Seed of the sampling noise (the same seed gives the same prediction).
        batch_size
            Cells per forward pass (memory stays bounded).
        decode
            ``"residual"``: source expression + decoded change (keeps the source cell's own profile);
            ``"direct"``: decoded predicted state.
        drug_table
            Descriptions of unseen drugs (DrugTable or DataFrame with ``drug``, ``smiles``, ``targets``, ``action``).
        allow_non_control
            Accept sources that are not control cells.

        Returns
        -------
        AnnData: ``X`` on the training scale; ``obs`` with the condition columns, the source's context and
        ``source_cell``; ``obsm["X_sxdiff"]`` predicted states; ``obsm["sxdiff_protein"]`` when protein is used.
        """
        args = self.registry_["setup_args"]
        self._check_genes(adata_control)
        frame = conditions_frame(conditions, args["perturbation_key"], args["dose_key"], args["default_dose"])
        sets = [tuple(m.strip() for m in str(p).split(args["delimiter"])) for p in frame[args["perturbation_key"]]]
        features = self._ensure_perturbations([m for s in sets for m in s], drug_table)
        doses = []
        for members, dose in zip(sets, frame["_dose"], strict=True):
            values = [float(d) for d in str(dose).split(args["delimiter"])]
            doses.append(tuple(values * len(members)) if len(values) == 1 else tuple(values))
        index, dose_values, mask = encode_perturbation_sets(sets, doses, features.names)
        labels = (
            resolve_obs_column(adata_control, args["perturbation_key"]).astype(str)
            if (args["perturbation_key"] in adata_control.obs)
            else pd.Series([args["control_value"]] * adata_control.n_obs)
        )
        if not allow_non_control and (labels != args["control_value"]).any():
            bad = sorted(set(labels) - {args["control_value"]})[:5]
            raise ValueError(
                f"`adata_control` holds non-control cells ({bad} in {args['perturbation_key']!r}); predictions start "
                f"from control cells. Subset to controls or pass `allow_non_control=True`."
            )
        x = self._source_expression(adata_control)
        protein = self._source_protein(adata_control)
        contexts = (
            resolve_obs_column(adata_control, args["context_key"]).astype(str).to_numpy()
            if args["context_key"] and args["context_key"] in adata_control.obs
            else np.full(adata_control.n_obs, "all", dtype=object)
        )
        generator = torch.Generator(device="cpu").manual_seed(seed) if seed is not None else None
        self.module.eval()
        blocks, states, proteins, obs_rows = [], [], [], []
        n = adata_control.n_obs
        for c in range(len(frame)):
            for sample in range(n_samples_per_cell):
                for start in range(0, n, batch_size):
                    stop = min(start + batch_size, n)
                    rows = stop - start
                    xb = torch.as_tensor(x[start:stop], device=self.device)
                    pb = None if protein is None else torch.as_tensor(protein[start:stop], device=self.device)
                    di = torch.as_tensor(np.repeat(index[c : c + 1], rows, 0), device=self.device)
                    dd = torch.as_tensor(np.repeat(dose_values[c : c + 1], rows, 0), device=self.device)
                    dm = torch.as_tensor(np.repeat(mask[c : c + 1], rows, 0), device=self.device)
                    out = self.module.sample(
                        xb, pb, di, dd, dm, n_steps=n_steps, guidance_scale=guidance_scale, generator=generator
                    )
                    blocks.append(self._decode(out, xb, pb, decode).cpu().numpy())
                    states.append(out["z"].cpu().numpy())
                    if "protein" in out:
                        proteins.append(out["protein"].cpu().numpy())
                obs = frame.iloc[[c] * n].drop(columns=["_dose"]).reset_index(drop=True)
                obs["source_cell"] = adata_control.obs_names.to_numpy()
                if args["context_key"]:
                    obs[args["context_key"]] = contexts
                obs["sample"] = sample
                obs_rows.append(obs)
        obs = pd.concat(obs_rows, ignore_index=True)
        obs.index = [f"pred_{i}" for i in range(len(obs))]
        result = AnnData(
            np.vstack(blocks).astype(np.float32), obs=obs, var=pd.DataFrame(index=adata_control.var_names.copy())
        )
        result.obsm["X_sxdiff"] = np.vstack(states)
        if proteins:
            result.obsm["sxdiff_protein"] = np.vstack(proteins)
            result.uns["sxdiff_protein"] = {"names": list(self.protein_names_)}
        return result

    def _decode(self, out: dict, x: torch.Tensor, protein, decode: str) -> torch.Tensor:
        if decode == "direct":
            return out["expression"]
        if decode != "residual":
            raise ValueError(f"decode must be 'residual' or 'direct', not {decode!r}.")
        library = x.sum(dim=1, keepdim=True).clamp_min(1.0) if self.module.vmcs.gene_likelihood == "nb" else None
        baseline = self.module.vmcs.decode_rna(out["z_control"], library)
        predicted = x + out["expression"] - baseline
        return predicted.clamp_min(0.0) if self.module.vmcs.gene_likelihood == "nb" else predicted

    def _check_genes(self, adata: AnnData) -> None:
        expected = list(self.adata.var_names) if self.adata is not None else list(self.drug_features_["genes"])
        genes = list(adata.mod["rna"].var_names if isinstance(adata, MuData) else adata.var_names)
        if genes != expected:
            missing = [g for g in expected if g not in set(genes)][:10]
            extra = [g for g in genes if g not in set(expected)][:10]
            raise ValueError(
                f"The genes differ from the model's {len(expected)} genes (missing e.g. {missing}; unexpected e.g. "
                f"{extra}{'; same genes in another order' if not missing and not extra else ''}). Subset and order "
                "them: `adata = adata[:, model_genes]` with the training AnnData's var_names."
            )

    def _source_expression(self, adata) -> np.ndarray:
        args = self.registry_["setup_args"]
        layer = args.get("layer", args.get("rna_layer"))
        base = adata.mod[args["modalities"]["rna_layer"]] if isinstance(adata, MuData) else adata
        values = base.X if layer is None else base.layers[layer]
        return np.asarray(values.toarray() if sp.issparse(values) else values, dtype=np.float32)

    def _source_protein(self, adata) -> np.ndarray | None:
        if not len(self.protein_names_) or not self.module.use_protein:
            return None
        args = self.registry_["setup_args"]
        if isinstance(adata, MuData):
            prot = adata.mod[args["modalities"]["protein_layer"]]
            layer = args.get("protein_layer")
            return clr(prot.X if layer is None else prot.layers[layer])
        key = args.get("protein_obsm_key")
        if key not in adata.obsm:
            raise KeyError(
                f"The model uses protein context: `adata.obsm[{key!r}]` is missing for the source cells; add it "
                "with `sxdiff.pp.protein_context` (the same way as for training)."
            )
        return np.asarray(adata.obsm[key], dtype=np.float32)

    def predict_counterfactual(
        self,
        adata: AnnData,
        perturbation: str,
        dose: float | str | None = None,
        *,
        key_added: str = "sxdiff",
        seed: int | None = 0,
        n_steps: int = 50,
        **kwargs,
    ) -> None:
        """Write the prediction of ``perturbation`` for *every* cell into ``adata``, for ``sc.pl.*``.

        Writes ``layers[f"{key_added}_pred"]`` (predicted expression) and ``obsm[f"X_{key_added}"]`` (predicted
        state). Non-control cells are accepted here: it is the counterfactual "this cell, perturbed".
        """
        args = self.registry_["setup_args"]
        frame = pd.DataFrame({args["perturbation_key"]: [perturbation]})
        if args["dose_key"]:
            frame[args["dose_key"]] = [dose if dose is not None else args["default_dose"]]
        pred = self.predict(adata, frame, seed=seed, n_steps=n_steps, allow_non_control=True, **kwargs)
        adata.layers[f"{key_added}_pred"] = pred.X
        adata.obsm[f"X_{key_added}"] = pred.obsm["X_sxdiff"]

    @torch.no_grad()
    def get_latent_representation(self, adata: AnnData | None = None, batch_size: int = 1024) -> np.ndarray:
        """VMCS cell states ``z = [s, u, w]`` (or ``f_r`` RNA-only) of the cells of ``adata``."""
        adata = self.adata if adata is None else adata
        self._check_genes(adata)
        x, protein = self._source_expression(adata), self._source_protein(adata)
        self.module.eval()
        out = []
        for start in range(0, x.shape[0], batch_size):
            xb = torch.as_tensor(x[start : start + batch_size], device=self.device)
            pb = None if protein is None else torch.as_tensor(protein[start : start + batch_size], device=self.device)
            out.append(self.module.encode(xb, pb).z.cpu().numpy())
        return np.vstack(out)

    @torch.no_grad()
    def get_drug_embedding(
        self, perturbations: Sequence[str] | None = None, drug_table: DrugTable | pd.DataFrame | None = None
    ) -> pd.DataFrame:
        """Dose-free drug embeddings ``e_d`` (rows: perturbations); unseen ones are featurised first."""
        features = self._features() if perturbations is None else self._ensure_perturbations(perturbations, drug_table)
        names = features.names if perturbations is None else list(perturbations)
        index = torch.as_tensor([features.index(n) for n in names], device=self.device)
        return pd.DataFrame(self.module.drug_encoder.embed(index).cpu().numpy(), index=names)

    def dose_response(
        self,
        adata_control: AnnData,
        perturbation: str,
        doses: Sequence[float],
        *,
        seed: int = 0,
        n_steps: int = 25,
        **kwargs,
    ) -> pd.DataFrame:
        """Mean predicted expression of the source cells at each dose (rows: doses, columns: genes)."""
        args = self.registry_["setup_args"]
        if not args["dose_key"]:
            raise ValueError("This model was set up without `dose_key`; it has no dose response.")
        frame = pd.DataFrame({args["perturbation_key"]: [perturbation] * len(doses), args["dose_key"]: list(doses)})
        pred = self.predict(adata_control, frame, seed=seed, n_steps=n_steps, **kwargs)
        means = pd.DataFrame(pred.X, columns=pred.var_names).groupby(pred.obs[args["dose_key"]].to_numpy()).mean()
        means.index.name = args["dose_key"]
        return means

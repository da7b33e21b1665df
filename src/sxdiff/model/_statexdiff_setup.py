"""Registration of perturbation data for StateXDiff (``setup_anndata`` / ``setup_mudata``) and data access."""

from __future__ import annotations

import logging
from typing import Literal

import numpy as np
import pandas as pd
import scipy.sparse as sp
from anndata import AnnData
from mudata import MuData
from scvi import REGISTRY_KEYS
from scvi.data import AnnDataManager, fields
from scvi.data.fields import MuDataWrapper

from sxdiff.data._on_disk import RowReader
from sxdiff.data._perturbation_field import PerturbationSetField
from sxdiff.data._protein import clr, is_isotype_control
from sxdiff.data._validation import validate_perturbation_data

__all__ = ["PERTURBATION_KEY", "PROTEIN_KEY", "StateXDiffSetupMixin"]

logger = logging.getLogger(__name__)

PROTEIN_KEY = "protein"
PERTURBATION_KEY = "perturbation_set"


def _describe_perturbations(adata, perturbation_key: str, control_value: str, delimiter: str, key: str) -> None:
    """``sxdiff.pp.drug_features`` with its defaults, for data registered without it (after validation passed).

    Perturbations the bundled tables know get their structure and targets; the others (a cytokine, a label) get
    no description and are told apart by the model's learned identity of each training perturbation
    (``perturbation_identities=True``), so they can be trained on and predicted in new contexts, not predicted
    when unseen.
    """
    from sxdiff.pp import drug_features

    logger.info(
        "`uns[%r]` is missing: describing the perturbations with `sxdiff.pp.drug_features` defaults; perturbations "
        "it cannot describe get a learned identity (call it yourself with `drug_table=` or `smiles_key=` to "
        "predict unseen ones).",
        key,
    )
    drug_features(
        adata,
        drug_key=perturbation_key,
        control_value=control_value,
        delimiter=delimiter,
        allow_structure_free=True,
        key_added=key,
    )


class StateXDiffSetupMixin:
    """``setup_anndata`` / ``setup_mudata`` and reading registered data back."""

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
            ``uns`` key written by :func:`sxdiff.pp.drug_features`. When it is missing, ``setup_anndata`` runs
            :func:`~sxdiff.pp.drug_features` with its defaults (bundled tables; perturbations nothing describes,
            such as a cytokine, get a learned identity and can be trained on but not predicted when unseen) and
            logs it.
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
        if protein_obsm_key is not None:
            if protein_obsm_key not in adata.obsm:
                raise KeyError(f"`adata.obsm[{protein_obsm_key!r}]` is missing (obsm keys: {list(adata.obsm)}).")
            if "names" not in adata.uns.get(protein_obsm_key, {}):
                raise KeyError(f"`adata.uns[{protein_obsm_key!r}]['names']` is missing; use sxdiff.pp.protein_context.")
        if not transferring and drug_features_key not in adata.uns:
            _describe_perturbations(adata, perturbation_key, control_value, delimiter, drug_features_key)
        setup_method_args["setup_args"]["expression_scale"] = (
            kwargs["source_registry"]["setup_args"]["expression_scale"] if transferring else found.expression_scale
        )
        anndata_fields = [
            fields.LayerField(REGISTRY_KEYS.X_KEY, layer, is_count_data=found.expression_scale == "counts")
        ]
        if protein_obsm_key is not None:
            anndata_fields.append(fields.ObsmField(PROTEIN_KEY, protein_obsm_key))
        anndata_fields.append(
            PerturbationSetField(
                PERTURBATION_KEY,
                perturbation_key,
                control_value,
                dose_key,
                vocabulary=[] if transferring else list(adata.uns[drug_features_key]["names"]),
                delimiter=delimiter,
                default_dose=default_dose,
            )
        )
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
        measured protein is CLR-normalised per cell and has reliability 1, except isotype controls
        (:func:`sxdiff.data.is_isotype_control`): they measure background binding, not a protein, and get
        reliability 0 (logged), so with reliability weighting (the default) they enter neither the protein
        encoder nor the protein loss. Obs columns are read from ``mdata.obs`` or the RNA modality;
        ``uns[drug_features_key]`` from ``mdata.uns`` or the RNA modality.
        """
        setup_method_args = cls._get_setup_method_args(**locals())
        modalities = dict(modalities or {"rna_layer": "rna", "protein_layer": "prot"})
        setup_method_args["setup_args"]["modalities"] = modalities
        for role in ("rna_layer", "protein_layer"):
            if modalities.get(role) not in mdata.mod:
                raise KeyError(f"MuData has no {modalities.get(role)!r} modality for {role} ({list(mdata.mod)}).")
        isotypes = [str(p) for p in mdata.mod[modalities["protein_layer"]].var_names if is_isotype_control(p)]
        if isotypes:
            logger.info("setup_mudata: isotype control(s) %s get protein reliability 0 (background binding).", isotypes)
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
            _describe_perturbations(mdata, perturbation_key, control_value, delimiter, drug_features_key)
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
        features_uns = mdata.uns if drug_features_key in mdata.uns else rna.uns
        mudata_fields.append(
            MuDataWrapper(PerturbationSetField)(
                PERTURBATION_KEY,
                perturbation_key,
                control_value,
                dose_key,
                vocabulary=[] if transferring else list(features_uns[drug_features_key]["names"]),
                delimiter=delimiter,
                default_dose=default_dose,
                mod_key=None,
            )
        )
        manager = AnnDataManager(fields=mudata_fields, setup_method_args=setup_method_args)
        manager.register_fields(mdata, **kwargs)
        cls.register_manager(manager)

    @staticmethod
    def _protein_info(adata, args) -> tuple[list[str], list[float]]:
        if isinstance(adata, MuData):
            names = [str(p) for p in adata.mod[args["modalities"]["protein_layer"]].var_names]
            return names, [0.0 if is_isotype_control(p) else 1.0 for p in names]  # isotypes: background binding
        key = args.get("protein_obsm_key")
        if key is None:
            return [], []
        info = adata.uns[key]
        names = [str(n) for n in info["names"]]
        return names, list(np.asarray(info.get("reliability", np.ones(len(names))), dtype=float))

    def _expression(self, adata, manager, storage: Literal["memory", "disk"] = "memory") -> np.ndarray | RowReader:
        """The registered expression: dense float32 array (``"memory"``) or a reader of minibatch rows (``"disk"``)."""
        reader = RowReader(manager.get_from_registry(REGISTRY_KEYS.X_KEY))
        return reader if storage == "disk" else reader[:]

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
            check_expression=False,  # checked by setup_anndata; a backed X would be read whole again
        )

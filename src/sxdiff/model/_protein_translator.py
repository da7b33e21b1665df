"""ProteinTranslator: RNA -> CLR protein, trained on a paired CITE-seq reference (scvi-tools model)."""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd
import scipy.sparse as sp
import torch
from anndata import AnnData
from mudata import MuData
from scvi import REGISTRY_KEYS
from scvi.data import AnnDataManager, fields
from scvi.model.base import BaseModelClass, UnsupervisedTrainingMixin

from sxdiff.data._expression import detect_expression_scale, log_normalize
from sxdiff.data._on_disk import check_finite
from sxdiff.data._protein import clr, coding_genes, is_isotype_control
from sxdiff.module._protein_translator import ProteinTranslatorModule

from ._safe_io import SafeSaveLoadMixin
from ._translator_files import TRANSLATOR_FILE_VERSION, refuse_old_translator
from ._translator_linear import _mean_std, column_pearson, principal_components, ridge_fit
from ._translator_reference import _split_indices, _validate_reference

__all__ = ["MIN_GENE_FRACTION", "ProteinTranslator", "TranslatorPredictor"]

logger = logging.getLogger(__name__)

MIN_GENE_FRACTION = 0.5
"""A query must contain at least this fraction of the translator's genes (missing ones count as average)."""

TranslatorPredictor = Literal["auto", "linear", "network"]
"""``auto``: per protein the best of linear map, MLP and their mean by cross-validation; or one of them only."""

CANDIDATE_SHARES: dict[str, float] = {"linear": 0.0, "mean": 0.5, "network": 1.0}
"""Share of the MLP in each candidate predictor, simplest first (ties go to the simpler one)."""


class ProteinTranslator(SafeSaveLoadMixin, UnsupervisedTrainingMixin, BaseModelClass):
    """Translate RNA into CLR-normalised protein levels, with a calibrated reliability per protein.

    Trained on a paired CITE-seq reference (RNA counts + antibody counts); the target is the per-cell CLR of
    the antibody counts. The input is the ``log1p`` expression (counts per 10,000) of the most variable
    reference genes plus the genes that code the measured proteins, reduced to ``n_components`` principal
    components of the reference. Two predictors read those components:

    - a **linear map**: ridge regression of each protein on the component scores, its penalty chosen per
      protein by closed-form leave-one-out error (:func:`ridge_fit`);
    - a **network**: an MLP on the whitened component scores, trained with early stopping.

    **The rule.** :meth:`train` estimates, by ``n_folds``-fold cross-validation over reference cells, the
    held-out Pearson correlation of the linear map, of the network and of their mean, for every protein.
    Each protein keeps the candidate with the highest held-out correlation, the simpler one on ties
    (linear, then mean, then network): the network is used only for proteins where it wins on cells it did
    not see. The chosen predictors are then refitted on all reference cells. ``predictor_`` records the
    choice and ``cv_pearson_`` the held-out correlations of all candidates.

    **Reliability.** ``reliability_`` is the cross-validated held-out Pearson correlation of the chosen
    predictor, clipped to [0, 1]: what to expect on new cells like the reference's (the final model sees
    all reference cells, so it is if anything slightly better). Isotype controls (``is_isotype_``) carry no
    specific signal: their reliability is 0 and :func:`sxdiff.pp.protein_context` leaves them out.

    Parameters
    ----------
    adata
        Reference MuData registered with :meth:`setup_mudata` (``None`` when loading a saved model).
    registry
        Used by :meth:`load` only.
    n_genes
        Number of most variable reference genes used as input (coding genes of proteins are added).
    n_components
        Number of principal components, the input of both predictors.
    n_hidden, n_layers, dropout
        Size and regularisation of the MLP.
    gene_names, protein_names
        Set by the model itself (recorded so that a saved model can be loaded without the reference).

    Examples
    --------
    >>> import mudata as md, sxdiff
    >>> mdata = md.read_h5mu("citeseq_reference.h5mu")  # doctest: +SKIP
    >>> modalities = {"rna_layer": "rna", "protein_layer": "prot"}
    >>> sxdiff.model.ProteinTranslator.setup_mudata(mdata, modalities=modalities)  # doctest: +SKIP
    >>> translator = sxdiff.model.ProteinTranslator(mdata)  # doctest: +SKIP
    >>> translator.train()  # doctest: +SKIP
    >>> translator.reliability_summary().head()  # reliability and chosen predictor  # doctest: +SKIP
    >>> protein = translator.predict(adata_rna)  # cells x proteins DataFrame  # doctest: +SKIP
    """

    _module_cls = ProteinTranslatorModule

    def __init__(
        self,
        adata: MuData | None = None,
        registry: dict | None = None,
        n_genes: int = 2000,
        n_components: int = 30,
        n_hidden: int = 128,
        n_layers: int = 1,
        dropout: float = 0.2,
        gene_names: Sequence[str] | None = None,
        protein_names: Sequence[str] | None = None,
    ) -> None:
        super().__init__(adata, registry)
        if n_genes < 1 or n_components < 1:
            raise ValueError(f"n_genes={n_genes} and n_components={n_components} must be positive.")
        if adata is not None:
            rna = self.adata_manager.get_from_registry(REGISTRY_KEYS.X_KEY)
            reference_genes = self._reference_gene_names(adata)
            protein_names = [str(p) for p in self._protein_var_names(adata)]
            logged = log_normalize(rna)
            _, std = _mean_std(logged)
            order = np.argsort(-std, kind="stable")[:n_genes]
            coding = {g for p in protein_names for g in coding_genes(p, reference_genes)}
            chosen = sorted(set(order.tolist()) | {reference_genes.index(g) for g in coding})
            gene_names = [reference_genes[i] for i in chosen]
        if gene_names is None or protein_names is None:
            raise ValueError("ProteinTranslator needs a registered reference MuData (see `setup_mudata`).")
        self.gene_names_ = [str(g) for g in gene_names]
        self.protein_names_ = [str(p) for p in protein_names]
        self.is_isotype_ = np.array([is_isotype_control(p) for p in self.protein_names_])
        n_proteins = len(self.protein_names_)
        self.reliability_ = np.full(n_proteins, np.nan)
        self.predictor_ = np.array([""] * n_proteins, dtype=object)
        self.cv_pearson_ = pd.DataFrame(index=self.protein_names_, columns=list(CANDIDATE_SHARES), dtype=float)
        self.ridge_alpha_ = np.full(n_proteins, np.nan)
        self.component_variance_ = np.zeros(n_components)
        self.translator_version_ = TRANSLATOR_FILE_VERSION
        self.module = self._module_cls(
            n_input=self.summary_stats.n_vars,
            gene_index=self._gene_index(adata) if adata is not None else list(range(len(self.gene_names_))),
            n_proteins=n_proteins,
            n_components=n_components,
            n_hidden=n_hidden,
            n_layers=n_layers,
            dropout=dropout,
        )
        if adata is not None:
            mean, components, variance = principal_components(logged[:, chosen], n_components)
            scale = np.where(variance > 1e-12, 1.0 / np.sqrt(np.where(variance > 1e-12, variance, 1.0)), 0.0)
            self.module.gene_mean.copy_(torch.as_tensor(mean, dtype=torch.float32))
            self.module.projection.copy_(torch.as_tensor(components * scale, dtype=torch.float32))
            self.component_variance_ = variance
        self._model_summary_string = (
            f"ProteinTranslator: {len(self.gene_names_)} genes -> {n_components} components -> "
            f"{n_proteins} proteins ({int(self.is_isotype_.sum())} isotype controls)"
        )
        self.init_params_ = self._get_init_params(locals())

    # ---------------------------------------------------------------------------------- registration
    @classmethod
    def setup_mudata(
        cls,
        mdata: MuData,
        rna_layer: str | None = None,
        protein_layer: str | None = None,
        modalities: dict[str, str] | None = None,
        **kwargs,
    ) -> None:
        """Register a paired CITE-seq reference: RNA counts and antibody (ADT) counts.

        Parameters
        ----------
        mdata
            MuData with an RNA and a protein modality of raw counts, same cells.
        rna_layer, protein_layer
            Layers with the counts (``None``: ``X`` of the modality).
        modalities
            Which modality holds what, e.g. ``{"rna_layer": "rna", "protein_layer": "prot"}`` (the default).

        Raises
        ------
        KeyError
            A named modality is missing (e.g. the reference has no protein modality).
        ValueError
            NaN/inf or negative protein counts, or protein counts that are zero everywhere (a single protein
            that is zero in every cell is only a warning: its reliability will be 0).
        """
        modalities = dict(modalities or {"rna_layer": "rna", "protein_layer": "prot"})
        setup_method_args = cls._get_setup_method_args(**locals())
        _validate_reference(mdata, modalities, protein_layer)
        mods = cls._create_modalities_attr_dict(modalities, setup_method_args)
        mudata_fields = [
            fields.MuDataLayerField(
                REGISTRY_KEYS.X_KEY, rna_layer, mod_key=mods.rna_layer, is_count_data=True, mod_required=True
            ),
            fields.MuDataLayerField(
                REGISTRY_KEYS.PROTEIN_EXP_KEY,
                protein_layer,
                mod_key=mods.protein_layer,
                is_count_data=True,
                mod_required=True,
                correct_data_format=True,
            ),
        ]
        manager = AnnDataManager(fields=mudata_fields, setup_method_args=setup_method_args)
        manager.register_fields(mdata, **kwargs)
        cls.register_manager(manager)

    @classmethod
    def setup_anndata(cls, adata: AnnData, **kwargs) -> None:
        """A translator needs paired RNA and protein: register a MuData with :meth:`setup_mudata`.

        Raises
        ------
        TypeError
            Always, with the way to build the MuData.
        """
        raise TypeError(
            "ProteinTranslator learns from paired RNA and protein counts: put them in a MuData "
            "(`mudata.MuData({'rna': adata_rna, 'prot': adata_protein})`) and call `setup_mudata`."
        )

    def _modality(self, mdata: MuData, role: str) -> AnnData:
        return mdata.mod[self.registry_["setup_args"]["modalities"][role]]

    def _reference_gene_names(self, mdata: MuData) -> list[str]:
        return [str(g) for g in self._modality(mdata, "rna_layer").var_names]

    def _protein_var_names(self, mdata: MuData) -> list[str]:
        return [str(p) for p in self._modality(mdata, "protein_layer").var_names]

    def _gene_index(self, mdata: MuData) -> list[int]:
        position = {g: i for i, g in enumerate(self._reference_gene_names(mdata))}
        return [position[g] for g in self.gene_names_]

    # ---------------------------------------------------------------------------------- training
    def train(
        self,
        max_epochs: int = 200,
        *,
        predictor: TranslatorPredictor = "auto",
        n_folds: int = 5,
        lr: float = 1e-3,
        weight_decay: float = 1e-2,
        train_size: float = 0.85,
        validation_size: float | None = 0.15,
        batch_size: int = 128,
        early_stopping: bool = True,
        seed: int | None = 0,
        **kwargs,
    ):
        """Choose each protein's predictor by cross-validation, record its held-out reliability, refit on all cells.

        For each of ``n_folds`` folds of reference cells, the linear map (and, unless ``predictor="linear"``,
        the MLP) is fitted on the other folds and predicts the held-out fold. The out-of-fold predictions give
        every candidate's held-out Pearson correlation per protein (``cv_pearson_``); each protein keeps the best
        candidate allowed by ``predictor`` (ties go to the simpler one), its correlation becomes its
        reliability, and the chosen predictors are refitted on all reference cells. The MLP is trained
        ``n_folds + 1`` times (once per fold, once on all cells); ``predictor="linear"`` trains no network and
        takes seconds.

        Parameters
        ----------
        max_epochs
            Maximum number of epochs of each MLP fit (early stopping on a validation split by default).
        predictor
            ``"auto"``: per protein the best of linear map, MLP and their mean; ``"linear"`` or ``"network"``:
            that predictor for every protein (reliability still cross-validated).
        n_folds
            Folds of the cross-validation that chooses predictors and measures reliability (at least 2; each
            held-out fold should keep ~50 cells or more for stable estimates).
        lr, weight_decay
            Adam learning rate and weight decay of the MLP.
        train_size, validation_size
            Fractions of the cells an MLP is fitted on that it trains on and stops early on.
        batch_size
            Minibatch size.
        early_stopping
            Stop each MLP fit when its validation loss stops improving.
        seed
            Seed of the folds, the early-stopping cells, minibatch shuffling and dropout, set when training
            starts, so that training does not depend on what else drew random numbers before it. ``None``: a
            random split and the current random state. Seed the initial weights with ``torch.manual_seed``
            before creating the translator. Like ``lightning.seed_everything``, this reseeds the global
            ``random``, NumPy and torch generators.
        **kwargs
            Passed to :meth:`scvi.model.base.UnsupervisedTrainingMixin.train` (e.g. ``accelerator``).

        Raises
        ------
        ValueError
            An unknown ``predictor``, fewer than 2 folds, or fewer than 2 reference cells per fold.
        """
        if predictor not in ("auto", "linear", "network"):
            raise ValueError(f"Unknown predictor {predictor!r}; choose 'auto', 'linear' or 'network'.")
        n_cells = self.adata.n_obs
        if n_folds < 2 or n_cells < 2 * n_folds:
            raise ValueError(
                f"n_folds={n_folds} with {n_cells} reference cells: need at least 2 folds of at least 2 cells each "
                "to measure reliability on held-out cells."
            )
        _split_indices(n_cells, train_size, validation_size, 0)  # refuse sizes that do not fit, before any work
        if seed is not None:
            import lightning.pytorch as pl

            pl.seed_everything(seed, verbose=False)
        rng = np.random.default_rng(seed)
        scores = self._reference_scores()
        design = scores * np.sqrt(self.component_variance_)  # unwhitened: ridge shrinks minor components more
        targets = clr(self.adata_manager.get_from_registry(REGISTRY_KEYS.PROTEIN_EXP_KEY)).astype(np.float64)
        candidates = ["linear"] if predictor == "linear" else ["network"] if predictor == "network" else None
        candidates = candidates or list(CANDIDATE_SHARES)
        folds = rng.permutation(n_cells) % n_folds
        out_of_fold = {name: np.zeros_like(targets) for name in ("linear", "network")}
        fit = {"max_epochs": max_epochs, "lr": lr, "weight_decay": weight_decay, "batch_size": batch_size}
        fit |= {"train_size": train_size, "validation_size": validation_size, "early_stopping": early_stopping}
        for fold in range(n_folds):
            held, kept = np.flatnonzero(folds == fold), np.flatnonzero(folds != fold)
            weight, bias, _ = ridge_fit(design[kept], targets[kept])
            out_of_fold["linear"][held] = design[held] @ weight + bias
            if candidates != ["linear"]:
                self._fit_network(kept, held, rng, **fit, **kwargs)
                out_of_fold["network"][held] = self._network_numpy(scores[held])
            logger.info("ProteinTranslator: cross-validation fold %d of %d done.", fold + 1, n_folds)
        out_of_fold["mean"] = (out_of_fold["linear"] + out_of_fold["network"]) / 2
        self.cv_pearson_ = pd.DataFrame(
            {
                name: column_pearson(out_of_fold[name], targets) if name in candidates else np.nan
                for name in CANDIDATE_SHARES
            },
            index=self.protein_names_,
        )
        best = self.cv_pearson_[candidates].to_numpy().argmax(axis=1)  # first maximum: the simpler candidate
        self.predictor_ = np.array([candidates[i] for i in best], dtype=object)
        chosen = self.cv_pearson_[candidates].to_numpy()[np.arange(len(best)), best]
        self.reliability_ = np.where(self.is_isotype_, 0.0, np.clip(chosen, 0.0, 1.0))
        weight, bias, self.ridge_alpha_ = ridge_fit(design, targets)
        share = np.array([CANDIDATE_SHARES[name] for name in self.predictor_])
        self.module.linear_weight.copy_(torch.as_tensor(weight * np.sqrt(self.component_variance_)[:, None]))
        self.module.linear_bias.copy_(torch.as_tensor(bias, dtype=torch.float32))
        self.module.network_share.copy_(torch.as_tensor(share, dtype=torch.float32))
        out = None
        if share.any():
            out = self._fit_network(np.arange(n_cells), np.array([], dtype=int), rng, **fit, **kwargs)
        self.is_trained_ = True
        counts = pd.Series(self.predictor_[~self.is_isotype_]).value_counts().to_dict()
        logger.info("ProteinTranslator: predictors chosen for non-isotype proteins: %s.", counts)
        return out

    def _fit_network(
        self,
        cells: np.ndarray,
        held_out: np.ndarray,
        rng: np.random.Generator,
        *,
        train_size: float,
        validation_size: float | None,
        **kwargs,
    ):
        """Train a freshly initialised MLP on ``cells`` (early stopping on some of them); ``held_out`` is never seen."""
        for layer in self.module.network.modules():
            if hasattr(layer, "reset_parameters"):
                layer.reset_parameters()
        self.module.train()  # Lightning keeps the mode it finds; prediction left the module in eval mode
        fit, stop, _ = _split_indices(len(cells), train_size, validation_size, int(rng.integers(2**31)))
        splitter = dict(kwargs.pop("datasplitter_kwargs", None) or {})
        splitter["external_indexing"] = [cells[fit], cells[stop], held_out]
        plan_kwargs = {"lr": kwargs.pop("lr"), "weight_decay": kwargs.pop("weight_decay")}
        plan_kwargs |= kwargs.pop("plan_kwargs", {})
        enable_progress_bar = kwargs.pop("enable_progress_bar", False)
        return super().train(
            train_size=train_size,
            validation_size=validation_size,
            datasplitter_kwargs=splitter,
            plan_kwargs=plan_kwargs,
            enable_progress_bar=enable_progress_bar,
            **kwargs,
        )

    def _reference_scores(self) -> np.ndarray:
        """Whitened component scores of every reference cell."""
        rna = self.adata_manager.get_from_registry(REGISTRY_KEYS.X_KEY)
        logged = log_normalize(rna)[:, self._gene_index(self.adata)]
        projection = self.module.projection.cpu().numpy().astype(np.float64)
        mean = self.module.gene_mean.cpu().numpy().astype(np.float64)
        return np.asarray(logged @ projection) - mean @ projection

    @torch.inference_mode()
    def _network_numpy(self, scores: np.ndarray, batch_size: int = 4096) -> np.ndarray:
        """The MLP's CLR protein for component scores."""
        self.module.eval()
        device = next(self.module.parameters()).device
        blocks = [
            self.module.network(torch.as_tensor(scores[i : i + batch_size], dtype=torch.float32, device=device))
            for i in range(0, scores.shape[0], batch_size)
        ]
        return torch.cat(blocks).cpu().numpy().astype(np.float64) if blocks else np.zeros((0, len(self.protein_names_)))

    # ---------------------------------------------------------------------------------- prediction
    @torch.inference_mode()
    def predict(self, adata: AnnData | MuData, *, layer: str | None = None, batch_size: int = 1024) -> pd.DataFrame:
        """CLR protein estimates for the cells of any RNA AnnData that shares enough genes.

        Genes are matched by name (``var_names``, gene symbols). The number matched is logged; a query
        with fewer than :data:`MIN_GENE_FRACTION` of the translator's genes is refused. Missing genes
        are set to their reference average. Counts are log-normalised like the reference; values that
        are already ``log1p``-normalised (per 10,000) are used as they are.

        Parameters
        ----------
        adata
            RNA AnnData (or a MuData, whose ``rna`` modality is used).
        layer
            Layer with the expression values (``None``: ``X``).
        batch_size
            Cells per forward pass.

        Returns
        -------
        DataFrame of cells x proteins (CLR scale), indexed by ``obs_names``.

        Raises
        ------
        ValueError
            Too few shared genes, or NaN/inf values.
        """
        if isinstance(adata, MuData):
            adata = adata.mod["rna"]
        values = adata.X if layer is None else adata.layers[layer]
        check_finite(values, where="adata.X" if layer is None else f"adata.layers[{layer!r}]")
        position = {str(g): i for i, g in enumerate(adata.var_names)}
        matched = [g for g in self.gene_names_ if g in position]
        fraction = len(matched) / len(self.gene_names_)
        logger.info(
            "ProteinTranslator: %d of %d genes matched (%.0f%%).", len(matched), len(self.gene_names_), 100 * fraction
        )
        if fraction < MIN_GENE_FRACTION:
            raise ValueError(
                f"The query shares only {len(matched)} of the translator's {len(self.gene_names_)} genes "
                f"({fraction:.0%}; at least {MIN_GENE_FRACTION:.0%} needed). Check that var_names are gene symbols "
                f"like the reference's (e.g. {self.gene_names_[:3]}); Ensembl ids need converting first."
            )
        scale = detect_expression_scale(values)
        columns = [position.get(g, -1) for g in self.gene_names_]
        present = np.array([c >= 0 for c in columns])
        source = values.tocsc() if sp.issparse(values) else np.asarray(values)
        if scale == "counts":
            logged = log_normalize(sp.csr_matrix(source) if sp.issparse(source) else source)
        elif scale == "log1p":
            logged = source
        else:
            raise ValueError(
                "The query holds neither counts nor log1p-normalised values (it has negative values); the "
                "translator was trained on log-normalised counts. Pass a layer of counts with `layer=`."
            )
        mean = self.module.gene_mean.cpu().numpy().astype(np.float64)
        projection = self.module.projection.cpu().numpy().astype(np.float64)
        out = []
        device = next(self.module.parameters()).device
        self.module.eval()
        for start in range(0, adata.n_obs, batch_size):
            block = logged[start : start + batch_size]
            block = block.toarray() if sp.issparse(block) else np.asarray(block)
            genes = np.tile(mean, (block.shape[0], 1))  # a missing gene counts as average
            genes[:, present] = block[:, [c for c in columns if c >= 0]]
            scores = torch.as_tensor((genes - mean) @ projection, dtype=torch.float32, device=device)
            out.append(self.module.combined(scores).cpu().numpy())
        result = np.vstack(out) if out else np.zeros((0, len(self.protein_names_)))
        return pd.DataFrame(result, index=adata.obs_names.copy(), columns=self.protein_names_)

    def reliability_summary(self) -> pd.DataFrame:
        """Reliability and chosen predictor per protein (isotype controls flagged and excluded from ``median``).

        Returns
        -------
        DataFrame indexed by protein with columns ``reliability``, ``predictor`` (``"linear"``, ``"mean"`` or
        ``"network"``) and ``is_isotype``; ``attrs["median"]`` is the median reliability over non-isotype proteins.
        """
        frame = pd.DataFrame(
            {"reliability": self.reliability_, "predictor": self.predictor_, "is_isotype": self.is_isotype_},
            index=self.protein_names_,
        )
        frame.attrs["median"] = float(np.nanmedian(frame.loc[~frame["is_isotype"], "reliability"]))
        return frame

    @classmethod
    def load(cls, dir_path: str | os.PathLike, adata: MuData | None = None, device: str = "cpu") -> ProteinTranslator:
        """Load a translator saved by :meth:`save` (see :meth:`SafeSaveLoadMixin.load`).

        Raises
        ------
        ModelFileError
            Besides the general reasons, a translator saved before version 2 of its state (an MLP on
            standardised genes, without principal components and linear map): retrain it.
        """
        refuse_old_translator(Path(dir_path))
        return super().load(dir_path, adata=adata, device=device)

"""ProteinTranslator: RNA -> CLR protein, trained on a paired CITE-seq reference (scvi-tools model)."""

from __future__ import annotations

import logging
from collections.abc import Sequence

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

__all__ = ["MIN_GENE_FRACTION", "ProteinTranslator"]

logger = logging.getLogger(__name__)

MIN_GENE_FRACTION = 0.5
"""A query must contain at least this fraction of the translator's genes (missing ones count as average)."""


def _mean_std(matrix) -> tuple[np.ndarray, np.ndarray]:
    if sp.issparse(matrix):
        mean = np.asarray(matrix.mean(axis=0)).ravel()
        sq = np.asarray(matrix.multiply(matrix).mean(axis=0)).ravel()
    else:
        mean, sq = matrix.mean(axis=0), (matrix**2).mean(axis=0)
    return mean, np.sqrt(np.clip(sq - mean**2, 0.0, None))


def _split_indices(n: int, train_size: float, validation_size: float | None, seed: int) -> list[np.ndarray]:
    """Training, validation and test cell indices as scvi-tools' DataSplitter sizes them, drawn from ``seed``."""
    if not 0 < train_size <= 1 or (
        validation_size is not None and (validation_size < 0 or train_size + validation_size > 1)
    ):
        raise ValueError(
            f"train_size={train_size} and validation_size={validation_size} must be fractions with "
            "0 < train_size <= 1 and train_size + validation_size <= 1."
        )
    n_train = min(n, int(np.ceil(train_size * n)))
    n_validation = n - n_train if validation_size is None else min(n - n_train, int(np.floor(validation_size * n)))
    order = np.random.default_rng(seed).permutation(n)
    return [order[:n_train], order[n_train : n_train + n_validation], order[n_train + n_validation :]]


def _validate_reference(mdata: MuData, modalities: dict[str, str], protein_layer: str | None) -> None:
    """Refuse a reference without paired modalities, with non-finite, negative or entirely zero protein counts."""
    for role in ("rna_layer", "protein_layer"):
        if role not in modalities:
            raise KeyError(f"`modalities` must name the {role!r} modality, e.g. {{'{role}': ...}}.")
        if modalities[role] not in mdata.mod:
            raise KeyError(
                f"The reference has no {modalities[role]!r} modality for {role} (modalities: "
                f"{list(mdata.mod.keys())}). A ProteinTranslator needs paired RNA and protein counts."
            )
    prot = mdata.mod[modalities["protein_layer"]]
    values = prot.X if protein_layer is None else prot.layers[protein_layer]
    where = f"mdata[{modalities['protein_layer']!r}]" + ("" if protein_layer is None else f".layers[{protein_layer!r}]")
    check_finite(values, where=where)
    dense = values.toarray() if sp.issparse(values) else np.asarray(values)
    if (dense < 0).any():
        raise ValueError(f"{where} has negative values; the translator needs raw antibody counts.")
    if not dense.any():
        raise ValueError(
            f"{where} is zero in every cell for every protein: there is no protein signal to learn from. Check "
            "that the layer holds the antibody (ADT) counts."
        )
    silent = [str(p) for p, total in zip(prot.var_names, dense.sum(axis=0), strict=True) if total == 0]
    if silent:
        logger.warning(
            "Protein(s) %s are zero in every reference cell; their predictions are constant and their "
            "reliability is 0.",
            silent[:20],
        )


class ProteinTranslator(SafeSaveLoadMixin, UnsupervisedTrainingMixin, BaseModelClass):
    """Translate RNA into CLR-normalised protein levels, with a reliability per protein.

    Trained on a paired CITE-seq reference (RNA counts + antibody counts). The regression input is
    the standardised ``log1p`` expression (counts per 10,000) of the most variable reference genes
    plus the genes that code the measured proteins; the target is the per-cell CLR of the antibody
    counts. After training, ``reliability_`` holds each protein's Pearson correlation between
    predicted and measured CLR on the held-out validation cells of the reference (clipped to [0, 1]);
    isotype controls are flagged in ``is_isotype_`` and left out of :meth:`reliability_summary`.

    Parameters
    ----------
    adata
        Reference MuData registered with :meth:`setup_mudata` (``None`` when loading a saved model).
    registry
        Used by :meth:`load` only.
    n_genes
        Number of most variable reference genes used as input (coding genes of proteins are added).
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
    >>> translator.train(max_epochs=100)  # doctest: +SKIP
    >>> protein = translator.predict(adata_rna)  # cells x proteins DataFrame  # doctest: +SKIP
    """

    _module_cls = ProteinTranslatorModule

    def __init__(
        self,
        adata: MuData | None = None,
        registry: dict | None = None,
        n_genes: int = 2000,
        n_hidden: int = 128,
        n_layers: int = 1,
        dropout: float = 0.2,
        gene_names: Sequence[str] | None = None,
        protein_names: Sequence[str] | None = None,
    ) -> None:
        super().__init__(adata, registry)
        if adata is not None:
            rna = self.adata_manager.get_from_registry(REGISTRY_KEYS.X_KEY)
            reference_genes = self._reference_gene_names(adata)
            protein_names = [str(p) for p in self._protein_var_names(adata)]
            logged = log_normalize(rna)
            mean, std = _mean_std(logged)
            order = np.argsort(-std, kind="stable")[:n_genes]
            coding = {g for p in protein_names for g in coding_genes(p, reference_genes)}
            chosen = sorted(set(order.tolist()) | {reference_genes.index(g) for g in coding})
            gene_names = [reference_genes[i] for i in chosen]
        if gene_names is None or protein_names is None:
            raise ValueError("ProteinTranslator needs a registered reference MuData (see `setup_mudata`).")
        self.gene_names_ = [str(g) for g in gene_names]
        self.protein_names_ = [str(p) for p in protein_names]
        self.is_isotype_ = np.array([is_isotype_control(p) for p in self.protein_names_])
        self.reliability_ = np.full(len(self.protein_names_), np.nan)
        self.module = self._module_cls(
            n_input=self.summary_stats.n_vars,
            gene_index=self._gene_index(adata) if adata is not None else list(range(len(self.gene_names_))),
            n_proteins=len(self.protein_names_),
            n_hidden=n_hidden,
            n_layers=n_layers,
            dropout=dropout,
        )
        if adata is not None:
            selected = np.asarray([self._reference_gene_names(adata).index(g) for g in self.gene_names_])
            self.module.gene_mean.copy_(torch.as_tensor(mean[selected], dtype=torch.float32))
            self.module.gene_std.copy_(torch.as_tensor(np.clip(std[selected], 1e-3, None), dtype=torch.float32))
        self._model_summary_string = (
            f"ProteinTranslator: {len(self.gene_names_)} genes -> {len(self.protein_names_)} proteins "
            f"({int(self.is_isotype_.sum())} isotype controls)"
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
        lr: float = 1e-3,
        weight_decay: float = 1e-4,
        train_size: float = 0.85,
        validation_size: float | None = 0.15,
        batch_size: int = 128,
        early_stopping: bool = True,
        seed: int | None = 0,
        **kwargs,
    ):
        """Train on the reference, then estimate each protein's reliability on the held-out cells.

        Parameters
        ----------
        max_epochs
            Maximum number of epochs (early stopping on the validation loss by default).
        lr, weight_decay
            Adam learning rate and weight decay.
        train_size, validation_size
            Fractions of reference cells for training and for validation (reliability is measured on
            the validation cells; keep at least ~50 of them).
        batch_size
            Minibatch size.
        early_stopping
            Stop when the validation loss stops improving.
        seed
            Seed of the held-out cells, minibatch shuffling and dropout, set when training starts, so that training
            does not depend on what else drew random numbers before it. ``None``: scvi-tools' own split (from
            ``scvi.settings.seed``, random when unset) and the current random state. Seed the initial weights with
            ``torch.manual_seed`` before creating the translator. Like ``lightning.seed_everything``, this reseeds the
            global ``random``, NumPy and torch generators.
        **kwargs
            Passed to :meth:`scvi.model.base.UnsupervisedTrainingMixin.train` (e.g. ``accelerator``).
        """
        if seed is not None:
            import lightning.pytorch as pl

            pl.seed_everything(seed, verbose=False)
            splitter = dict(kwargs.get("datasplitter_kwargs") or {})  # scvi-tools would use scvi.settings.seed
            splitter.setdefault(
                "external_indexing", _split_indices(self.adata.n_obs, train_size, validation_size, seed)
            )
            kwargs["datasplitter_kwargs"] = splitter
        plan_kwargs = {"lr": lr, "weight_decay": weight_decay, **kwargs.pop("plan_kwargs", {})}
        out = super().train(
            max_epochs=max_epochs,
            train_size=train_size,
            validation_size=validation_size,
            batch_size=batch_size,
            early_stopping=early_stopping,
            plan_kwargs=plan_kwargs,
            **kwargs,
        )
        self._estimate_reliability()
        return out

    def _estimate_reliability(self) -> None:
        indices = getattr(self, "validation_indices", None)
        if indices is None or len(indices) < 10:
            logger.warning("Fewer than 10 held-out reference cells: reliability_ is left undefined (NaN).")
            return
        rna = self.adata_manager.get_from_registry(REGISTRY_KEYS.X_KEY)[indices]
        protein = self.adata_manager.get_from_registry(REGISTRY_KEYS.PROTEIN_EXP_KEY)[indices]
        predicted = self._predict_counts(rna)
        measured = clr(protein)
        reliability = np.zeros(len(self.protein_names_))
        for k in range(len(self.protein_names_)):
            x, y = predicted[:, k], measured[:, k]
            if x.std() > 0 and y.std() > 0:
                reliability[k] = max(0.0, float(np.corrcoef(x, y)[0, 1]))
        self.reliability_ = reliability

    # ---------------------------------------------------------------------------------- prediction
    @torch.inference_mode()
    def _predict_counts(self, counts, batch_size: int = 1024) -> np.ndarray:
        """Predicted CLR protein for counts whose columns are already the translator's genes or the reference's."""
        self.module.eval()
        device = next(self.module.parameters()).device
        out = []
        for start in range(0, counts.shape[0], batch_size):
            block = counts[start : start + batch_size]
            block = block.toarray() if sp.issparse(block) else np.asarray(block)
            tensor = torch.as_tensor(block, dtype=torch.float32, device=device)
            out.append(self.module.network(self.module.standardised_rna(tensor)).cpu().numpy())
        return np.vstack(out) if out else np.zeros((0, len(self.protein_names_)), dtype=np.float32)

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
        mean = self.module.gene_mean.cpu().numpy()
        std = self.module.gene_std.cpu().numpy()
        out = []
        device = next(self.module.parameters()).device
        for start in range(0, adata.n_obs, batch_size):
            block = logged[start : start + batch_size]
            block = block.toarray() if sp.issparse(block) else np.asarray(block)
            genes = np.tile(mean, (block.shape[0], 1))
            genes[:, present] = block[:, [c for c in columns if c >= 0]]
            standardised = torch.as_tensor((genes - mean) / std, dtype=torch.float32, device=device)
            self.module.eval()
            out.append(self.module.network(standardised).cpu().numpy())
        result = np.vstack(out) if out else np.zeros((0, len(self.protein_names_)))
        return pd.DataFrame(result, index=adata.obs_names.copy(), columns=self.protein_names_)

    def reliability_summary(self) -> pd.DataFrame:
        """Reliability per protein (isotype controls flagged and excluded from ``median``).

        Returns
        -------
        DataFrame indexed by protein with columns ``reliability`` and ``is_isotype``; ``attrs["median"]``
        is the median reliability over non-isotype proteins.
        """
        frame = pd.DataFrame(
            {"reliability": self.reliability_, "is_isotype": self.is_isotype_}, index=self.protein_names_
        )
        frame.attrs["median"] = float(np.nanmedian(frame.loc[~frame["is_isotype"], "reliability"]))
        return frame

"""Prediction with a trained StateXDiff: predicted cells, counterfactuals, states, drug embeddings, dose response."""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from typing import Literal

import numpy as np
import pandas as pd
import torch
from anndata import AnnData
from mudata import MuData

from sxdiff.data._on_disk import RowReader
from sxdiff.data._perturbation_sets import encode_perturbation_sets, parse_conditions
from sxdiff.data._protein import clr
from sxdiff.data._validation import resolve_obs_column
from sxdiff.drugs._features import DrugFeatures
from sxdiff.drugs._table import DrugTable
from sxdiff.train._denormals import flush_denormals

from ._conditions import conditions_frame
from ._prediction_store import PredictionStore
from ._safe_io import raise_gene_mismatch

__all__ = ["StateXDiffPredictMixin"]

logger = logging.getLogger(__name__)


class StateXDiffPredictMixin:
    """Everything a trained model does with new cells."""

    def _ensure_perturbations(self, names: Sequence[str], drug_table) -> DrugFeatures:
        features = self._features()
        missing = sorted({n for n in names if n not in features.names})
        if missing:
            params = self.drug_features_.get("params", {})
            table = DrugTable.resolve(
                missing,
                drug_table,
                perturbation_type=params.get("perturbation_type", "drug"),
                use_bundled_tables=params.get("use_bundled_tables", True),
            )
            features = features.extend(table, missing)
            state = features.to_dict()
            state["params"] = params
            self.drug_features_ = state
            self._install_drug_features(features)
            logger.info("Featurised %d perturbation(s) unseen in training: %s", len(missing), missing[:10])
        return features

    @torch.inference_mode()
    def predict(
        self,
        adata_control: AnnData,
        conditions: Sequence[str] | pd.DataFrame | str,
        *,
        n_samples_per_cell: int = 1,
        n_steps: int = 10,
        guidance_scale: float = 1.0,
        seed: int | None = None,
        batch_size: int = 1024,
        decode: Literal["residual", "direct"] = "residual",
        drug_table: DrugTable | pd.DataFrame | None = None,
        allow_non_control: bool = False,
        out_path: str | os.PathLike | None = None,
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
            DDIM steps. The default 10 is the smallest of 10/25/50/100 within 2 % of the 100-step Pearson delta on
            all three bundled datasets (`benchmarks/results/statexdiff_ddim_steps_*.md`).
        guidance_scale
            Classifier-free guidance (1: conditional model only).
        seed
            Seed of the sampling noise (the same seed gives the same prediction).
        batch_size
            Cells per forward pass (memory stays bounded). The residual's cell-level variation is centred over a
            batch's sources, so very small batches make it noisier.
        decode
            ``"residual"``: source expression + decoded change (keeps the source cell's own profile);
            ``"direct"``: decoded predicted state.
        drug_table
            Descriptions of unseen drugs (DrugTable or DataFrame with ``drug``, ``smiles``, ``targets``, ``action``).
        allow_non_control
            Accept sources that are not control cells.
        out_path
            Write the predicted cells to this new ``.h5ad`` file batch by batch and return it opened with
            ``backed="r"``: memory stays at one batch however many cells are asked for. Without it, the result
            is allocated once in memory at its final size.

        Returns
        -------
        AnnData: ``X`` on the training scale; ``obs`` with the condition columns, the source's context and
        ``source_cell``; ``obsm["X_sxdiff"]`` predicted states; ``obsm["sxdiff_protein"]`` when protein is used.
        """
        args = self.registry_["setup_args"]
        self._check_genes(adata_control)
        frame = conditions_frame(conditions, args["perturbation_key"], args["dose_key"], args["default_dose"])
        sets, doses = parse_conditions(
            frame[args["perturbation_key"]],
            frame["_dose"],
            control_value=args["control_value"],
            delimiter=args["delimiter"],
            column=args["perturbation_key"],
            dose_column=args["dose_key"] or "dose",
        )
        features = self._ensure_perturbations([m for s in sets for m in s], drug_table)
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
        new_context = self._new_contexts(
            contexts, has_contexts=bool(args["context_key"]) and args["context_key"] in adata_control.obs
        )
        self.module.eval()
        n = adata_control.n_obs
        n_protein = len(self.protein_names_) if self.module.use_protein else 0
        store = PredictionStore(
            len(frame) * n_samples_per_cell * n, len(self.gene_names_), self.module.n_state, n_protein, out_path
        )
        # the sources' means are only needed to decrease non-negative values (an extra pass over the sources)
        source_means = self._source_log_means(x, contexts, batch_size) if bool(self.module.nonnegative) else None
        try:  # each source batch is encoded once, then sampled under every condition (with the averaged weights)
            with self.module.averaged_weights(), flush_denormals():
                drugs = (index, dose_values, mask)
                codes = torch.as_tensor(pd.factorize(contexts)[0], device=self.device)
                context_means = self._context_mean_changes(x, protein, drugs, codes, new_context, batch_size)
                for start in range(0, n, batch_size):
                    stop = min(start + batch_size, n)
                    mean, expressed = (
                        (None, None)
                        if source_means is None
                        else (torch.stack([source_means[c][i] for c in contexts[start:stop]]) for i in (0, 1))
                    )
                    xb, pb, state = self._encoded_sources(x, protein, start, stop)
                    for c in range(len(frame)):
                        condition = self._condition_rows(drugs, c, stop - start)
                        for sample in range(n_samples_per_cell):
                            out = self.module.sample(
                                xb,
                                pb,
                                *condition,
                                n_steps=n_steps,
                                guidance_scale=guidance_scale,
                                generator=generator,
                                state_control=state,
                                new_context=None if new_context is None else new_context[start:stop],
                                context_mean=None if context_means is None else context_means[c, codes[start:stop]],
                            )
                            store.write(
                                (c * n_samples_per_cell + sample) * n + start,  # rows: condition, sample, cell
                                self._decode(out, xb, mean, decode, expressed).cpu().numpy(),
                                out["z"].cpu().numpy(),
                                out["protein"].cpu().numpy() if "protein" in out else None,
                            )
        except BaseException:
            store.abort()
            raise
        obs_rows = []
        for c in range(len(frame)):
            for sample in range(n_samples_per_cell):
                obs = frame.iloc[[c] * n].drop(columns=["_dose"]).reset_index(drop=True)
                obs["source_cell"] = adata_control.obs_names.to_numpy()
                if args["context_key"]:
                    obs[args["context_key"]] = contexts
                obs["sample"] = sample
                obs_rows.append(obs)
        obs = pd.concat(obs_rows, ignore_index=True)
        obs.index = [f"pred_{i}" for i in range(len(obs))]
        uns = {"sxdiff_protein": {"names": list(self.protein_names_)}} if n_protein else {}
        return store.finish(obs, pd.DataFrame(index=list(self.gene_names_)), uns)

    def _new_contexts(self, contexts: np.ndarray, has_contexts: bool) -> torch.Tensor | None:
        """Which sources come from a context without perturbed training cells; ``None`` when nothing is to change.

        Only a model trained with ``context_transfer="auto"`` has fitted weights; without them, or without context
        labels, the sampler skips the transfer altogether.
        """
        if not has_contexts or self.context_transfer_ is None or self.perturbed_contexts_ is None:
            return None
        new = ~np.isin(contexts.astype(str), self.perturbed_contexts_)
        return torch.as_tensor(new, device=self.device) if new.any() else None

    def _encoded_sources(self, x: RowReader, protein, start: int, stop: int) -> tuple:
        """Rows ``start:stop`` of the sources on the model's device: expression, protein (or ``None``), state."""
        xb = torch.as_tensor(x[start:stop], device=self.device)
        pb = None if protein is None else torch.as_tensor(protein[start:stop], device=self.device)
        return xb, pb, self.module.encode(xb, pb if self.module.use_protein else None)

    def _condition_rows(self, drugs: tuple, condition: int, rows: int) -> list[torch.Tensor]:
        """Drug indices, doses and mask of one condition, repeated for ``rows`` sources."""
        return [torch.as_tensor(np.repeat(a[condition : condition + 1], rows, 0), device=self.device) for a in drugs]

    @torch.no_grad()
    def _context_mean_changes(
        self, x: RowReader, protein, drugs: tuple, codes: torch.Tensor, new_context, batch_size: int
    ) -> torch.Tensor | None:
        """Per condition and context: the mean expected change over the context's sources (an extra pass).

        ``(conditions, contexts, n_state + n_genes)``, latent then genes, what the sampler keeps of the change when it
        scales the spread between sources (:meth:`~sxdiff.module.StateXDiffModule.sample`); ``None`` when the spread
        is kept whole. ``drugs``: the conditions' drug indices, doses and masks; ``codes``: each source's context
        (integer tensor).
        """
        composer = self.module.composer
        if composer is None or not composer.state_effects or float(self.module.state_spread) == 1.0:
            return None  # without state effects every source of a context gets the same change
        n_conditions, n_contexts = len(drugs[0]), int(codes.max()) + 1
        sums = torch.zeros(n_conditions, n_contexts, composer.n_state + composer.n_genes, device=self.device)
        for start in range(0, x.shape[0], batch_size):
            stop = min(start + batch_size, x.shape[0])
            _, pb, state = self._encoded_sources(x, protein, start, stop)
            new = None if new_context is None else new_context[start:stop]
            for c in range(n_conditions):
                _, composed = self.module.expected_change(state, pb, *self._condition_rows(drugs, c, stop - start), new)
                sums[c].index_add_(0, codes[start:stop], torch.cat([composed.latent, composed.genes], dim=1))
        return sums / torch.bincount(codes, minlength=n_contexts).to(sums.dtype).unsqueeze(1)

    def _source_log_means(self, x: RowReader, contexts: np.ndarray, batch_size: int) -> dict:
        """Per context: mean log expression (the metrics' scale) of the source cells and the fraction above 0."""
        sums: dict = {}
        counts: dict = {}
        for start in range(0, x.shape[0], batch_size):
            logged = self.module.log_expression(torch.as_tensor(x[start : start + batch_size], device=self.device))
            for context in np.unique(contexts[start : start + batch_size]):
                rows = torch.as_tensor(contexts[start : start + batch_size] == context, device=self.device)
                both = torch.stack([logged[rows].double().sum(dim=0), (logged[rows] > 0).double().sum(dim=0)])
                sums[context] = sums.get(context, 0.0) + both
                counts[context] = counts.get(context, 0) + int(rows.sum())
        return {context: (sums[context] / counts[context]).float() for context in sums}

    def _decode(
        self, out: dict, x: torch.Tensor, mean: torch.Tensor | None, decode: str, expressed: torch.Tensor | None = None
    ) -> torch.Tensor:
        """Predicted expression on the training scale.

        ``"residual"``: the source's own expression plus the predicted change, on the log scale (``log1p`` per
        10,000 for counts), by :meth:`~sxdiff.module.StateXDiffModule.apply_log_change` (for non-negative values
        relative to ``mean`` and ``expressed``, the genes' mean and fraction above 0 among the sources of the cell's
        context, so that zeros stay zeros and the mean moves by the predicted amount); counts are returned at the
        source's library size. ``"direct"``: the decoded source state plus the predicted change.
        """
        module = self.module
        if decode == "direct":
            base = out["decoded_control"]
            logged = module.apply_log_change(base, out["log_change"], base)
        elif decode == "residual":
            logged = module.apply_log_change(module.log_expression(x), out["log_change"], mean, expressed)
        else:
            raise ValueError(f"decode must be 'residual' or 'direct', not {decode!r}.")
        if module.vmcs.gene_likelihood != "nb":
            return logged
        library = x.sum(dim=1, keepdim=True).clamp_min(1.0)
        return torch.expm1(logged).clamp_min(0.0) * library / 1e4

    def _check_genes(self, adata: AnnData) -> None:
        base = adata.mod["rna"] if isinstance(adata, MuData) else adata
        genes = [str(g) for g in base.var_names]
        if genes != list(self.gene_names_):
            raise_gene_mismatch(list(self.gene_names_), genes, where="genes")

    def _source_expression(self, adata) -> RowReader:
        """A reader of the source cells' expression rows, checked for NaN (in memory now, on disk as rows are read)."""
        args = self.registry_["setup_args"]
        layer = args.get("layer", args.get("rna_layer"))
        base = adata.mod[args["modalities"]["rna_layer"]] if isinstance(adata, MuData) else adata
        values = base.X if layer is None else base.layers[layer]
        return RowReader(values, check="the source cells' " + ("X" if layer is None else f"layers[{layer!r}]"))

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
        n_steps: int = 10,
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
        out = np.empty((x.shape[0], self.module.n_state), dtype=np.float32)  # filled in place: no per-batch pieces
        for start in range(0, x.shape[0], batch_size):
            xb = torch.as_tensor(x[start : start + batch_size], device=self.device)
            pb = None if protein is None else torch.as_tensor(protein[start : start + batch_size], device=self.device)
            out[start : start + xb.shape[0]] = self.module.encode(xb, pb).z.cpu().numpy()
        return out

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
        n_steps: int = 10,
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

"""Baselines that generalise to unseen drugs: nearest drug by structure, ridge on drug features, additive."""

from __future__ import annotations

import logging
from collections.abc import Mapping

import numpy as np
from anndata import AnnData

from ._baselines import MeanShiftBaseline

__all__ = ["AdditiveBaseline", "NearestDrugBaseline", "RidgeBaseline"]

logger = logging.getLogger(__name__)


def _drug_features(adata: AnnData, key: str):
    from sxdiff.drugs import DrugFeatures

    if key not in adata.uns:
        raise KeyError(
            f"`adata.uns[{key!r}]` is missing: describe the perturbations (training *and* query drugs) first with "
            "`sxdiff.pp.drug_features(adata, drug_key=...)`."
        )
    return DrugFeatures.from_dict(adata.uns[key])


class AdditiveBaseline(MeanShiftBaseline):
    """Predict a combination as the sum of its members' measured single deltas.

    Every condition, seen or not, is the sum over its members of the member's training delta as a
    single perturbation at its dose (a single is therefore its own mean shift). A member never measured
    alone falls back to the mean delta at its dose (logged). The reference for combinations: additivity
    is what the data show when the members act independently.

    Parameters are those of :class:`MeanShiftBaseline`.

    Examples
    --------
    >>> import sxdiff
    >>> adata = sxdiff.datasets.norman_crispra()
    >>> baseline = AdditiveBaseline(context_key="context").fit(adata)
    >>> pred = baseline.predict(adata[adata.obs["is_control"]], ["KLF1+MAP2K6"])
    >>> pred.n_obs
    100
    """

    def _predict_condition(self, X: np.ndarray, contexts: np.ndarray, condition: dict) -> np.ndarray:
        members, doses = self._parse_condition(condition)
        total = np.zeros(X.shape[1], dtype=np.float64)
        for i, member in enumerate(members):
            total += self._delta_of((member,), None if doses is None else (doses[i],))
        return self._shifted(X, total, contexts)


class NearestDrugBaseline(MeanShiftBaseline):
    """Predict an unseen drug with the training delta of the most similar training drug.

    Similarity is the Tanimoto coefficient of Morgan bit fingerprints (radius 2, 2,048 bits). The
    neighbour's delta at the same dose is used, or at its nearest dose on the log scale. Seen drugs use
    their own delta (similarity 1); a combination sums its members' predictions; a perturbation without
    SMILES (or with no training drug that has one) falls back to the mean delta at its dose (logged).

    Parameters
    ----------
    drug_features_key
        ``uns`` key written by :func:`sxdiff.pp.drug_features`; its drug table gives the SMILES of training
        and query drugs (run it on an object holding both, as the benchmark does).
    smiles
        Extra name -> SMILES for query drugs that are not in that table.
    **kwargs
        Parameters of :class:`MeanShiftBaseline`.

    Examples
    --------
    >>> import sxdiff
    >>> adata = sxdiff.datasets.l1000_kinase_inhibitors()
    >>> sxdiff.pp.drug_features(adata, drug_key="perturbation", allow_structure_free=True)
    >>> train = adata[adata.obs["perturbation"] != "dasatinib"].copy()
    >>> baseline = NearestDrugBaseline(dose_key="dose", context_key="context").fit(train)
    >>> baseline.neighbour("dasatinib")[0] in set(train.obs["perturbation"])
    True
    """

    def __init__(
        self, *, drug_features_key: str = "sxdiff_drugs", smiles: Mapping[str, str] | None = None, **kwargs
    ) -> None:
        super().__init__(**kwargs)
        self.drug_features_key = drug_features_key
        self.smiles = dict(smiles or {})

    def _fit(self, adata: AnnData, found) -> None:
        super()._fit(adata, found)
        features = _drug_features(adata, self.drug_features_key)
        smiles = {name: features.table[name]["smiles"] for name in features.names}
        self.smiles_ = {name: str(value) for name, value in smiles.items() if isinstance(value, str)}
        self.smiles_.update(self.smiles)
        singles = sorted({key for key, _ in self.deltas_ if self.delimiter not in key})
        self.reference_drugs_ = [d for d in singles if d in self.smiles_]
        self.doses_of_ = {d: [dose for key, dose in self.deltas_ if key == d] for d in singles}
        self._neighbours: dict[str, tuple[str, float] | None] = {}

    def neighbour(self, drug: str) -> tuple[str, float] | None:
        """The most similar training drug and its Tanimoto similarity (``None`` without SMILES)."""
        from sxdiff.drugs import tanimoto_matrix

        if drug not in self._neighbours:
            if drug in self.doses_of_:
                self._neighbours[drug] = (drug, 1.0)
            elif drug not in self.smiles_ or not self.reference_drugs_:
                self._neighbours[drug] = None
            else:
                similarity = tanimoto_matrix([self.smiles_[drug]], [self.smiles_[d] for d in self.reference_drugs_])[0]
                best = int(np.argmax(similarity))
                self._neighbours[drug] = (self.reference_drugs_[best], float(similarity[best]))
        return self._neighbours[drug]

    def _nearest_dose(self, drug: str, dose: float) -> tuple[float]:
        available = [float(d) for d in self.doses_of_[drug] if d != ""]
        if not available:
            return (dose,)
        distance = [abs(np.log10(max(d, 1e-12)) - np.log10(max(dose, 1e-12))) for d in available]
        return (available[int(np.argmin(distance))],)

    def _predict_condition(self, X: np.ndarray, contexts: np.ndarray, condition: dict) -> np.ndarray:
        members, doses = self._parse_condition(condition)
        total = np.zeros(X.shape[1], dtype=np.float64)
        for i, member in enumerate(members):
            dose = None if doses is None else (doses[i],)
            match = self.neighbour(member)
            if match is None:
                logger.info(
                    "NearestDrugBaseline: %r has no SMILES or no reference drug; mean delta at its dose.", member
                )
                total += self._delta_of((member,), dose)
                continue
            neighbour, _ = match
            total += self._delta_of((neighbour,), None if dose is None else self._nearest_dose(neighbour, dose[0]))
        return self._shifted(X, total, contexts)


class RidgeBaseline(MeanShiftBaseline):
    """Ridge regression from drug features and dose to the delta of a condition.

    Each training condition (perturbation, dose) is one sample: its features are the sum over members of
    the drug features of :func:`sxdiff.pp.drug_features` (structure: Morgan counts and RDKit descriptors;
    mechanism: the target template), the standardised log10 dose ``s``, and the features times ``s`` (so
    that the dose scales a drug's own profile); the target is the condition's training delta (averaged
    over contexts, as in :class:`MeanShiftBaseline`). Features are standardised; the penalty is chosen by
    efficient leave-one-out cross-validation over the *training* conditions (``RidgeCV``).

    Parameters
    ----------
    drug_features_key
        ``uns`` key written by :func:`sxdiff.pp.drug_features`, holding training and query perturbations.
    alphas
        Candidate penalties.
    features
        ``"both"``, ``"structure"`` or ``"targets"``: which drug features to use.
    **kwargs
        Parameters of :class:`MeanShiftBaseline`.

    Examples
    --------
    >>> import sxdiff
    >>> adata = sxdiff.datasets.l1000_kinase_inhibitors()
    >>> sxdiff.pp.drug_features(adata, drug_key="perturbation", allow_structure_free=True)
    >>> baseline = RidgeBaseline(dose_key="dose", context_key="context").fit(adata)
    >>> baseline.alpha_ > 0
    True
    """

    def __init__(
        self,
        *,
        drug_features_key: str = "sxdiff_drugs",
        alphas: tuple[float, ...] = tuple(np.logspace(-1, 5, 13)),
        features: str = "both",
        **kwargs,
    ) -> None:
        super().__init__(**kwargs)
        if features not in ("both", "structure", "targets"):
            raise ValueError(f"features must be 'both', 'structure' or 'targets'; got {features!r}.")
        self.drug_features_key = drug_features_key
        self.alphas = alphas
        self.features = features

    def _drug_vector(self, name: str) -> np.ndarray:
        row = self.drug_features_.index(name)
        parts = []
        if self.features in ("both", "structure"):
            parts.append(self.drug_features_.structure[row])
        if self.features in ("both", "targets"):
            parts.append(self.drug_features_.template[row])
        return np.concatenate(parts).astype(np.float64)

    def _log_dose(self, doses: tuple[float, ...] | None) -> float:
        if doses is None:
            return 0.0
        return float(np.mean(np.log10(np.clip(doses, 1e-12, None))))

    def _design(self, members: tuple[str, ...], doses: tuple[float, ...] | None) -> np.ndarray:
        drug = np.sum([self._drug_vector(m) for m in members], axis=0)
        s = (self._log_dose(doses) - self.dose_centre_) / self.dose_scale_
        return np.concatenate([drug, drug * s, [s]])

    def _fit(self, adata: AnnData, found) -> None:
        from sklearn.linear_model import RidgeCV
        from sklearn.preprocessing import StandardScaler

        super()._fit(adata, found)
        self.drug_features_ = _drug_features(adata, self.drug_features_key)
        conditions = []
        for key, dose in self.deltas_:
            members = tuple(key.split(self.delimiter))
            doses = None if self.dose_key is None else tuple(float(d) for d in dose.split(self.delimiter))
            conditions.append((members, doses))
        log_doses = np.array([self._log_dose(d) for _, d in conditions])
        self.dose_centre_ = float(log_doses.mean())
        self.dose_scale_ = float(log_doses.std()) or 1.0
        design = np.vstack([self._design(m, d) for m, d in conditions])
        targets = np.vstack(list(self.deltas_.values()))
        self.scaler_ = StandardScaler().fit(design)
        with np.errstate(divide="ignore", invalid="ignore"):  # leave-one-out of a condition with leverage 1
            self.ridge_ = RidgeCV(alphas=self.alphas).fit(self.scaler_.transform(design), targets)
        self.alpha_ = float(self.ridge_.alpha_)
        logger.info("RidgeBaseline: %d training conditions, alpha %.3g", len(conditions), self.alpha_)

    def _predict_condition(self, X: np.ndarray, contexts: np.ndarray, condition: dict) -> np.ndarray:
        members, doses = self._parse_condition(condition)
        try:
            design = self._design(members, doses)
        except KeyError as error:
            raise KeyError(
                f"RidgeBaseline: {error.args[0]} Run `sxdiff.pp.drug_features` on an AnnData that contains the "
                "query perturbations before fitting."
            ) from None
        delta = self.ridge_.predict(self.scaler_.transform(design[None, :]))[0]
        return self._shifted(X, delta, contexts)

"""Build the small real datasets bundled in ``src/sxdiff/datasets/_data`` from ``../shared/data``.

Only files with permissive licences are used (see ../shared/data/README.md). Run from the repository
root: ``python scripts/make_bundled_datasets.py [name ...]`` (default: all). The output is deterministic
(byte-identical on rerun).
"""

from __future__ import annotations

import warnings
from pathlib import Path

import anndata as ad
import numpy as np
import pandas as pd
import scipy.sparse as sp

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "data"
OUT = ROOT / "src" / "sxdiff" / "datasets" / "_data"

warnings.filterwarnings("ignore", category=FutureWarning)


def _finish(adata: ad.AnnData, name: str, uns: dict) -> None:
    adata.obs["perturbation"] = pd.Categorical(adata.obs["perturbation"].astype(str))
    adata.obs["context"] = pd.Categorical(adata.obs["context"].astype(str))
    adata.obs["is_control"] = adata.obs["perturbation"].astype(str) == "control"
    adata.uns["sxdiff"] = {
        "dataset": name,
        "perturbation_key": "perturbation",
        "control_value": "control",
        "context_key": "context",
        **uns,
    }
    adata.write_h5ad(OUT / f"{name}.h5ad", compression="gzip")
    print(name, adata.shape, (OUT / f"{name}.h5ad").stat().st_size // 1024, "KiB")


def glioblastoma() -> None:
    adata = ad.read_h5ad(SHARED / "perturbation" / "zhao2021_glioblastoma_panobinostat_lemur.h5ad")
    del adata.layers["logcounts"]  # log-normalised copy of X; users recompute it with scanpy
    adata.var["ensembl_id"] = adata.var_names.str.split(".").str[0]
    adata.var_names = adata.var["symbol"].astype(str).to_numpy()
    adata.var_names.name = None
    adata.X = sp.csr_matrix(adata.X, dtype=np.float32)
    obs = adata.obs
    obs["perturbation"] = np.where(obs["drug"].astype(str) == "control", "control", "panobinostat")
    obs["dose"] = obs["dose_uM"].astype(float)
    obs["context"] = obs["patient_id"].astype(str)
    pertinfo = pd.read_csv(SHARED / "drugs" / "dhimmel_lincs_pertinfo.tsv.gz", sep="\t")
    smiles = pertinfo.loc[pertinfo["pert_iname"].str.lower() == "panobinostat", "canonical_smiles"].iloc[0]
    obs["smiles"] = np.where(obs["perturbation"] == "panobinostat", smiles, None)
    obs["perturbation_type"] = "drug"
    adata.uns.pop("source", None)
    _finish(
        adata,
        "glioblastoma_panobinostat",
        {
            "dose_key": "dose",
            "dose_unit": "uM",
            "expression_scale": "counts",
            "source": "Zhao et al. 2021, Genome Medicine 13:82 (GSE148842); via const-ae/lemur @ 0e62bc1, "
            "data/glioblastoma_example_data.rda",
            "license": "MIT (lemur package data)",
            "smiles_source": "dhimmel/lincs @ 726793b pertinfo (CC0)",
        },
    )


def l1000() -> None:
    adata = ad.read_h5ad(SHARED / "perturbation" / "l1000_LJP005_A375_24h.h5ad")
    adata.var["probe_id"] = adata.var_names.to_numpy()
    adata.var_names = adata.var["pr_gene_symbol"].astype(str).to_numpy()
    adata.var_names.name = None
    obs = adata.obs
    is_control = obs["pert_type"].astype(str) == "ctl_vehicle"
    obs["perturbation"] = np.where(is_control, "control", obs["pert_iname"].astype(str))
    obs["dose"] = np.where(is_control, 0.0, obs["dose_um"].astype(float))
    obs["context"] = obs["cell_id"].astype(str)
    smiles = obs["smiles_chemcpa"].astype(str).replace({"": None}).to_numpy(dtype=object)
    pertinfo = pd.read_csv(SHARED / "drugs" / "dhimmel_lincs_pertinfo.tsv.gz", sep="\t").set_index("pert_id")
    by_id = pertinfo["canonical_smiles"].dropna()
    filled = 0
    for i, (pert_id, s) in enumerate(zip(obs["pert_id"].astype(str), smiles, strict=True)):
        if s is None and pert_id in by_id.index:
            smiles[i] = by_id.loc[pert_id]
            filled += 1
    smiles[is_control.to_numpy()] = None
    obs["smiles"] = smiles
    obs["perturbation_type"] = np.where(is_control, "control", "drug")
    keep = [
        "pert_id",
        "pert_iname",
        "pert_type",
        "dose_um",
        "det_well",
        "rna_plate",
        "smiles_chemcpa",
        "perturbation",
        "dose",
        "context",
        "smiles",
        "perturbation_type",
    ]
    adata.obs = obs[keep].copy()
    adata.var = adata.var[["probe_id", "pr_gene_id", "pr_gene_symbol", "pr_gene_title"]].copy()
    adata.uns.pop("source", None)
    print("L1000 wells given SMILES from dhimmel pertinfo:", filled)
    _finish(
        adata,
        "l1000_kinase_inhibitors",
        {
            "dose_key": "dose",
            "dose_unit": "uM",
            "expression_scale": "normal",
            "values": "X: level 3 (log2, quantile-normalised); layers['zscore_level4']: robust z-scores",
            "source": "LINCS L1000 plate LJP005_A375_24H_X1_B19 via cmap/cmapPy @ d1652c3 functional test files",
            "license": "BSD-3-Clause (cmapPy)",
            "smiles_source": "chemCPA @ 43e830e (MIT); missing ones from dhimmel/lincs @ 726793b (CC0)",
        },
    )


def norman() -> None:
    adata = ad.read_h5ad(SHARED / "perturbation" / "perturbench_devel_norman19_mcfaline23.h5ad")
    adata = adata[adata.obs["dataset"].astype(str) == "norman19"].copy()
    adata.var_names.name = None
    adata.X = sp.csr_matrix(adata.X, dtype=np.float32)
    obs = adata.obs
    obs["perturbation"] = obs["perturbation"].astype(str)
    obs["dose"] = obs["dose"].astype(str)
    obs["context"] = "K562"
    obs["perturbation_type"] = np.where(obs["perturbation"] == "control", "control", "CRISPRa")
    for key in ("hvg", "log1p"):
        adata.uns.pop(key, None)
    adata.obs = obs[["ncounts", "ngenes", "condition", "perturbation", "dose", "context", "perturbation_type"]].copy()
    _finish(
        adata,
        "norman_crispra",
        {
            "dose_key": "dose",
            "dose_unit": "guides",
            "expression_scale": "log1p",
            "source": "Norman et al. 2019, Science 365:786 (K562 CRISPRa); via altoslabs/perturbench @ d357dfa, "
            "src/perturbench/data/resources/devel.h5ad (norman19 part, 500 HVGs)",
            "license": "BSD-3-Clause (perturbench)",
        },
    )


def mcfaline23() -> None:
    adata = ad.read_h5ad(SHARED / "perturbation" / "perturbench_devel_norman19_mcfaline23.h5ad")
    adata = adata[adata.obs["dataset"].astype(str) == "mcfaline23"].copy()
    adata.var_names.name = None
    adata.X = sp.csr_matrix(adata.X, dtype=np.float32)
    obs = adata.obs
    obs["perturbation"] = obs["perturbation"].astype(str)
    obs["dose"] = obs["dose"].astype(str)  # "1": one guide, one unit of dose, as in norman_crispra
    obs["context"] = obs["cell_type"].astype(str)
    obs["perturbation_type"] = np.where(obs["perturbation"] == "control", "control", "CRISPRi")
    for key in ("hvg", "log1p"):
        adata.uns.pop(key, None)
    keep = ["ncounts", "ngenes", "condition", "perturbation_raw", "cell_type", "perturbation", "dose", "context"]
    adata.obs = obs[[*keep, "perturbation_type"]].copy()
    adata.var = adata.var[[]].copy()  # HVG statistics of the whole perturbench file, not of these cells
    _finish(
        adata,
        "mcfaline23_crispri",
        {
            "dose_key": "dose",
            "dose_unit": "guides",
            "expression_scale": "log1p",
            "source": "McFaline-Figueroa et al. 2024, Cell Genomics (CRISPRi in glioblastoma lines, sci-Plex-GxE); via "
            "altoslabs/perturbench @ d357dfa, src/perturbench/data/resources/devel.h5ad (mcfaline23 part, 500 HVGs)",
            "license": "BSD-3-Clause (perturbench)",
        },
    )


BUILDERS = {
    "glioblastoma_panobinostat": glioblastoma,
    "l1000_kinase_inhibitors": l1000,
    "norman_crispra": norman,
    "mcfaline23_crispri": mcfaline23,
}

if __name__ == "__main__":
    import sys

    names = sys.argv[1:] or list(BUILDERS)  # e.g. `python scripts/make_bundled_datasets.py mcfaline23_crispri`
    unknown = [n for n in names if n not in BUILDERS]
    if unknown:
        sys.exit(f"Unknown dataset(s) {unknown}; choose from {list(BUILDERS)}.")
    OUT.mkdir(parents=True, exist_ok=True)
    for name in names:
        BUILDERS[name]()

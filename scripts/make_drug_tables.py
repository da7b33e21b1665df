"""Build the permissive drug tables vendored in ``src/sxdiff/drugs/_data`` from ``../shared/data/drugs``.

Run from the repository root: ``python scripts/make_drug_tables.py``. Only permissive sources are used:
DrugCentral drug -> target (CC BY 4.0, attribution in DRUGCENTRAL_ATTRIBUTION.txt), LINCS compound
SMILES (dhimmel/lincs, CC0), chemCPA's sci-Plex3 SMILES (MIT).
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "data" / "drugs"
OUT = ROOT / "src" / "sxdiff" / "drugs" / "_data"


def main() -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    targets = pd.read_csv(SHARED / "drugcentral_drug_target.tsv", sep="\t")
    targets = targets[["DRUG_NAME", "GENE", "ACTION_TYPE", "TARGET_FAMILY"]].dropna(subset=["DRUG_NAME", "GENE"])
    targets.columns = ["drug", "genes", "action_type", "target_family"]
    targets.to_csv(OUT / "drugcentral_targets.tsv.gz", sep="\t", index=False, compression="gzip")

    smiles = pd.read_csv(SHARED / "drugcentral_LINCS_mapping.tsv", sep="\t")[["DRUG_NAME", "SMILES"]]
    smiles.columns = ["drug", "smiles"]
    smiles.dropna().to_csv(OUT / "drugcentral_smiles.tsv.gz", sep="\t", index=False, compression="gzip")

    lincs = pd.read_csv(SHARED / "dhimmel_lincs_pertinfo.tsv.gz", sep="\t")
    lincs = lincs.loc[
        (lincs["pert_type"] == "trt_cp") & lincs["canonical_smiles"].notna(),
        ["pert_id", "pert_iname", "canonical_smiles"],
    ]
    lincs.columns = ["pert_id", "drug", "smiles"]
    lincs.to_csv(OUT / "lincs_compounds.tsv.gz", sep="\t", index=False, compression="gzip")

    chemcpa = pd.read_csv(
        SHARED / "chemcpa_trapnell_drugs_smiles.csv", header=None, names=["drug", "smiles", "pathway"]
    )
    chemcpa = chemcpa[~chemcpa["drug"].str.lower().isin(["control", "dmso", "vehicle"])]
    chemcpa.to_csv(OUT / "chemcpa_sciplex3_smiles.tsv", sep="\t", index=False)

    (OUT / "DRUGCENTRAL_ATTRIBUTION.txt").write_text(
        "drugcentral_targets.tsv.gz and drugcentral_smiles.tsv.gz are derived from DrugCentral\n"
        "(Avram et al., DrugCentral 2021, Nucleic Acids Research 49:D1160; https://drugcentral.org),\n"
        "via olegursu/drugtarget @ 64630f7, licensed under Creative Commons Attribution 4.0\n"
        "International (CC BY 4.0, https://creativecommons.org/licenses/by/4.0/). Changes: columns\n"
        "selected and renamed; rows without a drug name or gene dropped.\n"
        "lincs_compounds.tsv.gz: LINCS L1000 perturbagen metadata via dhimmel/lincs @ 726793b (CC0 1.0).\n"
        "chemcpa_sciplex3_smiles.tsv: sci-Plex3 drug SMILES from theislab/chemCPA @ 43e830e (MIT).\n"
    )
    for path in sorted(OUT.iterdir()):
        print(path.name, path.stat().st_size // 1024, "KiB")


if __name__ == "__main__":
    main()

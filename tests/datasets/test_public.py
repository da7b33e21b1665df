"""Loaders of the large public datasets, tested offline against fixtures with the real schemas."""

import hashlib
import sys

import anndata as ad
import numpy as np
import pandas as pd
import pytest

import sxdiff
from sxdiff.data import validate_perturbation_data
from sxdiff.datasets import REMOTE_FILES, standardise_combosciplex, standardise_norman2019, standardise_sciplex3

SCPERTURB_RENAMES = {  # the renames scPerturb applied to the sci-Plex3 cell metadata
    "cell_type": "cell_line",
    "time_point": "time",
    "dose": "dose_value",
    "name": "perturbation",
    "plate_oligo": "plate",
    "well_oligo": "well",
}


@pytest.fixture(scope="module")
def sciplex_metadata(shared_data):
    """Real sci-Plex3 per-well design rows (Srivatsan et al. Supplementary Table 3), read at test time."""
    table = pd.read_csv(shared_data / "drugs" / "sciplex_Supplementary_Table_3.txt", sep="\t")
    vehicles = table[table["vehicle"]].head(20)
    treated = table[~table["vehicle"]].groupby("name").head(1).head(60)
    jq1 = table[table["name"].astype(str).str.contains("JQ1", regex=False)].head(2)
    return pd.concat([vehicles, treated, jq1]).reset_index(drop=True)


def _as_adata(obs: pd.DataFrame) -> ad.AnnData:
    obs = obs.copy()
    obs.index = [f"cell{i}" for i in range(len(obs))]
    counts = np.random.default_rng(0).poisson(2, size=(len(obs), 8)).astype(np.float32)
    return ad.AnnData(counts, obs=obs)


@pytest.mark.shared_data
def test_sciplex3_original_metadata_schema(sciplex_metadata):
    adata = standardise_sciplex3(_as_adata(sciplex_metadata))
    info = adata.uns["sxdiff"]
    assert info["delimiter"] == "|"
    assert info["expression_scale"] == "counts"
    controls = adata.obs["is_control"].to_numpy()
    assert controls.sum() == 20
    assert (adata.obs.loc[controls, "dose"] == 0).all()
    treated = adata.obs[~controls]
    np.testing.assert_allclose(treated["dose"], sciplex_metadata.loc[~controls, "dose"].astype(float) / 1000)
    assert set(adata.obs["context"]) <= {"A549", "K562", "MCF7"}
    assert "(+)-JQ1" in set(adata.obs["perturbation"].astype(str))
    assert treated["smiles"].notna().mean() > 0.9
    found = validate_perturbation_data(
        adata,
        perturbation_key="perturbation",
        control_value="control",
        dose_key="dose",
        context_key="context",
        batch_key="batch",
        delimiter=info["delimiter"],
    )
    assert ("(+)-JQ1",) in found.perturbation_sets


@pytest.mark.shared_data
def test_sciplex3_scperturb_schema_gives_the_same_result(sciplex_metadata):
    original = standardise_sciplex3(_as_adata(sciplex_metadata))
    renamed = sciplex_metadata.rename(columns=SCPERTURB_RENAMES).drop(columns=["vehicle", "SMILES"])
    renamed["perturbation"] = np.where(sciplex_metadata["vehicle"], "control", renamed["perturbation"])
    scperturb = standardise_sciplex3(_as_adata(renamed))
    for column in ("perturbation", "dose", "context", "batch"):
        assert list(original.obs[column].astype(str)) == list(scperturb.obs[column].astype(str))


def test_combosciplex_schema():
    obs = pd.DataFrame(
        {
            "Drug1": ["control", "control", "Dacinostat", "Alvespimycin"],
            "Drug2": ["control", "Panobinostat", "Givinostat", "control"],
            "condition": ["control+control", "control+Panobinostat", "Dacinostat+Givinostat", "Alvespimycin+control"],
            "cell_type": ["A549"] * 4,
        }
    )
    adata = standardise_combosciplex(_as_adata(obs))
    assert list(adata.obs["perturbation"].astype(str)) == [
        "control",
        "Panobinostat",
        "Dacinostat+Givinostat",
        "Alvespimycin",
    ]
    assert list(adata.obs["dose"]) == ["0", "1", "1+1", "1"]
    by_condition = standardise_combosciplex(_as_adata(obs.drop(columns=["Drug1", "Drug2"])))
    assert list(by_condition.obs["perturbation"]) == list(adata.obs["perturbation"])
    validate_perturbation_data(
        adata, perturbation_key="perturbation", control_value="control", dose_key="dose", context_key="context"
    )


def test_norman2019_pertpy_and_scperturb_schemas():
    pertpy_obs = pd.DataFrame({"perturbation_name": ["control", "CBL+CNN1", "KLF1"], "gemgroup": [1, 2, 1]})
    a = standardise_norman2019(_as_adata(pertpy_obs))
    assert list(a.obs["perturbation"].astype(str)) == ["control", "CBL+CNN1", "KLF1"]
    assert list(a.obs["batch"]) == ["1", "2", "1"]
    scperturb_obs = pd.DataFrame({"perturbation": ["control", "CBL_CNN1", "KLF1"]})
    b = standardise_norman2019(_as_adata(scperturb_obs))
    assert list(b.obs["perturbation"].astype(str)) == list(a.obs["perturbation"].astype(str))
    assert list(b.obs["dose"]) == ["0", "1+1", "1"]


def test_loader_reads_a_cached_download_offline(tmp_path, monkeypatch):
    """A file already in the cache with the expected checksum is loaded without any network access."""
    obs = pd.DataFrame({"perturbation_name": ["control", "KLF1"]})
    path = tmp_path / REMOTE_FILES["norman2019"].fname
    _as_adata(obs).write_h5ad(path)
    digest = hashlib.sha256(path.read_bytes()).hexdigest()

    def no_network(*args, **kwargs):
        raise AssertionError("tried to download")

    monkeypatch.setattr("pooch.core.stream_download", no_network)
    path_returned = sxdiff.datasets.fetch("norman2019", cache_dir=tmp_path, known_hash=f"sha256:{digest}")
    assert path_returned == path
    adata = sxdiff.datasets.norman2019(cache_dir=tmp_path, known_hash=f"sha256:{digest}")
    assert list(adata.obs["perturbation"].astype(str)) == ["control", "KLF1"]
    assert adata.uns["sxdiff"]["dataset"] == "norman2019"


def test_is_downloaded_sees_the_cache_without_downloading(tmp_path, monkeypatch):
    monkeypatch.setattr("pooch.core.stream_download", lambda *a, **k: (_ for _ in ()).throw(AssertionError()))
    assert not sxdiff.datasets.is_downloaded("sciplex3", cache_dir=tmp_path)
    (tmp_path / REMOTE_FILES["sciplex3"].fname).write_bytes(b"cached")
    assert sxdiff.datasets.is_downloaded("sciplex3", cache_dir=tmp_path)
    assert not sxdiff.datasets.is_downloaded("norman2019", cache_dir=tmp_path)
    with pytest.raises(KeyError, match="sciplex3"):
        sxdiff.datasets.is_downloaded("sciplex4", cache_dir=tmp_path)


def test_first_download_hash_is_recorded_and_checked(tmp_path, monkeypatch):
    """Without a published checksum, the first file's SHA-256 is recorded and later loads are checked."""
    path = tmp_path / REMOTE_FILES["combosciplex"].fname
    path.write_bytes(b"first download")
    monkeypatch.setattr("pooch.core.stream_download", lambda *a, **k: (_ for _ in ()).throw(AssertionError()))
    sxdiff.datasets.fetch("combosciplex", cache_dir=tmp_path)
    recorded = (tmp_path / f"{path.name}.sha256").read_text().strip()
    assert recorded == hashlib.sha256(b"first download").hexdigest()
    path.write_bytes(b"tampered")  # pooch re-downloads on mismatch, which our stub refuses
    with pytest.raises(AssertionError):
        sxdiff.datasets.fetch("combosciplex", cache_dir=tmp_path)


def test_pertpy_source_without_pertpy_says_how_to_install(monkeypatch):
    # a None entry in sys.modules makes every import of pertpy fail, even where it is installed (make test
    # installs the pertpy extra) and already imported by another test in this process
    monkeypatch.setitem(sys.modules, "pertpy", None)
    with pytest.raises(ImportError, match=r"pip install 'sxdiff\[pertpy\]'"):
        sxdiff.datasets.norman2019(source="pertpy")

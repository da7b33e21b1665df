"""Small real perturbation datasets shipped with sxdiff (permissive licences, offline)."""

from __future__ import annotations

from importlib import resources

import anndata as ad

__all__ = ["glioblastoma_panobinostat", "l1000_kinase_inhibitors", "mcfaline23_crispri", "norman_crispra"]


def _read_bundled(name: str) -> ad.AnnData:
    path = resources.files("sxdiff.datasets").joinpath("_data", f"{name}.h5ad")
    with resources.as_file(path) as file:
        return ad.read_h5ad(file)


def glioblastoma_panobinostat() -> ad.AnnData:
    """Glioblastoma tumour slices of 5 patients treated with DMSO or panobinostat (Zhao et al. 2021).

    Real drug-treated single cells: 5,000 cells x 300 genes, raw UMI counts in ``X``. Acute
    slice cultures from 5 glioblastoma patients (``obs["context"]`` = ``patient_id``, 1,000 cells
    each) treated with vehicle (DMSO) or 0.2 uM panobinostat, an HDAC inhibitor. The natural
    out-of-distribution task is predicting an unseen patient from its control cells.

    Returns
    -------
    AnnData with

    - ``X``: raw counts (sparse, float32); ``var_names`` gene symbols, ``var["ensembl_id"]``;
    - ``obs["perturbation"]``: ``"control"`` or ``"panobinostat"``; ``obs["dose"]`` in uM (0 for controls);
      ``obs["context"]``: patient; ``obs["is_control"]``; ``obs["smiles"]``; ``obs["perturbation_type"]``;
      the original columns (``drug``, ``dose_uM``, ``patient_id``, ``sample_id``, ...);
    - ``uns["sxdiff"]``: keys of the standard columns, ``expression_scale="counts"``, source, licence.

    Notes
    -----
    Source: Zhao et al. (2021), Genome Medicine 13:82, GEO GSE148842, as subsampled in the
    ``lemur`` R package (const-ae/lemur @ 0e62bc1, ``data/glioblastoma_example_data.rda``), MIT
    licence. Panobinostat SMILES from the LINCS perturbagen table (dhimmel/lincs, CC0).

    Examples
    --------
    >>> import sxdiff
    >>> adata = sxdiff.datasets.glioblastoma_panobinostat()
    >>> adata.shape
    (5000, 300)
    >>> sorted(adata.obs["context"].unique())
    ['PW030', 'PW032', 'PW034', 'PW036', 'PW040']
    """
    return _read_bundled("glioblastoma_panobinostat")


def l1000_kinase_inhibitors() -> ad.AnnData:
    """One LINCS L1000 plate: A375 melanoma cells, 59 compounds (mostly kinase inhibitors) x 6 doses.

    377 wells x 978 landmark genes (plate LJP005_A375_24H_X1_B19, 24 h). ``X`` holds level-3 values
    (log2, quantile-normalised; not counts), ``layers["zscore_level4"]`` robust z-scores. DMSO vehicle
    wells are the controls; positive controls (``obs["pert_type"] == "trt_poscon"``) are treatments.
    51 of the 59 compounds have SMILES; the other 8 (``BRD-...`` names) have none. The natural
    out-of-distribution task is predicting compounds held out of training from their structure.

    Returns
    -------
    AnnData with ``obs["perturbation"]`` (compound, or ``"control"`` for DMSO), ``obs["dose"]`` (uM, 0
    for controls), ``obs["context"]`` (``"A375"``), ``obs["smiles"]`` (``None`` where unknown),
    ``obs["is_control"]``, original LINCS columns (``pert_id``, ``pert_iname``, ``pert_type``, ...);
    ``var_names`` gene symbols with probe ids in ``var["probe_id"]``; ``uns["sxdiff"]`` with
    ``expression_scale="normal"``, source and licence.

    Notes
    -----
    Source: LINCS L1000 (Subramanian et al. 2017, Cell 171:1437), the plate shipped as functional
    test data of cmap/cmapPy @ d1652c3 (BSD-3-Clause). SMILES from chemCPA @ 43e830e (MIT).

    Examples
    --------
    >>> import sxdiff
    >>> adata = sxdiff.datasets.l1000_kinase_inhibitors()
    >>> adata.shape, int(adata.obs["is_control"].sum())
    ((377, 978), 26)
    """
    return _read_bundled("l1000_kinase_inhibitors")


def norman_crispra() -> ad.AnnData:
    """K562 CRISPRa single-gene and two-gene perturbations (Norman et al. 2019), 500 genes.

    3,375 cells x 500 highly variable genes, log1p-normalised values in ``X``. 18 single-gene and 15
    two-gene activations (``obs["perturbation"]`` like ``"KLF1+MAP2K6"``, ``obs["dose"]`` like
    ``"1+1"``) and 100 control cells; for 5 combinations both singles are present, which makes the
    unseen-combination task (predict a combination from its singles) possible.

    Returns
    -------
    AnnData with ``obs["perturbation"]``, ``obs["dose"]`` (guides per member), ``obs["context"]``
    (``"K562"``), ``obs["perturbation_type"]`` (``"CRISPRa"`` / ``"control"``), ``obs["is_control"]``;
    gene symbols as ``var_names``; ``uns["sxdiff"]`` with ``expression_scale="log1p"``.

    Notes
    -----
    Source: Norman et al. (2019), Science 365:786, as subsampled in the perturbench development
    dataset (altoslabs/perturbench @ d357dfa, ``devel.h5ad``, BSD-3-Clause).

    Examples
    --------
    >>> import sxdiff
    >>> adata = sxdiff.datasets.norman_crispra()
    >>> adata.shape
    (3375, 500)
    """
    return _read_bundled("norman_crispra")


def mcfaline23_crispri() -> ad.AnnData:
    """CRISPRi knock-downs of 9 kinase-pathway genes in 3 glioblastoma cell lines (McFaline-Figueroa et al.).

    2,586 cells x 500 highly variable genes, log1p-normalised values in ``X``. The same 9 single-gene
    CRISPRi knock-downs (``MAP2K3``, ``MAP2K6``, ``MAP3K21``, ``MAP4K3``, ``MAP4K5``, ``MAPK1``, ``PLK4``,
    ``SGK1``, ``TGFBR2``; 46-100 cells each) and 100 control cells in each of the lines A172, T98G and
    U87MG (``obs["context"]``). The natural out-of-distribution task is predicting a cell line held out
    of training from its control cells.

    The effects are weak at this size: no target gene is among the 500 genes, and the knock-downs'
    mean changes hardly agree between lines, so read results against the null floor.

    Returns
    -------
    AnnData with ``obs["perturbation"]`` (knocked-down gene or ``"control"``), ``obs["dose"]`` (``"1"``:
    one guide), ``obs["context"]`` (cell line, also ``obs["cell_type"]``), ``obs["perturbation_type"]``
    (``"CRISPRi"`` / ``"control"``), ``obs["is_control"]``, ``obs["perturbation_raw"]`` (the original
    gene name, ``KIAA1804`` for ``MAP3K21``), ``ncounts`` / ``ngenes`` of the original cells; gene symbols
    as ``var_names``; ``uns["sxdiff"]`` with ``expression_scale="log1p"``.

    Notes
    -----
    Source: McFaline-Figueroa et al. (2024), Cell Genomics (sci-Plex-GxE), as subsampled in the
    perturbench development dataset (altoslabs/perturbench @ d357dfa, ``devel.h5ad``, BSD-3-Clause). The
    500 genes were selected on that whole file (with the Norman 2019 part, :func:`norman_crispra`).

    Examples
    --------
    >>> import sxdiff
    >>> adata = sxdiff.datasets.mcfaline23_crispri()
    >>> adata.shape
    (2586, 500)
    >>> sorted(adata.obs["context"].unique())
    ['A172', 'T98G', 'U87MG']
    """
    return _read_bundled("mcfaline23_crispri")

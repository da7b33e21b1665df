import logging

import anndata as ad
import mudata as md
import numpy as np

import sxdiff
from sxdiff.datasets.synthetic import drug_table, perturbation_data

KEYS = {"perturbation_key": "perturbation", "control_value": "control", "dose_key": "dose", "context_key": "context"}


def test_measured_isotype_controls_get_reliability_zero(caplog):
    """Measured antibodies have reliability 1, isotype controls (background binding) 0; nothing is trained."""
    rna = perturbation_data(
        n_genes=20, n_contexts=1, n_drugs=2, n_combinations=0, n_cells_per_condition=4, n_control_cells=10, seed=0
    )
    sxdiff.pp.drug_features(rna, drug_key="perturbation", drug_table=drug_table(rna), use_bundled_tables=False)
    names = ["CD4", "Mouse IgG1 isotype", "CD8a", "Rat_IgG2b_isotype"]
    prot = ad.AnnData(np.random.default_rng(0).poisson(5, size=(rna.n_obs, 4)).astype(np.float32))
    prot.var_names, prot.obs_names = names, rna.obs_names
    mdata = md.MuData({"rna": rna, "prot": prot})
    mdata.uns["sxdiff_drugs"] = rna.uns["sxdiff_drugs"]
    with caplog.at_level(logging.INFO, logger="sxdiff.model._statexdiff_setup"):
        sxdiff.model.StateXDiff.setup_mudata(mdata, **KEYS)
    assert "isotype control(s) ['Mouse IgG1 isotype', 'Rat_IgG2b_isotype']" in caplog.text
    model = sxdiff.model.StateXDiff(mdata, n_latent=4, n_hidden=16, d_model=16, n_blocks=1, n_heads=2, n_chunks=4)
    assert model.protein_names_ == names
    np.testing.assert_array_equal(model.protein_reliability_, [1.0, 0.0, 1.0, 0.0])
    np.testing.assert_array_equal(model.module.reliability.cpu().numpy(), [1.0, 0.0, 1.0, 0.0])

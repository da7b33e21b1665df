"""Train a tiny StateXDiff with Lightning DDP on CPU processes and save it (run by test_distributed.py).

Usage: ``python ddp_train_script.py OUTPUT_DIR N_DEVICES``. Lightning's DDP launcher starts the other
processes by re-running this script; only rank 0 saves.
"""

import os
import sys


def main(out: str, devices: int) -> None:
    import torch

    import sxdiff
    from sxdiff.datasets.synthetic import drug_table, perturbation_data

    torch.set_num_threads(1)
    adata = perturbation_data(n_genes=30, n_contexts=2, n_drugs=3, n_combinations=0, n_cells_per_condition=16, seed=0)
    sxdiff.pp.drug_features(adata, drug_key="perturbation", drug_table=drug_table(adata), use_bundled_tables=False)
    sxdiff.model.StateXDiff.setup_anndata(
        adata, perturbation_key="perturbation", control_value="control", dose_key="dose", context_key="context"
    )
    torch.manual_seed(0)
    model = sxdiff.model.StateXDiff(adata, n_latent=4, n_hidden=16, d_model=16)
    model.train(
        max_epochs=4,
        batch_size=32,
        accelerator="cpu",
        devices=devices,
        strategy="ddp" if devices > 1 else "auto",
        enable_progress_bar=False,
    )
    if int(os.environ.get("LOCAL_RANK", "0")) == 0:
        model.save(out, overwrite=True)


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]))

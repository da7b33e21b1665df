"""Throughput of StateXDiff trained and predicting from a backed ``.h5ad`` (10k / 100k / 1M cells x 2,000 genes).

Command (repository root, after `make install`):

    .venv/bin/python benchmarks/throughput_on_disk.py --cells 10000 100000 1000000 \\
        --data-dir /tmp/sxdiff_throughput --max-batches 400 --full-epochs-up-to 100000

For each size the script writes synthetic counts straight to disk (``benchmarks/_on_disk_data.py``: CSR,
about 20 % non-zero, 4 contexts, 40 drugs at 3 doses, 10 % controls; 1M cells = 1.9 GB) and runs, each in
its own process so that peak RSS is the process's own:

- **StateXDiff** from the file opened with ``backed="r"`` (``train(storage="auto")`` reads from disk): one
  epoch of stage 1 and one of stage 2 (default model size, default batch size), each timed by a callback
  from the epoch's first batch to its end (validation included); what training spends outside epochs
  (trainer start-up, encoding every cell for optimal-transport pairing, calibrating the state scale) is
  reported separately. Then ``predict``
  with 10 DDIM steps from the first 20,000 cells of the file (a view of the backed object, which anndata
  reads into memory), streamed to an ``out_path`` file.
- **SCVI** (scvi-tools' reference model, default size) on the same cells loaded in memory (its fastest
  setting), one epoch timed the same way.

``--max-batches N`` runs about N training batches per epoch and the same fraction of the validation
batches, and scales the time to the full epoch (``seconds x batches per epoch / batches run``), for sizes above
``--full-epochs-up-to`` (default: all sizes); the report says which rows were scaled. Peak RSS does not
depend on the number of batches run (nothing accumulates per batch; the 100k run's whole epoch has fewer
batches than the cut 1M epoch).

``--statexdiff-in-memory`` reads the file into memory for StateXDiff too (``train(storage="memory")``), as for
SCVI: the like-for-like cost of the model, without reading from disk; writes ``throughput_on_disk_in_memory.{md,csv}``.
``--triplet-weight 0`` measures StateXDiff without the triplet loss (which runs the denoiser a second time
per step) and writes ``throughput_on_disk_triplet_weight_0.{md,csv}``. ``--accelerator`` (default ``auto``:
the GPU when torch sees one) trains and predicts on that device; GPU runs write
``throughput_on_disk_gpu.{md,csv}``. Writes ``benchmarks/results/throughput_on_disk.{md,csv}`` with the
machine description.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
import warnings
from pathlib import Path

import lightning.pytorch as pl
from _peak_memory import peak_rss_gb  # the script's folder is on sys.path

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results"
PREDICT_CELLS = 20_000


class EpochTimer(pl.Callback):
    """Seconds of each epoch (first training batch to the end of the epoch, validation included)."""

    def __init__(self) -> None:
        self.seconds: list[float] = []
        self.batches: list[int] = []
        self._start = 0.0

    def on_train_epoch_start(self, trainer, pl_module) -> None:
        self._start = time.perf_counter()

    def on_train_epoch_end(self, trainer, pl_module) -> None:
        self.seconds.append(time.perf_counter() - self._start)
        self.batches.append(int(trainer.num_training_batches))


def _quiet() -> None:
    import logging

    warnings.filterwarnings("ignore")
    for name in ("scvi", "lightning", "lightning.pytorch", "sxdiff", "sxdiff.drugs"):
        logging.getLogger(name).setLevel(logging.ERROR)


def _epoch_limits(max_batches: int | None, n_train: int, batch_size: int) -> dict:
    """Lightning limits that run the same fraction of the training and the validation batches."""
    per_epoch = max(1, n_train // batch_size)
    if max_batches is None or max_batches >= per_epoch:
        return {}
    fraction = max_batches / per_epoch
    return {"limit_train_batches": fraction, "limit_val_batches": fraction}


def _full_epoch_seconds(timer: EpochTimer, n_train: int, batch_size: int, max_batches: int | None) -> list[float]:
    """Measured epoch seconds scaled to a whole epoch when it was cut at ``max_batches``."""
    per_epoch = max(1, n_train // batch_size)
    if max_batches is None or max_batches >= per_epoch:
        return timer.seconds
    return [s * per_epoch / b for s, b in zip(timer.seconds, timer.batches, strict=True)]


def run_statexdiff(
    path: Path, max_batches: int | None, accelerator: str, triplet_weight: float | None = None, in_memory: bool = False
) -> dict:
    """One epoch of each stage from the backed file (or memory), then prediction throughput (in a child process)."""
    import anndata as ad
    import numpy as np
    import pandas as pd
    import torch
    from _on_disk_data import drug_table

    import sxdiff

    _quiet()
    start = time.perf_counter()
    adata = ad.read_h5ad(path) if in_memory else ad.read_h5ad(path, backed="r")
    sxdiff.pp.drug_features(
        adata, drug_key="perturbation", drug_table=drug_table(adata.n_vars), use_bundled_tables=False
    )
    keys = {"perturbation_key": "perturbation", "control_value": "control", "dose_key": "dose"}
    keys["context_key"] = "context"
    sxdiff.model.StateXDiff.setup_anndata(adata, **keys)
    torch.manual_seed(0)
    model = sxdiff.model.StateXDiff(adata, **({} if triplet_weight is None else {"triplet_weight": triplet_weight}))
    setup_seconds = time.perf_counter() - start
    n_perturbed = int((adata.obs["perturbation"] != "control").sum())
    n_train = n_perturbed - max(1, round(0.1 * n_perturbed))
    batch_size = int(np.clip(n_train // 8, 32, 256))
    timer = EpochTimer()
    start = time.perf_counter()
    model.train(
        accelerator=accelerator,
        devices=1,
        max_epochs=2,
        state_epochs=1,
        storage="memory" if in_memory else "auto",
        callbacks=[timer],
        enable_progress_bar=False,
        logger=False,
        enable_checkpointing=False,
        **_epoch_limits(max_batches, n_train, batch_size),
    )
    train_seconds = time.perf_counter() - start
    # the first two epochs are stage 1 and stage 2; a third is the short run on the held-out perturbations
    state_epoch, diffusion_epoch = _full_epoch_seconds(timer, n_train, batch_size, max_batches)[:2]
    measured = sum(timer.seconds)
    sources = adata[: min(PREDICT_CELLS, adata.n_obs)]
    conditions = pd.DataFrame({"perturbation": ["drug_0"], "dose": [1.0]})
    out_path = path.with_name(path.stem + "_predicted.h5ad")
    start = time.perf_counter()
    model.predict(sources, conditions, n_steps=10, seed=0, allow_non_control=True, out_path=out_path)
    predict_seconds = time.perf_counter() - start
    out_path.unlink(missing_ok=True)
    return {
        "model": f"StateXDiff ({'in memory' if in_memory else 'backed h5ad'})"
        + ("" if triplet_weight is None else f", triplet_weight={triplet_weight}"),
        "cells": adata.n_obs,
        "train_cells_per_epoch": n_train,
        "batch_size": batch_size,
        "setup_s": setup_seconds,
        "epoch_s": state_epoch,
        "epoch2_s": diffusion_epoch,
        "outside_epochs_s": train_seconds - measured,
        "predict_cells_per_s": sources.n_obs / predict_seconds,
        "peak_rss_gb": peak_rss_gb(),
        "epoch_batches_run": timer.batches,
    }


def run_scvi(path: Path, max_batches: int | None, accelerator: str, triplet_weight: float | None = None) -> dict:
    """One SCVI epoch on the same cells in memory (runs in a child process)."""
    import anndata as ad
    import scvi
    import torch

    _quiet()
    adata = ad.read_h5ad(path)
    scvi.model.SCVI.setup_anndata(adata)
    torch.manual_seed(0)
    model = scvi.model.SCVI(adata)
    timer = EpochTimer()
    n_train = round(0.9 * adata.n_obs)  # SCVI's default train_size
    model.train(
        accelerator=accelerator,
        devices=1,
        max_epochs=1,
        callbacks=[timer],
        enable_progress_bar=False,
        logger=False,
        enable_checkpointing=False,
        **_epoch_limits(max_batches, n_train, 128),
    )
    (epoch,) = _full_epoch_seconds(timer, n_train, 128, max_batches)
    return {
        "model": "SCVI (in memory)",
        "cells": adata.n_obs,
        "train_cells_per_epoch": n_train,
        "batch_size": 128,
        "epoch_s": epoch,
        "peak_rss_gb": peak_rss_gb(),
        "epoch_batches_run": timer.batches,
    }


def _machine(accelerator: str) -> str:
    import torch

    cpu = platform.processor() or platform.machine()
    gpu = f", GPU {torch.cuda.get_device_name(0)}" if accelerator == "gpu" else ", training and prediction on CPU"
    return (
        f"{platform.platform()}, {cpu}, {os.cpu_count()} CPU cores visible, torch {torch.__version__} "
        f"({torch.get_num_threads()} threads){gpu}"
    )


def _batches(value) -> str:
    return ", ".join(str(v) for v in (value if isinstance(value, list | tuple) else [value]))


def _report(rows: list[dict], command: str, accelerator: str, name: str) -> str:
    import pandas as pd

    frame = pd.DataFrame(rows)
    sx = frame[frame["model"].str.startswith("StateXDiff")].set_index("cells")
    sc = frame[frame["model"].str.startswith("SCVI")].set_index("cells")
    lines = [
        "# Throughput: StateXDiff vs SCVI, synthetic counts x 2,000 genes, "
        + ("both in memory" if "in_memory" in name else "StateXDiff from disk, SCVI in memory"),
        "",
        f"Command: `{command}`",
        "",
        f"Machine: {_machine(accelerator)}.",
        "",
        "Epoch seconds run from the first training batch to the end of the epoch, validation included; "
        "'batches run' says whether the epoch was whole or cut and scaled to a whole epoch. A StateXDiff epoch is "
        "one pass over the perturbed training cells, each with a control partner (two cells read and encoded per "
        "pair; batch 256); an SCVI epoch is one pass over all training cells (batch 128).",
        "",
        "| cells | StateXDiff stage-1 epoch (s) | stage-2 epoch (s) | outside epochs (s) | SCVI epoch (s) "
        "| ratio stage 1 / SCVI | ratio stage 2 / SCVI | predict cells/s (10 steps) | peak RSS StateXDiff (GB) "
        "| batches run (StateXDiff stage 1, 2 / SCVI) | batches per whole epoch (StateXDiff / SCVI) |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|---|",
    ]
    for cells in sx.index:
        s = sx.loc[cells]
        scvi_epoch = sc.loc[cells, "epoch_s"] if cells in sc.index else float("nan")
        lines.append(
            f"| {cells:,} | {s['epoch_s']:.1f} | {s['epoch2_s']:.1f} | {s['outside_epochs_s']:.1f} | "
            f"{scvi_epoch:.1f} | {s['epoch_s'] / scvi_epoch:.2f} | {s['epoch2_s'] / scvi_epoch:.2f} | "
            f"{s['predict_cells_per_s']:.0f} | {s['peak_rss_gb']:.2f} | "
            f"{_batches(s['epoch_batches_run'])} / {_batches(sc.loc[cells, 'epoch_batches_run'])} | "
            f"{s['train_cells_per_epoch'] // s['batch_size']} / {sc.loc[cells, 'train_cells_per_epoch'] // 128} |"
        )
    lines += ["", "## Targets", ""]
    if len(sx):
        largest = sx.index.max()
        fastest = sx["predict_cells_per_s"].min()
        ratio = max((sx["epoch_s"] / sc["epoch_s"]).max(), (sx["epoch2_s"] / sc["epoch_s"]).max())
        lines.append(
            f"- Prediction >= 1,000 cells/s at 10 steps: slowest {fastest:.0f} cells/s — "
            f"{'met' if fastest >= 1000 else 'NOT met'}."
        )
        lines.append(f"- Epoch <= 3x SCVI: worst ratio {ratio:.2f} — {'met' if ratio <= 3 else 'NOT met'}.")
        if 100_000 in sx.index and largest >= 1_000_000:
            growth = sx.loc[largest, "peak_rss_gb"] / sx.loc[100_000, "peak_rss_gb"]
            lines.append(
                f"- Peak RSS at {largest:,} within 1.5x of 100,000: {growth:.2f}x — "
                f"{'met' if growth <= 1.5 else 'NOT met'}."
            )
    lines += ["", f"Per-run details: `{name}.csv`.", ""]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cells", type=int, nargs="+", default=[10_000, 100_000, 1_000_000])
    parser.add_argument("--data-dir", type=Path, default=Path("/tmp/sxdiff_throughput"))
    parser.add_argument("--max-batches", type=int, default=None, help="cut epochs at this many batches and scale")
    parser.add_argument("--full-epochs-up-to", type=int, default=0, help="whole epochs for sizes up to this")
    parser.add_argument("--accelerator", choices=["auto", "cpu", "gpu"], default="auto", help="auto: gpu if present")
    parser.add_argument("--triplet-weight", type=float, default=None, help="StateXDiff triplet_weight (default 0.1)")
    parser.add_argument("--statexdiff-in-memory", action="store_true", help="StateXDiff from memory, like SCVI")
    parser.add_argument("--child", choices=["statexdiff", "scvi"], help=argparse.SUPPRESS)
    parser.add_argument("--file", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    if args.child:
        run = run_statexdiff if args.child == "statexdiff" else run_scvi
        extra = {"in_memory": True} if args.statexdiff_in_memory else {}  # only the StateXDiff child is given it
        print(json.dumps(run(args.file, args.max_batches, args.accelerator, args.triplet_weight, **extra)))
        return
    sys.path.insert(0, str(HERE))
    import torch
    from _on_disk_data import counts_file

    accelerator = args.accelerator
    if accelerator == "auto":
        accelerator = "gpu" if torch.cuda.is_available() else "cpu"
    rows = []
    for cells in args.cells:
        path = counts_file(args.data_dir, cells)
        for child in ("statexdiff", "scvi"):
            command = [sys.executable, __file__, "--child", child, "--file", str(path), "--accelerator", accelerator]
            if args.triplet_weight is not None and child == "statexdiff":
                command += ["--triplet-weight", str(args.triplet_weight)]
            if args.statexdiff_in_memory and child == "statexdiff":
                command += ["--statexdiff-in-memory"]
            if args.max_batches is not None and cells > args.full_epochs_up_to:
                command += ["--max-batches", str(args.max_batches)]
            done = subprocess.run(command, capture_output=True, text=True, check=False)
            if done.returncode != 0:
                raise RuntimeError(f"{child} on {cells} cells failed:\n{done.stderr[-3000:]}")
            row = json.loads(done.stdout.strip().splitlines()[-1])
            print(row, flush=True)
            rows.append(row)
    import pandas as pd

    args.out.mkdir(parents=True, exist_ok=True)
    name = "throughput_on_disk" + ("_gpu" if accelerator == "gpu" else "")
    name += "" if args.triplet_weight is None else f"_triplet_weight_{args.triplet_weight:g}"
    name += "_in_memory" if args.statexdiff_in_memory else ""
    pd.DataFrame(rows).to_csv(args.out / f"{name}.csv", index=False)
    command = "python benchmarks/throughput_on_disk.py " + " ".join(sys.argv[1:])
    (args.out / f"{name}.md").write_text(_report(rows, command, accelerator, name))


if __name__ == "__main__":
    sys.path.insert(0, str(HERE))
    main()

"""Reading StateXDiff's training minibatches from disk: sxdiff's ``RowReader`` vs scverse's ``annbatch`` ``Loader``.

annbatch 0.3.x needs Python >= 3.12 while the project's ``.venv`` is Python 3.11, so this script runs from a separate
Python 3.12 environment (no torch needed: both arms stop at the dense float32 minibatch that training hands to
``torch.as_tensor``). Command (repository root):

    python3.12 -m venv /tmp/venv312
    /tmp/venv312/bin/pip install "annbatch[zarrs]==0.3.1" h5py
    /tmp/venv312/bin/python benchmarks/annbatch_vs_rowreader.py --cells 100000 1000000 \\
        --data-dir /tmp/sxdiff_throughput

For each size the synthetic ``.h5ad`` of ``throughput_on_disk.py`` (``_on_disk_data.write_counts``: CSR, 2,000
genes, 4 contexts, 40 drugs x 3 doses, 10 % controls) is written once into ``--data-dir`` (the same file names as
``throughput_on_disk.py``, so its files are reused). Each arm then runs in its own process (peak RSS is the arm's
own) and times ``--epochs`` epochs (default 2; the first may include cold-cache effects) of one stage of training
(``--stage diffusion``, the default: the perturbed training cells; ``--stage state``: those and every control cell):

- **RowReader**: the file opened with ``backed="r"``, ``X`` wrapped in ``sxdiff.data._on_disk.RowReader`` (the
  module file is loaded directly, without the package's torch / scvi-tools imports). Per step, as
  ``PairedPerturbationData`` reads a minibatch from a backed file: the next ``batch_size`` training cells of the
  epoch's ``_BlockPermutation`` order (blocks of 16 consecutive cells, shuffled within windows of 64 blocks;
  ``drop_last``) through ``RowReader[cells]``, then their control partners (a random control of the same context,
  drawn per epoch like ``ControlMatcher.sample``) through ``RowReader[partners]``: 2 x ``batch_size`` dense rows.
- **annbatch**: the file is converted once (timed apart: ``conversion_s``, in its own process) into two annbatch
  ``DatasetCollection`` zarr stores with annbatch's defaults (preshuffled, sharded, lz4; ``add_adatas``): all cells,
  and the control cells alone. One epoch streams the whole collection once through ``annbatch.Loader``
  (``shuffle=True``, ``chunk_size`` 512, ``preload_nchunks`` 32: annbatch's defaults, recommended for preshuffled
  data; ``batch_size`` as training) and keeps the training cells, re-batched into steps of exactly ``batch_size``
  (``drop_last``). The control partners of each step come from the controls collection, in one of two ways (each
  its own arm; ``--annbatch-partners``):

  - ``stream``: a second, endless shuffled ``Loader`` (same settings) over the controls, handed out through
    per-context buffers: a random control of the right context per cell, as stage 1 (and ``pairing="random"``)
    draws them, but not the specific partner that stage 2's default optimal-transport pairing assigns;
  - ``exact``: each cell's drawn partner, read per step through a ``Loader`` whose (custom) sampler requests
    exactly those rows: what optimal-transport pairing needs (random reads, like ``RowReader``'s partner reads;
    each decompresses a whole zarr chunk, 64 cells by default: ``--controls-obs-per-chunk`` writes smaller ones).

  Rows are densified to float32 like ``RowReader``'s. With ``zarrs`` installed, zarr uses annbatch's recommended
  ``zarrs.ZarrsCodecPipeline`` for conversion and reading (``--no-zarrs``: zarr-python's own pipeline).

Both arms check that every training cell is delivered at most once per epoch and all but fewer than
``batch_size`` of them (the dropped last batch) exactly once, and that each partner is a control cell of the
same context; they count the rows read from disk. The batch size is training's default,
``min(256, max(32, n_train // 8))``. Partners are drawn outside the timed loop (training draws them when an
epoch's data loader is made). ``--rowreader-python`` runs the RowReader arm under another interpreter (e.g. the
project's ``.venv/bin/python``, 3.11) as a cross-check. Writes ``benchmarks/results/annbatch_vs_rowreader.{md,csv}``
(``--out`` for another folder) with the machine description and each arm's interpreter and package versions.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path

from _peak_memory import peak_rss_gb  # the script's folder is on sys.path

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results"
ON_DISK_MODULE = HERE.parent / "src" / "sxdiff" / "data" / "_on_disk.py"
NAME = "annbatch_vs_rowreader"
BLOCK, WINDOW = 16, 64  # sxdiff.train._paired_data._BlockPermutation's defaults
HOLD_OUT_FRACTION, MIN_PERTURBATIONS_TO_HOLD_OUT = 0.1, 20  # sxdiff.train._perturbation_holdout


# ---------------------------------------------------------------------------------------------- shared helpers
def _cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)  # all threads of the process (zarrs' pool included)
    return usage.ru_utime + usage.ru_stime


def _versions(*names: str) -> dict:
    from importlib.metadata import PackageNotFoundError, version

    out = {"python": platform.python_version()}
    for name in names:
        try:
            out[name] = version(name)
        except PackageNotFoundError:
            out[name] = None
    return out


def _block_permutation(n: int, seed: int):
    """The order of ``sxdiff.train._paired_data._BlockPermutation`` (copied: that module imports torch)."""
    import numpy as np

    rng = np.random.default_rng(seed)
    blocks = np.array_split(np.arange(n), max(1, -(-n // BLOCK)))
    order = [blocks[b] for b in rng.permutation(len(blocks))]
    out = [rng.permutation(np.concatenate(order[s : s + WINDOW])) for s in range(0, len(order), WINDOW)]
    return np.concatenate(out) if out else np.empty(0, dtype=np.int64)


def _training_cells(path: Path, stage: str, seed: int) -> dict:
    """Training cells, contexts and control pools as ``StateXDiff._paired_data`` chooses them (no split key).

    ``diffusion``: the perturbed cells less whole held-out perturbations (a random 10 % of the drugs, as
    ``hold_out_perturbations`` with at least 20 of them; else a random 10 % of the cells); ``state``: those and
    every control cell (``PairedPerturbationData.with_controls``).
    """
    import anndata as ad
    import numpy as np
    import pandas as pd

    backed = ad.read_h5ad(path, backed="r")
    obs = backed.obs
    names = pd.Index(obs.index)
    perturbation = obs["perturbation"].astype(str).to_numpy()
    is_control = perturbation == "control"
    context = pd.Categorical(obs["context"]).codes.astype(np.int64)
    perturbed = np.flatnonzero(~is_control)
    members = sorted(set(perturbation[perturbed]), key=lambda s: (len(s), s))  # drug_0, drug_1, ..., drug_39
    rng = np.random.default_rng(seed)
    if len(members) >= MIN_PERTURBATIONS_TO_HOLD_OUT:
        held = rng.choice(members, size=max(2, round(HOLD_OUT_FRACTION * len(members))), replace=False)
        train = perturbed[~np.isin(perturbation[perturbed], held)]
    else:
        order = rng.permutation(perturbed)
        train = np.sort(order[max(1, round(HOLD_OUT_FRACTION * len(order))) :])
    if stage == "state":
        train = np.union1d(train, np.flatnonzero(is_control))
    is_train = np.zeros(len(obs), dtype=bool)
    is_train[train] = True
    pools = {int(c): np.flatnonzero(is_control & (context == c)) for c in np.unique(context)}
    batch_size = int(np.clip(len(train) // 8, 32, 256))  # StateXDiff._paired_data's default
    return {
        "names": names,
        "train": train,
        "is_train": is_train,
        "is_control": is_control,
        "context": context,
        "pools": pools,
        "batch_size": batch_size,
        "n_genes": int(backed.n_vars),
    }


def _random_partners(cells, context, pools: dict, seed: int):
    """A random control of the same context per cell (``ControlMatcher.sample`` with the epoch's generator)."""
    import numpy as np

    rng = np.random.default_rng(seed)
    partners = np.empty(len(cells), dtype=np.int64)
    cell_context = context[cells]
    for c, pool in pools.items():
        where = np.flatnonzero(cell_context == c)
        partners[where] = rng.choice(pool, size=len(where), replace=True)
    return partners


def _check_rows(x, x_control, n_genes: int) -> None:
    """A step's rows are what training gets: dense float32, cells x genes."""
    for rows in (x, x_control):
        if type(rows).__name__ != "ndarray" or rows.dtype != "float32" or rows.shape[1] != n_genes:
            raise AssertionError(f"rows of type {type(rows)}, dtype {rows.dtype}, shape {rows.shape}")


def _n_steps(n: int, batch_size: int) -> int:
    """Minibatches per epoch (``drop_last`` when there is more than one batch, as ``train_dataloader``)."""
    return n // batch_size if n > batch_size else 1


def _check_epoch(delivered: list, partner_ids: list, cells: dict, n_steps: int, batch_size: int) -> dict:
    """Every training cell at most once, all but the dropped last batch exactly once; partners are same-context."""
    import numpy as np

    got = np.concatenate(delivered) if delivered else np.empty(0, dtype=np.int64)
    partners = np.concatenate(partner_ids) if partner_ids else np.empty(0, dtype=np.int64)
    n_train = len(cells["train"])
    expected = min(n_steps * batch_size, n_train)
    unique = np.unique(got)
    problems = []
    if len(got) != expected:
        problems.append(f"{len(got)} training cells delivered, expected {expected}")
    if len(unique) != len(got):
        problems.append(f"{len(got) - len(unique)} training cells delivered twice")
    if not cells["is_train"][got].all():
        problems.append("cells outside the training set delivered")
    if len(partners) != len(got):
        problems.append(f"{len(partners)} partners for {len(got)} cells")
    elif not (cells["is_control"][partners].all() and (cells["context"][partners] == cells["context"][got]).all()):
        problems.append("a partner is not a control of its cell's context")
    if problems:
        raise AssertionError("; ".join(problems))
    return {"train_cells_delivered": len(got), "train_cells_missed": int(n_train - len(unique))}


# --------------------------------------------------------------------------------------------------- RowReader
def _load_on_disk():
    """``sxdiff.data._on_disk`` loaded from its file (importing the package would import torch and scvi-tools)."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("sxdiff_on_disk", ON_DISK_MODULE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def run_rowreader(args) -> dict:
    """Epochs of (cells, partners) reads through ``RowReader`` from the backed h5ad (runs in a child process)."""
    import anndata as ad

    start = time.perf_counter()
    reader_module = _load_on_disk()
    cells = _training_cells(args.file, args.stage, args.seed)
    adata = ad.read_h5ad(args.file, backed="r")
    reader = reader_module.RowReader(adata.X)
    train, batch_size = cells["train"], cells["batch_size"]
    n_steps = _n_steps(len(train), batch_size)
    setup_seconds, setup_rss = time.perf_counter() - start, peak_rss_gb()
    epochs = []
    for epoch in range(args.epochs):
        partners = _random_partners(train, cells["context"], cells["pools"], args.seed + epoch)
        order = _block_permutation(len(train), args.seed + 1 + epoch)
        delivered, partner_ids, rows, partner_seconds = [], [], 0, 0.0
        cpu, tic = _cpu_seconds(), time.perf_counter()
        for step in range(n_steps):
            positions = order[step * batch_size : (step + 1) * batch_size]
            x = reader[train[positions]]
            partner_tic = time.perf_counter()
            x_control = reader[partners[positions]]
            partner_seconds += time.perf_counter() - partner_tic
            rows += len(x) + len(x_control)
            delivered.append(train[positions])
            partner_ids.append(partners[positions])
        seconds, cpu = time.perf_counter() - tic, _cpu_seconds() - cpu
        _check_rows(x, x_control, cells["n_genes"])
        epochs.append(
            {"seconds": seconds, "cpu_seconds": cpu, "partner_seconds": partner_seconds, "rows_read": rows}
            | _check_epoch(delivered, partner_ids, cells, n_steps, batch_size)
        )
    return {
        "arm": "RowReader (backed h5ad)",
        "settings": f"RowReader(max_gap={reader.max_gap}), _BlockPermutation(block={BLOCK}, window={WINDOW})",
        "conversion_s": 0.0,
        "conversion_peak_rss_gb": float("nan"),
        "store_gb": _size_gb(args.file),
        **_summary(args, cells, n_steps, setup_seconds, setup_rss, epochs),
        "versions": _versions("numpy", "scipy", "anndata", "h5py"),
    }


def _summary(args, cells: dict, n_steps: int, setup_seconds: float, setup_rss: float, epochs: list) -> dict:
    later = epochs[1:] or epochs
    epoch_seconds = sum(e["seconds"] for e in later) / len(later)
    delivered = epochs[-1]["train_cells_delivered"]
    return {
        "cells": len(cells["is_train"]),
        "genes": cells["n_genes"],
        "stage": args.stage,
        "train_cells": len(cells["train"]),
        "batch_size": cells["batch_size"],
        "steps": n_steps,
        "setup_s": setup_seconds,
        "first_epoch_s": epochs[0]["seconds"],
        "epoch_s": epoch_seconds,
        "cells_per_s": delivered / epoch_seconds,
        "partner_s_per_epoch": sum(e["partner_seconds"] for e in later) / len(later),
        "cpu_s_per_epoch": sum(e["cpu_seconds"] for e in later) / len(later),
        "rows_read_per_epoch": epochs[-1]["rows_read"],
        "train_cells_delivered": delivered,
        "train_cells_missed": epochs[-1]["train_cells_missed"],
        "setup_peak_rss_gb": setup_rss,
        "peak_rss_gb": peak_rss_gb(),
        "epochs": epochs,
    }


def _size_gb(path: Path) -> float:
    path = Path(path)
    if path.is_file():
        return path.stat().st_size / 1024**3
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file()) / 1024**3


# ---------------------------------------------------------------------------------------------------- annbatch
def _use_zarrs(enabled: bool) -> bool:
    """annbatch's recommended codec pipeline for a local filesystem, when ``zarrs`` is installed."""
    import importlib.util

    import zarr

    if enabled and importlib.util.find_spec("zarrs") is not None:
        zarr.config.set({"codec_pipeline.path": "zarrs.ZarrsCodecPipeline"})
        return True
    return False


def _collections(path: Path) -> tuple[Path, Path]:
    folder = path.with_name(path.stem + "_annbatch")
    return folder / "cells.zarr", folder / "controls.zarr"


def run_convert(args) -> dict:
    """Write the annbatch collections (all cells; control cells) from the h5ad (runs in a child process)."""
    import anndata as ad
    import numpy as np
    from annbatch import DatasetCollection

    zarrs = _use_zarrs(not args.no_zarrs)
    all_cells, controls = _collections(args.file)
    shutil.rmtree(all_cells.parent, ignore_errors=True)
    all_cells.parent.mkdir(parents=True)
    options = {"shuffle": True} | ({} if args.dataset_size is None else {"dataset_size": args.dataset_size})
    start = time.perf_counter()
    DatasetCollection(all_cells).add_adatas([str(args.file)], rng=np.random.default_rng(args.seed), **options)
    cells_seconds = time.perf_counter() - start
    loaded: dict = {}

    def controls_only(p) -> ad.AnnData:  # called twice by add_adatas (validation, then writing): read once
        if p not in loaded:
            backed = ad.read_h5ad(p, backed="r")
            loaded[p] = backed[(backed.obs["perturbation"] == "control").to_numpy()].to_memory()
        return loaded[p]

    start = time.perf_counter()
    if args.controls_obs_per_chunk is not None:
        options["n_obs_per_chunk"] = args.controls_obs_per_chunk
    DatasetCollection(controls).add_adatas(
        [str(args.file)], load_adata=controls_only, rng=np.random.default_rng(args.seed + 1), **options
    )
    controls_seconds = time.perf_counter() - start
    return {
        "conversion_s": cells_seconds + controls_seconds,
        "conversion_cells_s": cells_seconds,
        "conversion_controls_s": controls_seconds,
        "conversion_peak_rss_gb": peak_rss_gb(),
        "store_gb": _size_gb(all_cells) + _size_gb(controls),
        "zarrs": zarrs,
    }


class _StreamedPartners:
    """Random controls of each cell's context from an endless shuffled ``Loader`` (per-context buffers)."""

    def __init__(self, loader, position_to_cell, context, n_genes: int) -> None:
        self.loader, self.position_to_cell, self.context, self.n_genes = loader, position_to_cell, context, n_genes
        self.batches = self._endless()
        self.buffers: dict[int, list] = {}  # context -> [(csr rows, cell ids)]
        self.counts: dict[int, int] = {}
        self.rows_read = 0

    def _endless(self):
        while True:
            yield from self.loader

    def _pull(self) -> None:
        import numpy as np

        batch = next(self.batches)
        ids = self.position_to_cell[batch["index"]]
        self.rows_read += len(ids)
        codes = self.context[ids]
        for c in np.unique(codes):
            where = np.flatnonzero(codes == c)
            self.buffers.setdefault(int(c), []).append((batch["X"][where], ids[where]))
            self.counts[int(c)] = self.counts.get(int(c), 0) + len(where)

    def _take(self, c: int, n: int):
        import numpy as np
        import scipy.sparse as sp

        while self.counts.get(c, 0) < n:
            self._pull()
        blocks = self.buffers[c]
        rows = sp.vstack([b[0] for b in blocks], format="csr") if len(blocks) > 1 else blocks[0][0]
        ids = np.concatenate([b[1] for b in blocks])
        self.buffers[c] = [(rows[n:], ids[n:])] if len(ids) > n else []
        self.counts[c] -= n
        return rows[:n], ids[:n]

    def __call__(self, step_cells):
        """Dense float32 control rows (one per cell, same context) and their cell ids."""
        import numpy as np

        x_control = np.empty((len(step_cells), self.n_genes), dtype=np.float32)
        partner = np.empty(len(step_cells), dtype=np.int64)
        step_context = self.context[step_cells]
        for c in np.unique(step_context):
            where = np.flatnonzero(step_context == c)
            rows, partner[where] = self._take(int(c), len(where))
            x_control[where] = rows.toarray()
        return x_control, partner


def _rows_sampler(batch_size: int):
    """An annbatch sampler that loads exactly the rows it is given, in that order, as one batch."""
    import numpy as np
    from annbatch.abc import Sampler

    class RowsSampler(Sampler):
        def __init__(self) -> None:
            self.rows = np.empty(0, dtype=np.int64)

        @property
        def batch_size(self) -> int:
            return batch_size

        @property
        def shuffle(self) -> bool:
            return False

        def n_batches(self, n_obs: int) -> int:
            return 1

        def validate(self, n_obs: int) -> None:
            if len(self.rows) == 0 or self.rows.min() < 0 or self.rows.max() >= n_obs:
                raise ValueError("rows outside the collection")

        def _sample(self, n_obs: int):
            yield {"requests": self.rows, "splits": [np.arange(len(self.rows))]}

    return RowsSampler()


class _ExactPartners:
    """Given control cells (each cell's own partner, as optimal-transport pairing needs) read through a ``Loader``."""

    def __init__(self, loader_class, collection, load_adata, position_to_cell, partner_of, batch_size: int) -> None:
        import numpy as np

        self.position = np.full(len(partner_of), -1, dtype=np.int64)
        self.position[position_to_cell] = np.arange(len(position_to_cell))
        self.position_to_cell, self.partner_of = position_to_cell, partner_of
        self.sampler = _rows_sampler(batch_size)
        self.loader = loader_class(batch_sampler=self.sampler, return_index=True, preload_to_gpu=False)
        self.loader.use_collection(collection, load_adata=load_adata)
        self.rows_read = 0

    def __call__(self, step_cells):
        import numpy as np

        self.sampler.rows = self.position[self.partner_of[step_cells]]
        (out,) = tuple(self.loader)
        ids = self.position_to_cell[out["index"]]
        self.rows_read += len(ids)
        return out["X"].toarray().astype(np.float32, copy=False), ids


def _position_to_cell(collection, names):
    """Original cell (row of the h5ad) of each row of the collection (``obs_names`` are kept)."""
    import numpy as np

    found = names.get_indexer(collection.obs(columns=["context"]).index)
    if (found < 0).any():
        raise ValueError("cells of the collection not found in the h5ad")
    return found.astype(np.int64)


def run_annbatch(args) -> dict:
    """Epochs of training cells + same-context controls through annbatch's ``Loader`` (runs in a child process).

    ``args.partners``: ``stream`` (random controls of the context from a second, endless shuffled ``Loader``) or
    ``exact`` (each cell's drawn partner, read per step through a ``Loader`` whose sampler requests those rows).
    """
    import anndata as ad
    import numpy as np
    import scipy.sparse as sp
    from annbatch import DatasetCollection, Loader

    start = time.perf_counter()
    zarrs = _use_zarrs(not args.no_zarrs)
    cells = _training_cells(args.file, args.stage, args.seed)
    all_path, controls_path = _collections(args.file)
    all_cells, controls = DatasetCollection(all_path, mode="r"), DatasetCollection(controls_path, mode="r")
    all_to_cell = _position_to_cell(all_cells, cells["names"])
    control_to_cell = _position_to_cell(controls, cells["names"])
    train, batch_size, n_genes, context = cells["train"], cells["batch_size"], cells["n_genes"], cells["context"]

    def x_only(g) -> ad.AnnData:  # X only: obs are looked up by index (annbatch yields every obs column otherwise)
        return ad.AnnData(X=ad.io.sparse_dataset(g["X"]))

    settings = {"chunk_size": args.chunk_size, "preload_nchunks": args.preload_nchunks, "batch_size": batch_size}
    common = {"shuffle": True, "return_index": True, "preload_to_gpu": False, **settings}
    loader = Loader(rng=np.random.default_rng(args.seed), **common).use_collection(all_cells, load_adata=x_only)
    partner_of = np.full(len(context), -1, dtype=np.int64)  # exact: each training cell's partner of the epoch
    if args.partners == "stream":
        control_loader = Loader(rng=np.random.default_rng(args.seed + 1), **common)
        control_loader.use_collection(controls, load_adata=x_only)
        partners_of = _StreamedPartners(control_loader, control_to_cell, context, n_genes)
    else:
        partners_of = _ExactPartners(Loader, controls, x_only, control_to_cell, partner_of, batch_size)
    n_steps = _n_steps(len(train), batch_size)
    step_size = min(batch_size, len(train))
    setup_seconds, setup_rss = time.perf_counter() - start, peak_rss_gb()
    epochs = []
    for epoch in range(args.epochs):
        partner_of[train] = _random_partners(train, context, cells["pools"], args.seed + epoch)
        delivered, partner_ids, rows, steps, partner_seconds = [], [], 0, 0, 0.0
        pending, pending_ids, n_pending = [], [], 0
        partners_of.rows_read = 0
        cpu, tic = _cpu_seconds(), time.perf_counter()
        for batch in loader:
            ids = all_to_cell[batch["index"]]
            rows += len(ids)
            keep = np.flatnonzero(cells["is_train"][ids])
            if steps == n_steps or not len(keep):
                continue  # the epoch's steps are done (drop_last): the stream is still read to its end
            pending.append(batch["X"][keep])
            pending_ids.append(ids[keep])
            n_pending += len(keep)
            while n_pending >= step_size and steps < n_steps:
                stacked = sp.vstack(pending, format="csr") if len(pending) > 1 else pending[0]
                stacked_ids = np.concatenate(pending_ids)
                x = stacked[:step_size].toarray().astype(np.float32, copy=False)
                step_ids = stacked_ids[:step_size]
                pending, pending_ids = [stacked[step_size:]], [stacked_ids[step_size:]]
                n_pending -= step_size
                partner_tic = time.perf_counter()
                x_control, partner = partners_of(step_ids)
                partner_seconds += time.perf_counter() - partner_tic
                delivered.append(step_ids)
                partner_ids.append(partner)
                steps += 1
        seconds, cpu = time.perf_counter() - tic, _cpu_seconds() - cpu
        _check_rows(x, x_control, n_genes)
        if rows != len(all_to_cell) or steps != n_steps:
            raise AssertionError(f"{rows} rows, {steps} steps in an epoch; expected {len(all_to_cell)}, {n_steps}")
        got = np.concatenate(partner_ids)
        if args.partners == "exact" and not np.array_equal(got, partner_of[np.concatenate(delivered)]):
            raise AssertionError("the partners read are not the cells' drawn partners")
        epochs.append(
            {"seconds": seconds, "cpu_seconds": cpu, "partner_seconds": partner_seconds}
            | {"rows_read": rows + partners_of.rows_read}
            | _check_epoch(delivered, partner_ids, cells, n_steps, batch_size)
        )
    described = ", ".join(f"{k}={v}" for k, v in settings.items())
    how = {
        "stream": "partners: random same-context controls from a second shuffled Loader over the controls collection",
        "exact": "partners: each cell's drawn partner, one Loader read per step (custom sampler of those rows)",
    }[args.partners]
    how += (
        f"; collections written with add_adatas defaults, controls n_obs_per_chunk={args.controls_obs_per_chunk or 64}"
    )
    return {
        "arm": f"annbatch, {args.partners} partners",
        "settings": f"Loader(shuffle=True, {described}), codec pipeline {'zarrs' if zarrs else 'zarr-python'}; {how}",
        "zarrs": zarrs,
        **_summary(args, cells, n_steps, setup_seconds, setup_rss, epochs),
        "versions": _versions("numpy", "scipy", "anndata", "h5py", "zarr", "annbatch", "zarrs"),
    }


# ------------------------------------------------------------------------------------------------------ report
def _machine() -> str:
    cpu = platform.processor() or platform.machine()
    return f"{platform.platform()}, {cpu}, {os.cpu_count()} CPU cores visible"


def _versions_text(versions: dict) -> str:
    return ", ".join(f"{k} {v}" for k, v in versions.items() if v is not None)


def _report(rows: list[dict], command: str) -> str:
    lines = [
        "# Reading training minibatches from disk: RowReader (backed h5ad) vs annbatch Loader (zarr collection)",
        "",
        f"Command: `{command}`",
        "",
        f"Machine: {_machine()}.",
        "",
    ]
    seen = set()
    for row in rows:
        if row["arm"] not in seen:
            seen.add(row["arm"])
            lines.append(f"- {row['arm']}: {_versions_text(row['versions'])}; {row['settings']}.")
    lines += [
        "",
        "One epoch of one training stage's reads, no model: per step the next `batch size` training cells and a "
        "control of the same context for each, densified to float32 (two rows per pair). Epoch seconds are the "
        "mean of the epochs after the first (the first is shown apart); partners (s): the part of an epoch spent "
        "getting the control partners' rows; cells/s = training cells (pairs) per second; CPU s = user + system "
        "seconds of the process per epoch (all threads); rows read: rows fetched from disk per epoch (annbatch "
        "streams every cell of the collection, training or not, plus the partners). Conversion: the one-off "
        "writing of annbatch's collections (all cells; controls), in its own process.",
        "",
        "| arm | cells | genes | stage | training cells | batch size | steps | first epoch (s) | epoch (s) "
        "| partners (s) | cells/s | CPU s / epoch | rows read / epoch | peak RSS (GB) | store (GB) "
        "| one-off conversion (s) | conversion peak RSS (GB) |",
        "|---|---:|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        lines.append(
            f"| {r['arm']} | {r['cells']:,} | {r['genes']:,} | {r['stage']} | {r['train_cells']:,} | "
            f"{r['batch_size']} | {r['steps']:,} | {r['first_epoch_s']:.2f} | {r['epoch_s']:.2f} | "
            f"{r['partner_s_per_epoch']:.2f} | {r['cells_per_s']:,.0f} | {r['cpu_s_per_epoch']:.2f} | "
            f"{r['rows_read_per_epoch']:,} | {r['peak_rss_gb']:.2f} | {r['store_gb']:.3f} | "
            f"{r['conversion_s']:.1f} | {r['conversion_peak_rss_gb']:.2f} |"
        )
    lines += ["", "## annbatch / RowReader (ratios; below 1: annbatch faster or smaller)", ""]
    for reference in rows:
        if reference["arm"].startswith("annbatch"):
            continue
        for r in rows:
            if r["arm"].startswith("annbatch") and r["cells"] == reference["cells"]:
                verdict = "at least as fast" if r["epoch_s"] <= reference["epoch_s"] else "slower"
                lines.append(
                    f"- {r['cells']:,} cells, {r['arm']}: epoch time x{r['epoch_s'] / reference['epoch_s']:.2f}, "
                    f"CPU time x{r['cpu_s_per_epoch'] / reference['cpu_s_per_epoch']:.2f}, "
                    f"peak RSS x{r['peak_rss_gb'] / reference['peak_rss_gb']:.2f} ({verdict})."
                )
    lines += ["", f"Per-run details: `{NAME}.csv`.", ""]
    return "\n".join(lines)


def _child(kind: str, args, path: Path, python: str, partners: str | None = None) -> dict:
    command = [python, __file__, "--child", kind, "--file", str(path), "--stage", args.stage]
    command += ["--epochs", str(args.epochs), "--seed", str(args.seed)]
    command += ["--chunk-size", str(args.chunk_size), "--preload-nchunks", str(args.preload_nchunks)]
    command += ["--no-zarrs"] if args.no_zarrs else []
    command += ["--partners", partners] if partners else []
    command += [] if args.dataset_size is None else ["--dataset-size", args.dataset_size]
    if args.controls_obs_per_chunk is not None:
        command += ["--controls-obs-per-chunk", str(args.controls_obs_per_chunk)]
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"{kind} on {path} failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cells", type=int, nargs="+", default=[100_000])
    parser.add_argument("--data-dir", type=Path, default=Path("/tmp/sxdiff_throughput"))
    parser.add_argument("--stage", choices=["diffusion", "state"], default="diffusion")
    parser.add_argument("--epochs", type=int, default=2, help="epochs timed per arm (the first reported apart)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--chunk-size", type=int, default=512, help="annbatch Loader chunk_size")
    parser.add_argument("--preload-nchunks", type=int, default=32, help="annbatch Loader preload_nchunks")
    parser.add_argument("--dataset-size", default=None, help="annbatch add_adatas dataset_size (default: its own)")
    parser.add_argument(
        "--controls-obs-per-chunk", type=int, default=None, help="n_obs_per_chunk of the controls collection (64)"
    )
    parser.add_argument("--no-zarrs", action="store_true", help="zarr-python's codec pipeline instead of zarrs")
    parser.add_argument(
        "--annbatch-partners",
        nargs="+",
        choices=["stream", "exact"],
        default=["stream", "exact"],
        help="annbatch arms: control partners streamed by context, and/or each cell's drawn partner read per step",
    )
    parser.add_argument("--rowreader-python", default=sys.executable, help="interpreter of the RowReader arm")
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument("--child", choices=["rowreader", "convert", "annbatch"], help=argparse.SUPPRESS)
    parser.add_argument("--file", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--partners", choices=["stream", "exact"], default="stream", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        run = {"rowreader": run_rowreader, "convert": run_convert, "annbatch": run_annbatch}[args.child]
        print(json.dumps(run(args)))
        return
    from _on_disk_data import counts_file

    rows = []
    for cells in args.cells:
        path = counts_file(args.data_dir, cells)
        row = _child("rowreader", args, path, args.rowreader_python)
        print({k: v for k, v in row.items() if k != "epochs"}, flush=True)
        rows.append(row)
        converted = _child("convert", args, path, sys.executable)
        print(converted, flush=True)
        for partners in args.annbatch_partners:
            row = _child("annbatch", args, path, sys.executable, partners) | converted
            print({k: v for k, v in row.items() if k != "epochs"}, flush=True)
            rows.append(row)
    import pandas as pd

    args.out.mkdir(parents=True, exist_ok=True)
    frame = pd.DataFrame(rows)
    frame["versions"] = frame["versions"].map(_versions_text)
    frame["epochs"] = frame["epochs"].map(json.dumps)
    frame.to_csv(args.out / f"{NAME}.csv", index=False)
    command = "python benchmarks/annbatch_vs_rowreader.py " + " ".join(sys.argv[1:])
    (args.out / f"{NAME}.md").write_text(_report(rows, command))


if __name__ == "__main__":
    sys.path.insert(0, str(HERE))
    main()

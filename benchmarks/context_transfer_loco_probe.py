"""Probe: how far a task's responses carry over between its training contexts, judged with the baselines.

For one fold of a task, every training context with perturbed cells is left out in turn; the mean shift and the
state-matched shift (``sxdiff.model`` baselines, fitted on everything else) predict its conditions from its own
controls, and a two-term least-squares fit over genes and conditions, observed ~ alpha a + beta (s - a), says how
much of the context-free part (a) and of the state part (s - a) carries over. This is the fit StateXDiff's
``context_transfer="auto"`` makes with per-anchor measured means instead of the state-matched baseline (which
shrinks its per-state deltas and is less noisy). No model is trained.

    python benchmarks/context_transfer_loco_probe.py mcfaline23_unseen_cell_line 0
    python benchmarks/context_transfer_loco_probe.py synthetic_sparse_unseen_context 0
"""

import sys

import numpy as np
import pandas as pd

from sxdiff.benchmark import TASKS
from sxdiff.model import MeanShiftBaseline, StateMatchedBaseline

task = TASKS[sys.argv[1]]
fold = list(task.folds())[int(sys.argv[2])]
ad = fold.adata
ad = ad[(ad.obs["sxdiff_split"].astype(str) != "test").to_numpy()].copy()
keys = dict(perturbation_key="perturbation", control_value="control", dose_key=task.dose_key, context_key="context")


def X(a):
    return np.asarray(a.X.todense() if hasattr(a.X, "todense") else a.X)


ctx_pert = sorted(ad.obs.loc[~ad.obs["is_control"], "context"].astype(str).unique())
M, A, S = [], [], []
for c in ctx_pert:
    inc = (ad.obs["context"].astype(str) == c).to_numpy()
    train = ad[~(inc & ~ad.obs["is_control"].to_numpy())].copy()
    ms = MeanShiftBaseline(**keys).fit(train)
    sm = StateMatchedBaseline(**keys).fit(train)
    ctrl = ad[inc & ad.obs["is_control"].to_numpy()]
    cm = X(ctrl).mean(0)
    conds = ad.obs.loc[inc & ~ad.obs["is_control"].to_numpy(), ["perturbation", task.dose_key]].drop_duplicates()
    for _, row in conds.iterrows():
        cond = pd.DataFrame({"perturbation": [row["perturbation"]], task.dose_key: [row[task.dose_key]]})
        sel = (
            inc
            & (ad.obs["perturbation"] == row["perturbation"]).to_numpy()
            & (ad.obs[task.dose_key] == row[task.dose_key]).to_numpy()
        )
        if sel.sum() < 5:
            continue
        other = (~inc) & (ad.obs["perturbation"] == row["perturbation"]).to_numpy()
        if other.sum() < 5:
            continue
        m = X(ad[sel]).mean(0) - cm
        a = X(ms.predict(ctrl, cond)).mean(0) - cm
        s = X(sm.predict(ctrl, cond)).mean(0) - cm
        M.append(m)
        A.append(a)
        S.append(s)
m, a, s = (np.array(v).ravel() for v in (M, A, S))
Xd = np.stack([a, s - a])
coef = np.linalg.solve(Xd @ Xd.T, Xd @ m)


def mse(p):
    return np.mean((p - m) ** 2)


print(
    sys.argv[1],
    "pairs",
    len(M),
    "alpha,beta",
    coef.round(3),
    "corr a",
    np.corrcoef(m, a)[0, 1].round(3),
    "corr s",
    np.corrcoef(m, s)[0, 1].round(3),
    f"mse none {mse(0 * m):.5f} a {mse(a):.5f} s {mse(s):.5f} fit {mse(coef[0] * a + coef[1] * (s - a)):.5f}",
)

import numpy as np
import pytest
import torch

from sxdiff.module import VMCS, batch_pearson, negative_binomial_log_prob


def test_batch_pearson_equals_numpy_corrcoef_per_dimension():
    rng = np.random.default_rng(0)
    a = rng.normal(size=(64, 5))
    b = 0.5 * a + rng.normal(size=(64, 5))
    rho = batch_pearson(torch.tensor(a), torch.tensor(b)).numpy()
    expected = [np.corrcoef(a[:, j], b[:, j])[0, 1] for j in range(5)]
    np.testing.assert_allclose(rho, expected, atol=1e-6)


def test_negative_binomial_log_prob_matches_scipy():
    from scipy.stats import nbinom

    x, mu, theta = torch.tensor([0.0, 3.0, 10.0]), torch.tensor([2.0, 2.0, 5.0]), torch.tensor([1.5, 1.5, 4.0])
    p = (theta / (theta + mu)).numpy()
    expected = nbinom.logpmf(x.numpy(), theta.numpy(), p)
    np.testing.assert_allclose(negative_binomial_log_prob(x, mu, theta).numpy(), expected, rtol=1e-4)


def _counts_and_protein(n=512, n_genes=60, n_proteins=6, seed=0, hidden_signal=True):
    """RNA driven by a cell-type factor; proteins share it, plus one protein driven by a hidden factor."""
    g = torch.Generator().manual_seed(seed)
    cell_type = torch.randn(n, 2, generator=g)
    hidden = torch.randn(n, generator=g)
    loadings = torch.randn(2, n_genes, generator=g)
    rates = torch.exp(0.8 * cell_type @ loadings + 1.0)
    counts = torch.poisson(rates, generator=g)
    protein = cell_type @ torch.randn(2, n_proteins, generator=g) + 0.3 * torch.randn(n, n_proteins, generator=g)
    if hidden_signal:
        protein[:, 0] = 2.0 * hidden + 0.2 * torch.randn(n, generator=g)
    return counts, protein, hidden


def _train(model, counts, protein, steps=250, seed=0):
    torch.manual_seed(seed)
    optimiser = torch.optim.Adam(model.parameters(), lr=3e-3)
    reliability = torch.ones(protein.shape[1])
    model.train()
    for step in range(steps):
        idx = torch.randint(0, counts.shape[0], (128,), generator=torch.Generator().manual_seed(step))
        state = model.encode(counts[idx], protein[idx], reliability)
        losses = model.losses(counts[idx], state, protein[idx], reliability)
        loss = losses["rna"] / counts.shape[1] + losses["protein"] + 0.1 * losses["alignment"] + losses["decorrelation"]
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
    model.eval()
    return model


def test_rotation_stays_orthogonal_after_training():
    counts, protein, _ = _counts_and_protein(n=256)
    model = _train(VMCS(60, 6, n_latent=8, n_hidden=32), counts, protein, steps=30)
    Q = model.rotation.weight.detach()
    np.testing.assert_allclose((Q.T @ Q).numpy(), np.eye(8), atol=1e-5)


def test_shapes_and_gate_limits():
    model = VMCS(20, 4, n_latent=5, n_hidden=16, gate_temperature=50.0, gate_threshold=0.3).eval()
    agree = model.gate(torch.ones(5))
    disagree = model.gate(torch.full((5,), -1.0))
    assert torch.all(agree > 0.999)
    assert torch.all(disagree < 1e-6)
    # with identical views and full agreement, the state is all shared; with none, all residual
    f = torch.randn(32, 5)
    for rho, shared_expected in ((torch.ones(5), True), (torch.zeros(5) - 1, False)):
        a = model.gate(rho)
        shared, u, w = a * (f + f) / 2, (1 - a) * f, (1 - a) * f
        if shared_expected:
            assert torch.allclose(shared, f, atol=1e-3)
            assert u.abs().max() < 1e-3
            assert w.abs().max() < 1e-3
        else:
            assert shared.abs().max() < 1e-3
            assert torch.allclose(u, f, atol=1e-3)
    state = model.encode(torch.poisson(torch.ones(32, 20) * 2), torch.randn(32, 4), torch.ones(4))
    assert state.z.shape == (32, 15)
    assert state.shared.shape == (32, 5)
    assert torch.all((state.quality >= 0) & (state.quality <= 1))
    rna_only = VMCS(20, 0, n_latent=5, use_protein=False).eval()
    assert rna_only.encode(torch.ones(3, 20)).z.shape == (3, 15)  # the same state width as with protein


def test_quality_is_reliability_weighted_agreement():
    model = VMCS(20, 4, n_latent=5).eval()
    x, p = torch.poisson(torch.ones(8, 20) * 2), torch.randn(8, 4)
    state = model.encode(x, p, torch.ones(4))
    a = state.gate
    cosine = torch.nn.functional.cosine_similarity(a * state.f_rna, a * state.f_protein, dim=1)
    torch.testing.assert_close(state.quality, (1 + cosine) / 2)
    low = model.encode(x, p, torch.full((4,), 0.2)).quality
    assert torch.all(low <= 0.2 + 1e-6)


def _probe_r2(latent: np.ndarray, target: np.ndarray) -> float:
    n = latent.shape[0] // 2
    design = np.hstack([latent, np.ones((latent.shape[0], 1))])
    coef, *_ = np.linalg.lstsq(design[:n], target[:n], rcond=None)
    residual = target[n:] - design[n:] @ coef
    return 1 - residual.var() / target[n:].var()


def test_protein_signal_absent_from_rna_is_recovered_from_the_vmcs_state_only():
    counts, protein, hidden = _counts_and_protein(n=1024)
    with_protein = _train(VMCS(60, 6, n_latent=8, n_hidden=64), counts, protein)
    rna_only = _train(VMCS(60, 0, n_latent=8, n_hidden=64, use_protein=False), counts, protein)
    with torch.no_grad():
        z_joint = with_protein.encode(counts, protein, torch.ones(6)).z.numpy()
        z_rna = rna_only.encode(counts).z.numpy()
    r2_joint, r2_rna = _probe_r2(z_joint, hidden.numpy()), _probe_r2(z_rna, hidden.numpy())
    assert r2_joint > 0.6
    assert r2_rna < 0.1
    assert r2_joint - r2_rna > 0.5


def test_rna_only_model_refuses_protein_decoding_and_protein_model_needs_protein():
    with pytest.raises(ValueError, match="no protein decoder"):
        VMCS(5, 0, use_protein=False).decode_protein(torch.zeros(1, 32))
    with pytest.raises(ValueError, match="pass protein features"):
        VMCS(5, 2).encode(torch.ones(2, 5))

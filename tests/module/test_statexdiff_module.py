"""StateXDiffModule: decoding without a floor bias, triplet negatives, EMA scope, zero dose, set invariance."""

import numpy as np
import pytest
import torch

from sxdiff.module import StateXDiffModule, mismatch_partners


def _module(**kwargs) -> StateXDiffModule:
    torch.manual_seed(0)
    module = StateXDiffModule(n_genes=12, n_proteins=0, n_structure=4, n_template=14, n_latent=3, **kwargs)
    n_drugs = 5
    template = torch.zeros(n_drugs, 14)
    template[0, 0] = template[1, 0] = 1.0  # drugs 0 and 1 share their target
    template[2, 1], template[3, 2], template[4, 13] = 1.0, -1.0, 1.0
    module.drug_encoder.set_drug_features(
        torch.randn(n_drugs, 4), template, torch.ones(n_drugs, dtype=torch.bool), torch.ones(n_drugs, dtype=torch.bool)
    )
    return module.eval()


def test_decreases_of_non_negative_values_reach_the_predicted_mean():
    module = _module(gene_likelihood="normal")
    module.nonnegative.fill_(True)
    rng = np.random.default_rng(0)
    values = torch.as_tensor(rng.binomial(1, 0.2, (4000, 3)) * rng.gamma(2.0, 1.0, (4000, 3)), dtype=torch.float32)
    mean = values.mean(dim=0)
    change = torch.tensor([-0.1, -0.3, 0.5]).expand_as(values)
    out = module.apply_log_change(values, change, mean)
    assert torch.all(out >= 0)
    assert torch.allclose(out.mean(dim=0), mean + change[0], atol=1e-4)
    assert torch.all(out[:, :2][values[:, :2] == 0] == 0)  # zeros stay 0 under a decrease
    clamped = (values + change).clamp_min(0).mean(dim=0)  # what a clamp at 0 leaves of the decrease
    assert clamped[0] - mean[0] > -0.08
    out_floor = module.apply_log_change(values, torch.full_like(values, -100.0), mean)
    assert torch.all(out_floor == 0)


def test_values_that_may_be_negative_get_the_change_added():
    module = _module(gene_likelihood="normal")
    module.nonnegative.fill_(False)
    values = torch.randn(50, 12)
    change = torch.randn(50, 12)
    assert torch.allclose(module.apply_log_change(values, change, values.mean(0)), values + change)


def test_triplet_negatives_differ_in_targets_and_are_no_subsets():
    module = _module()
    #            {0}      {1} same target as 0   {0,2}   {3}     {2}
    index = torch.tensor([[0, 0], [1, 0], [0, 2], [3, 0], [2, 0]])
    mask = torch.tensor([[True, False], [True, False], [True, True], [True, False], [True, False]])
    groups = module.drug_encoder.target_group[index]
    partner, found = mismatch_partners(groups, mask)
    sets = [set(groups[i][mask[i]].tolist()) for i in range(5)]
    for i in range(5):
        if found[i]:
            j = int(partner[i])
            assert not sets[i] <= sets[j], (i, j)
            assert not sets[j] <= sets[i], (i, j)
    assert found[0]
    assert int(partner[0]) == 3  # not drug 1 (same target), not {0, 2} (superset)
    assert int(partner[2]) == 3


def _triplet_case(n_proteins: int, triplet_fraction: float = 1.0):
    """A module with random weights, a batch, and the triplet two ways: ``_triplet`` and the whole-batch formula.

    ``whole_batch(rows)`` computes every row's mismatched parts from scratch and averages over ``rows`` (default: the
    rows with a partner whose drugs were not dropped).
    """
    from types import SimpleNamespace

    from sxdiff.module import quality_triplet
    from sxdiff.module._denoiser import Condition

    reference = _module()
    torch.manual_seed(1)
    module = StateXDiffModule(
        n_genes=12, n_proteins=n_proteins, n_structure=4, n_template=14, n_latent=3, triplet_fraction=triplet_fraction
    )
    module.drug_encoder.set_drug_features(
        reference.drug_encoder.structure,
        reference.drug_encoder.template,
        reference.drug_encoder.has_structure,
        reference.drug_encoder.has_targets,
    )
    module.eval()  # no dropout: the two computations then draw nothing at random
    with torch.no_grad():
        for parameter in module.parameters():
            parameter.add_(0.05 * torch.randn_like(parameter))  # zero-initialised heads would make every cosine 0
    if n_proteins:
        module.set_protein_reliability(torch.tensor([1.0, 0.5, 0.1]))
    index = torch.tensor([[0, 0], [1, 0], [0, 2], [3, 0], [2, 0], [4, 0]])
    mask = torch.tensor([[True, False], [True, False], [True, True], [True, False], [True, False], [True, False]])
    dose = mask.float()
    tensors = {"drug_index": index, "drug_dose": dose, "drug_mask": mask}
    n = index.shape[0]
    z_control, x_t, target = (torch.randn(n, module.n_state) for _ in range(3))
    protein = torch.randn(n, n_proteins) if n_proteins else None
    t = torch.randint(0, module.schedule.n_steps, (n,))
    drop = torch.tensor([False, True, False, False, False, False])
    state = SimpleNamespace(quality=torch.rand(n))
    sigma = module.schedule.alpha_sigma(t)[1].unsqueeze(-1)

    def new() -> torch.Tensor:
        conditioned = module.condition(z_control, protein, index, dose, mask, identifiable_pairs_only=True)
        v_hat = module.denoiser(x_t, t, conditioned.condition, drop_drugs=drop)
        expected = conditioned.composed.latent
        return module._triplet(tensors, conditioned, x_t, t, v_hat, target, expected, drop, state)

    def whole_batch(rows: torch.Tensor | None = None) -> torch.Tensor:
        condition, composed = module.condition(z_control, protein, index, dose, mask, identifiable_pairs_only=True)[:2]
        v_hat = module.denoiser(x_t, t, condition, drop_drugs=drop)
        partner, found = mismatch_partners(module.drug_encoder.target_group[index], mask)
        mismatched = Condition(
            condition.control_state, condition.drug_tokens[partner], mask[partner], protein, condition.reliability
        )
        composed_mis = module.condition(
            z_control, protein, index[partner], dose[partner], mask[partner], identifiable_pairs_only=True
        ).composed
        v_mis = module.denoiser(x_t, t, mismatched) - sigma * composed_mis.latent
        full_target = target - sigma * composed.latent.detach()
        v_true = v_hat - sigma * composed.latent
        counted = found & ~drop if rows is None else rows
        return quality_triplet(v_true, v_mis, full_target, state.quality, counted, margin=module.triplet_margin)

    return module, x_t, drop, new, whole_batch


@pytest.mark.parametrize("n_proteins", [0, 3])
def test_triplet_on_the_rows_with_a_partner_equals_the_whole_batch_formula(n_proteins):
    """Mismatched velocities only for rows that count: the value and its gradients are the whole-batch formula's."""
    module, _, _, new, whole_batch = _triplet_case(n_proteins)
    values, gradients = [], []
    for loss in (new, whole_batch):
        module.zero_grad()
        value = loss()
        value.backward()
        values.append(value.detach())
        gradients.append([p.grad.clone() if p.grad is not None else torch.zeros_like(p) for p in module.parameters()])
    assert float(values[1]) > 0
    torch.testing.assert_close(values[0], values[1])
    assert sum(float(g.abs().sum()) for g in gradients[1]) > 0
    for got, want in zip(*gradients, strict=True):
        torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-6)


def test_triplet_fraction_averages_over_a_random_subset_of_the_rows_in_training_only():
    """``triplet_fraction=0.5`` of 5 counted rows: 3 rows in training (the mean over those), all 5 in evaluation."""
    module, x_t, drop, new, whole_batch = _triplet_case(3, triplet_fraction=0.5)
    seen: list[torch.Tensor] = []
    hook = module.denoiser.register_forward_hook(lambda _m, inputs, _o: seen.append(inputs[0].detach()))
    module.training = True  # the top module only: submodules keep evaluation mode, so no dropout is drawn
    subsets = set()
    for seed in range(6):
        torch.manual_seed(seed)
        seen.clear()
        value = new()
        rows = torch.tensor([int((x_t == row).all(dim=1).nonzero()[0, 0]) for row in seen[1]])
        assert rows.numel() == 3
        assert not drop[rows].any()
        subsets.add(tuple(rows.tolist()))
        counted = torch.zeros(x_t.shape[0], dtype=torch.bool)
        counted[rows] = True
        torch.testing.assert_close(value, whole_batch(counted))
    assert len(subsets) > 1  # drawn at random, not always the same rows
    module.training = False
    seen.clear()
    torch.testing.assert_close(new(), whole_batch())
    assert seen[1].shape[0] == 5
    hook.remove()
    with pytest.raises(ValueError, match="triplet_fraction"):
        StateXDiffModule(n_genes=12, n_proteins=0, n_structure=4, n_template=14, triplet_fraction=0.0)


def test_ema_averages_every_diffusion_stage_weight_and_sampling_uses_it():
    module = _module()
    module.reset_ema()
    composer_weight = module.composer.out.weight
    before = composer_weight.detach().clone()
    with torch.no_grad():
        composer_weight.add_(1.0)
    module.update_ema()  # after one update the average moved towards the live weights, not onto them
    with module.averaged_weights():
        averaged = composer_weight.detach().clone()
    assert torch.allclose(composer_weight, before + 1.0)  # live weights restored after the block
    assert torch.all(averaged > before)
    assert torch.all(averaged < before + 1.0)
    assert module.ema_weights.numel() == sum(
        p.numel() for n, p in module.named_parameters() if not n.startswith("vmcs.")
    )


def test_zero_dose_predicts_no_mean_change_and_sets_are_order_free():
    module = _module(gene_likelihood="normal", composition="interaction")
    module.nonnegative.fill_(False)
    for parameter in module.composer.parameters():
        torch.nn.init.normal_(parameter, std=0.2)
    x = torch.randn(6, 12)
    index = torch.tensor([[2, 3]]).expand(6, 2)
    mask = torch.ones(6, 2, dtype=torch.bool)
    zero = module.sample(x, None, index, torch.zeros(6, 2), mask, n_steps=2, generator=torch.Generator().manual_seed(0))
    state = module.encode(x, None)
    composed = module.condition(state.z, None, index, torch.zeros(6, 2), mask).composed
    assert composed.genes.abs().max() < 1e-6
    assert zero["log_change"].shape == (6, 12)
    dose = torch.tensor([[0.5, 2.0]]).expand(6, 2)
    forward = module.condition(state.z, None, index, dose, mask).composed
    backward = module.condition(state.z, None, index.flip(1), dose.flip(1), mask).composed
    assert torch.allclose(forward.genes, backward.genes, atol=1e-5)
    assert forward.genes.abs().max() > 1e-3


def test_sampling_noise_follows_the_generator():
    module = _module(gene_likelihood="normal")
    x = torch.randn(4, 12)
    index, dose, mask = torch.tensor([[2]]).expand(4, 1), torch.ones(4, 1), torch.ones(4, 1, dtype=torch.bool)
    runs = [
        module.sample(x, None, index, dose, mask, n_steps=3, generator=torch.Generator().manual_seed(s))["z"]
        for s in (1, 1, 2)
    ]
    assert torch.equal(runs[0], runs[1])
    assert not torch.equal(runs[0], runs[2])


def test_the_composer_reads_states_through_the_nearest_anchor():
    module = _module(n_state_anchors=2)
    generator = torch.Generator().manual_seed(0)
    n_state = module.n_state
    centres = torch.zeros(2, n_state)
    centres[1, 0] = 20.0
    states = torch.cat([centres[i] + torch.randn(300, n_state, generator=generator) for i in range(2)])
    module.calibrate(torch.randn(600, n_state, generator=generator), states, nonnegative=True)
    assert int(module.n_anchors) == 2
    anchored = module.anchor(states)
    # every cell is read as one of the two anchors, each close to its cluster's centre
    assert torch.unique(anchored, dim=0).shape[0] == 2
    assert torch.allclose(anchored[:300].mean(0), centres[0], atol=0.3)
    assert torch.allclose(anchored[300:].mean(0), centres[1], atol=0.3)
    # at most one anchor per 50 cells
    module.calibrate(torch.randn(60, n_state, generator=generator), states[::10], nonnegative=True)
    assert int(module.n_anchors) == 1
    # without anchors the composer sees each cell's own state
    plain = _module(n_state_anchors=0)
    plain.calibrate(torch.randn(600, n_state, generator=generator), states, nonnegative=True)
    assert torch.equal(plain.anchor(states), states)


def test_variation_scale_multiplies_the_sampled_residual():
    module = _module(gene_likelihood="normal")
    module.nonnegative.fill_(False)
    for parameter in module.denoiser.parameters():
        torch.nn.init.normal_(parameter, std=0.2)
    x = torch.randn(8, 12)
    index, dose, mask = torch.tensor([[2]]).expand(8, 1), torch.ones(8, 1), torch.ones(8, 1, dtype=torch.bool)
    state = module.encode(x, None)
    composed = module.condition(state.z, None, index, dose, mask).composed

    def sample(scale: float) -> dict:
        module.set_variation_scale(scale)
        return module.sample(x, None, index, dose, mask, n_steps=3, generator=torch.Generator().manual_seed(0))

    full, half, none = sample(1.0), sample(0.5), sample(0.0)
    # the residual around the predicted mean state shrinks in proportion; at 0 every cell gets the mean change
    mean_state = state.z + composed.latent * module.state_scale
    assert torch.allclose(half["z"] - mean_state, 0.5 * (full["z"] - mean_state), atol=1e-5)
    assert (full["z"] - mean_state).abs().max() > 1e-2
    assert torch.allclose(none["log_change"], composed.genes, atol=1e-6)
    assert (full["log_change"] - composed.genes).abs().max() > 1e-3
    # the mean change over the cells does not depend on the scale
    assert torch.allclose(full["log_change"].mean(0), none["log_change"].mean(0), atol=1e-5)
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        module.set_variation_scale(1.5)


def test_state_spread_scales_the_expected_change_around_each_contexts_mean():
    module = _module(gene_likelihood="normal", n_state_anchors=0)  # each cell's own state: a per-cell change
    module.nonnegative.fill_(False)
    torch.nn.init.normal_(module.composer.deviation[-1].weight, std=0.5)
    torch.nn.init.normal_(module.composer.pair[-1].weight, std=0.5)  # the interaction also reads the state
    generator = torch.Generator().manual_seed(0)
    x = torch.randn(10, 12, generator=generator)
    x[5:] += 2.0  # a second context in another state
    contexts = [slice(0, 5), slice(5, 10)]
    index, dose, mask = torch.tensor([[2, 3]]).expand(10, 2), torch.ones(10, 2), torch.ones(10, 2, dtype=torch.bool)
    state = module.encode(x, None)
    _, composed = module.expected_change(state, None, index, dose, mask)
    total = torch.cat([composed.latent, composed.genes], dim=1)
    context_mean = torch.cat([total[rows].mean(0).expand(5, -1) for rows in contexts])
    residual = torch.zeros(10, module.n_state)
    assert (composed.interaction[:5] - composed.interaction[:5].mean(0)).abs().max() > 1e-3

    def predicted(spread: float, mean=context_mean) -> dict:
        return module.predicted_change(x, state, composed, residual, 0.0, state_spread=spread, context_mean=mean)

    full, half, none = predicted(1.0), predicted(0.5), predicted(0.0)
    assert torch.allclose(full["log_change"], composed.genes, atol=1e-6)
    genes, latent = context_mean[:, module.n_state :], context_mean[:, : module.n_state]
    for rows in contexts:
        spread = full["log_change"][rows] - genes[rows]
        assert spread.abs().max() > 1e-3  # the cells of a context do get different changes
        assert torch.allclose(half["log_change"][rows] - genes[rows], 0.5 * spread, atol=1e-6)
    # at 0 each source gets its context's mean change, in genes and in the latent state
    assert torch.allclose(none["log_change"], genes, atol=1e-6)
    assert torch.allclose(none["z"], state.z + latent * module.state_scale, atol=1e-5)
    assert (genes[0] - genes[5]).abs().max() > 1e-3  # the contexts keep their different responses
    # without context means the batch is one context
    assert torch.allclose(predicted(0.0, None)["log_change"], composed.genes.mean(0).expand(10, -1), atol=1e-6)
    # the sampler uses the module's factor
    module.set_variation_scale(0.0)
    module.set_state_spread(0.0)
    sampled = module.sample(x, None, index, dose, mask, n_steps=2, generator=generator, context_mean=context_mean)
    assert torch.allclose(sampled["log_change"], none["log_change"], atol=1e-6)
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        module.set_state_spread(-0.1)

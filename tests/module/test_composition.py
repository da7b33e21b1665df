"""The composer: additive by construction, interaction only for pairs, state effects zero at the mean state."""

import pytest
import torch

from sxdiff.module import PerturbationComposer, masked_sum


def _composer(composition="interaction", state_effects=True, seed=0):
    torch.manual_seed(seed)
    composer = PerturbationComposer(8, 6, 20, n_hidden=16, composition=composition, state_effects=state_effects)
    for parameter in composer.parameters():  # move the zero-initialised parts away from 0
        torch.nn.init.normal_(parameter, std=0.3)
    return composer


def _sets():
    e = torch.randn(1, 2, 8).expand(3, 2, 8).contiguous()
    response = torch.tensor([[0.7, 0.0], [0.0, 0.4], [0.7, 0.4]])
    mask = torch.tensor([[True, False], [False, True], [True, True]])
    return e, response, mask


@pytest.mark.parametrize("state_effects", [True, False])
def test_additive_composition_is_the_sum_of_the_singles(state_effects):
    composer = _composer("additive", state_effects)
    e, response, mask = _sets()
    state = torch.randn(1, 6).expand(3, 6)
    out = composer(e, response, mask, state)
    assert torch.allclose(out.genes[0] + out.genes[1], out.genes[2], atol=1e-5)
    assert torch.allclose(out.latent[0] + out.latent[1], out.latent[2], atol=1e-5)


def test_interaction_is_zero_for_singles_and_starts_at_zero():
    composer = _composer("interaction")
    e, response, mask = _sets()
    state = torch.randn(1, 6).expand(3, 6)
    out = composer(e, response, mask, state)
    assert torch.all(out.interaction[:2] == 0)
    assert out.interaction[2].abs().max() > 1e-3  # a trained (here: randomised) pair term moves the pair
    assert torch.allclose(out.genes[0] + out.genes[1] + out.interaction[2, 6:], out.genes[2], atol=1e-5)
    torch.manual_seed(0)
    fresh = PerturbationComposer(8, 6, 20, n_hidden=16, composition="interaction")
    assert fresh(e, response, mask, state).interaction.abs().max() == 0  # zero-initialised output layer


def test_pooled_composition_is_not_additive():
    composer = _composer("pooled")
    e, response, mask = _sets()
    out = composer(e, response, mask, torch.zeros(3, 6))
    assert not torch.allclose(out.genes[0] + out.genes[1], out.genes[2], atol=1e-3)


def test_state_deviation_is_zero_at_the_mean_state_and_differs_between_states():
    composer = _composer("additive", state_effects=True)
    e, response, mask = _sets()
    at_mean = composer(e, response, mask, torch.zeros(3, 6))
    assert at_mean.deviation.abs().max() < 1e-6
    a = composer(e, response, mask, torch.full((3, 6), 1.0))
    b = composer(e, response, mask, torch.full((3, 6), -1.0))
    assert (a.genes - b.genes).abs().max() > 1e-2
    context_free = _composer("additive", state_effects=False)
    assert torch.allclose(
        context_free(e, response, mask, torch.full((3, 6), 1.0)).genes,
        context_free(e, response, mask, torch.full((3, 6), -1.0)).genes,
    )


def test_zero_dose_and_padding_contribute_nothing():
    composer = _composer("interaction")
    e = torch.randn(2, 3, 8)
    response = torch.tensor([[0.5, 0.0, 0.9], [0.5, 0.9, 0.9]])
    mask = torch.tensor([[True, True, False], [True, False, False]])
    e[1, 0] = e[0, 0]
    out = composer(e, response, mask, torch.zeros(2, 6))
    assert torch.allclose(out.genes[0], out.genes[1], atol=1e-5)  # member 2 at dose 0, member 3 padding


def test_set_order_does_not_matter():
    composer = _composer("interaction")
    e = torch.randn(1, 3, 8)
    response = torch.tensor([[0.3, 0.6, 0.9]])
    mask = torch.ones(1, 3, dtype=torch.bool)
    state = torch.randn(1, 6)
    permutation = torch.tensor([2, 0, 1])
    a = composer(e, response, mask, state)
    b = composer(e[:, permutation], response[:, permutation], mask[:, permutation], state)
    assert torch.allclose(a.genes, b.genes, atol=1e-5)


def test_masked_sum_and_invalid_composition():
    values = torch.arange(6.0).view(1, 3, 2)
    assert masked_sum(values, torch.tensor([[True, False, True]])).tolist() == [[4.0, 6.0]]
    with pytest.raises(ValueError, match="composition"):
        PerturbationComposer(8, 6, 20, composition="sum")

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


def _identity_composer(state_effects=True):
    torch.manual_seed(1)
    composer = PerturbationComposer(
        8, 6, 20, n_hidden=16, composition="additive", state_effects=state_effects, n_identities=4
    )
    for parameter in composer.parameters():
        torch.nn.init.normal_(parameter, std=0.3)
    return composer


def test_identities_only_for_perturbations_described_at_training_time():
    composer = _identity_composer(state_effects=False)
    e = torch.randn(1, 1, 8).expand(2, 1, 8)
    response, mask, state = torch.ones(2, 1), torch.ones(2, 1, dtype=torch.bool), torch.zeros(2, 6)
    with_identity = composer(e, response, mask, state, drug_index=torch.tensor([[2], [2]]))
    beyond = composer(e, response, mask, state, drug_index=torch.tensor([[7], [7]]))  # described later: none
    plain = composer(e, response, mask, state)
    assert torch.allclose(beyond.genes, plain.genes)
    expected = torch.nn.functional.linear(composer.member(e[:, 0]) + composer.identity[2], composer.out.weight)
    assert torch.allclose(with_identity.genes, (expected + composer.out.bias)[:, 6:], atol=1e-5)


def test_novel_perturbations_shrink_towards_the_average_trained_one():
    composer = _identity_composer(state_effects=True)
    composer.mark_trained(torch.tensor([0, 1, 2]))
    with torch.no_grad():
        composer.identity[3] = 0.0  # never trained: still at its initial 0
    reference = torch.randn(3, 8)  # embeddings of the trained perturbations 0, 1, 2
    novel_e = torch.randn(1, 1, 8)
    index, response, mask = torch.tensor([[3]]), torch.ones(1, 1), torch.ones(1, 1, dtype=torch.bool)
    state = torch.randn(1, 6)
    assert composer.novel(index, mask).all()
    assert not composer.novel(torch.tensor([[1]]), mask).any()

    def genes(embedding, idx, shrinkage, ref=reference):
        return composer(embedding, response, mask, state, None, idx, ref, shrinkage).genes

    average = (composer.member(reference) + composer.identity[:3]).mean(dim=0)
    own = composer(novel_e, response, mask, state, None, None)  # its description alone (no identity) ...
    # ... λ = 0 replaces it by the average trained representation, whatever the description
    other_e = torch.randn(1, 1, 8)
    assert torch.allclose(genes(novel_e, index, (0.0, 1.0)), genes(other_e, index, (0.0, 1.0)), atol=1e-5)
    assert torch.allclose(genes(novel_e, index, (1.0, 1.0)), own.genes, atol=1e-5)
    halfway = genes(novel_e, index, (0.5, 0.0))
    h = 0.5 * average + 0.5 * composer.member(novel_e[0, 0])
    assert torch.allclose(halfway[0], (composer.out(h))[6:], atol=1e-5)  # μ = 0: no state deviation
    # trained perturbations are never shrunk
    trained = torch.tensor([[1]])
    assert torch.allclose(genes(novel_e, trained, (0.0, 0.0)), genes(novel_e, trained, (1.0, 1.0)), atol=1e-6)


def test_interaction_trains_only_on_pairs_whose_members_were_measured_alone():
    composer = PerturbationComposer(8, 6, 20, n_hidden=16, composition="interaction", n_identities=4)
    for parameter in composer.parameters():
        torch.nn.init.normal_(parameter, std=0.3)
    composer.mark_trained(torch.tensor([0, 1, 2, 3]), alone=torch.tensor([0, 1]))
    e, response, mask = torch.randn(2, 2, 8), torch.ones(2, 2), torch.ones(2, 2, dtype=torch.bool)
    index = torch.tensor([[0, 1], [2, 3]])  # the first pair's members were measured alone, the second's not
    state = torch.randn(2, 6)
    training = composer(e, response, mask, state, drug_index=index, identifiable_pairs_only=True)
    assert training.interaction[0].abs().max() > 1e-3
    assert torch.all(training.interaction[1] == 0)
    prediction = composer(e, response, mask, state, drug_index=index)  # a learned interaction applies to any pair
    assert prediction.interaction[1].abs().max() > 1e-3


def test_measured_corrections_add_per_trained_member_and_compose():
    """``measured_correction`` adds ``r_k c_k`` to the genes part for trained members only; a pair gets the sum."""
    torch.manual_seed(0)
    composer = PerturbationComposer(8, 3, 5, n_hidden=16, composition="additive", state_effects=False, n_identities=3)
    composer.mark_trained(torch.tensor([0, 1]))
    embedding = torch.randn(1, 2, 8).expand(3, 2, 8)
    index = torch.tensor([[0, 0], [1, 0], [0, 1]])
    mask = torch.tensor([[True, False], [True, False], [True, True]])
    response = torch.tensor([[2.0, 0.0], [1.0, 0.0], [2.0, 1.0]])
    state = torch.zeros(3, 3)
    before = composer(embedding, response, mask, state, drug_index=index)
    composer.measured_correction[0] = torch.arange(5.0)
    composer.measured_correction[1] = torch.ones(5)
    composer.measured_correction[2] = 100.0  # never trained: never used
    after = composer(embedding, response, mask, state, drug_index=index)
    torch.testing.assert_close(after.latent, before.latent)  # the latent part is untouched
    added = after.genes - before.genes
    torch.testing.assert_close(added[0], 2.0 * torch.arange(5.0))
    torch.testing.assert_close(added[1], torch.ones(5))
    torch.testing.assert_close(added[2], 2.0 * torch.arange(5.0) + torch.ones(5))
    novel = torch.tensor([[2, 0]])
    with_hundreds = composer(embedding[:1], response[:1], mask[:1], state[:1], drug_index=novel)
    composer.measured_correction[2] = 0.0
    without = composer(embedding[:1], response[:1], mask[:1], state[:1], drug_index=novel)
    torch.testing.assert_close(with_hundreds.genes, without.genes)

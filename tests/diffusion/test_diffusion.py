import pytest
import torch

from sxdiff.diffusion import (
    CosineSchedule,
    ddim_sample,
    ddim_timesteps,
    ddpm_sample,
    eps_from_v,
    guided_v,
    min_snr_weight,
    v_target,
    x0_from_v,
)


@pytest.fixture(scope="module")
def schedule():
    return CosineSchedule(1000)


def test_schedule_is_monotone_and_bounded(schedule):
    a = schedule.alpha_bar
    assert a.shape == (1000,)
    assert torch.all(a[1:] < a[:-1])
    assert a[0] > 0.999
    assert a[-1] < 1e-4
    alpha, sigma = schedule.alpha_sigma(torch.arange(1000))
    torch.testing.assert_close(alpha**2 + sigma**2, torch.ones(1000))


def test_v_parameterisation_inverts_exactly(schedule):
    g = torch.Generator().manual_seed(0)
    x0, noise = torch.randn(64, 8, generator=g), torch.randn(64, 8, generator=g)
    t = torch.randint(0, 1000, (64,), generator=g)
    x_t = schedule.q_sample(x0, t, noise)
    v = v_target(schedule, x0, noise, t)
    torch.testing.assert_close(x0_from_v(schedule, x_t, v, t), x0, atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(eps_from_v(schedule, x_t, v, t), noise, atol=1e-4, rtol=1e-4)


def _gaussian_oracle(schedule, mean, std):
    """Exact v-prediction for data ~ N(mean, std^2): from E[x0 | x_t]."""

    def velocity(x_t, t):
        alpha, sigma = (v.view(-1, 1) for v in schedule.alpha_sigma(t))
        x0 = mean + alpha * std**2 / (alpha**2 * std**2 + sigma**2) * (x_t - alpha * mean)
        eps = (x_t - alpha * x0) / sigma
        return alpha * eps - sigma * x0

    return velocity


@pytest.mark.parametrize(("n_steps", "std_tolerance"), [(10, 0.1), (50, 0.02), (200, 0.01)])
def test_ddim_with_the_exact_model_samples_the_data_distribution(schedule, n_steps, std_tolerance):
    """Few DDIM steps shrink the spread a little (ODE discretisation); the mean is exact."""
    oracle = _gaussian_oracle(schedule, mean=2.0, std=0.5)
    noise = torch.randn(20000, 1, generator=torch.Generator().manual_seed(1))
    samples = ddim_sample(oracle, schedule, noise, n_steps=n_steps)
    assert samples.mean().item() == pytest.approx(2.0, abs=0.02)
    assert samples.std().item() == pytest.approx(0.5, abs=std_tolerance)


def test_ddim_is_deterministic_and_ddpm_matches_the_distribution(schedule):
    oracle = _gaussian_oracle(schedule, mean=-1.0, std=0.3)
    noise = torch.randn(4000, 1, generator=torch.Generator().manual_seed(2))
    a = ddim_sample(oracle, schedule, noise, n_steps=25)
    b = ddim_sample(oracle, schedule, noise, n_steps=25)
    torch.testing.assert_close(a, b)
    short = CosineSchedule(100)
    samples = ddpm_sample(_gaussian_oracle(short, -1.0, 0.3), short, noise, generator=torch.Generator().manual_seed(3))
    assert samples.mean().item() == pytest.approx(-1.0, abs=0.03)
    assert samples.std().item() == pytest.approx(0.3, abs=0.03)


def test_timesteps_guidance_and_min_snr(schedule):
    steps = ddim_timesteps(1000, 10)
    assert steps[0] == 999
    assert steps[-1] == 0
    assert len(steps) == 10
    with pytest.raises(ValueError, match="n_steps"):
        ddim_timesteps(1000, 0)
    c, u = torch.randn(5), torch.randn(5)
    torch.testing.assert_close(guided_v(c, u, 1.0), c)
    torch.testing.assert_close(guided_v(c, u, 0.0), u)
    w = min_snr_weight(schedule, torch.tensor([0, 500, 999]))
    assert torch.all(w > 0)
    assert torch.all(w <= 1)
    assert w[0] < w[1]  # high-SNR (nearly clean) steps are down-weighted

import pytest
import torch

from mil_core.losses import (critic_loss, generator_adv_loss, gradient_penalty, noise_amplitude,
                             reconstruction_loss)


def _linear_critic(w):
    return lambda x: (x * w).flatten(1).sum(1)  # D(x) = <w, x>, gradient w everywhere


@pytest.mark.parametrize("scale", [0.5, 1.0, 3.0])
def test_gradient_penalty_closed_form_for_a_linear_critic(scale):
    torch.manual_seed(0)
    w = torch.randn(1, 3, 4, 5)
    w = w / w.norm() * scale  # ‖∇D‖ = scale
    real, fake = torch.randn(6, 3, 4, 5), torch.randn(6, 3, 4, 5)
    gp = gradient_penalty(_linear_critic(w), real, fake)
    assert gp.item() == pytest.approx((scale - 1) ** 2, abs=1e-6)


def test_critic_loss_parts_and_no_generator_gradient():
    w = torch.full((1, 3, 2, 2), 0.5, requires_grad=True)  # ‖w‖ = sqrt(12)·0.5
    real = torch.ones(2, 3, 2, 2)
    fake = torch.zeros(2, 3, 2, 2, requires_grad=True)
    loss, parts = critic_loss(_linear_critic(w), real, fake, lambda_grad=0.1)
    assert parts["d_real"] == pytest.approx(6.0) and parts["d_fake"] == pytest.approx(0.0)
    assert parts["wasserstein"] == pytest.approx(6.0)
    expected_gp = (12 ** 0.5 * 0.5 - 1) ** 2
    assert loss.item() == pytest.approx(-6.0 + 0.1 * expected_gp, rel=1e-5)
    loss.backward()
    assert fake.grad is None and w.grad is not None  # only the critic gets gradients


def test_generator_and_reconstruction_losses():
    w = torch.ones(1, 3, 2, 2)
    fake = torch.full((2, 3, 2, 2), 2.0, requires_grad=True)
    g = generator_adv_loss(_linear_critic(w), fake)
    assert g.item() == pytest.approx(-24.0)
    g.backward()
    assert torch.allclose(fake.grad, torch.full_like(fake, -0.5))  # −w / B
    assert reconstruction_loss(torch.zeros(1, 3, 2, 2), torch.full((1, 3, 2, 2), 0.5)).item() == \
        pytest.approx(0.25)


def test_noise_amplitude_rule():
    real = torch.zeros(1, 3, 8, 8)
    rec = torch.full((1, 3, 8, 8), 0.3)
    assert noise_amplitude(real, rec) == pytest.approx(0.1 * 0.3)  # SinGAN: 0.1·RMSE
    assert noise_amplitude(real, rec, factor=1.0) == pytest.approx(0.3)  # MIL: RMSE
    assert noise_amplitude(real, real) == 0.0

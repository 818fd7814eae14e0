"""Shared test settings: one torch thread (CI has 2 cores; ``MIL_TEST_THREADS=2`` runs the suite
with two, as the machine-independence audit does), offline, a non-interactive backend."""
import os

os.environ.setdefault("MIL_OFFLINE", "1")
os.environ.setdefault("MPLBACKEND", "Agg")

import pytest  # noqa: E402
import torch  # noqa: E402

torch.set_num_threads(int(os.environ.get("MIL_TEST_THREADS", "1")))


@pytest.fixture
def shared_dir():
    """``../shared`` beside the checkout, or skip: a user's fresh clone does not have it."""
    from pathlib import Path

    path = Path(__file__).resolve().parents[1].parent / "shared"
    if not path.is_dir():
        pytest.skip("../shared is absent (only the project's own machines have it)")
    return path


@pytest.fixture
def no_network(monkeypatch):
    """Any attempt to reach the network fails the test (loaders must work offline)."""
    import socket
    import urllib.request

    def refuse(*args, **kwargs):
        raise AssertionError("the network was touched")
    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setattr(socket, "getaddrinfo", refuse)
    monkeypatch.setattr(urllib.request, "urlopen", refuse)


@pytest.fixture(scope="session")
def tiny_hypergan():
    """A hyper-GAN trained 3 steps per scale (smoke sizes) on two random images, and a third
    image it never saw: ``(model, images, unseen)``. Shared by several test modules; tests
    must not modify it."""
    from mil_core.models import HyperGANConfig
    from mil_core.models.hypergan_train import train_hypergan

    g = torch.Generator().manual_seed(0)
    imgs = [torch.rand(3, 30, 40, generator=g) * 2 - 1 for _ in range(2)]
    cfg = HyperGANConfig.from_profile("smoke", "minibatch", 2, iters_per_scale=3)
    model = train_hypergan(imgs, cfg, seed=0, device="cpu", show_progress=False)
    unseen = torch.rand(3, 30, 40, generator=g) * 2 - 1
    return model, imgs, unseen

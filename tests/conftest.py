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

"""The interpolation explorer (mil_core.explorer, notebook 06) works in a real browser.

A JupyterLab server (127.0.0.1, a free port, a random token, ``--no-browser``) serves a temporary
root holding a copy of ``notebooks/06_interpolation.ipynb`` and a small notebook written here.
The copy of notebook 06 is not run: it trains hyper-GANs for minutes. The small notebook sets
torch to one thread, trains a tiny hyper-GAN on three synthetic images in seconds and then calls
``interpolation_explorer(model, images, names, seed=SEED)`` exactly as notebook 06 does. Debian's
Chromium, headless and driven by Playwright, opens that notebook with the token, runs every cell
from the Run menu, and then, as a user would:

1. presses End on the α slider (0.50 → 1.00),
2. presses End on the switch-scale slider (0 → the last trained scale),
3. picks another image B in its dropdown.

After each step the slider's readout (or the dropdown's selected option) shows the value set,
and a screenshot of the explorer's output image differs from the one before, in the middle of
the picture (the sample, not only the title above it). That proves the frontend renders the
widgets, sends their new values to the kernel, and shows the kernel's redrawn sample. The
screenshots are kept in ``build/browser/``.

Skips when playwright is not importable or no chromium executable is found; deselect with
``-m "not browser"``. Every wait is bounded and the whole test stops after ``BUDGET_S`` seconds.
"""
from __future__ import annotations

import contextlib
import io
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import nbformat
import numpy as np
import pytest

pytestmark = pytest.mark.browser
sync_api = pytest.importorskip(
    "playwright.sync_api", reason="playwright is not installed: `pip install playwright` "
    "(pinned in requirements.txt) and `apt-get install chromium` to run the browser test")

ROOT = Path(__file__).resolve().parents[1]
SHOTS = ROOT / "build" / "browser"
NOTEBOOK_06 = ROOT / "notebooks" / "06_interpolation.ipynb"
SMALL = "explorer_small.ipynb"
BUDGET_S = 170.0          # the whole test, server start to the last screenshot
NAMES = ["ramp-x", "ramp-y", "checks"]
# Mean absolute difference (0-255 per RGB channel) the middle of two screenshots must exceed:
# well above rendering noise, well below what each step gives (16-63 when written; every run
# writes its numbers to build/browser/diffs.json).
MIN_CENTRE_DIFF = 3.0

SMALL_CELLS = [
    ("markdown", "# Interpolation explorer, small\n\nA tiny hyper-GAN (seconds) and the explorer of "
                 "notebook 06, for tests/test_browser.py."),
    ("code", "import torch\n\ntorch.set_num_threads(1)\n\n"
             "from mil_core.explorer import interpolation_explorer\n"
             "from mil_core.models import HyperGANConfig\n"
             "from mil_core.models.hypergan_train import train_hypergan\n\nSEED = 0"),
    ("code", "h, w = 30, 40\n"
             "yy, xx = torch.meshgrid(torch.linspace(-1, 1, h), torch.linspace(-1, 1, w), "
             "indexing=\"ij\")\n"
             "images = [torch.stack([xx, -xx, torch.full_like(xx, 0.8)]),\n"
             "          torch.stack([torch.full_like(yy, -0.8), yy, -yy]),\n"
             "          torch.stack([torch.sign(torch.sin(6 * xx) * torch.sin(6 * yy))] * 3)]\n"
             f"names = {NAMES!r}\n"
             "cfg = HyperGANConfig.from_profile(\"smoke\", \"minibatch\", len(images), "
             "iters_per_scale=20)\n"
             "model = train_hypergan(images, cfg, seed=SEED, device=\"cpu\", show_progress=False)\n"
             "print(\"trained scales:\", model.n_trained)"),
    ("code", "interpolation_explorer(model, images, names, seed=SEED)"),
]


class Deadline:
    """The time left of one overall budget, handed to every wait (Playwright takes ms)."""

    def __init__(self, seconds: float) -> None:
        self.end = time.monotonic() + seconds

    def left(self) -> float:
        """Seconds left; raises TimeoutError once spent."""
        left = self.end - time.monotonic()
        if left <= 0:
            raise TimeoutError(f"the browser test ran past its {BUDGET_S:.0f} s budget")
        return left

    def ms(self, cap_s: float = 60.0) -> float:
        """Milliseconds for the next wait: what is left, at most ``cap_s``."""
        return 1000.0 * min(self.left(), cap_s)


@dataclass
class Lab:
    """A running JupyterLab server."""
    url: str
    token: str
    root: Path
    process: subprocess.Popen


def _chromium() -> str | None:
    """The system Chromium (Playwright's own browser download is not used)."""
    for name in ("chromium", "chromium-browser"):
        path = shutil.which(name)
        if path:
            return path
    return "/usr/bin/chromium" if os.access("/usr/bin/chromium", os.X_OK) else None


CHROMIUM = _chromium()
if CHROMIUM is None:
    pytest.skip("no chromium executable on PATH: install chromium with "
                "`apt-get install chromium` (Debian; .ci/run does it) to run the browser test",
                allow_module_level=True)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _write_root(root: Path) -> None:
    """The server's root: a copy of notebook 06 (not run) and the small notebook (run)."""
    shutil.copy(NOTEBOOK_06, root / NOTEBOOK_06.name)
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_markdown_cell(src) if kind == "markdown"
                else nbformat.v4.new_code_cell(src) for kind, src in SMALL_CELLS]
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3 (ipykernel)",
                                 "language": "python"}
    nbformat.write(nb, root / SMALL)


def _server_env(state: Path) -> dict[str, str]:
    """The test process's environment, minus what would make the explorer static (MIL_BATCH)
    or hide its figures (conftest's MPLBACKEND=Agg), with Jupyter's settings kept in ``state``."""
    env = {k: v for k, v in os.environ.items() if k not in ("MIL_BATCH", "MPLBACKEND")}
    config = state / "config"
    (config / "labconfig").mkdir(parents=True)
    # no "get notified about Jupyter news?" toast over the notebook
    (config / "labconfig" / "page_config.json").write_text(json.dumps(
        {"disabledExtensions": {"@jupyterlab/apputils-extension:announcements": True}}))
    env.update(JUPYTER_CONFIG_DIR=str(config), JUPYTER_RUNTIME_DIR=str(state / "runtime"),
               IPYTHONDIR=str(state / "ipython"), OMP_NUM_THREADS="1", MKL_NUM_THREADS="1",
               PATH=f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}",
               PYTHONUNBUFFERED="1")
    return env


def _request(url: str, method: str = "GET", timeout: float = 2.0) -> int:
    req = urllib.request.Request(url, method=method, data=b"" if method == "POST" else None)
    with urllib.request.urlopen(req, timeout=timeout) as resp:
        return resp.status


def _stop(proc: subprocess.Popen, url: str, token: str) -> None:
    """Ask the server to shut down (it stops its kernels), then end its process group."""
    if proc.poll() is None:
        with contextlib.suppress(OSError):
            _request(f"{url}api/shutdown?token={token}", "POST", timeout=5)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=15)
    for sig in (signal.SIGTERM, signal.SIGKILL):
        if proc.poll() is not None:
            break
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, sig)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=10)
    # children left in the group (none expected: kernels are in their own session and quit
    # with the server) are ended too
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)


@pytest.fixture
def deadline() -> Iterator[Deadline]:
    """The test's overall budget; on POSIX a SIGALRM shortly after it also interrupts a wait that
    would not return on its own (the fixtures' cleanup still runs)."""
    limit = Deadline(BUDGET_S)
    previous = None
    if hasattr(signal, "SIGALRM"):
        def expire(signum: int, frame: Any) -> None:
            raise TimeoutError(f"the browser test ran past its {BUDGET_S:.0f} s budget")
        previous = signal.signal(signal.SIGALRM, expire)
        signal.alarm(int(BUDGET_S) + 10)
    try:
        yield limit
    finally:
        if hasattr(signal, "SIGALRM"):
            signal.alarm(0)
            signal.signal(signal.SIGALRM, previous)


@pytest.fixture
def lab(tmp_path: Path, deadline: Deadline) -> Iterator[Lab]:
    """JupyterLab on 127.0.0.1 serving ``tmp_path/root``; shut down, whatever happens."""
    root, state = tmp_path / "root", tmp_path / "state"
    root.mkdir()
    state.mkdir()
    _write_root(root)
    port, token = _free_port(), secrets.token_hex(24)
    log = (tmp_path / "jupyterlab.log").open("wb")
    cmd = [sys.executable, "-m", "jupyterlab", "--no-browser", "--ServerApp.ip=127.0.0.1",
           f"--ServerApp.port={port}", "--ServerApp.port_retries=0",
           f"--IdentityProvider.token={token}", f"--ServerApp.root_dir={root}",
           "--ServerApp.terminals_enabled=False", "--LabApp.extension_manager=readonly",
           "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate"]
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        cmd.append("--allow-root")      # CI containers run as root
    proc = subprocess.Popen(cmd, cwd=root, env=_server_env(state), stdout=log,
                            stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                            start_new_session=True)
    url = f"http://127.0.0.1:{port}/"
    try:
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"jupyterlab exited with {proc.returncode}:\n"
                                   + (tmp_path / "jupyterlab.log").read_text(errors="replace")[-4000:])
            with contextlib.suppress(OSError):
                if _request(f"{url}api/status?token={token}") == 200:
                    break
            deadline.left()
            time.sleep(0.25)
        yield Lab(url, token, root, proc)
    finally:
        _stop(proc, url, token)
        log.close()


@pytest.fixture
def page(lab: Lab, deadline: Deadline) -> Iterator[Any]:
    """A headless Chromium page (Debian's Chromium through Playwright); closed afterwards."""
    with sync_api.sync_playwright() as pw:
        browser = pw.chromium.launch(
            executable_path=CHROMIUM, headless=True, timeout=deadline.ms(60),
            args=["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"])
        try:
            context = browser.new_context(viewport={"width": 1280, "height": 1000},
                                          device_scale_factor=1)
            pg = context.new_page()
            pg.set_default_timeout(deadline.ms(60))
            yield pg
        finally:
            with contextlib.suppress(Exception):
                browser.close()


def _slider(page: Any, label: str) -> Any:
    """The ipywidgets slider whose description is ``label``."""
    return page.locator(".widget-slider").filter(
        has=page.locator(".widget-label", has_text=label)).first


def _wait_idle(page: Any, deadline: Deadline) -> None:
    """The notebook's kernel is connected and idle (the status bar says "<kernel> | Idle")."""
    page.wait_for_function(
        "() => [...document.querySelectorAll('.jp-StatusBar-TextItem')]"
        ".some(el => /\\| Idle$/.test(el.textContent.trim()))",
        timeout=deadline.ms(90))


def _image_src(page: Any) -> str:
    return page.locator(".widget-output img").first.get_attribute("src") or ""


def _settled_image(page: Any, deadline: Deadline, previous: str | None) -> str:
    """Wait until the explorer shows an image other than ``previous`` and the kernel is idle
    again, with no redraw in flight; its ``src``."""
    page.wait_for_function(
        "prev => { const img = document.querySelector('.widget-output img');"
        " return img && img.complete && img.naturalWidth > 0 && img.src !== prev; }",
        arg=previous or "", timeout=deadline.ms(60))
    while True:
        _wait_idle(page, deadline)
        src = _image_src(page)
        page.wait_for_timeout(400)
        if _image_src(page) == src:
            return src
        deadline.left()


def _shot(page: Any, name: str) -> np.ndarray:
    """A screenshot of the explorer's image into build/browser/``name``.png, as RGB floats."""
    from PIL import Image

    png = page.locator(".widget-output img").first.screenshot(
        path=str(SHOTS / f"{name}.png"), animations="disabled")
    return np.asarray(Image.open(io.BytesIO(png)).convert("RGB"), dtype=np.float64)


def _diff(a: np.ndarray, b: np.ndarray) -> dict[str, float]:
    """Mean absolute difference (0-255) over the whole shots and over their middle half (inside
    the sample: the title sits above it)."""
    assert a.shape == b.shape, f"the image changed size: {a.shape} vs {b.shape}"
    h, w = a.shape[:2]
    mid = (slice(h // 4, 3 * h // 4), slice(w // 4, 3 * w // 4))
    return {"whole": float(np.abs(a - b).mean()), "centre": float(np.abs(a[mid] - b[mid]).mean())}


def test_explorer_redraws_in_jupyterlab(lab: Lab, page: Any, deadline: Deadline) -> None:
    """α slider, switch-scale slider and image picker each redraw the sample in a real browser."""
    SHOTS.mkdir(parents=True, exist_ok=True)
    for old in SHOTS.glob("*"):
        old.unlink()
    try:
        _drive_explorer(lab, page, deadline)
    except BaseException:
        # the whole page as it was, to see what the test waited for
        with contextlib.suppress(Exception):
            page.screenshot(path=str(SHOTS / "failure.png"), full_page=True, timeout=10_000)
        raise


def _drive_explorer(lab: Lab, page: Any, deadline: Deadline) -> None:
    page.goto(f"{lab.url}lab/tree/{SMALL}?token={lab.token}", timeout=deadline.ms(60))
    page.locator(".jp-Notebook .jp-Cell").first.wait_for(timeout=deadline.ms(60))
    _wait_idle(page, deadline)                       # the kernel has started

    page.locator(".lm-MenuBar-itemLabel", has_text="Run").first.click()
    page.get_by_role("menuitem", name="Run All Cells", exact=True).click()
    # the explorer's first image, or a cell's traceback (reported rather than waited out)
    page.locator(".widget-output img, .jp-OutputArea-output[data-mime-type="
                 "'application/vnd.jupyter.error']").first.wait_for(timeout=deadline.ms(90))
    errors = page.locator(".jp-OutputArea-output[data-mime-type='application/vnd.jupyter.error']")
    assert errors.count() == 0, f"a cell of {SMALL} failed:\n{errors.first.inner_text()}"
    src = _settled_image(page, deadline, None)
    alpha, switch = _slider(page, "α"), _slider(page, "switch scale")
    readout = lambda s: s.locator(".widget-readout").inner_text().strip()  # noqa: E731
    assert readout(alpha) == "0.50" and readout(switch) == "0"
    pick_b = page.locator(".widget-dropdown").filter(
        has=page.locator(".widget-label", has_text="image B")).locator("select")
    selected = lambda: pick_b.evaluate("s => s.options[s.selectedIndex].text")  # noqa: E731
    assert selected() == NAMES[1]
    shots = {"00_initial": _shot(page, "00_initial")}
    diffs: dict[str, dict[str, float]] = {}

    def step(name: str, previous: str) -> None:
        nonlocal src
        src = _settled_image(page, deadline, src)
        shots[name] = _shot(page, name)
        diffs[name] = _diff(shots[previous], shots[name])

    alpha.locator(".noUi-handle").focus()
    page.keyboard.press("End")
    step("01_alpha_1", "00_initial")
    assert readout(alpha) == "1.00"

    last = page.locator(".widget-slider").filter(
        has=page.locator(".widget-label", has_text="switch scale")).locator(".noUi-handle")
    top = last.get_attribute("aria-valuemax")
    last.focus()
    page.keyboard.press("End")
    step("02_switch_last", "01_alpha_1")
    assert top is not None and int(float(top)) >= 1
    assert readout(switch) == str(int(float(top)))

    pick_b.select_option(label=NAMES[2])
    step("03_image_b", "02_switch_last")
    assert selected() == NAMES[2]

    (SHOTS / "diffs.json").write_text(json.dumps(diffs, indent=2) + "\n")
    for name, d in diffs.items():
        assert d["centre"] > MIN_CENTRE_DIFF, f"{name}: the sample did not change ({d})"

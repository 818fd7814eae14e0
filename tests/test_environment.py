"""environment.yml, requirements.txt and pyproject.toml cannot drift apart."""
import re
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _requirements():
    pins, other = {}, []
    for line in (ROOT / "requirements.txt").read_text().splitlines():
        line = line.split("#")[0].strip()
        if not line:
            continue
        m = re.fullmatch(r"([A-Za-z0-9_.\-]+)==([A-Za-z0-9_.+\-]+)", line)
        if m:
            pins[m.group(1).lower()] = m.group(2)
        else:
            other.append(line)
    return pins, other


def test_requirements_pin_torch_and_install_the_package_with_extras():
    pins, other = _requirements()
    assert pins["torch"] == "2.13.0"
    assert other == ["-e .[notebooks,test]"]


def test_environment_yml_delegates_to_requirements():
    text = (ROOT / "environment.yml").read_text()
    body = [ln.split("#")[0].rstrip() for ln in text.splitlines()]
    body = [ln.strip() for ln in body if ln.strip()]
    assert "- pip:" in body
    pip_items = body[body.index("- pip:") + 1:]
    assert pip_items == ["- -r requirements.txt"], "conda must install exactly requirements.txt"
    py = [ln for ln in body if ln.startswith("- python")]
    assert py == [f"- python={sys.version_info.major}.{sys.version_info.minor}"], (
        "environment.yml's python must be the one the pins were tested with")
    # nothing else pinned on the conda side that could disagree with pip
    conda_deps = body[body.index("dependencies:") + 1:body.index("- pip:")]
    assert sorted(conda_deps) == sorted(py + ["- pip"])


def test_pins_satisfy_pyproject_ranges_and_cover_direct_dependencies():
    tomllib = pytest.importorskip("tomllib")
    from packaging.requirements import Requirement

    meta = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    declared = list(meta["dependencies"])
    for extra in ("notebooks", "test"):
        declared += meta["optional-dependencies"][extra]
    pins, _ = _requirements()
    for spec in declared:
        req = Requirement(spec)
        name = req.name.lower()
        assert name in pins, f"{name} is a direct dependency but is not pinned in requirements.txt"
        assert req.specifier.contains(pins[name], prereleases=True), (
            f"requirements.txt pins {name}=={pins[name]}, outside pyproject's {req.specifier}")


def test_nodeps_file_holds_only_pins():
    lines = [ln.split("#")[0].strip() for ln in (ROOT / "requirements-nodeps.txt").read_text().splitlines()]
    lines = [ln for ln in lines if ln]
    assert lines == ["animal-mnist==0.4"]

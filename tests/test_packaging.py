"""pyproject.toml against Colab: installing medlib must change none of Colab's preinstalled packages.

``pip install "medlib @ git+…"`` keeps an installed package whenever its version lies inside
medlib's range; a range that excludes it makes pip replace it (ipywidgets 8 breaks Colab's
widgets; another torch build breaks CUDA). The versions below are Colab's GPU image (mid-2026).
"""

import tomllib
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet
from packaging.utils import canonicalize_name
from packaging.version import Version

REPO = Path(__file__).resolve().parents[1]

COLAB_PYTHON = "3.12.11"
COLAB_PREINSTALLED = {  # as `pip list` reports them on Colab (torch carries its CUDA build tag)
    "torch": "2.11.0+cu128",
    "torchvision": "0.26.0+cu128",
    "timm": "1.0.27",
    "numpy": "2.0.2",
    "pandas": "2.2.2",
    "scikit-learn": "1.6.1",
    "matplotlib": "3.10.0",
    "safetensors": "0.7.0",
    "ipywidgets": "7.7.1",
}


def _project() -> dict:
    return tomllib.loads((REPO / "pyproject.toml").read_text())["project"]


def _dependencies() -> dict[str, Requirement]:
    reqs = [Requirement(r) for r in _project()["dependencies"]]
    return {canonicalize_name(r.name): r for r in reqs}


def _pins() -> dict[str, Version]:
    pins = {}
    for line in (REPO / "requirements.txt").read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            req = Requirement(line)
            (spec,) = req.specifier  # exactly one ==pin per line
            assert spec.operator == "==", f"requirements.txt must pin exactly: {line!r}"
            pins[canonicalize_name(req.name)] = Version(spec.version)
    return pins


def test_python_of_colab_is_accepted():
    assert SpecifierSet(_project()["requires-python"]).contains(COLAB_PYTHON)


@pytest.mark.parametrize("name,version", sorted(COLAB_PREINSTALLED.items()))
def test_every_colab_version_lies_inside_medlibs_range(name, version):
    deps = _dependencies()
    if name not in deps:
        return  # medlib does not ask for it, so pip leaves it alone
    spec = deps[name].specifier
    assert spec.contains(version, prereleases=True), (
        f"pyproject.toml asks for {name}{spec}, which excludes Colab's {version}: "
        f"installing medlib on Colab would replace it; widen the range")


def test_the_check_catches_a_range_that_excludes_colab():
    # the assertion above on a range like the one that broke Colab's widgets
    assert not Requirement("ipywidgets>=8.0").specifier.contains(COLAB_PREINSTALLED["ipywidgets"])
    assert Requirement("torch>=2.1").specifier.contains(COLAB_PREINSTALLED["torch"])


def test_requirements_pins_satisfy_pyproject():
    pins, deps = _pins(), _dependencies()
    for extra in _project().get("optional-dependencies", {}).values():
        deps.update({canonicalize_name(Requirement(r).name): Requirement(r) for r in extra})
    missing = sorted(n for n in _dependencies() if n not in pins)
    assert not missing, f"requirements.txt pins none of {missing}: CI would not test them"
    bad = {n: (str(pins[n]), str(r.specifier)) for n, r in deps.items() if n in pins and not r.specifier.contains(pins[n])}
    assert not bad, f"requirements.txt pins outside pyproject's ranges: {bad}"


def test_optional_extras_for_clusters_and_tests_are_ranges():
    extras = _project()["optional-dependencies"]
    ray = Requirement(extras["cluster"][0])
    flwr = next(Requirement(r) for r in extras["test"] if Requirement(r).name == "flwr")
    assert (ray.name, ray.extras, flwr.extras) == ("ray", set(), set())  # federations run on medlib's fit, not Flower's engine
    assert ray.specifier.contains("2.55.1") and flwr.specifier.contains("1.42.0")
    assert "ray" not in _dependencies() and "flwr" not in _dependencies()  # the Colab path never installs them

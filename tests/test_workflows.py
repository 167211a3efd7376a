"""The GitHub workflows: valid against GitHub's workflow schema, and doing what the project says.

``check-jsonschema --builtin-schema vendor.github-workflows`` validates offline (the schema ships
inside the package); a planted fault proves the validator really rejects a broken workflow.
"""

import subprocess
import sys

import pytest
import yaml

from conftest import REPO

WORKFLOWS = REPO / ".github" / "workflows"


def validate(*paths) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "check_jsonschema", "--builtin-schema", "vendor.github-workflows",
           *map(str, paths)]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if "No module named check_jsonschema" in proc.stderr:
        pytest.fail("check-jsonschema is not installed: run `make venv` (requirements.txt pins it)")
    return proc


def load(name: str) -> dict:
    return yaml.safe_load((WORKFLOWS / name).read_text())


def steps(workflow: dict, job: str) -> list[dict]:
    return workflow["jobs"][job]["steps"]


def uses(workflow: dict, job: str) -> list[str]:
    return [s["uses"].split("@")[0] for s in steps(workflow, job) if "uses" in s]


def runs(workflow: dict, job: str) -> str:
    return "\n".join(s.get("run", "") for s in steps(workflow, job))


def test_workflows_validate_against_the_github_schema():
    files = sorted(WORKFLOWS.glob("*.yml"))
    assert {f.name for f in files} >= {"ci.yml", "book.yml"}
    proc = validate(*files)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_the_validator_rejects_a_broken_workflow(tmp_path):
    broken = load("ci.yml")
    broken["jobs"]["test"]["runs-on"] = {"machine": "ubuntu-latest"}  # must be a string or list
    del broken["jobs"]["test"]["steps"]
    path = tmp_path / "broken.yml"
    path.write_text(yaml.safe_dump(broken))
    proc = validate(path)
    assert proc.returncode != 0 and "broken.yml" in proc.stdout + proc.stderr


def test_ci_runs_make_test_on_python_3_12_with_chromium_and_a_pip_cache():
    ci = load("ci.yml")
    triggers = ci[True] if True in ci else ci["on"]  # YAML 1.1 reads the key `on` as True
    assert "push" in triggers and "pull_request" in triggers
    setup = next(s for s in steps(ci, "test") if s.get("uses", "").startswith("actions/setup-python@"))
    assert str(setup["with"]["python-version"]) == "3.12" and setup["with"]["cache"] == "pip"
    commands = runs(ci, "test")
    assert commands.index("make browser") < commands.index("make test")
    assert ci["jobs"]["test"]["runs-on"] == "ubuntu-latest"


def test_book_workflow_builds_and_deploys_the_html_to_pages():
    book = load("book.yml")
    assert book["permissions"]["pages"] == "write" and book["permissions"]["id-token"] == "write"
    assert "make book" in runs(book, "build")
    upload = next(s for s in steps(book, "build") if s.get("uses", "").startswith("actions/upload-pages-artifact@"))
    assert upload["with"]["path"] == "_build/html"
    assert ".nojekyll" in runs(book, "build")
    assert book["jobs"]["deploy"]["needs"] == "build"
    assert uses(book, "deploy") == ["actions/deploy-pages"]
    assert book["jobs"]["deploy"]["environment"]["name"] == "github-pages"


def test_the_published_address_is_the_repositorys_github_pages():
    from urllib.parse import urlsplit

    config = yaml.safe_load((REPO / "_config.yml").read_text())
    owner, name = urlsplit(config["repository"]["url"]).path.strip("/").removesuffix(".git").split("/")
    assert config["html"]["baseurl"] == f"https://{owner}.github.io/{name}/"

import subprocess
import sys


def run(*args):
    return subprocess.run([sys.executable, "-m", "medlib", *args], capture_output=True, text=True)


def test_help_lists_the_commands():
    out = run("--help")
    assert out.returncode == 0
    listed = {line.split()[0] for line in out.stdout.splitlines() if line.startswith("    ") and line.split()}
    assert {"book", "data", "ammfm", "pretrained", "finetune", "merge", "restore-bn", "evaluate"} <= listed


def test_book_help_explains_profiles():
    out = run("book", "--help")
    assert out.returncode == 0
    assert "--profile" in out.stdout and "papermill" in out.stdout and "--dry-run" in out.stdout


def test_book_dry_run_reaches_build_book_and_the_notebooks_environment(monkeypatch, tmp_path):
    import os

    import medlib.book
    from medlib.cli import main

    (tmp_path / "_toc.yml").write_text("format: jb-book\nroot: index\n")
    (tmp_path / "_config.yml").write_text("title: t\n")
    calls = []

    def build_book(root, profile, **kwargs):  # records what the command asks for; building is test_book's job
        calls.append((root, profile, kwargs, os.environ.get("MEDLIB_DRY_RUN")))
        return root / "_build" / "html" / "index.html"

    monkeypatch.setattr(medlib.book, "build_book", build_book)
    monkeypatch.setenv("MEDLIB_DRY_RUN", "0")  # recorded, so the 1 that main sets is undone after the test
    monkeypatch.chdir(tmp_path)
    assert main(["book", "--profile", "full", "--dry-run", "--no-execute"]) == 0
    (root, profile, kwargs, env), = calls
    assert root == tmp_path.resolve() and profile == "full" and env == "1"
    assert kwargs["dry_run"] is True and kwargs["execute"] is False


def test_user_errors_exit_2_without_traceback(tmp_path):
    out = subprocess.run(
        [sys.executable, "-m", "medlib", "book", "--no-execute"], capture_output=True, text=True, cwd=tmp_path
    )
    assert out.returncode == 2
    assert "no _config.yml" in out.stderr and "Traceback" not in out.stderr

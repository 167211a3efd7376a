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
    assert "--profile" in out.stdout and "papermill" in out.stdout


def test_user_errors_exit_2_without_traceback(tmp_path):
    out = subprocess.run(
        [sys.executable, "-m", "medlib", "book", "--no-execute"], capture_output=True, text=True, cwd=tmp_path
    )
    assert out.returncode == 2
    assert "no _config.yml" in out.stderr and "Traceback" not in out.stderr

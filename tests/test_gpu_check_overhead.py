"""``benches/gpu_check.py`` can fail on overhead, counts host reads per step, and writes its numbers."""

import json
import os
import re
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def test_cpu_smoke_fails_an_overhead_goal_of_zero_and_reports_syncs_per_step(tmp_path):
    env = {**os.environ, "PYTHONPATH": str(REPO), "MEDLIB_HOME": str(tmp_path / "home"), "OMP_NUM_THREADS": "1"}
    env.pop("MEDLIB_PROFILE", None)
    out_json = tmp_path / "numbers.json"
    proc = subprocess.run([sys.executable, str(REPO / "benches" / "gpu_check.py"), "--cpu-smoke", "--skip-dry-run",
                           "--overhead-goal", "0", "--json", str(out_json)],
                          capture_output=True, text=True, env=env, cwd=tmp_path, timeout=300)
    assert proc.returncode == 1, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "outside compute > 0%" in proc.stdout
    rates = dict(re.findall(r"^syncs per step (A .+|B .+): ([0-9.]+)$", proc.stdout, re.M))
    assert len(rates) == 2 and all(float(r) <= 0.02 for r in rates.values()), rates
    report = json.loads(out_json.read_text())
    assert report["overhead_goal"] == 0 and len(report["overhead"]) == 2 and report["failures"]
    assert {row["configuration"] for row in report["overhead"]} == set(rates)
    assert all(row["steps"] in (15, 17) for row in report["overhead"])  # the full profile's step counts

"""The README's performance table is exactly what the committed bench/results/*.json say."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from facestage.bench.record import run_and_record, save
from facestage.tools import readme_figures

ROOT = Path(__file__).resolve().parents[1]


def test_readme_table_is_generated_from_the_committed_results() -> None:
    proc = subprocess.run([sys.executable, "-m", "facestage.tools.readme_figures", "--check"], cwd=ROOT,
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    results = sorted(p.stem for p in (ROOT / "bench" / "results").glob("*.json"))
    assert {row.bench for row in readme_figures.ROWS} <= set(results), "every README row has a committed result"


def test_every_committed_result_records_where_and_how_it_was_measured() -> None:
    for path in sorted((ROOT / "bench" / "results").glob("*.json")):
        rec = json.loads(path.read_text())
        assert rec["bench"] == path.stem
        assert rec["machine"]["cores"] >= 1 and rec["versions"]["python"].startswith("3.11"), path
        assert {"before_1m", "after_1m"} <= set(rec["load_avg"]) and rec["started"][:4] == "2026", path
        assert rec["git"]["commit"], path


def test_a_changed_result_changes_the_table_and_a_missing_one_is_not_invented(tmp_path: Path) -> None:
    readme = tmp_path / "README.md"
    readme.write_text(f"# x\n{readme_figures.INSTALL_START}\n{readme_figures.INSTALL_END}\n\n"
                      f"{readme_figures.START}\nstale\n{readme_figures.END}\n\nafter\n")
    fake = {"ratio": 1.11, "mediapipe_raw": {"median": 5.0, "p10": 4.0, "p90": 6.0},
            "tracker": {"median": 5.5, "p10": 4.5, "p90": 6.5}}
    save(run_and_record("tracking", lambda: fake), tmp_path / "results")
    args = ["--readme", str(readme), "--results", str(tmp_path / "results")]
    assert readme_figures.main([*args, "--check"]) == 1  # stale
    assert readme_figures.main(args) == 0
    text = readme.read_text()
    assert "5.5 ms (p10–p90 4.5–6.5)" in text and "ratio 1.11" in text and "ratio ≤ 1.3 ✔" in text
    assert "not measured (`facestage bench server`)" in text and text.endswith("\n\nafter\n")
    assert "not measured yet (`scripts/time-fresh-install.sh`)" in text
    assert readme_figures.main([*args, "--check"]) == 0

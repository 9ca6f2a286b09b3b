"""`python -m bench.readme`: the generated speed table of docs/speed.md, rewritten from a report."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from bench.readme import BEGIN, END, SPEED_PAGE, rewrite

ROOT = Path(__file__).resolve().parents[1]

REPORT = {
    "started_at": "2026-03-02T06:00:00+00:00",
    "quick": True,
    "cpu_count": 2,
    "seconds": 151.2,
    "load_average_at_start": [1.5, 1.2, 1.0],
    "load_average_at_end": [2.5, 1.8, 1.2],
    "targets": {"met": 1, "judged": 2, "with_target": 3},
    "benches": {
        "engagement": {"command": "python -m bench.engagement 10000"},
        "hunts": {"command": "python -m bench.hunts 20000 100", "error": "exit status 1"},
    },
    "figures": [
        {
            "bench": "engagement",
            "name": "engagement: sweep, 10,000 users",
            "value": 25000.5,
            "unit": "users/s enqueued",
            "target": ">= 20000",
            "met": True,
            "bare_actor_messages_per_second": None,
            "load_average": [[1.5, 1.2, 1.0], [2.0, 1.5, 1.1]],
        },
        {
            "bench": "engagement",
            "name": "engagement: daily run, 10,000 users",
            "value": 0.38,
            "unit": "x bare actor",
            "target": ">= 0.4",
            "met": False,
            "bare_actor_messages_per_second": 2900.0,
            "load_average": [[1.5, 1.2, 1.0], [2.0, 1.5, 1.1]],
        },
        {
            "bench": "engagement",
            "name": "engagement: sweep peak memory over its 10,000-user peak",
            "value": None,
            "unit": "MB",
            "target": "<= 20",
            "met": None,
            "bare_actor_messages_per_second": None,
            "load_average": [[1.5, 1.2, 1.0], None],
        },
    ],
}

README = f"""# Title

## Speed

Written by hand, kept.

{BEGIN}
| an old table | to be replaced |
{END}

## After

Also kept.
"""


def _rows(text: str) -> list[str]:
    inside = text.split(BEGIN)[1].split(END)[0]
    return [line for line in inside.splitlines() if line.startswith("| engagement")]


def test_the_generated_part_is_replaced_by_the_reports_figures():
    # Given a README with an old generated table, and a report
    # When it is rewritten from the report
    new = rewrite(README, REPORT)
    # Then what is outside the markers is as it was
    before, after = README.split(BEGIN)[0], README.split(END)[1]
    assert new.startswith(before) and new.endswith(after)
    assert "an old table" not in new
    # And each figure is a row: value and unit, target, met or not, the bare actor, the load
    assert _rows(new) == [
        "| engagement: sweep, 10,000 users | 25,000.5 users/s enqueued | >= 20000 | met |  "
        "| 1.5 / 2.0 |",
        "| engagement: daily run, 10,000 users | 0.38 x bare actor | >= 0.4 | **not met** | "
        "2,900 messages/s | 1.5 / 2.0 |",
        "| engagement: sweep peak memory over its 10,000-user peak | not measured | <= 20 |  "
        "|  | 1.5 / ? |",
    ]
    # And the heading line says what was run, at what load, and how many targets were met
    assert "`python -m bench --quick`" in new and "load average 1.5" in new
    assert "**1 of 2 targets met**" in new
    # And a bench that did not finish is said so
    assert "`python -m bench.hunts 20000 100` did not finish: exit status 1." in new


def test_rewriting_twice_gives_the_same_readme():
    once = rewrite(README, REPORT)
    assert rewrite(once, REPORT) == once


def test_a_readme_without_the_markers_is_refused():
    with pytest.raises(ValueError, match="speed:begin"):
        rewrite("# no markers here\n", REPORT)


def test_the_command_rewrites_a_file_and_refuses_a_missing_report(tmp_path):
    # Given a README copy and a report file
    readme = tmp_path / "README.md"
    readme.write_text(README)
    report = tmp_path / "report.json"
    report.write_text(json.dumps(REPORT))
    command = [sys.executable, "-m", "bench.readme"]
    # When the command runs on them, the copy is rewritten
    done = subprocess.run(
        [*command, str(report), "--readme", str(readme)], cwd=ROOT, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    assert readme.read_text() == rewrite(README, REPORT)
    # And a report that does not exist is one error line, the README unchanged
    done = subprocess.run(
        [*command, str(tmp_path / "missing.json"), "--readme", str(readme)],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    assert done.returncode != 0
    assert done.stderr.startswith("error: ") and "Traceback" not in done.stderr
    assert readme.read_text() == rewrite(README, REPORT)


def test_the_speed_page_has_the_markers_once_and_is_the_commands_default():
    # Given the speed page the command rewrites by default
    assert SPEED_PAGE == ROOT / "docs" / "speed.md"
    text = SPEED_PAGE.read_text()
    # Then it has the markers once each, after its title
    assert text.count(BEGIN) == 1 and text.count(END) == 1
    assert text.index(BEGIN) > text.index("# Speed")
    # And the README has no generated part any more
    assert BEGIN not in (ROOT / "README.md").read_text()

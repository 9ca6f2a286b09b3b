"""Every shell block of README.md (and of docs/*.md) runs as written, in order, in a temporary
directory on a fresh SQLite database with the in-process broker, as a new user would run them.

Marks in the Markdown, an HTML comment on a line of its own before a block:

- ``<!-- not-run: REASON -->``: the block cannot run here (it needs a WAHA server, PostgreSQL
  and Redis, or it is a long-running process); the text says so too. Counted, with its reason.
- ``<!-- exit: N -->``: the block ends with exit status N (the text says why), not 0.
- ``<!-- file: NAME -->`` before any other block: its text is written to NAME in the directory
  before the first shell block runs, so a command can read the file the README shows.

A shell block runs under ``bash -e -o pipefail``: its first failing command ends it.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCUMENTS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
SHELL = frozenset({"sh", "bash", "console"})
MARKS = ("not-run", "exit", "file")
# A block that takes longer than this is hung, not slow.
BLOCK_TIMEOUT_SECONDS = 300
# Some forty `outreach` processes, each starting Python: under a minute on an idle machine, and
# several on a busy shared one.
TEST_TIMEOUT_SECONDS = 1200
# What a datetime that skipped the log's ISO 8601 rendering looks like.
DATETIME_REPR = "datetime.datetime("

_FENCE = re.compile(r"^```\s*([\w-]*)\s*$")
_MARK = re.compile(r"^<!--\s*([\w-]+):\s*(.*?)\s*-->\s*$")


@dataclass
class Block:
    document: str
    line: int  # of the opening fence
    language: str
    text: str
    marks: dict[str, str] = field(default_factory=dict)

    @property
    def where(self) -> str:
        return f"{self.document}:{self.line}"

    def script(self) -> str:
        """The commands: a console block's `$ ` lines, any other block as it is."""
        if self.language != "console":
            return self.text
        return "\n".join(line[2:] for line in self.text.splitlines() if line.startswith("$ "))


def blocks_of(text: str, document: str) -> list[Block]:
    """The fenced blocks, each with the marks written since the previous block."""
    found: list[Block] = []
    marks: dict[str, str] = {}
    lines = text.splitlines()
    index = 0
    while index < len(lines):
        line = lines[index]
        mark = _MARK.match(line)
        if mark and mark.group(1) in MARKS:
            marks[mark.group(1)] = mark.group(2)
        fence = _FENCE.match(line)
        if fence:
            end = index + 1
            while end < len(lines) and not lines[end].startswith("```"):
                end += 1
            body = "\n".join(lines[index + 1 : end])
            found.append(Block(document, index + 1, fence.group(1).lower(), body, marks))
            marks = {}
            index = end
        index += 1
    return found


def all_blocks() -> list[Block]:
    return [
        block
        for path in DOCUMENTS
        for block in blocks_of(path.read_text(encoding="utf-8"), path.relative_to(ROOT).as_posix())
    ]


def fresh_environment(directory: Path) -> dict[str, str]:
    """The caller's environment without any of the project's settings: the embedded defaults
    (no REDIS_URL: the in-process broker), a new SQLite file, `outreach` on the PATH."""
    env = {
        name: value
        for name, value in os.environ.items()
        if not name.startswith("OUTREACH_") and name not in {"REDIS_URL", "DATABASE_URL"}
    }
    env["DATABASE_URL"] = f"sqlite:///{directory}/outreach.sqlite3"
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    return env


def test_marks_belong_to_the_next_block_only():
    text = (
        "<!-- not-run: needs a WAHA server -->\n```bash\nwaha\n```\n"
        "```sh\necho hi\n```\n"
        "<!-- file: a.csv -->\n```csv\nphone\n```\n"
        "<!-- exit: 1 -->\n```console\n$ false\noutput\n```\n"
    )
    found = blocks_of(text, "x.md")
    assert [(b.language, b.marks) for b in found] == [
        ("bash", {"not-run": "needs a WAHA server"}),
        ("sh", {}),
        ("csv", {"file": "a.csv"}),
        ("console", {"exit": "1"}),
    ]
    assert found[3].script() == "false"


def test_every_not_run_block_gives_its_reason_and_every_mark_is_well_formed():
    for block in all_blocks():
        if "not-run" in block.marks:
            assert block.marks["not-run"], f"{block.where}: not-run without a reason"
            assert block.language in SHELL, f"{block.where}: not-run on a {block.language} block"
        if "exit" in block.marks:
            assert block.marks["exit"].isdigit(), f"{block.where}: exit {block.marks['exit']!r}"
        if "file" in block.marks:
            name = block.marks["file"]
            assert name and "/" not in name, f"{block.where}: file {name!r}"


@pytest.mark.timeout(TEST_TIMEOUT_SECONDS)
def test_every_shell_block_of_the_docs_runs_as_written(tmp_path: Path) -> None:
    blocks = all_blocks()
    # Given the files the docs show, written where the commands look for them
    for block in blocks:
        if "file" in block.marks:
            (tmp_path / block.marks["file"]).write_text(block.text + "\n", encoding="utf-8")
    # And `.venv/bin/outreach` resolving as in a clone where the README's install line ran
    (tmp_path / ".venv").symlink_to(Path(sys.prefix), target_is_directory=True)
    env = fresh_environment(tmp_path)
    shell = [block for block in blocks if block.language in SHELL]
    skipped = [block for block in shell if "not-run" in block.marks]
    ran = 0
    # When every other shell block runs, in order, on the same database
    for block in shell:
        if "not-run" in block.marks:
            continue
        expected = int(block.marks.get("exit", "0"))
        done = subprocess.run(
            ["bash", "-e", "-o", "pipefail", "-c", block.script()],
            cwd=tmp_path,
            env=env,
            capture_output=True,
            text=True,
            timeout=BLOCK_TIMEOUT_SECONDS,
        )
        ran += 1
        # Then each exits as the text says
        assert done.returncode == expected, (
            f"{block.where}: exit status {done.returncode}, the text says {expected}\n"
            f"--- block\n{block.text}\n--- stdout (end)\n{done.stdout[-3000:]}\n"
            f"--- stderr (end)\n{done.stderr[-3000:]}"
        )
        # And no log line it wrote holds a datetime's Python repr
        assert DATETIME_REPR not in done.stdout + done.stderr, block.where
    reasons = Counter(block.marks["not-run"] for block in skipped)
    print(f"\nREADME blocks: {ran} run, {len(skipped)} not run:")
    for reason, count in reasons.most_common():
        print(f"  {count} x {reason}")
    assert ran > 0

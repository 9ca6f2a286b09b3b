"""The docs hold together: every setting is documented, every test a guarantee names exists,
every relative link leads somewhere, and the README stays short."""

from __future__ import annotations

import re
from pathlib import Path

import click

from producers.cli import main as outreach
from storage.settings import Settings

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
PAGES = [ROOT / "README.md", ROOT / "CONTRIBUTING.md", *sorted(DOCS.glob("*.md"))]
# The README is the way in: what it is, the two commands, the processes, and links.
README_MAX_LINES = 150
# The guarantees' tests live here unless a path says otherwise.
FAULTS = ROOT / "tests" / "faults"

_FENCE = re.compile(r"^(```|~~~)")
_HEADING = re.compile(r"^(#{1,6})\s+(.*?)\s*#*\s*$")
_LINK = re.compile(r"(?<!!)\[[^\]]*\]\(([^)\s]+)\)")
_TEST_NAME = re.compile(r"`((?:tests/)?(?:[\w-]+/)*(?:test_\w+\.py|[\w-]+/))`")


def prose_lines(text: str) -> list[str]:
    """The lines outside fenced code blocks (a `# comment` in a shell block is no heading)."""
    lines, fenced = [], False
    for line in text.splitlines():
        if _FENCE.match(line):
            fenced = not fenced
            continue
        if not fenced:
            lines.append(line)
    return lines


def slug(heading: str) -> str:
    """The anchor GitHub gives a heading: lower case, punctuation dropped, spaces to hyphens."""
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", heading).replace("`", "").lower()
    text = re.sub(r"[^\w\- ]", "", text)
    return text.replace(" ", "-")


def anchors(path: Path) -> set[str]:
    found: set[str] = set()
    seen: dict[str, int] = {}
    for line in prose_lines(path.read_text(encoding="utf-8")):
        heading = _HEADING.match(line)
        if not heading:
            continue
        base = slug(heading.group(2))
        count = seen.get(base, 0)
        seen[base] = count + 1
        found.add(base if count == 0 else f"{base}-{count}")
    return found


def broken_links(path: Path) -> list[str]:
    broken = []
    for line in prose_lines(path.read_text(encoding="utf-8")):
        for target in _LINK.findall(re.sub(r"`[^`]*`", "", line)):
            if re.match(r"^[a-z][a-z0-9+.-]*:", target):  # https:, mailto:
                continue
            file_part, _, anchor = target.partition("#")
            linked = (path.parent / file_part).resolve() if file_part else path
            if not linked.exists():
                broken.append(f"{path.name}: {target} (no such file)")
            elif anchor and (linked.suffix != ".md" or anchor not in anchors(linked)):
                broken.append(f"{path.name}: {target} (no such heading)")
    return broken


def test_slugs_are_githubs():
    assert slug("What comes back in: the `web` process") == "what-comes-back-in-the-web-process"
    assert slug("Hunts, at scale (issue 14)") == "hunts-at-scale-issue-14"
    assert slug("Pacing: senders, spacing, sending hours") == "pacing-senders-spacing-sending-hours"


def test_every_setting_is_on_the_configuration_page():
    # Given every setting storage/settings.py reads
    page = (DOCS / "configuration.md").read_text(encoding="utf-8")
    # Then each is named on the configuration page
    missing = [name for name, _ in Settings.documented() if f"`{name}`" not in page]
    assert missing == []


def test_every_test_a_guarantee_names_exists():
    # Given the tests the guarantees page names
    page = (DOCS / "guarantees.md").read_text(encoding="utf-8")
    names = set(_TEST_NAME.findall(page))
    assert {"test_worker_killed.py", "tests/channels/test_email.py", "bad_input/"} <= names
    # Then each is a file (or folder) of the test suite
    missing = [
        name
        for name in sorted(names)
        if not (ROOT / name if name.startswith("tests/") else FAULTS / name).exists()
    ]
    assert missing == []


def test_every_relative_link_leads_to_a_file_and_heading_that_exist():
    # Given the README, CONTRIBUTING and every docs page
    assert len(PAGES) > 3
    # Then no relative link points to a missing file or a missing heading
    assert [broken for page in PAGES for broken in broken_links(page)] == []


def test_a_broken_link_is_found(tmp_path):
    # Given a page with a link to a missing file and one to a missing heading
    page = tmp_path / "page.md"
    page.write_text("# Title\n\n[ok](#title) [gone](missing.md) [nowhere](#no-such)\n")
    # Then both are reported, and the good one is not
    assert broken_links(page) == [
        "page.md: missing.md (no such file)",
        "page.md: #no-such (no such heading)",
    ]


def test_the_readme_is_short_and_links_every_docs_page():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert len(readme.splitlines()) <= README_MAX_LINES
    for page in [*sorted(DOCS.glob("*.md")), ROOT / "CONTRIBUTING.md"]:
        assert f"]({page.relative_to(ROOT).as_posix()}" in readme, page.name


def _commands(command: click.Command, path: tuple[str, ...] = ()) -> list[str]:
    if isinstance(command, click.Group):
        return [
            name
            for sub, child in command.commands.items()
            for name in _commands(child, (*path, sub))
        ]
    return [" ".join(path)]


def test_every_command_is_in_the_operating_guide():
    # Given every command of the `outreach` CLI
    commands = _commands(outreach)
    assert "account create" in commands
    # Then the operating guide names each one
    page = (DOCS / "operating.md").read_text(encoding="utf-8")
    assert [name for name in commands if f"outreach {name}" not in page] == []

"""Where the demo writes: a new SQLite file the user names, or a fresh temporary directory, and
the JSON log beside it. Every refusal comes before anything is written."""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path

from storage.errors import InvalidInput

DATABASE_NAME = "outreach-demo.sqlite3"


@dataclass(frozen=True)
class DemoPaths:
    database: Path
    log: Path


def demo_paths(database: Path | None) -> DemoPaths:
    """Where the demo writes: `database` (which must not exist) or a fresh temporary directory.

    The JSON log goes next to the database. Raises InvalidInput before anything is written.
    """
    if database is None:
        directory = Path(tempfile.mkdtemp(prefix="outreach-demo-"))
        return DemoPaths(directory / DATABASE_NAME, directory / "outreach-demo.log")
    database = database.expanduser().absolute()
    if database.exists():
        raise InvalidInput(
            f"--database {database} already exists; the demo needs a path for a new file"
        )
    log = database.with_suffix(".log")
    if log == database:
        log = database.with_name(database.name + ".log")
    if log.exists():
        raise InvalidInput(f"the demo's log file {log} already exists; choose another --database")
    if not database.parent.is_dir():
        raise InvalidInput(f"--database {database}: directory {database.parent} does not exist")
    return DemoPaths(database, log)

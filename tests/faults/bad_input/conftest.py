"""Fixtures of the bad-input scenario: the seeded database per backend, the hostile files a test
module asks for, and the count of refusals that goes into the fault suite's figures."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from storage import clock as clock_module
from storage.clock import FrozenClock
from storage.db import close_all, database, init_database
from storage.migrate import migrate
from tests.conftest import T0, _admin_execute, _pg_url
from tests.faults.bad_input.seeding import Seeded, seed
from tests.faults.figures import FIGURES, Figures
from tests.faults.services import new_database_name

# A test module's hostile files: the builders (see hostile_files.py) it lists in HOSTILE_FILES.
FileBuilder = Callable[[dict[str, int]], dict[str, bytes]]


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
def seeded(request: pytest.FixtureRequest, tmp_path_factory) -> Iterator[Seeded]:
    """A database of this module's own per backend, migrated and seeded once."""
    name = None
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path_factory.mktemp('bad-input')}/outreach.sqlite3"
    else:
        name = new_database_name()
        _admin_execute(f"CREATE DATABASE {name}")
        url = _pg_url(name)
    init_database(url)
    migrate()
    clock_module.set_clock(FrozenClock(T0))
    try:
        with database.connection_context():
            ids = seed()
    finally:
        clock_module.set_clock(None)
    yield Seeded(request.param, url, ids)
    close_all()
    database.initialize(None)
    if name is not None:
        _admin_execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


@pytest.fixture
def on_seeded(seeded: Seeded, clock: FrozenClock) -> Iterator[Seeded]:
    init_database(seeded.url)
    with database.connection_context():
        yield seeded


@pytest.fixture(scope="module")
def files(request: pytest.FixtureRequest, seeded: Seeded, tmp_path_factory) -> dict[str, Path]:
    """The hostile files this module's cases name, per backend (ids differ), written once."""
    builders: tuple[FileBuilder, ...] = getattr(request.module, "HOSTILE_FILES", ())
    folder = tmp_path_factory.mktemp(f"hostile-{seeded.backend}")
    paths = {}
    for build in builders:
        for name, content in build(seeded.ids).items():
            path = folder / name
            path.write_bytes(content)
            paths[name] = path
    return paths


@pytest.fixture(scope="session")
def refusals() -> Iterator[list[str]]:
    """Every refusal checked in this scenario, counted in the session's figures."""
    checked: list[str] = []
    yield checked
    FIGURES.record(
        Figures(
            "7 bad input",
            sent=0,
            duplicates=0,
            lost=0,
            unknown=0,
            note=f"{len(checked)} refusals, each one line, nothing written",
        )
    )

"""`outreach migrate` is idempotent, safe from two processes at once, and matches the models."""

from __future__ import annotations

import subprocess
import sys
import uuid

import pytest
from playhouse.schema_diff import diff_models

from storage.db import database, init_database
from storage.migrate import MIGRATIONS_DIR, migrate, pending
from storage.models import ALL_MODELS
from tests.conftest import _admin_execute, _pg_url
from tests.processes import ROOT, service_env


def test_migrations_build_exactly_the_schema_the_models_describe(db):
    # Given a database migrated by the fixture
    # Then peewee finds no difference between the tables and the models
    assert not diff_models(database.obj, ALL_MODELS)
    assert pending() == []


def test_migrating_twice_applies_nothing_the_second_time(db):
    assert migrate() == []


def _migrate_in_processes(url: str, count: int) -> list[subprocess.CompletedProcess[str]]:
    env = service_env(url, "", "unused")
    env.pop("REDIS_URL")
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "producers.cli", "migrate"],
            cwd=ROOT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(count)
    ]
    results = []
    for proc in procs:
        out, err = proc.communicate(timeout=120)
        results.append(subprocess.CompletedProcess(proc.args, proc.returncode, out, err))
    return results


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
def test_two_processes_migrating_at_once_apply_each_migration_once(backend, tmp_path):
    # Given an empty database
    if backend == "sqlite":
        url = f"sqlite:///{tmp_path}/fresh.sqlite3"
    else:
        name = f"outreach_migrate_{uuid.uuid4().hex[:10]}"
        _admin_execute(f"CREATE DATABASE {name}")
        url = _pg_url(name)
    try:
        # When three processes run `outreach migrate` at the same moment
        results = _migrate_in_processes(url, 3)
        # Then all succeed, and together they applied each migration exactly once
        assert [r.returncode for r in results] == [0, 0, 0], [r.stderr for r in results]
        applied = [
            line.removeprefix("applied: ")
            for r in results
            for line in r.stdout.splitlines()
            if line.startswith("applied: ")
        ]
        files = sorted(p.stem for p in MIGRATIONS_DIR.glob("[0-9]*.py"))
        assert sorted(applied) == files
        init_database(url)
        with database.connection_context():
            assert pending() == []
    finally:
        if backend == "postgres":
            from storage.db import close_all

            close_all()
            database.initialize(None)
            _admin_execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")

"""The transaction helper of the hunt modules."""

from __future__ import annotations

from contextlib import AbstractContextManager, nullcontext

from storage.db import database, write_transaction


def writing() -> AbstractContextManager[object]:
    """Join the caller's transaction, or open a write transaction of its own.

    Joining (rather than a savepoint) keeps a contact's few statements to one round trip each.
    """
    return nullcontext() if database.in_transaction() else write_transaction()

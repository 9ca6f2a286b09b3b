"""Scenario 7: bad input at the edges, on SQLite and on PostgreSQL.

Every operator command and import is given malformed, oversized, wrongly typed and hostile input:
template placeholders that try Python's format machinery, SQL-looking text, files of 50 MB and
lines of 10 MB, wrong encodings and NUL bytes, negative and zero limits, numbers no column holds,
unknown ids, wrong states, bad dates, time zones and cron expressions. Each must give one clear
line on stderr, a non-zero exit, no traceback, and change nothing: every table's row count and
content checksum are the same before and after.

One test module per command family (campaigns, hunts, contacts and ads imports, outbox and dead
letters, engagement, settings), each an exhaustive table run in-process through click's
CliRunner; ``test_console_script`` runs a representative set as real `outreach` subprocesses, as
an operator types them, and ``test_verbatim`` checks that hostile text that is valid input is
stored and sent as written. The database they refuse against is seeded in
:mod:`.seeding`, the hostile files are written by :mod:`.hostile_files`, and a case and its check
are in :mod:`.cases`.
"""

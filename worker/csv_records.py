"""CSV files an operator imports: records streamed with their line numbers, errors that name
the line (contacts, suppressions)."""

from __future__ import annotations

import csv
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

from storage.errors import InvalidInput


def _decoded(handle: BinaryIO) -> Iterator[str]:
    """The file's lines as text, decoded one by one so an error names its line."""
    for number, raw in enumerate(handle, 1):
        try:
            text = raw.decode("utf-8-sig" if number == 1 else "utf-8")
        except UnicodeDecodeError:
            raise InvalidInput(f"line {number}: the file is not UTF-8 text") from None
        yield text


def records(path: Path) -> Iterator[tuple[int, list[str]]]:
    """(line number, cells) of each non-blank record, streamed."""
    with path.open("rb") as handle:
        reader = csv.reader(_decoded(handle))
        line = 1
        try:
            for cells in reader:
                if any(cell.strip() for cell in cells):
                    yield line, cells
                line = reader.line_num + 1
        except csv.Error as exc:
            raise InvalidInput(f"line {line}: malformed CSV: {exc}") from None

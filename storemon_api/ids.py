"""Report ids are Dagster run ids: UUIDs. Parsed strictly before anything else touches them.

A report id reaches the file system (``reports/<id>.csv``), so it is never used as given: only
the canonical form of the parsed UUID is, which cannot hold a separator, a dot or anything
outside ``[0-9a-f-]``.
"""

from __future__ import annotations

import re
import uuid

# 8-4-4-4-12 hex digits and nothing else: no braces, "urn:uuid:", bare hex or whitespace, which
# uuid.UUID() would accept.
_UUID_TEXT = re.compile(r"[0-9a-fA-F]{8}(-[0-9a-fA-F]{4}){3}-[0-9a-fA-F]{12}")
EXAMPLE_REPORT_ID = "3f0c2a8e-5b1d-4c7e-9a2f-6d8b1e4c0a97"


class MalformedReportId(ValueError):
    """The id is not a Dagster run id; answered with 422."""

    def __init__(self) -> None:
        super().__init__(
            f"report_id must be a Dagster run id: a UUID such as {EXAMPLE_REPORT_ID}"
        )


def parse_report_id(text: str | None) -> str:
    """The canonical (lower-case) form of a report id, or MalformedReportId."""
    if text is None or len(text) != 36 or not text.isascii() or not _UUID_TEXT.fullmatch(text):
        raise MalformedReportId()
    return str(uuid.UUID(text))

"""UTC offsets of the few time zones in use, as constant-offset pieces of UTC time.

There are a handful of zones and a few transitions per zone in any horizon, so this small table
is built in Python and joined in SQL, instead of converting every boundary row by row.

Transitions are exact and do not depend on the span asked for: offsets are read (pandas, from
the IANA database) on a grid of whole UTC hours, and each change is located by bisection on
whole seconds, which is where every transition of the database lies. (Locating them from a
span's first instant once carried that instant's fraction of a second into the transition, and
a window ending exactly at a fall-back transition lost its repeated hour.)
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timedelta
from functools import lru_cache
from zoneinfo import ZoneInfo

import numpy as np
import pandas as pd

# The zone of a store without a valid one (docs/semantics.md §1): the engine's, so that every
# caller (the CLI, Dagster, the API) reports the same.
DEFAULT_TIMEZONE = "America/Chicago"

# Sentinels for the open ends of the first and last piece of each zone.
BEGINNING = datetime(1900, 1, 1)
END = datetime(2300, 1, 1)
HOUR = 3600
# Offsets are read for whole UTC years at a time (and cached): a span is a union of years.
EPOCH = datetime(1970, 1, 1)


def _offset_seconds(zone: ZoneInfo, unix_second: int) -> int:
    instant = datetime.fromtimestamp(unix_second, tz=zone)
    return int(instant.utcoffset().total_seconds())


@lru_cache(maxsize=4096)
def _year_transitions(zone_name: str, year: int) -> tuple[tuple[int, int], ...]:
    """(unix second of the change, offset after it) for each change in the UTC year, in order;
    plus the offset in force at the year's start as (start, offset)."""
    start = int((datetime(year, 1, 1) - EPOCH).total_seconds())
    end = int((datetime(year + 1, 1, 1) - EPOCH).total_seconds())
    grid = np.arange(start, end + 1, HOUR, dtype=np.int64)
    utc = pd.DatetimeIndex(grid * 1_000_000_000, tz="UTC")
    offsets = (utc.tz_convert(zone_name).tz_localize(None).asi8 // 1_000_000_000) - grid
    zone = ZoneInfo(zone_name)
    found = [(start, int(offsets[0]))]
    for index in np.flatnonzero(offsets[1:] != offsets[:-1]):
        low, high = int(grid[index]), int(grid[index + 1])  # offset changes in (low, high]
        before = int(offsets[index])
        while high - low > 1:
            middle = (low + high) // 2
            if _offset_seconds(zone, middle) == before:
                low = middle
            else:
                high = middle
        found.append((high, _offset_seconds(zone, high)))
    return tuple(found)


def zone_offset_pieces(zones: Iterable[str], start: datetime, end: datetime) -> pd.DataFrame:
    """Rows (timezone, valid_from, valid_to, utc_offset_sec), naive UTC, covering [start, end].

    The first and last piece of each zone are open-ended; the pieces in between start and end
    exactly at the zone's transitions.
    """
    years = range(start.year, end.year + 1)
    rows = []
    for name in sorted(set(zones)):
        changes = [change for year in years for change in _year_transitions(name, year)]
        piece_from, offset = BEGINNING, changes[0][1]
        for second, new_offset in changes[1:]:
            if new_offset == offset:  # a year boundary, not a transition
                continue
            change = EPOCH + timedelta(seconds=second)
            rows.append((name, piece_from, change, offset))
            piece_from, offset = change, new_offset
        rows.append((name, piece_from, END, offset))
    return pd.DataFrame(rows, columns=["timezone", "valid_from", "valid_to", "utc_offset_sec"])

"""UTC offsets of the few time zones in use, as constant-offset pieces of UTC time.

There are a handful of zones and a few transitions per zone in any horizon, so this small table
is built in Python (zoneinfo) and joined in SQL, instead of converting every boundary row by row.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pandas as pd

# Sentinels for the open ends of the first and last piece of each zone.
BEGINNING = datetime(1900, 1, 1)
END = datetime(2300, 1, 1)
SCAN_STEP = timedelta(hours=1)


def _offset_seconds(zone: ZoneInfo, instant: datetime) -> int:
    return int(instant.astimezone(zone).utcoffset().total_seconds())


def _transition_instant(zone: ZoneInfo, before: datetime, after: datetime) -> datetime:
    """The exact second the offset changes in (before, after]: bisection on whole seconds."""
    low, high = before, after
    offset_before = _offset_seconds(zone, low)
    while high - low > timedelta(seconds=1):
        middle = low + timedelta(seconds=((high - low).total_seconds() // 2))
        if _offset_seconds(zone, middle) == offset_before:
            low = middle
        else:
            high = middle
    return high


def zone_offset_pieces(zones: Iterable[str], start: datetime, end: datetime) -> pd.DataFrame:
    """Rows (timezone, valid_from, valid_to, utc_offset_sec), naive UTC, covering [start, end].

    Offsets are sampled hourly and each change is located to the second, so transitions at any
    minute (Lord Howe, Chatham) are exact. The first and last piece are open-ended.
    """
    start = start.replace(tzinfo=UTC)
    end = end.replace(tzinfo=UTC)
    rows = []
    for name in sorted(set(zones)):
        zone = ZoneInfo(name)
        piece_from, offset = BEGINNING, _offset_seconds(zone, start)
        instant = start
        while instant < end:
            following = min(instant + SCAN_STEP, end)
            if _offset_seconds(zone, following) != offset:
                change = _transition_instant(zone, instant, following)
                rows.append((name, piece_from, change.replace(tzinfo=None), offset))
                piece_from, offset = change.replace(tzinfo=None), _offset_seconds(zone, change)
            instant = following
        rows.append((name, piece_from, END, offset))
    return pd.DataFrame(rows, columns=["timezone", "valid_from", "valid_to", "utc_offset_sec"])

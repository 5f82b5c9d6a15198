"""The figures behind the page's chart: last-week uptime across stores, and the worst stores.

Computed from the finished CSV (the served artefact, so the chart never disagrees with the
download) and cached per file: a finished report never changes.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import pandas as pd

BIN_WIDTH_PERCENT = 5


def uptime_summary(csv_path: Path, worst: int) -> dict[str, object]:
    stat = csv_path.stat()
    return _summary(str(csv_path), stat.st_mtime_ns, stat.st_size, worst)


@lru_cache(maxsize=64)
def _summary(path: str, _mtime_ns: int, _size: int, worst: int) -> dict[str, object]:
    frame = pd.read_csv(
        path,
        dtype={"store_id": str},
        usecols=["store_id", "uptime_last_week", "downtime_last_week"],
        keep_default_na=False,
    )
    business = frame["uptime_last_week"] + frame["downtime_last_week"]
    open_stores = frame[business > 0].copy()
    open_stores["uptime_share"] = open_stores["uptime_last_week"] / business[business > 0]
    percent = (open_stores["uptime_share"] * 100).clip(0, 100)

    # 5 % bins, the last one closed ([95, 100]) so that full uptime falls in it.
    edges = list(range(0, 100 + BIN_WIDTH_PERCENT, BIN_WIDTH_PERCENT))
    index = (percent // BIN_WIDTH_PERCENT).clip(upper=len(edges) - 2).astype(int)
    counts = index.value_counts().reindex(range(len(edges) - 1), fill_value=0)
    bins = [
        {"lower": edges[i], "upper": edges[i + 1], "stores": int(counts[i])}
        for i in range(len(edges) - 1)
    ]

    ranked = open_stores.sort_values(
        ["uptime_share", "downtime_last_week", "store_id"], ascending=[True, False, True]
    ).head(worst)
    return {
        "stores": len(frame),
        "stores_with_business_time": len(open_stores),
        "stores_with_full_uptime": int((open_stores["downtime_last_week"] == 0).sum()),
        "mean_uptime_percent": _round(percent.mean()),
        "median_uptime_percent": _round(percent.median()),
        "overall_uptime_percent": _round(
            100 * frame["uptime_last_week"].sum() / business.sum() if business.sum() else None
        ),
        "bins": bins,
        "worst": [
            {
                "store_id": row.store_id,
                "uptime_percent": _round(100 * row.uptime_share),
                "uptime_last_week": float(row.uptime_last_week),
                "downtime_last_week": float(row.downtime_last_week),
            }
            for row in ranked.itertuples(index=False)
        ],
    }


def _round(value: float | None) -> float | None:
    return None if value is None or pd.isna(value) else round(float(value), 2)

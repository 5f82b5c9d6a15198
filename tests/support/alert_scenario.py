"""The alerts' delivery scenario, shared by the engine's and the whole product's tests: three
stores of Chicago open 09:00-21:00 every day and the poll files delivered one after another."""

from __future__ import annotations

from datetime import datetime, timedelta

from support.oracle import StoreCase

EVERY_DAY = [(day, "09:00", "21:00") for day in range(7)]


def chicago(day: int, hour: int, minute: int = 0) -> datetime:
    """March 2023 local time in Chicago (UTC-6 until the 12th) as naive UTC."""
    return datetime(2023, 3, day, hour, minute) + timedelta(hours=6)


STORES = [
    StoreCase("DOWN", EVERY_DAY, "America/Chicago"),
    StoreCase("FINE", EVERY_DAY, "America/Chicago"),
    StoreCase("NIGHT", EVERY_DAY, "America/Chicago"),
]
# DOWN goes down at 20:20 (closed at 21:00), is still down at 10:00 the next morning (100
# business minutes: opened) and back up at 11:40 (150 minutes: resolved). FINE is up until it
# goes down at 12:00 (opened at 13:00, 60 minutes), and up again at 14:00 (resolved). NIGHT is
# down only while closed: never an alert.
DELIVERIES = [
    {"DOWN": [(chicago(6, 20), True), (chicago(6, 20, 40), False)],
     "FINE": [(chicago(6, 20), True)],
     "NIGHT": [(chicago(6, 20), True), (chicago(6, 22), True), (chicago(6, 23), False)]},
    {"DOWN": [(chicago(7, 10), False)], "FINE": [(chicago(7, 10), True)],
     "NIGHT": [(chicago(7, 2), False), (chicago(7, 8), True)]},
    {"DOWN": [(chicago(7, 11, 40), True)], "FINE": [(chicago(7, 11, 40), True)],
     "NIGHT": [(chicago(7, 11, 40), True)]},
    {"DOWN": [(chicago(7, 13), True)],
     "FINE": [(chicago(7, 12), False), (chicago(7, 13), False)],
     "NIGHT": [(chicago(7, 13), True)]},
    {"DOWN": [(chicago(7, 14), True)], "FINE": [(chicago(7, 14), True)],
     "NIGHT": [(chicago(7, 14), True)]},
]


def delivered(index: int) -> list[StoreCase]:
    """The stores with the polls of delivery ``index``."""
    polls = DELIVERIES[index]
    return [StoreCase(s.store_id, s.hours, s.zone, polls.get(s.store_id, [])) for s in STORES]

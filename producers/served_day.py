"""One day of the closed-loop marketplace: the simulator's users see what a deployed policy serves.

The logging simulator (producers/simulator.py) picks its own slates. Here the day's requests (the same users,
times, surfaces and queries for any policy: they come from the generator seeded by (seed, day) before any slate
is chosen) go to a :data:`~producers.simulator.Server`, and the users' clicks and purchases on the served slates
become the day's raw partitions, exactly as the logging simulator writes them: events, inventory (stock at the
start of the day, after restocking) and the day's new users, sellers and items. Stock then sells down by the
served day's purchases and is checkpointed, so the next served day starts from this policy's own stock.

A served day needs the stock at the end of the day before: a logged warm-up (``simulate`` up to the day before)
or an earlier served day leaves it.
"""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

import numpy as np
import pyarrow as pa

from producers.simulator import (
    Server,
    _entity_tables,
    _restock,
    _resume,
    _simulate_day,
    _state_dir,
    _ts,
    _write_truth,
    build_world,
    effective_sizes,
    world_ids,
)
from shoprank.raw_contract import SCHEMAS, partition_path, write_partition
from shoprank.settings import Settings


class MissingStock(RuntimeError):
    """No stock checkpoint for the day before the served day: the loop has no warm-up yet."""


def simulate_served_day(settings: Settings, day: date, server: Server) -> dict[str, Any]:
    """Write ``day``'s raw partitions from the slates ``server`` returns; returns a summary (rows, event counts)."""
    sim = effective_sizes(settings.simulator)
    index = (day - sim.start_date).days
    if index < 1:
        raise ValueError(f"a served day must follow the simulator's start date {sim.start_date}, got {day}")
    world = build_world(settings, day)
    ids = world_ids(world)
    raw_dir = settings.raw_dir
    rows: dict[str, int] = {}
    for table, frame in _entity_tables(world, sim.start_date, index, ids).items():
        write_partition(frame, partition_path(raw_dir, table, day), SCHEMAS[table])
        rows[table] = frame.num_rows
    state_dir = _state_dir(settings, sim)
    next_day, stock = _resume(state_dir, sim, world, index)
    if next_day != index:
        before = day - timedelta(days=1)
        raise MissingStock(f"no stock checkpoint for {before}: simulate up to {before} first (the loop's warm-up)")
    _restock(sim, world, index, stock)
    existing = np.nonzero(world.item_created_day < index)[0]
    inventory = pa.table(
        {
            "item_id": ids["items"].take(pa.array(existing)),
            "snapshot_ts": _ts(day, np.zeros(len(existing))),
            "stock_units": pa.array(stock[world.promoted_item[existing]], type=pa.int64()),
        }
    )
    write_partition(inventory, partition_path(raw_dir, "inventory", day), SCHEMAS["inventory"])
    simulated = _simulate_day(sim, world, index, day, stock, ids, server=server)
    write_partition(simulated.events, partition_path(raw_dir, "events", day))
    truth_dir = settings.truth_dir
    write_partition(simulated.truth, truth_dir / "impressions" / f"dt={day.isoformat()}" / "part-0.parquet")
    np.save(state_dir / f"stock-{day.isoformat()}.npy", stock)
    _write_truth(truth_dir, world, ids)
    return {
        "day": day.isoformat(),
        "rows": {**rows, "inventory": inventory.num_rows, "events": simulated.events.num_rows},
        "events": simulated.counts,
        "ctr": simulated.counts["click"] / max(simulated.counts["impression"], 1),
    }

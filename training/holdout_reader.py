"""A scored holdout file read back in batches of whole requests, so the gate never holds the holdout in memory.

Training writes ``holdout.parquet`` chunk after chunk, each chunk's rows grouped by request
(training.holdout_eval), so a request's rows are contiguous in the file. Arrow batches cut anywhere; the rows of a
batch's last request wait for the next batch, so every batch yielded holds whole requests. A file whose requests
are not contiguous (a request seen again after it was yielded) is refused: per-request metrics over it would be
wrong, not just slow.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd

# Rows read per Arrow batch: a few tens of MB for a holdout's hundred-odd columns.
BATCH_ROWS = 100_000


def request_batches(
    path: Path | str, batch_rows: int = BATCH_ROWS, columns: list[str] | None = None
) -> Iterator[pd.DataFrame]:
    """The rows of the parquet file ``path`` (``columns`` only, when given; ``request_id`` always) as frames of
    whole requests, in file order."""
    import pyarrow.parquet as pq

    source = pq.ParquetFile(path)
    if columns is not None:
        columns = list(dict.fromkeys(["request_id", *columns]))
    pending: pd.DataFrame | None = None
    finished: list[np.ndarray] = []  # hashes of the requests already yielded, to refuse a non-contiguous file
    for batch in source.iter_batches(batch_size=batch_rows, columns=columns):
        frame = batch.to_pandas()
        if pending is not None:
            frame = pd.concat([pending, frame], ignore_index=True)
        last = frame["request_id"].iloc[-1] if len(frame) else None
        tail = (frame["request_id"] == last).to_numpy()
        # the last request may go on in the next batch; unless it is the whole frame, it waits for it
        ready, pending = (frame[~tail], frame[tail]) if not tail.all() else (frame.iloc[:0], frame)
        if len(ready):
            finished.append(_request_hashes(ready))
            yield ready.reset_index(drop=True)
    if pending is not None and len(pending):
        finished.append(_request_hashes(pending))
        yield pending.reset_index(drop=True)
    hashes = np.concatenate(finished) if finished else np.zeros(0, dtype=np.uint64)
    if len(np.unique(hashes)) != len(hashes):
        raise ValueError(f"{path}: a request's rows are not contiguous; the holdout must be grouped by request_id")


def _request_hashes(frame: pd.DataFrame) -> np.ndarray:
    return pd.util.hash_array(frame["request_id"].astype(str).unique().astype(object))

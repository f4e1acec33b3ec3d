"""Chunk sizes of the training step, derived from its memory budget (settings.resources.memory_budget_gib).

The step holds, one after the other: DuckDB's working memory while it assembles the training set (capped at
settings.duckdb_memory_limit, it spills to disk beyond), then one chunk of rows at a time in pandas (a few copies
of it: Arrow, the frame, the derived frame, the float32 matrix) next to XGBoost's quantized matrices (about one
byte per feature and row of the fit days). A chunk and its copies get a sixteenth of the budget.
"""

from __future__ import annotations

from shoprank.settings import Settings

# Copies of a chunk alive at once while it is read, derived and scored (Arrow table, frame, derived frame, matrix).
CHUNK_COPIES = 4
CHUNK_SHARE = 1 / 16


def chunk_rows(settings: Settings, n_columns: int) -> int:
    """Rows per chunk for rows of ``n_columns`` columns (8 bytes each, CHUNK_COPIES copies)."""
    return settings.resources.chunk_rows(8 * max(n_columns, 1) * CHUNK_COPIES, share=CHUNK_SHARE)

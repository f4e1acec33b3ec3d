"""Team-draft interleaving (Radlinski et al., 2008): one slate from two rankers' lists, each item remembering the
ranker that contributed it, and a click credited to that ranker.

Per round, a coin decides which team picks first; each team then adds its highest-ranked item not yet in the slate.
Over many requests each ranker's items get the same positions on average, so the share of credited clicks measures
which ranker users prefer.
"""

from __future__ import annotations

import hashlib
import random
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

TEAM_A, TEAM_B = "A", "B"


@dataclass(frozen=True)
class Interleaved:
    items: list[str]
    teams: list[str]  # TEAM_A / TEAM_B per item, aligned with items

    def team_of(self) -> dict[str, str]:
        return dict(zip(self.items, self.teams, strict=True))


def seed_of(*parts: str) -> int:
    """A stable seed from strings (e.g. the request id): the same request interleaves the same way."""
    return int.from_bytes(hashlib.sha256(":".join(parts).encode()).digest()[:8], "big")


def team_draft(ranking_a: Sequence[str], ranking_b: Sequence[str], k: int, seed: int) -> Interleaved:
    """The first ``k`` items of the team-draft interleaving of ``ranking_a`` and ``ranking_b``."""
    rng = random.Random(seed)
    items: list[str] = []
    teams: list[str] = []
    taken: set[str] = set()
    cursors = {TEAM_A: 0, TEAM_B: 0}
    lists = {TEAM_A: ranking_a, TEAM_B: ranking_b}

    def pick(team: str) -> bool:
        ranking, i = lists[team], cursors[team]
        while i < len(ranking) and ranking[i] in taken:
            i += 1
        cursors[team] = i + 1
        if i >= len(ranking):
            return False
        items.append(ranking[i])
        teams.append(team)
        taken.add(ranking[i])
        return True

    while len(items) < k:
        order = (TEAM_A, TEAM_B) if rng.random() < 0.5 else (TEAM_B, TEAM_A)
        picked = False
        for team in order:
            if len(items) < k:
                picked = pick(team) or picked
        if not picked:  # both lists exhausted
            break
    return Interleaved(items, teams)


def credit(teams: dict[str, str], clicked: Iterable[str]) -> tuple[int, int]:
    """Clicks credited to (A, B): each clicked item counts for the ranker that contributed it; others are ignored."""
    a = b = 0
    for item in clicked:
        team = teams.get(item)
        a += team == TEAM_A
        b += team == TEAM_B
    return a, b


def preference(teams: dict[str, str], clicked: Iterable[str]) -> str | None:
    """The request's winner: 'A', 'B', or None for a tie (no credited click, or as many for each)."""
    a, b = credit(teams, clicked)
    return TEAM_A if a > b else TEAM_B if b > a else None

"""The service with a recall index (issue 16): a search's query retrieves the items whose titles match it, each
marked with its source in /explain; the index is built by the pipeline's build-retrieval function in the world's
home and removed afterwards (the other modules' services serve without one)."""

from __future__ import annotations

import shutil
from collections.abc import Iterator

import pandas as pd
import pytest

from retrieval.build import build_retrieval
from serving.schemas import RankRequest
from serving.service import RankingService
from shoprank.recall import tokenize

from .conftest import ServingWorld


@pytest.fixture(scope="module")
def service(serving_world: ServingWorld) -> Iterator[RankingService]:
    settings = serving_world.settings
    build_retrieval(settings, settings.default_run_date)
    try:
        yield RankingService()
    finally:
        shutil.rmtree(settings.recall_dir)


def test_a_search_retrieves_the_items_its_query_names(service: RankingService, serving_world: ServingWorld) -> None:
    assert service.state.recall.text is not None
    titles = pd.read_parquet(serving_world.settings.raw_dir / "items").set_index("item_id")["title"]
    item_id = serving_world.item_ids[3]
    query = titles[item_id]
    request = RankRequest(
        user_id=serving_world.user_ids[0], surface="search", query=query, k=service.settings.serving.max_k
    )
    response = service.explain(request)
    sources = {item.item_id: item.retrieval_source for item in response.items}
    text = [i for i, source in sources.items() if source == "text"]
    assert text and all(set(tokenize(titles[i])) & set(tokenize(query)) for i in text)
    assert all(sources[i] == "text" for i in sources if titles[i] == query)
    # the item itself is among the retrieved candidates (the ranker then keeps the best k of them)
    state = service.state
    n = service.settings.serving.default_candidate_count
    _, retrieved = state.retrieval.retrieve(request.user_id, None, n, query=query, recall=state.recall)
    assert retrieved[item_id] == "text"
    # the feed ignores the query
    feed = service.explain(RankRequest(user_id=serving_world.user_ids[0], k=service.settings.serving.max_k))
    assert "text" not in {item.retrieval_source for item in feed.items}

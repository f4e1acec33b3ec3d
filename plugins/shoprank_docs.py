"""Airflow plugin: the operator's docs (Data Docs, dbt docs, evaluation and monitoring reports) inside the Airflow UI.

Mounts orchestration.docs_site's app at ``/shoprank`` in the API server, behind Airflow's own login (every route depends
on Airflow's ``get_user``: the UI's session cookie or an API bearer token), and adds "ShopRank docs" to the UI's
Browse menu. AIRFLOW__CORE__PLUGINS_FOLDER points here (shoprank.settings.Settings.runtime_env).
"""

from __future__ import annotations

from airflow.api_fastapi.core_api.security import get_user
from airflow.plugins_manager import AirflowPlugin

from orchestration.docs_site import create_docs_app
from shoprank.settings import get_settings

DOCS_PREFIX = "/shoprank"


class ShopRankDocsPlugin(AirflowPlugin):
    name = "shoprank_docs"
    fastapi_apps = [
        {"app": create_docs_app(get_settings(), get_user), "url_prefix": DOCS_PREFIX, "name": "ShopRank docs"}
    ]
    external_views = [
        {
            "name": "ShopRank docs",
            "href": f"{DOCS_PREFIX.lstrip('/')}/",
            "url_route": "shoprank_docs",
            "destination": "nav",
            "category": "browse",
        }
    ]

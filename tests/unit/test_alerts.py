"""Failure alerts: the record on disk, and a real webhook on loopback that receives the message."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer

from orchestration.alerts import alert
from shoprank.settings import Settings


def test_alert_appends_a_record_with_the_task_and_the_error(tmp_path):
    settings = Settings(home=tmp_path)
    alert(settings, "shoprank_daily", "validate_raw", "manual__1", "DataQualityError('events: nulls')", 1)
    alert(settings, "shoprank_daily", "train", "manual__1", "ValueError('x')", 2)
    records = [json.loads(line) for line in (tmp_path / "alerts" / "alerts.jsonl").read_text().splitlines()]
    assert [r["task_id"] for r in records] == ["validate_raw", "train"]
    assert "events: nulls" in records[0]["error"]
    assert "shoprank validate-raw" in records[0]["how_to_recover"]


def test_alert_posts_to_the_webhook_and_survives_a_broken_one(tmp_path):
    received: list[dict] = []

    class Hook(BaseHTTPRequestHandler):
        def do_POST(self):  # noqa: N802 (http.server's naming)
            received.append(json.loads(self.rfile.read(int(self.headers["content-length"]))))
            self.send_response(200 if len(received) == 1 else 500)
            self.end_headers()

        def log_message(self, *args):
            pass

    server = HTTPServer(("127.0.0.1", 0), Hook)
    thread = threading.Thread(target=server.handle_request, kwargs={}, daemon=True)
    thread.start()
    settings = Settings(home=tmp_path, alerts={"webhook_url": f"http://127.0.0.1:{server.server_port}/hook"})
    try:
        alert(settings, "shoprank_daily", "train", "manual__2", "boom", 1)
        thread.join(timeout=5)
        assert received and "shoprank_daily.train failed" in received[0]["text"]
        # A second alert: the hook answers 500; the alert is still recorded and nothing raises.
        thread = threading.Thread(target=server.handle_request, daemon=True)
        thread.start()
        alert(settings, "shoprank_daily", "train", "manual__3", "boom again", 1)
        thread.join(timeout=5)
    finally:
        server.server_close()
    assert len((tmp_path / "alerts" / "alerts.jsonl").read_text().splitlines()) == 2

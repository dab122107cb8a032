"""Logs: every process (the server and its gateway) writes JSON lines on stderr, each with
the request id of the request it belongs to (traces' ids: tests/test_tracing.py O1)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import httpx

from tests.test_tracing import serving


async def test_every_log_line_is_json_with_the_request_id(tmp_path: Path) -> None:
    """L1: at DEBUG, a REST request gives one `http` line from the gateway and one `rpc`
    line from the server, both with the request's id; nothing on stderr is plain text
    (uvicorn's own lines included)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
    async with (
        serving(tmp_path, env) as served,
        httpx.AsyncClient(base_url=served.base_url) as http,
    ):
        reply = await http.post(
            "/v1/collections?collectionId=logged",
            json={"profile": "SCHEDULED"},
            headers={"x-request-id": "req-l1"},
        )
        assert reply.status_code == 200, reply.text
        missing = await http.get("/v1/collections/absent", headers={"x-request-id": "req-l1b"})
        assert missing.status_code == 404
    text = served.log.read_text().splitlines()
    lines = [json.loads(x) for x in text if x.strip()]  # a plain-text line fails here
    mine = [x for x in lines if x["request_id"] == "req-l1" and x["msg"] in ("rpc", "http")]
    assert [(x["logger"], x["msg"]) for x in mine] == [
        ("jobcontrol.access", "rpc"),
        ("jobcontrol.gateway", "http"),
    ], mine
    rpc, http_line = mine
    assert rpc["method"] == "/jobcontrol.v1.JobService/CreateCollection"
    assert {k: http_line[k] for k in ("method", "dialect", "route", "status")} == {
        "method": "POST",
        "dialect": "native",
        "route": "/v1/collections",
        "status": 200,
    }
    assert "trace_id" not in http_line  # traces are off
    (absent,) = [x for x in lines if x["request_id"] == "req-l1b" and x["msg"] == "http"]
    assert absent["status"] == 404
    loggers = {x["logger"] for x in lines}
    assert loggers >= {"jobcontrol.access", "jobcontrol.gateway", "uvicorn.error"}

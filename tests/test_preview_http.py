"""``mailsmith preview`` over real HTTP: a uvicorn server in a thread, plain urllib.

The emails it serves are the build's files byte for byte (assigned and forced
variants); a recipient without an email gets a 4xx naming the reason; hostile
profile values never reach the app's own HTML unescaped.
"""

from __future__ import annotations

import http.client
import json
import statistics
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
from markupsafe import escape
from typer.testing import CliRunner

import cli
from renderer import BuildOptions, build_campaign, load_campaign
from renderer.build.output import iter_manifest
from renderer.serve.server import PreviewServer, bind, host_warnings
from renderer.serve.session import PreviewSession
from tests.conftest import HOSTILE_ID, HOSTILE_NAME, HOSTILE_REJECTED_ID, copy_demo_campaign

ROWS = 300
WINNERS = {"subject_test": "B", "offer_test": "free_shipping"}


@pytest.fixture(scope="module")
def campaign_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return copy_demo_campaign(tmp_path_factory.mktemp("preview") / "campaign", ROWS)


@pytest.fixture(scope="module")
def server(campaign_file: Path) -> Iterator[PreviewServer]:
    running = PreviewServer(PreviewSession(campaign_file), port=0, watch=False)
    running.start()
    try:
        yield running
    finally:
        running.stop()


def get(server: PreviewServer, path: str) -> tuple[int, str, bytes]:
    """Status, content type and body of ``GET path`` (errors included)."""
    try:
        with urllib.request.urlopen(server.url.rstrip("/") + path, timeout=30) as response:
            return response.status, response.headers["content-type"], response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.headers["content-type"], exc.read()


def email_path(recipient_id: str, part: str, variants: dict[str, str] | None = None) -> str:
    query = "&".join(f"variant={quote(f'{k}={v}')}" for k, v in (variants or {}).items())
    return f"/email/{quote(recipient_id, safe='')}.{part}" + (f"?{query}" if query else "")


def build(campaign_file: Path, out: Path, winner: dict[str, str] | None = None) -> list[Any]:
    build_campaign(load_campaign(campaign_file), BuildOptions(out=out, winner=winner or {}))
    return list(iter_manifest(out / "manifest.jsonl"))


def assert_same_as_build(server: PreviewServer, out: Path, entries: list[Any], **kw: Any) -> int:
    compared = 0
    for entry in entries:
        if entry["holdout"]:
            continue
        for part, key in (("html", "html"), ("txt", "text")):
            status, kind, body = get(server, email_path(entry["id"], part, kw.get("variants")))
            assert status == 200, (entry["id"], body[:200])
            assert kind.endswith("charset=utf-8")
            assert body == (out / entry[key]).read_bytes(), (entry["id"], part)
        compared += 1
    return compared


@pytest.mark.slow  # builds to compare with
def test_every_email_is_the_builds_file(
    server: PreviewServer, campaign_file: Path, tmp_path: Path
) -> None:
    entries = build(campaign_file, tmp_path / "out")
    assert assert_same_as_build(server, tmp_path / "out", entries) > ROWS * 0.7


@pytest.mark.slow  # builds to compare with
def test_forced_variants_are_the_winner_builds_file(
    server: PreviewServer, campaign_file: Path, tmp_path: Path
) -> None:
    entries = build(campaign_file, tmp_path / "out", WINNERS)
    compared = assert_same_as_build(server, tmp_path / "out", entries, variants=WINNERS)
    assert compared > ROWS * 0.7


def test_a_held_out_recipient_gets_409_and_renders_when_forced(server: PreviewServer) -> None:
    held = next(r for r in server.session.find(limit=10_000) if r.held_out)
    status, kind, body = get(server, email_path(held.id, "html"))
    assert status == 409 and kind == "application/json"
    answer = json.loads(body)
    assert answer["refusal"] == "holdout" and "offer_test" in answer["error"]
    status, _, _ = get(server, email_path(held.id, "html", {"offer_test": "control"}))
    assert status == 200


def test_a_rejected_id_gets_422_naming_the_reason(server: PreviewServer) -> None:
    status, _, body = get(server, email_path(HOSTILE_REJECTED_ID, "html"))
    assert status == 422
    answer = json.loads(body)
    assert answer["refusal"] == "rejected" and "invalid_email" in answer["error"]
    assert answer["field"] == "email"
    assert HOSTILE_REJECTED_ID not in answer["error"]  # messages name fields, not values


def test_unknown_ids_and_paths_in_ids_get_404(server: PreviewServer) -> None:
    for recipient_id in ("nobody", "../../etc/passwd", "..", "C000001/../C000002", "%00"):
        status, _, body = get(server, email_path(recipient_id, "html"))
        assert status == 404, recipient_id
        assert json.loads(body)["refusal"] == "unknown"


def test_an_unknown_variant_is_400_listing_those_that_exist(server: PreviewServer) -> None:
    recipient = server.session.find(limit=1)[0]
    status, _, body = get(server, email_path(recipient.id, "html", {"offer_test": "nope"}))
    assert status == 400
    answer = json.loads(body)
    assert "nope" in answer["error"] and "control, free_shipping" in answer["hint"]
    status, _, body = get(server, email_path(recipient.id, "html", {"nope": "A"}))
    assert status == 400 and "subject_test: A, B" in json.loads(body)["hint"]


def test_hostile_values_are_escaped_in_the_app_page(server: PreviewServer) -> None:
    status, kind, body = get(server, "/")
    page = body.decode("utf-8")
    assert status == 200 and kind.startswith("text/html")
    for value in (HOSTILE_REJECTED_ID, HOSTILE_NAME, "<script>alert", "<i>", "<b>"):
        assert value not in page
    assert str(escape(HOSTILE_REJECTED_ID)) in page  # listed, escaped, with its reason
    assert "invalid_email" in page
    assert "script-src 'self'" in get_headers(server, "/")["content-security-policy"]


def test_the_json_routes_carry_hostile_values_as_json_only(server: PreviewServer) -> None:
    forced = {"offer_test": "control", "subject_test": "A"}  # in case it is held out
    paths = [
        f"/api/recipients?q={quote(HOSTILE_ID)}",
        f"/api/explain/{quote(HOSTILE_ID, safe='')}?variant=offer_test=control",
        "/api/rejected",
    ]
    for path in paths:
        status, kind, body = get(server, path)
        assert status == 200 and kind == "application/json", path
        assert json.loads(body)  # data, read by the page with textContent
    found = json.loads(get(server, paths[0])[2])["recipients"]
    assert [r["id"] for r in found] == [HOSTILE_ID]
    status, _, body = get(server, email_path(HOSTILE_ID, "html", forced))
    assert status == 200
    assert b"<script>alert" not in body  # the template escapes the first name
    assert b"&lt;script&gt;" in body


def test_recipients_search_and_segment_filter(server: PreviewServer) -> None:
    status, _, body = get(server, "/api/recipients?segment=vip&limit=500")
    found = json.loads(body)["recipients"]
    assert status == 200 and found and all("vip" in r["segments"] for r in found)
    status, _, body = get(server, "/api/recipients?q=C00001&limit=5")
    found = json.loads(body)["recipients"]
    assert len(found) == 5 and all("c00001" in r["id"].lower() for r in found)
    assert get(server, "/api/recipients?limit=many")[0] == 400
    status, _, body = get(server, "/api/recipients?segment=value_cluster%3Dbrowsers&limit=500")
    found = json.loads(body)["recipients"]
    assert found and all("value_cluster=browsers" in r["clusters"] for r in found)
    assert "value_cluster=browsers" in get(server, "/")[2].decode()  # in the filter


def test_explain_and_matrix(server: PreviewServer) -> None:
    recipient = next(r for r in server.session.find(limit=10_000) if not r.held_out)
    explained = json.loads(get(server, f"/api/explain/{quote(recipient.id)}")[2])
    assert {s["name"] for s in explained["segments"]} >= {"vip", "lapsed", "engaged"}
    assert explained["blocks"] and explained["inbox"]["subject"]
    assert [e["key"] for e in explained["experiments"]] == ["subject_test", "offer_test"]
    cells = json.loads(get(server, "/api/matrix")[2])
    assert {c["group"] for c in cells} == {"journey"}
    assert len({tuple(sorted(c["variants"].items())) for c in cells}) == 4


@pytest.mark.slow  # builds to compare with
def test_personas_are_served_as_snapshot_renders_them(
    server: PreviewServer, campaign_file: Path
) -> None:
    import json

    from renderer.fixtures import prepare_fixtures

    status, _, body = get(server, "/api/fixtures")
    names = json.loads(body)["fixtures"]
    assert status == 200 and "vip_new_york" in names
    personas = prepare_fixtures(load_campaign(campaign_file))
    for name in names[:3]:
        status, kind, html = get(server, f"/fixture/{name}.html")
        assert (status, kind) == (200, "text/html; charset=utf-8")
        assert html == personas.render(name).html.encode("utf-8")
    forced = get(server, f"/fixture/{names[0]}.txt?variant=subject_test%3DB")[2]
    assert forced == personas.render(names[0], {"subject_test": "B"}).text.encode("utf-8")
    status, _, body = get(server, "/fixture/nobody.html")
    assert status == 404 and b"vip_new_york" in body


def get_headers(server: PreviewServer, path: str) -> Any:
    with urllib.request.urlopen(server.url.rstrip("/") + path, timeout=30) as response:
        return {k.lower(): v for k, v in response.headers.items()}


def test_keep_alive_answers_do_not_wait_for_delayed_acks(server: PreviewServer) -> None:
    # The server's socket must say IPPROTO_TCP, or asyncio leaves Nagle on and every
    # answer (headers, then body) waits ~40 ms for the client's delayed ACK.
    connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
    timings = []
    try:
        for _ in range(25):
            started = time.perf_counter()
            connection.request("GET", "/fixture/none.html")
            connection.getresponse().read()
            timings.append(time.perf_counter() - started)
    finally:
        connection.close()
    assert statistics.median(timings) < 0.035


def test_the_command_refuses_a_taken_port_before_loading(tmp_path: Path) -> None:
    taken = bind("127.0.0.1", 0)
    try:
        port = str(taken.getsockname()[1])
        result = CliRunner().invoke(cli.app, ["preview", "--port", port])
    finally:
        taken.close()
    assert result.exit_code == 2
    assert f"cannot listen on 127.0.0.1:{port}" in result.stderr and "--port" in result.stderr
    missing = CliRunner().invoke(cli.app, ["preview", str(tmp_path / "absent.yaml")])
    assert missing.exit_code == 2 and "no campaign file" in missing.stderr


def test_only_another_host_than_loopback_warns() -> None:
    assert host_warnings("127.0.0.1") == [] and host_warnings("localhost") == []
    (warning,) = host_warnings("0.0.0.0")
    assert "0.0.0.0" in warning and "--host 127.0.0.1" in warning

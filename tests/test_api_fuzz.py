"""API robustness: requests generated from the dashboard's own OpenAPI document, valid and malformed,
sent over real HTTP to the running server as a logged-in manager; no request may get a 5xx."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, cast

import httpx
import pytest
import schemathesis
from fastapi.routing import APIRoute
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from schemathesis.core.result import Ok

from conftest import demo_doc
from gateway.venue import parse_venue
from gateway.web import api
from gateway.web.app import COOKIE, Web, create_app
from gateway.web.server import WebServer
from gateway_rig import Rig, rules_doc
from web_rig import MANAGER, Client, serve

OPENAPI = "/api/v1/openapi.json"
# Examples per operation of the fuzzing phase (valid and malformed); the coverage phase adds every
# boundary, wrong-type and wrong-method case the schema defines. About 900 requests in all.
FUZZ_EXAMPLES = 60
LEAST_PER_OPERATION = 8  # fewer: generation broke, and the run proved nothing
# Never generated: the event stream never ends, and logging out would end the fuzzing session.
NOT_FUZZED = ("GET /api/v1/events", "DELETE /api/v1/session")
# Answers only a handler gives; the session and CSRF checks, routing and validation give 400, 401,
# 403, 405 and 422. An operation that never got one of these never reached its handler.
HANDLED = (200, 404, 409, 429)
PAGERS = ("pgr-ana", "pgr-ben", "pgr-mia", "pgr-flo")

# Schemathesis makes one test per operation at collection time, before any server runs (its lazy
# loader, from_fixture, reaches into pytest internals that pytest 9.2 renamed). So the operations
# come from the document the application builds, which needs no gateway, and the `live` fixture
# asserts that the running server serves exactly this document before anything is sent to it.
DOC: dict[str, Any] = create_app(cast(Web, None)).openapi()
VENUE = parse_venue(rules_doc(demo_doc()))
# Random text almost never names a real staff member or recovery action, and a random id no
# incident, so a handler would only ever answer "no such ...". Half the time these fields take the
# venue's own values and a seeded incident's id, so generated requests reach the transitions too;
# the period's days are often the seeded day or the calendar's first and last ones.
CONFIG = schemathesis.Config.from_dict({
    # Valid and malformed requests; schema examples, the coverage phase's boundary and wrong-type
    # cases, then fuzzing. (These are the defaults, stated so that no schemathesis.toml changes them.)
    "generation": {"mode": "all"},
    "phases": {"examples": {"enabled": True}, "coverage": {"enabled": True}, "fuzzing": {"enabled": True}},
    "dictionaries": {
        "incidents": {"values": list(range(1, 9))},
        "staff": {"values": sorted(VENUE.staff)},
        "actions": {"values": list(VENUE.device_settings.recovery_actions)},
        "root_causes": {"values": list(VENUE.root_causes)},
        "days": {"values": ["2026-01-01", "2025-12-26", "0001-01-01", "0001-01-03", "0001-01-08", "9999-12-25",
                            "9999-12-31"]},
    },
    "parameters": {
        "path.inc_id": {"dictionary": "incidents", "probability": 0.8},
        "body.staff": {"dictionary": "staff", "probability": 0.5},
        "body.action": {"dictionary": "actions", "probability": 0.5},
        "body.root_cause": {"dictionary": "root_causes", "probability": 0.5},
        "query.since": {"dictionary": "days", "probability": 0.3},
        "query.until": {"dictionary": "days", "probability": 0.3},
    },
})
schema: schemathesis.BaseSchema = schemathesis.openapi.from_dict(DOC, config=CONFIG)
for label in NOT_FUZZED:
    schema = schema.exclude(name=label)


@dataclass
class Live:
    """The running dashboard in front of a seeded gateway, the manager's session, and its answers."""

    rig: Rig
    server: WebServer
    manager: Client
    answers: dict[str, Counter[int]] = field(default_factory=dict)

    @property
    def auth(self) -> dict[str, Any]:
        """What every generated request carries: the session cookie, and its CSRF token for writes."""
        return {"headers": {"X-CSRF-Token": self.manager.csrf},
                "cookies": {COOKIE: self.manager.http.cookies[COOKIE]}}


def seed(rig: Rig) -> None:
    """Incidents 1..8, two in each state the handlers branch on."""
    tables = ("T1", "T2", "T12", "T14")  # two per zone: under the zone's complaint aggregation
    for table in tables:
        rig.press(table)
    for inc in (1, 2, 3, 4):
        rig.gw.acknowledge(inc, "ana", "mia")
        rig.gw.resolve(inc, "mia", "apology")
    for inc in (1, 2):
        rig.gw.follow_up(inc, "satisfied", "mia")
    rig.clock.advance(601)  # past the aggregation window (no tick: nothing escalates meanwhile)
    for pager in PAGERS:
        rig.heartbeat(pager)  # still there after the pause, so the new calls page someone
    for table in tables:
        rig.press(table)
    for inc in (7, 8):
        rig.gw.acknowledge(inc, "ben", "mia")
    states = {inc.id: inc.state for inc in rig.store.incidents(0, rig.clock.now() + 1)}
    assert states == {1: "followed_up", 2: "followed_up", 3: "resolved", 4: "resolved", 5: "paged", 6: "paged",
                      7: "acknowledged", 8: "acknowledged"}, states


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Live]:
    """One server for every operation: what one operation's requests change, the next one meets."""
    doc = demo_doc()
    doc["site"] = "fuzz"
    rig = Rig(rules_doc(doc), tmp_path_factory.mktemp("fuzz") / "gw.db")
    rig.online(*PAGERS)
    seed(rig)
    server = serve(rig.gw)
    it = Live(rig, server, Client(server.url, MANAGER))
    assert httpx.get(server.url + OPENAPI).json() == DOC, "the server serves another document than is fuzzed"
    yield it
    it.manager.close()
    server.stop()
    rig.store.close()
    if it.answers:  # shown with -s, or under a failure
        total = sum(sum(answers.values()) for answers in it.answers.values())
        print(f"\n{total} generated requests over HTTP to the dashboard, none answered 5xx:")
        for label, answers in sorted(it.answers.items()):
            print(f"  {label:45} {sum(answers.values()):4}  {dict(sorted(answers.items()))}")


@pytest.fixture
def answers(live: Live, request: pytest.FixtureRequest) -> Iterator[Counter[int]]:
    """The status codes one operation got. After its run: enough requests were made, and some got
    past the session and CSRF checks and the validation into the handler."""
    label = request.node.name.partition("[")[2].rstrip("]")
    got = live.answers.setdefault(label, Counter())
    yield got
    assert sum(got.values()) >= LEAST_PER_OPERATION, f"{label}: only {sum(got.values())} requests: {dict(got)}"
    assert set(got) & set(HANDLED), f"{label}: no request reached the handler: {dict(got)}"


@schema.parametrize()
@settings(max_examples=FUZZ_EXAMPLES, deadline=None, derandomize=True, database=None,
          suppress_health_check=list(HealthCheck))
def test_no_generated_request_gets_a_server_error(case: schemathesis.Case[Any], live: Live,
                                                  answers: Counter[int]) -> None:
    response = case.call(base_url=live.server.url, timeout=10, **live.auth)
    answers[response.status_code] += 1
    case.validate_response(response, checks=[not_a_server_error])


# What the generator never sends (it makes valid UTF-8 and finite JSON numbers): each still a 4xx.
RAW_BODIES = [
    b'{"notes": "\\ud800"}',  # a lone surrogate: valid JSON, no valid text
    b'{"notes": "\xff\xfe"}',  # not UTF-8
    b'{"cost": NaN}', b'{"cost": Infinity}', b'{"cost": 1e400}', b'{"cost": 1' + b'0' * 5000 + b'}',
    b"[" * 30000,  # deeper than the JSON parser recurses
    b'{"notes": "x"', b"", b"null", b"notes=x",
]


@pytest.mark.parametrize("body", RAW_BODIES, ids=range(len(RAW_BODIES)))
def test_raw_bodies_the_generator_never_makes_are_refused_with_a_4xx(live: Live, body: bytes) -> None:
    before = live.rig.store.incident(5)
    for path in ("/api/v1/session", *(f"/api/v1/incidents/5/{action}" for action in
                                      ("ack", "resolve", "record", "reassign", "follow-up"))):
        r = live.manager.http.post(path, content=body, headers={"X-CSRF-Token": live.manager.csrf,
                                                                "Content-Type": "application/json"})
        assert 400 <= r.status_code < 500, (path, body[:40], r.status_code, r.text[:200])
    assert live.rig.store.incident(5) == before  # nothing half done


def test_every_operation_but_the_stream_and_logout_is_fuzzed() -> None:
    results = list(schema.get_all_operations())
    fuzzed = {result.ok().label for result in results if isinstance(result, Ok)}
    assert len(fuzzed) == len(results), "operations the schema loader could not read"
    listed = {f"{method.upper()} {path}" for path, ops in DOC["paths"].items() for method in ops}
    assert fuzzed == listed - set(NOT_FUZZED) and len(fuzzed) == 15


def _body(doc: dict[str, Any], path: str) -> dict[str, Any]:
    """The JSON body schema of a POST operation, resolved."""
    request_body = doc["paths"][path]["post"]["requestBody"]
    assert request_body["required"] is True, path
    ref: str = request_body["content"]["application/json"]["schema"]["$ref"]
    found: dict[str, Any] = doc["components"]["schemas"][ref.rsplit("/", 1)[1]]
    assert found["type"] == "object" and found["additionalProperties"] is False, (path, found)
    return found


def _text(prop: dict[str, Any]) -> tuple[int | None, int | None]:
    """(minLength, maxLength) of a string property, optional (anyOf string, null) or not."""
    string = next((s for s in prop.get("anyOf", [prop]) if s.get("type") == "string"), None)
    assert string is not None, prop
    return string.get("minLength"), string.get("maxLength")


def test_openapi_document_lists_every_api_route_with_its_body_schema(live: Live) -> None:
    doc = httpx.get(live.server.url + OPENAPI).json()
    routes = {(method, route.path) for route in api.router.routes if isinstance(route, APIRoute)
              for method in route.methods or ()}
    listed = {(method.upper(), path) for path, ops in doc["paths"].items() for method in ops}
    assert listed == routes and len(listed) == 17  # and no page of the dashboard
    with_body = {path for path, ops in doc["paths"].items() for op in ops.values() if "requestBody" in op}
    inc = "/api/v1/incidents/{inc_id}"
    assert with_body == {"/api/v1/session", *(f"{inc}/{a}" for a in ("ack", "resolve", "record", "reassign",
                                                                     "follow-up"))}

    login = _body(doc, "/api/v1/session")
    assert sorted(login["required"]) == ["password", "username"]
    assert _text(login["properties"]["username"]) == (1, 64) and _text(login["properties"]["password"]) == (1, 256)

    ack = _body(doc, f"{inc}/ack")
    assert set(ack["properties"]) == {"staff"} and "required" not in ack
    assert _text(ack["properties"]["staff"]) == (1, 64)

    resolve, record = _body(doc, f"{inc}/resolve"), _body(doc, f"{inc}/record")
    assert resolve["required"] == ["action"] and _text(resolve["properties"]["action"]) == (1, 64)
    assert "required" not in record and set(resolve["properties"]) == set(record["properties"]) | {"action"}
    for fields in (resolve["properties"], record["properties"]):
        assert _text(fields["compensation"]) == (1, 120)
        assert _text(fields["root_cause"]) == (1, 64)
        assert _text(fields["notes"]) == (None, 2000)
        cost = next(s for s in fields["cost"]["anyOf"] if s.get("type") == "number")
        assert (cost["minimum"], cost["maximum"]) == (0, 1_000_000)

    reassign = _body(doc, f"{inc}/reassign")
    assert reassign["required"] == ["staff"] and _text(reassign["properties"]["staff"]) == (1, 64)
    follow_up = _body(doc, f"{inc}/follow-up")
    assert follow_up["required"] == ["result"]
    assert follow_up["properties"]["result"]["enum"] == ["satisfied", "unsatisfied", "no_response"]

    # The incident id in the path is bounded the same way everywhere it is taken; the reports' period
    # is two dates, and the list's limit bounded.
    taking_id = [path for path in doc["paths"] if "{inc_id}" in path]
    assert len(taking_id) == 6
    for path in taking_id:
        for op in doc["paths"][path].values():
            (param,) = op["parameters"]
            assert (param["name"], param["in"], param["required"]) == ("inc_id", "path", True), path
            assert param["schema"] == {"type": "integer", "minimum": 1, "maximum": 2**62, "title": "Inc Id"}, path
    for path in ("/api/v1/incidents", "/api/v1/reports", "/api/v1/reports.csv"):
        params = {p["name"]: p for p in doc["paths"][path]["get"]["parameters"]}
        for day in ("since", "until"):
            assert {"type": "string", "format": "date"} in params[day]["schema"]["anyOf"], path
    limit = {p["name"]: p for p in doc["paths"]["/api/v1/incidents"]["get"]["parameters"]}["limit"]["schema"]
    assert (limit["minimum"], limit["maximum"], limit["default"]) == (1, 5000, 500)

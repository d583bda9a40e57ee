"""The venue file's [integrations] table: off by default, every value checked, errors name the key."""

from __future__ import annotations

import copy
import tomllib
from typing import Any

import pytest

from conftest import ROOT, demo_doc
from gateway import incidents, store
from gateway.venue import WEBHOOK_EVENTS, Integrations, VenueError, load_venue, parse_venue

REFERENCE = ROOT / "examples" / "venue-reference.toml"


def with_integrations(**table: Any) -> dict[str, Any]:
    doc = copy.deepcopy(demo_doc())
    doc["integrations"] = table
    return doc


def test_without_the_table_everything_is_off() -> None:
    i = parse_venue(demo_doc()).integrations
    assert i == Integrations()
    assert not i.home_assistant and i.webhook_url is None and i.secret() is None
    assert i.discovery_prefix == "homeassistant"
    assert set(i.webhook_events) == set(incidents.TRANSITIONS), "by default every state change is sent"


def test_the_reference_example_parses_with_the_secret_from_the_environment() -> None:
    i = load_venue(REFERENCE).integrations
    assert i.webhook_url == "https://hooks.example.com/redbutton"
    assert i.webhook_secret is None and i.webhook_secret_env == "REDBUTTON_WEBHOOK_SECRET"
    assert i.secret({"REDBUTTON_WEBHOOK_SECRET": "s3cret"}) == "s3cret"
    with pytest.raises(ValueError, match=r"integrations.webhook_secret_env: the environment variable "
                                          r"REDBUTTON_WEBHOOK_SECRET is not set"):
        i.secret({})


def test_every_value_is_read() -> None:
    i = parse_venue(with_integrations(home_assistant=True, discovery_prefix="ha/venue-1",
                                      webhook_url="http://127.0.0.1:8080/hook?x=1", webhook_secret="k",
                                      webhook_events=["open", "joined", "open", "resolved"])).integrations
    assert i.home_assistant and i.discovery_prefix == "ha/venue-1"
    assert i.webhook_url == "http://127.0.0.1:8080/hook?x=1"
    assert i.secret({}) == "k"
    assert i.webhook_events == ("open", "joined", "resolved")


def test_the_secret_never_shows_in_repr() -> None:
    i = parse_venue(with_integrations(webhook_url="https://x.example", webhook_secret="hunter2")).integrations
    assert "hunter2" not in repr(i) and "hunter2" not in repr(parse_venue(with_integrations(
        webhook_url="https://x.example", webhook_secret="hunter2")))


def test_joined_is_the_stores_name_for_a_repeat_press() -> None:
    assert (*incidents.TRANSITIONS, store.JOINED) == WEBHOOK_EVENTS


@pytest.mark.parametrize(("table", "error"), [
    ({"home_assistant": "yes"}, "integrations.home_assistant: expected bool, got str"),
    ({"discovery_prefix": "home/#"}, "integrations.discovery_prefix: 'home/#' is not an MQTT topic prefix"),
    ({"discovery_prefix": "/ha"}, "integrations.discovery_prefix"),
    ({"discovery_prefix": ""}, "integrations.discovery_prefix"),
    ({"webhook_url": "ftp://example.com/x"}, "integrations.webhook_url: 'ftp://example.com/x' is not an http"),
    ({"webhook_url": "example.com/hook"}, "integrations.webhook_url: 'example.com/hook' is not an http"),
    ({"webhook_url": "https:///nohost"}, "integrations.webhook_url"),
    ({"webhook_url": "http://example.com:99999/"}, "integrations.webhook_url: 'http://example.com:99999/' is not a "
                                                   "URL"),
    ({"webhook_url": "http://exa mple.com/"}, "integrations.webhook_url: a URL has no spaces"),
    ({"webhook_url": 42}, "integrations.webhook_url: expected str, got int"),
    ({"webhook_url": "https://x.example", "webhook_secret": "a", "webhook_secret_env": "B"},
     "integrations.webhook_secret: give webhook_secret or webhook_secret_env, not both"),
    ({"webhook_url": "https://x.example", "webhook_secret": ""}, "integrations.webhook_secret: empty"),
    ({"webhook_url": "https://x.example", "webhook_secret_env": "MY-SECRET"},
     "integrations.webhook_secret_env: 'MY-SECRET' is not an environment variable name"),
    ({"webhook_events": ["open", "ringing"]}, r"integrations.webhook_events\[1\]: 'ringing' is not one of open"),
    ({"webhook_events": []}, "integrations.webhook_events: at least one event"),
    ({"webhook_events": "open"}, "integrations.webhook_events: expected list, got str"),
    ({"webhook_secrets": "x"}, "integrations.webhook_secrets: unknown key"),
])
def test_a_wrong_value_is_an_error_naming_the_key(table: dict[str, Any], error: str) -> None:
    with pytest.raises(VenueError, match=error) as e:
        parse_venue(with_integrations(**table), "venue.toml")
    assert str(e.value).startswith("venue.toml: integrations")


def test_integrations_must_be_a_table() -> None:
    doc = demo_doc()
    doc["integrations"] = ["home_assistant"]
    with pytest.raises(VenueError, match="integrations: expected dict, got list"):
        parse_venue(doc, "venue.toml")


def test_the_reference_example_shows_every_integration_key() -> None:
    """webhook_secret is shown as a comment only (a secret in the file is discouraged); every other
    key is set, so the completeness check of test_venue.py covers them."""
    text = REFERENCE.read_text()
    table = tomllib.loads(text)["integrations"]
    assert set(table) == {"home_assistant", "discovery_prefix", "webhook_url", "webhook_secret_env",
                          "webhook_events"}
    assert "`webhook_secret = " in text

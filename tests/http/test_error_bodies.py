"""Error-body parsing and Retry-After: any body gives a class and a useful message."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from linkai_images._http.endpoint import parse_error_body, parse_retry_after


def test_platform_error_shape_gives_message_and_type() -> None:
    """The documented {"error": {"message", "type"}} is read as is."""
    body = {"error": {"message": "模型不存在或用户无权限使用: x", "type": "invalid_request_error"}}
    parsed = parse_error_body(402, json.dumps(body).encode(), "application/json")
    assert "模型不存在或用户无权限使用: x" == parsed.message
    assert "invalid_request_error" == parsed.type
    assert body == parsed.body


def test_html_page_from_a_proxy_is_described_by_its_title() -> None:
    """A gateway's HTML page yields a message naming it and its title, not markup."""
    page = b"<html><head><title>502 Bad Gateway</title></head><body><h1>nginx</h1></body></html>"
    parsed = parse_error_body(502, page, "text/html")
    assert "HTTP 502 Bad Gateway: an HTML page" in parsed.message
    assert parsed.message.endswith("502 Bad Gateway")
    assert "<" not in parsed.message
    assert parsed.type is None


def test_empty_body_says_so() -> None:
    """An empty error body still gives the status and its reason."""
    assert "HTTP 503 Service Unavailable with an empty body" == parse_error_body(503, b"").message


def test_json_without_error_object_and_plain_text_are_shown_truncated() -> None:
    """Other JSON and text bodies are quoted, shortened to a readable length."""
    assert "HTTP 500 Internal Server Error: [1, 2]" == parse_error_body(500, b"[1, 2]").message
    long = parse_error_body(500, b"x" * 5000, "text/plain").message
    assert len(long) < 300
    assert long.endswith("…")


def test_top_level_message_and_string_error_are_used() -> None:
    """Bodies shaped {"message": ...} or {"error": "..."} still give their text."""
    assert "slow down" == parse_error_body(429, b'{"message": "slow down"}').message
    assert "bad key" == parse_error_body(401, b'{"error": "bad key"}').message


@given(st.binary(max_size=300), st.sampled_from(["", "text/html", "application/json"]))
def test_any_bytes_parse_without_raising(content: bytes, content_type: str) -> None:
    """Whatever a proxy sends, parsing returns a non-empty message."""
    parsed = parse_error_body(503, content, content_type)
    assert parsed.message


@given(
    st.recursive(
        st.none() | st.booleans() | st.integers() | st.text(),
        lambda c: st.lists(c) | st.dictionaries(st.text(), c),
        max_leaves=10,
    )
)
def test_any_json_parses_without_raising(value: object) -> None:
    """Any JSON value as an error body gives a string message."""
    parsed = parse_error_body(400, json.dumps(value).encode(), "application/json")
    assert isinstance(parsed.message, str)
    assert parsed.message


@pytest.mark.parametrize(
    ("header", "expected"),
    [("3", 3.0), ("0.5", 0.5), ("-4", 0.0), (None, None), ("soon", None), ("nan", None)],
)
def test_retry_after_seconds(header: str | None, expected: float | None) -> None:
    """Delta-seconds Retry-After values are read, nonsense ignored, negatives clamped."""
    assert expected == parse_retry_after(header)


def test_retry_after_http_date() -> None:
    """An HTTP-date Retry-After is turned into seconds from now."""
    assert 10.0 == parse_retry_after("Wed, 21 Oct 2015 07:28:10 GMT", now=1445412480.0)

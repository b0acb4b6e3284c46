"""Rates as users write them: N/second, N/minute, N/hour, and clear errors otherwise."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from linkai_images import AsyncImageClient
from linkai_images._pacing import Rate, parse_model_rates, parse_rate


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("60/minute", Rate(60, 60.0, "60/minute")),
        ("5/second", Rate(5, 1.0, "5/second")),
        (" 100 / Hour ", Rate(100, 3600.0, "100/hour")),
    ],
)
def test_rates_parse(text: str, expected: Rate) -> None:
    """Each allowed form reads into its count and period."""
    assert expected == parse_rate(text)


def test_interval_is_period_over_count() -> None:
    """A rate's starts are spread one interval apart."""
    assert 0.5 == parse_rate("120/minute").interval


@pytest.mark.parametrize("text", ["60/min", "60", "sixty/minute", "1.5/second", "60/day", ""])
def test_bad_rates_say_what_is_allowed(text: str) -> None:
    """A rate in another form is refused with the allowed forms in the message."""
    with pytest.raises(ValueError, match="N/second, N/minute or N/hour"):
        parse_rate(text)


def test_zero_is_refused() -> None:
    """A rate of 0 allows nothing and is refused as such."""
    with pytest.raises(ValueError, match="at least 1"):
        parse_rate("0/minute")


def test_a_number_is_not_a_rate() -> None:
    """A bare number is a type error naming the expected form."""
    with pytest.raises(TypeError, match="'60/minute'"):
        parse_rate(60)  # type: ignore[arg-type]


def test_model_rates_name_the_bad_model() -> None:
    """A bad per-model rate names its model."""
    with pytest.raises(ValueError, match=r"model_rate_limits\['gpt-image-2'\]"):
        parse_model_rates({"gpt-image-2": "5 per minute"})


def test_client_checks_rates_when_made() -> None:
    """A client refuses a bad rate at construction, before any request."""
    with pytest.raises(ValueError, match="rate_limit '10/minutes'"):
        AsyncImageClient("sk-test", rate_limit="10/minutes")


@given(st.integers(1, 10**6), st.sampled_from(["second", "minute", "hour"]))
def test_any_count_and_unit_round_trips(count: int, unit: str) -> None:
    """Every N/unit parses back to the same text and count."""
    rate = parse_rate(f"{count}/{unit}")
    assert (count, f"{count}/{unit}") == (rate.count, rate.text)


@given(st.text(max_size=20))
def test_parsing_never_fails_otherwise(text: str) -> None:
    """Any string either parses or raises ValueError, nothing else."""
    try:
        parse_rate(text)
    except ValueError:
        pass

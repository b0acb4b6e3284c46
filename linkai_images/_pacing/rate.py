"""Rates as users write them (``"60/minute"``) and the spacing they mean."""

from __future__ import annotations

import re
from collections.abc import Mapping

import attrs

__all__ = ["PERIODS", "Rate", "parse_model_rates", "parse_rate"]

#: The periods a rate may be written in, in seconds.
PERIODS: Mapping[str, float] = {"second": 1.0, "minute": 60.0, "hour": 3600.0}

_RATE = re.compile(r"\s*(\d+)\s*/\s*([a-z]+)\s*", re.IGNORECASE)


@attrs.frozen
class Rate:
    """``count`` request starts per ``period`` seconds, spread evenly.

    Attributes:
        count: starts per period.
        period: the period in seconds.
        text: the rate as written (``"60/minute"``), for messages.
    """

    count: int
    period: float
    text: str

    @property
    def interval(self) -> float:
        """Seconds between two starts: ``period / count``."""
        return self.period / self.count


def parse_rate(value: str, *, name: str = "rate_limit") -> Rate:
    """Read ``"N/second"``, ``"N/minute"`` or ``"N/hour"`` (N a whole number >= 1).

    Args:
        value: the rate as written.
        name: what the value was given as, for the message.

    Raises:
        TypeError: not a string.
        ValueError: not one of the allowed forms; the message shows them.
    """
    if not isinstance(value, str):
        raise TypeError(f"{name} must be a string like '60/minute', not {type(value).__name__}")
    match = _RATE.fullmatch(value)
    unit = match[2].lower() if match else ""
    if match is None or unit not in PERIODS:
        raise ValueError(
            f"{name} {value!r} is not a rate; write N/second, N/minute or N/hour "
            "(N a whole number, e.g. '60/minute')"
        )
    count = int(match[1])
    if count < 1:
        raise ValueError(f"{name} {value!r} allows no request at all; N must be at least 1")
    return Rate(count, PERIODS[unit], f"{count}/{unit}")


def parse_model_rates(rates: Mapping[str, str] | None) -> dict[str, Rate]:
    """``model_rate_limits`` read into rates, each checked like ``rate_limit``.

    Raises:
        TypeError: not a mapping of model code to rate string.
        ValueError: a rate that does not parse (the message names its model).
    """
    if rates is None:
        return {}
    if not isinstance(rates, Mapping):
        raise TypeError(
            "model_rate_limits must map model codes to rates, e.g. "
            f"{{'gpt-image-2': '5/minute'}}, not {type(rates).__name__}"
        )
    parsed = {}
    for model, text in rates.items():
        if not isinstance(model, str) or not model:
            raise TypeError(f"model_rate_limits keys must be model codes, not {model!r}")
        parsed[model] = parse_rate(text, name=f"model_rate_limits[{model!r}]")
    return parsed

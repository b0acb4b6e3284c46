"""Prices per image, given by the user in JSON or TOML, for cost estimates and spending caps.

The platform publishes its prices elsewhere, so the SDK ships none: the user
writes what they pay. One price per image for each model, either one number
for every size or one per size tier (``"default"`` for the others)::

    {
      "currency": "USD",
      "models": {
        "gpt-image-2": {"1K": 0.02, "2K": 0.04, "4K": 0.12},
        "doubao-seedream-4.5": 0.03
      }
    }

or in TOML::

    currency = "USD"
    [models]
    "doubao-seedream-4.5" = 0.03
    [models."gpt-image-2"]
    1K = 0.02
    2K = 0.04
    4K = 0.12

A request without a ``size`` costs the price of its model's default size
(``linkai-images models`` lists them). TOML needs Python 3.11's ``tomllib``,
or on 3.10 the ``tomli`` package (``pip install 'linkai-images[toml]'``).
"""

from __future__ import annotations

import json
import math
import os
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import attrs

from .._catalog import get_model
from .._exceptions import CostLimitError, RequestValidationError
from .._models import ImageRequest

__all__ = ["CostCap", "PriceArg", "Prices", "cost_cap", "to_prices"]

_ANY_SIZE = "default"


def _number(value: object, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        # A wrong value in the user's file: ValueError, like every other mistake in it.
        raise ValueError(f"{where}: the price must be a number, not {value!r}")  # noqa: TRY004
    price = float(value)
    if not math.isfinite(price) or price < 0:
        raise ValueError(f"{where}: the price must be a finite number >= 0, not {value!r}")
    return price


@attrs.frozen(kw_only=True)
class Prices:
    """What one image costs, by model and size tier.

    Build it with ``Prices.load(path)`` (a ``.json`` or ``.toml`` file) or
    ``Prices.from_dict(data)``.

    Attributes:
        models: ``{model: {size tier or "default": price}}``; size tiers upper case.
        currency: the currency the prices are in, shown with estimates.
    """

    models: Mapping[str, Mapping[str, float]]
    currency: str | None = None

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], *, source: str = "prices") -> Prices:
        """Prices from parsed JSON or TOML (see the module docs for the layout).

        Raises:
            ValueError: the layout is wrong; the message names the entry.
        """
        if not isinstance(data, Mapping):
            raise ValueError(f"{source}: expected an object with a 'models' table")  # noqa: TRY004
        unknown = sorted(set(data) - {"currency", "models"})
        if unknown:
            raise ValueError(
                f"{source}: unknown key(s) {', '.join(map(repr, unknown))}; "
                "expected 'models' (and optionally 'currency')"
            )
        models = data.get("models")
        if not isinstance(models, Mapping) or not models:
            raise ValueError(
                f"{source}: 'models' must map model codes to a price or to prices by size, "
                'e.g. {"models": {"gpt-image-2": {"1K": 0.02, "2K": 0.04}}}'
            )
        currency = data.get("currency")
        if currency is not None and not isinstance(currency, str):
            raise ValueError(f"{source}: 'currency' must be a string, not {currency!r}")
        table: dict[str, dict[str, float]] = {}
        for model, entry in models.items():
            where = f"{source}: models.{model}"
            if isinstance(entry, Mapping):
                if not entry:
                    raise ValueError(f"{where}: no prices")
                table[model] = {
                    (size if size == _ANY_SIZE else str(size).upper()): _number(
                        price, f"{where}.{size}"
                    )
                    for size, price in entry.items()
                }
            else:
                table[model] = {_ANY_SIZE: _number(entry, where)}
        return cls(models=table, currency=currency)

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> Prices:
        """Read prices from a ``.json`` or ``.toml`` file (blocking: a small local file).

        Raises:
            ValueError: an unknown file type, bad JSON/TOML, or a wrong layout.
            OSError: the file cannot be read.
            RuntimeError: a TOML file on Python 3.10 without ``tomli``.
        """
        file = Path(path)
        suffix = file.suffix.lower()
        if suffix == ".json":
            try:
                data = json.loads(file.read_text(encoding="utf-8"))
            except json.JSONDecodeError as exc:
                raise ValueError(f"{file}: not JSON ({exc.msg} at line {exc.lineno})") from None
        elif suffix == ".toml":
            toml = _toml_module()
            try:
                data = toml.loads(file.read_text(encoding="utf-8"))
            except toml.TOMLDecodeError as exc:
                raise ValueError(f"{file}: not TOML ({exc})") from None
        else:
            raise ValueError(
                f"{file}: unknown prices file type {suffix or '(no extension)'!r}; "
                "use .json or .toml"
            )
        return cls.from_dict(data, source=str(file))

    def price(self, model: str, size: str | None) -> float | None:
        """The price of one image of ``model`` at ``size`` (``None``: the model's default).

        Returns:
            The price, or ``None`` when the prices name neither the size nor a
            ``default`` for the model.
        """
        entry = self.models.get(model)
        if entry is None:
            return None
        if size is None:
            spec = get_model(model)
            size = spec.default_size if spec is not None else None
        if size is not None and size.upper() in entry:
            return entry[size.upper()]
        return entry.get(_ANY_SIZE)


#: What ``prices=`` accepts: ``Prices``, a dict of the same layout, or a ``.json``/``.toml`` path.
PriceArg = Prices | Mapping[str, Any] | str | os.PathLike[str] | None


def _toml_module() -> Any:
    if sys.version_info >= (3, 11):
        import tomllib

        return tomllib
    try:
        import tomli  # type: ignore[import-not-found, unused-ignore]
    except ImportError:
        raise RuntimeError(
            "reading TOML prices on Python 3.10 needs tomli: pip install 'linkai-images[toml]' "
            "(or write the prices as .json)"
        ) from None
    return tomli


def to_prices(value: PriceArg) -> Prices | None:
    """``prices=`` as ``Prices`` (reads a file when given a path).

    Raises:
        TypeError: a value of another type.
        ValueError: a bad file or layout.
    """
    if value is None or isinstance(value, Prices):
        return value
    if isinstance(value, Mapping):
        return Prices.from_dict(value)
    if isinstance(value, (str, os.PathLike)):
        return Prices.load(value)
    raise TypeError(
        f"prices must be Prices, a dict or a path to a .json/.toml file, not {type(value).__name__}"
    )


class CostCap:
    """A batch's spending cap: admits requests while their estimated cost stays within it.

    A request's cost is reserved when it is admitted (before it is sent), so
    requests in flight count. Once one request would pass the cap, no other
    is admitted: a batch stops launching rather than skipping ahead to
    cheaper requests.
    """

    def __init__(self, prices: Prices, max_cost: float) -> None:
        self.prices = prices
        self.max_cost = max_cost
        self.spent = 0.0
        self.refused: CostLimitError | None = None

    def price_of(self, request: ImageRequest) -> float:
        """The estimated cost of one request (one image).

        Raises:
            RequestValidationError: the prices name no price for it.
        """
        model = request.model or ""
        price = self.prices.price(model, request.size)
        if price is None:
            size = request.size or "its default size"
            raise RequestValidationError(
                f"no price for {model} at {size}: max_cost needs a price for every request; "
                f"add it to the prices (priced models: {', '.join(sorted(self.prices.models))})"
            )
        return price

    def admit(self, request: ImageRequest) -> CostLimitError | None:
        """Reserve the request's cost, or the error it ends with when the cap stops it."""
        if self.refused is not None:
            return self.refused
        price = self.price_of(request)
        # A little slack for float sums: 0.1 + 0.2 must not pass a cap of 0.3.
        if self.spent + price > self.max_cost + 1e-9:
            self.refused = CostLimitError(max_cost=self.max_cost, spent=self.spent, price=price)
            return self.refused
        self.spent += price
        return None


def cost_cap(prices: Prices | None, max_cost: float | None) -> CostCap | None:
    """The cap for ``prices=``/``max_cost=``, or ``None`` without ``max_cost``.

    Raises:
        ValueError: ``max_cost`` without prices, or not a number >= 0.
    """
    if max_cost is None:
        return None
    if isinstance(max_cost, bool) or not isinstance(max_cost, (int, float)):
        raise TypeError(f"max_cost must be a number, not {type(max_cost).__name__}")
    if not math.isfinite(max_cost) or max_cost < 0:
        raise ValueError(f"max_cost must be a finite number >= 0, got {max_cost!r}")
    if prices is None:
        raise ValueError("max_cost needs prices=...: the SDK knows no prices of its own")
    return CostCap(prices, float(max_cost))

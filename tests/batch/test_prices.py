"""Prices files: JSON and TOML, per model and size, with clear errors."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from linkai_images import Prices

JSON = '{"currency": "USD", "models": {"gpt-image-2": {"1K": 0.02, "2k": 0.04}, "m": 0.5}}'
TOML = """currency = "USD"
[models]
m = 0.5
[models."gpt-image-2"]
1K = 0.02
2k = 0.04
"""


@pytest.mark.parametrize(("name", "text"), [("p.json", JSON), ("p.toml", TOML)])
def test_json_and_toml_give_the_same_prices(tmp_path: Path, name: str, text: str) -> None:
    """Both formats load to the same table; size tiers are case-insensitive."""
    (tmp_path / name).write_text(text)
    prices = Prices.load(tmp_path / name)
    assert Prices(models={"gpt-image-2": {"1K": 0.02, "2K": 0.04}, "m": {"default": 0.5}},
                  currency="USD") == prices  # fmt: skip


def test_a_price_by_size_default_size_and_default() -> None:
    """A size's own price; no size means the model's default size; 'default' covers the rest."""
    prices = Prices.from_dict(
        {"models": {"gpt-image-2": {"1K": 1, "2K": 2, "default": 9}, "any-model": 3}}
    )
    assert [1.0, 2.0, 2.0, 9.0, 3.0, None] == [
        prices.price("gpt-image-2", "1k"),
        prices.price("gpt-image-2", "2K"),
        prices.price("gpt-image-2", None),  # gpt-image-2 defaults to 2K
        prices.price("gpt-image-2", "4K"),
        prices.price("any-model", "4K"),
        prices.price("unpriced-model", "1K"),
    ]


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"models": {"m": "cheap"}}, r"models\.m: the price must be a number"),
        ({"models": {"m": {"1K": -1}}}, r"models\.m\.1K: .* >= 0"),
        ({"models": {}}, "'models' must map model codes"),
        ({"model": {"m": 1}}, "unknown key"),
        ({"models": {"m": 1}, "currency": 5}, "'currency' must be a string"),
    ],
)
def test_bad_layouts_are_named(data: dict[str, object], message: str) -> None:
    """Each mistake raises ValueError naming the entry and what is expected."""
    with pytest.raises(ValueError, match=message):
        Prices.from_dict(data)


def test_bad_files_are_named(tmp_path: Path) -> None:
    """Broken JSON, broken TOML and other file types give one clear ValueError each."""
    (tmp_path / "a.json").write_text("{nope")
    (tmp_path / "b.toml").write_text("= 1")
    (tmp_path / "c.yaml").write_text("models: {}")
    messages = []
    for name in ("a.json", "b.toml", "c.yaml"):
        with pytest.raises(ValueError, match=name) as caught:
            Prices.load(tmp_path / name)
        messages.append(str(caught.value).split(": ", 1)[1][:12])
    assert ["not JSON (Ex", "not TOML (In", "unknown pric"] == messages


def test_toml_on_python_310_without_tomli_says_what_to_do(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without tomllib and tomli, a TOML file fails with the install command and the JSON way."""
    (tmp_path / "p.toml").write_text(TOML)
    monkeypatch.setattr(sys, "version_info", (3, 10, 14))
    monkeypatch.setitem(sys.modules, "tomli", None)
    with pytest.raises(RuntimeError, match=r"pip install 'linkai-images\[toml\]'.*\.json"):
        Prices.load(tmp_path / "p.toml")

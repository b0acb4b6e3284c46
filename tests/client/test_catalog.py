"""The model catalog: the documented table, validation messages, pixel resolution."""

from __future__ import annotations

import contextlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from linkai_images import CATALOG, RequestValidationError, parse_pixel_size, resolve_pixels
from linkai_images._catalog import ALL_ASPECT_RATIOS, SIZE_TIERS, validate_fields


def test_catalog_holds_the_six_documented_models() -> None:
    """The table has exactly the platform doc's models with their limits."""
    expected = {
        "gpt-image-2": 15,
        "doubao-seedream-4.5": 10,
        "doubao-seedream-4.0": 10,
        "gemini-3-pro-image-preview": 3,
        "gemini-3.1-flash-image-preview": 3,
        "gemini-2.5-flash-image": 3,
    }
    assert expected == {code: spec.max_images for code, spec in CATALOG.items()}
    gpt = CATALOG["gpt-image-2"]
    assert ("1K", "2K", "4K", "2K") == (*gpt.sizes, gpt.default_size)
    assert ("low", "medium", "high") == gpt.qualities
    assert ("512", "1K", "2K", "4K") == CATALOG["gemini-3.1-flash-image-preview"].sizes
    assert () == CATALOG["gemini-2.5-flash-image"].sizes


def test_documented_example_resolves_to_2048x1152() -> None:
    """2K + 16:9 gives 2048x1152, as the platform doc says."""
    assert (2048, 1152) == resolve_pixels("2K", "16:9")
    assert (1152, 2048) == resolve_pixels("2K", "9:16")
    assert (1024, 1024) == resolve_pixels("1K", "1:1")


def test_size_outside_the_table_names_value_and_choices() -> None:
    """A size the model lacks is refused with the value and the allowed ones."""
    with pytest.raises(RequestValidationError) as info:
        validate_fields("gpt-image-2", size="3K")
    assert "size '3K' is not offered by gpt-image-2; choose one of 1K, 2K, 4K" == str(info.value)


@pytest.mark.parametrize(
    ("fields", "needle"),
    [
        ({"aspect_ratio": "21:9"}, "aspect_ratio '21:9' is not offered by gpt-image-2"),
        ({"quality": "hd"}, "quality 'hd' is not offered by gpt-image-2; choose one of low"),
        ({"image_count": 16}, "16 reference images given; gpt-image-2 takes at most 15"),
    ],
)
def test_other_fields_are_checked_for_known_models(fields: dict[str, object], needle: str) -> None:
    """Ratios, qualities and the image count are validated against the table."""
    with pytest.raises(RequestValidationError, match=needle):
        validate_fields("gpt-image-2", **fields)  # type: ignore[arg-type]


def test_fields_a_model_lacks_and_unknown_models_pass() -> None:
    """The platform ignores unsupported fields and accepts new models: so does validation."""
    validate_fields("gemini-2.5-flash-image", size="4K", quality="hd")
    validate_fields("some-future-model", size="9K", aspect_ratio="7:3", image_count=99)


def test_validation_error_is_also_a_value_error() -> None:
    """Users may catch argument errors as the built-in ValueError."""
    with pytest.raises(ValueError, match="choose one of"):
        validate_fields("doubao-seedream-4.5", size="1K")


@given(st.sampled_from(list(SIZE_TIERS)), st.sampled_from(ALL_ASPECT_RATIOS))
def test_resolution_follows_tier_and_ratio(tier: str, ratio: str) -> None:
    """The long side is the tier, the short side within 16 px of the exact ratio."""
    width, height = resolve_pixels(tier, ratio)
    w, h = (int(x) for x in ratio.split(":"))
    assert SIZE_TIERS[tier] == max(width, height)
    assert (width >= height) == (w >= h)
    assert 0 == min(width, height) % 16
    assert abs(min(width, height) - max(width, height) * min(w, h) / max(w, h)) <= 8


@given(st.sampled_from(list(SIZE_TIERS)), st.sampled_from(ALL_ASPECT_RATIOS))
def test_pixel_sizes_round_trip_to_tier_and_ratio(tier: str, ratio: str) -> None:
    """Every resolved size parses back to a tier and ratio that resolve to it again."""
    width, height = resolve_pixels(tier, ratio)
    parsed = parse_pixel_size(f"{width}x{height}")
    assert parsed is not None
    assert (width, height) == resolve_pixels(*parsed)


def test_openai_pixel_size_maps_and_odd_sizes_are_refused() -> None:
    """1024x1024 is 1K 1:1; a size no tier produces is refused, a tier is not pixels."""
    assert ("1K", "1:1") == parse_pixel_size("1024x1024")
    assert parse_pixel_size("2K") is None
    with pytest.raises(RequestValidationError, match="'1536x1000' is no tier"):
        parse_pixel_size("1536x1000")


@given(st.text(max_size=20))
def test_pixel_parser_never_fails_untyped(text: str) -> None:
    """Any string gives a mapping, None, or a RequestValidationError: nothing else."""
    with contextlib.suppress(RequestValidationError):
        parse_pixel_size(text)


def test_unknown_tier_or_ratio_in_resolver_is_refused() -> None:
    """resolve_pixels names the allowed tiers and ratios."""
    with pytest.raises(RequestValidationError, match="choose one of 512, 1K, 2K, 3K, 4K"):
        resolve_pixels("8K")
    with pytest.raises(RequestValidationError, match="aspect_ratio '7:3' is unknown"):
        resolve_pixels("1K", "7:3")

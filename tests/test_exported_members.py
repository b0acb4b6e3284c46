"""The public face: exactly these names, each documented, reporting the public module."""

from __future__ import annotations

import importlib.metadata

import linkai_images

EXPECTED = {
    "APIConnectionError",
    "APIResponseValidationError",
    "APIStatusError",
    "APITimeoutError",
    "AsyncImageClient",
    "AuthenticationError",
    "BadRequestError",
    "BatchAbortedError",
    "BatchError",
    "BatchItem",
    "BatchPlan",
    "BatchResults",
    "BlockingImageStore",
    "CATALOG",
    "CheckpointError",
    "CostLimitError",
    "ClientClosedError",
    "ContentModerationError",
    "DEFAULT_BASE_URL",
    "DEFAULT_MAX_CONCURRENCY",
    "DEFAULT_MAX_IMAGE_BYTES",
    "DEFAULT_MAX_RETRIES",
    "DownloadError",
    "FailureKind",
    "GeneratedImage",
    "ImageClient",
    "ImageRequest",
    "ImageResponse",
    "ImageStore",
    "InsufficientCreditsError",
    "InternalServerError",
    "LimiterError",
    "LinkAIError",
    "ModelNotAvailableError",
    "ModelSpec",
    "PlanGroup",
    "Prices",
    "ProgressEvent",
    "RateLimitError",
    "RequestValidationError",
    "RetryBudget",
    "RetryEvent",
    "RetryPolicy",
    "ServiceUnavailableError",
    "UncertainRequestError",
    "__version__",
    "parse_pixel_size",
    "resolve_pixels",
    "save_results",
    "set_testing",
}


def test_all_is_exactly_the_public_surface() -> None:
    """Nothing leaks into or out of `linkai_images.__all__` by accident."""
    assert EXPECTED == set(linkai_images.__all__)


def test_all_is_sorted_and_every_name_resolves() -> None:
    """`__all__` is one sorted list, and each name is importable from the package."""
    assert sorted(linkai_images.__all__) == linkai_images.__all__
    for name in linkai_images.__all__:
        assert hasattr(linkai_images, name), name


def test_public_classes_and_functions_are_documented_and_report_the_package() -> None:
    """Each public class and function has a docstring and says it lives in `linkai_images`."""
    for name in linkai_images.__all__:
        obj = getattr(linkai_images, name)
        if isinstance(obj, type) or callable(obj):
            assert obj.__doc__, name
            assert "linkai_images" == obj.__module__, name


def test_version_comes_from_package_metadata() -> None:
    """`__version__` is the installed distribution's version."""
    assert importlib.metadata.version("linkai-images") == linkai_images.__version__


def test_reprs_of_results_never_fail_and_stay_short() -> None:
    """A URL image, an inline image and a response all have a short, working repr."""
    url_image = linkai_images.GeneratedImage(url="https://cdn.test/a.png")
    inline = linkai_images.GeneratedImage(b64_json="A" * 100_000)
    response = linkai_images.ImageResponse(data=(url_image, inline))
    assert "b64_json=None" in repr(url_image)
    assert "<100000 base64 chars>" in repr(inline)
    assert len(repr(response)) < 500

"""linkai_images: an async-first client for the LinkAI image-generation API.

>>> import linkai_images
>>> async with linkai_images.AsyncImageClient() as client:  # doctest: +SKIP
...     response = await client.generate("a white fox in moonlight", model="gpt-image-2")
...     await response.data[0].save("fox.png")
"""

import importlib
import logging
from typing import TYPE_CHECKING, Any

from ._catalog import CATALOG, ModelSpec, parse_pixel_size, resolve_pixels
from ._client import AsyncImageClient
from ._config import (
    DEFAULT_BASE_URL,
    DEFAULT_MAX_CONCURRENCY,
    DEFAULT_MAX_IMAGE_BYTES,
    DEFAULT_MAX_RETRIES,
)
from ._exceptions import (
    APIConnectionError,
    APIResponseValidationError,
    APIStatusError,
    APITimeoutError,
    AuthenticationError,
    BadRequestError,
    BatchAbortedError,
    BatchError,
    CheckpointError,
    ClientClosedError,
    ContentModerationError,
    CostLimitError,
    DownloadError,
    InsufficientCreditsError,
    InternalServerError,
    LimiterError,
    LinkAIError,
    ModelNotAvailableError,
    RateLimitError,
    RequestValidationError,
    ServiceUnavailableError,
    UncertainRequestError,
)
from ._failures import FailureKind
from ._models import (
    BatchItem,
    BatchResults,
    BlockingImageStore,
    GeneratedImage,
    ImageRequest,
    ImageResponse,
    ImageStore,
    set_default_store,
)
from ._retry import RetryBudget, RetryEvent, RetryPolicy, set_testing
from ._version import __version__

if TYPE_CHECKING:
    from ._batch.plan import BatchPlan, PlanGroup
    from ._batch.prices import Prices
    from ._batch.progress import ProgressEvent
    from ._models import ImageStore
    from ._outputs.results import save_results
    from ._sync import ImageClient

#: Public names whose modules a first call does not need: imported when first used
#: (PEP 562), so that ``import linkai_images`` stays cheap.
_LAZY = {
    "BatchPlan": "._batch.plan",
    "PlanGroup": "._batch.plan",
    "Prices": "._batch.prices",
    "ProgressEvent": "._batch.progress",
    "save_results": "._outputs.results",
    "ImageClient": "._sync",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(module, __name__), name)
    _publish(value)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))


def _standalone_store() -> "ImageStore":
    from ._outputs.download import standalone_store

    return standalone_store()


# Images that no client made read and save through a short-lived pool of their own.
set_default_store(_standalone_store)

__all__ = [
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
    "ClientClosedError",
    "ContentModerationError",
    "CostLimitError",
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
]

# A library logs but never configures logging: without this, Python's last-resort
# handler would print retry warnings to stderr in scripts that set up no logging.
logging.getLogger(__name__).addHandler(logging.NullHandler())


def _publish(obj: object) -> None:
    """Public names report the public module, so tracebacks and reprs point users to it."""
    if getattr(obj, "__module__", "").startswith("linkai_images._"):
        obj.__module__ = __name__


for _name in __all__:
    if _name not in _LAZY:
        _publish(globals()[_name])
del _name

"""What a batch writes into each PNG it saves: the prompt, the model and the parameters.

Four iTXt chunks (UTF-8), read by any PNG tool (``exiftool``, Pillow's
``Image.text``, ``read_png_text``):

- ``Description``: the prompt (a keyword of the PNG specification that image
  viewers show);
- ``Source``: the model code;
- ``Software``: ``linkai-images`` and its version;
- ``linkai-images``: JSON with every parameter: prompt, model, size,
  aspect_ratio, quality, reference_images, url, request_id, created,
  revised_prompt.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

from .._version import __version__

if TYPE_CHECKING:
    from .._models import ImageRequest, ImageResponse

__all__ = ["PROVENANCE_KEYWORD", "provenance_text"]

#: The keyword of the JSON chunk.
PROVENANCE_KEYWORD = "linkai-images"


def provenance_text(
    *,
    request: ImageRequest | None,
    response: ImageResponse,
    position: int,
    references: Sequence[Mapping[str, str | None]] = (),
) -> dict[str, str]:
    """The text chunks for image ``position`` of ``response`` (see the module docs).

    Args:
        request: what was asked for, when known.
        response: what came back.
        position: the image's place in ``response.data``.
        references: the request's ``reference_entries`` (URLs, or file names
            and sha256).
    """
    image = response.data[position]
    model = (request.model if request is not None else None) or response.model
    parameters = {
        "prompt": request.prompt if request is not None else None,
        "model": model,
        "size": request.size if request is not None else None,
        "aspect_ratio": request.aspect_ratio if request is not None else None,
        "quality": request.quality if request is not None else None,
        "reference_images": [dict(entry) for entry in references],
        "url": image.url,
        "request_id": response.request_id,
        "created": response.created,
        "revised_prompt": image.revised_prompt,
    }
    text = {"Software": f"linkai-images {__version__}"}
    if request is not None:
        text["Description"] = request.prompt
    if model:
        text["Source"] = model
    text[PROVENANCE_KEYWORD] = json.dumps(parameters, ensure_ascii=False)
    return text

"""``ImageClient`` is the exact twin of ``AsyncImageClient``: same calls, arguments, defaults, docs.

If a test here fails after you added an argument to ``AsyncImageClient`` (its constructor
or a method) or to ``save_results``: add the same parameter line, with the same
annotation and default, to the twin in ``linkai_images/_sync.py``. Its body forwards every
argument by name, so the signature is all there is to change (for ``generate_many``, its
two ``@overload`` stubs too). A new public method needs a blocking twin of the same name.
"""

from __future__ import annotations

import inspect
import re
from collections.abc import Callable
from typing import Any

import pytest

from linkai_images import AsyncImageClient, ImageClient, save_results

#: Async names whose twin has another name; and what only the async client has.
RENAMED = {"aclose": "close"}
BOUND = re.compile(r"ImageResponse\[(?:Any|BlockingImageStore|ImageStore)\]")


def public_methods(cls: type) -> list[str]:
    """The public methods of a class, ``__init__`` first."""
    names = [n for n, v in vars(cls).items() if inspect.isfunction(v) and not n.startswith("_")]
    return ["__init__", *sorted(names)]


def parameters(func: Callable[..., Any]) -> list[tuple[str, str, object, object]]:
    """Each parameter but ``self`` as (name, kind, default, annotation).

    A result type bound to a store kind (``ImageResponse[Any]``: the blocking form takes
    results of either client) counts as the same annotation as the plain one.
    """
    params = list(inspect.signature(func).parameters.values())
    return [
        (p.name, p.kind.name, p.default, BOUND.sub("ImageResponse", str(p.annotation)))
        for p in params
        if p.name != "self"
    ]


TWINS = [
    *((getattr(AsyncImageClient, n), getattr(ImageClient, RENAMED.get(n, n)))
      for n in public_methods(AsyncImageClient) if hasattr(ImageClient, RENAMED.get(n, n))),
    (save_results, ImageClient.save_results),
]  # fmt: skip


def test_every_public_method_has_a_blocking_twin() -> None:
    """Each public method of AsyncImageClient exists on ImageClient (aclose as close)."""
    names = public_methods(AsyncImageClient)
    missing = [n for n in names if not hasattr(ImageClient, RENAMED.get(n, n))]
    assert [] == missing, (
        f"ImageClient lacks {missing}: add a blocking twin in linkai_images/_sync.py "
        "(signature copied, body `arguments = _arguments(locals())` forwarded to the async one)"
    )


def test_every_public_property_has_a_twin() -> None:
    """Each public property of AsyncImageClient is readable on ImageClient too."""
    names = [n for n, v in vars(AsyncImageClient).items() if isinstance(v, property)]
    assert [] == [n for n in names if not isinstance(getattr(ImageClient, n, None), property)]


@pytest.mark.parametrize(("async_twin", "blocking_twin"), TWINS, ids=lambda f: f.__qualname__)
def test_the_twins_take_the_same_arguments(
    async_twin: Callable[..., Any], blocking_twin: Callable[..., Any]
) -> None:
    """Parameter by parameter: the same names, kinds, defaults and annotations, in order."""
    expected, actual = parameters(async_twin), parameters(blocking_twin)
    differing = [str(p) for p in expected if p not in actual]
    assert expected == actual, (
        f"{blocking_twin.__qualname__} must take the arguments of {async_twin.__qualname__}: "
        f"add or fix {differing or 'the order'} in linkai_images/_sync.py "
        "(the body forwards arguments by name; see this module's docstring)"
    )


@pytest.mark.parametrize(("async_twin", "blocking_twin"), TWINS, ids=lambda f: f.__qualname__)
def test_the_twins_share_their_docstring(
    async_twin: Callable[..., Any], blocking_twin: Callable[..., Any]
) -> None:
    """A twin method's help() is its async twin's, Args/Returns/Raises included."""
    if async_twin is AsyncImageClient.aclose:
        return  # close() also stops the loop thread, and says so
    if async_twin is AsyncImageClient.__init__:
        async_twin, blocking_twin = AsyncImageClient, ImageClient  # documented on the class
        section = (async_twin.__doc__ or "").split("Args:", 1)[1]
        assert section in (blocking_twin.__doc__ or "")
        return
    assert (async_twin.__doc__ or "").rstrip() in (blocking_twin.__doc__ or "")


def test_a_misspelt_argument_is_a_type_error_at_the_call() -> None:
    """ImageClient(concurency=4) fails at once, naming the argument (no **options)."""
    with pytest.raises(TypeError, match="concurency"):
        ImageClient("sk-test", concurency=4)  # type: ignore[call-arg]

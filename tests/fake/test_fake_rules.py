"""The fake's platform rules, over a real loopback server: auth, validation, 402/406/409, CDN."""

from __future__ import annotations

import base64
import re
import ssl
import time
from collections.abc import AsyncIterator

import httpx
import pytest

from linkai_images.testing import FakeLinkAI, FakeServer, make_png, png_size

pytestmark = pytest.mark.anyio

PNG = make_png(4, 4)
JPEG = b"\xff\xd8\xff\xe0\x00\x10JFIF\x00" + b"\x00" * 16
GIF = b"GIF89a" + b"\x00" * 16
WEBP = b"RIFF\x10\x00\x00\x00WEBPVP8 " + b"\x00" * 16
# One TLS context for every client: httpx would load the CA bundle per client (slow).
TLS = ssl.create_default_context()


def data_uri(mime: str, data: bytes) -> str:
    return f"data:{mime};base64,{base64.b64encode(data).decode()}"


@pytest.fixture
async def client(server: FakeServer) -> AsyncIterator[httpx.AsyncClient]:
    headers = {"Authorization": f"Bearer {server.fake.api_key}"}
    async with httpx.AsyncClient(base_url=server.base_url, headers=headers, verify=TLS) as client:
        yield client


async def generate(client: httpx.AsyncClient, **body: object) -> httpx.Response:
    body.setdefault("model", "gpt-image-2")
    body.setdefault("prompt", "a white fox running under the moon")
    return await client.post("/images/generations", json=body)


def error_of(response: httpx.Response) -> tuple[int, str, str]:
    """Status, error type and message, checking the error body has exactly the platform's shape."""
    body = response.json()
    assert ["error"] == list(body)
    assert ["message", "type"] == sorted(body["error"])
    return response.status_code, body["error"]["type"], body["error"]["message"]


async def test_success_is_openai_shaped_with_a_cdn_url_on_another_origin(
    client: httpx.AsyncClient, server: FakeServer
) -> None:
    """A valid request gets 200, `created`, one CDN URL on the CDN port, and an X-Request-Id."""
    before = int(time.time())
    response = await generate(client, size="2K", aspect_ratio="16:9")
    body = response.json()
    assert 200 == response.status_code
    assert "application/json" == response.headers["content-type"]
    assert response.headers["x-request-id"]
    assert ["created", "data"] == sorted(body)
    assert before <= body["created"] <= int(time.time())
    assert 1 == len(body["data"])
    pattern = (
        re.escape(server.cdn_url) + r"/user/generate/[0-9a-f]{8}(-[0-9a-f]{4}){3}-[0-9a-f]{12}\.png"
    )
    assert re.fullmatch(pattern, body["data"][0]["url"])
    assert server.cdn_url != server.base_url.removesuffix("/v1")


@pytest.mark.parametrize(
    ("fields", "pixels"),
    [
        ({"model": "gpt-image-2", "size": "2K", "aspect_ratio": "16:9"}, (2048, 1152)),
        ({"model": "gpt-image-2", "size": "1K", "aspect_ratio": "9:16"}, (576, 1024)),
        ({"model": "gpt-image-2"}, (2048, 1152)),  # defaults: 2K at 16:9
        ({"model": "doubao-seedream-4.5"}, (2048, 2048)),  # 2K, automatic ratio -> 1:1
        (
            {"model": "gemini-3.1-flash-image-preview", "size": "512", "aspect_ratio": "21:9"},
            (512, 224),
        ),
        ({"model": "gemini-2.5-flash-image", "size": "4K"}, (1024, 1024)),  # no size: ignored, 1K
        ({"model": "gemini-3-pro-image-preview", "aspect_ratio": "4:5"}, (816, 1024)),
    ],
)
async def test_cdn_serves_a_png_whose_pixels_follow_size_and_ratio(
    client: httpx.AsyncClient, fields: dict[str, str], pixels: tuple[int, int]
) -> None:
    """The image behind the URL is a real PNG, the resolved size divided by the fake's scale."""
    response = await generate(client, **fields)
    image = await client.get(response.json()["data"][0]["url"])
    assert 200 == image.status_code
    assert "image/png" == image.headers["content-type"]
    assert (pixels[0] // 16, pixels[1] // 16) == png_size(image.content)


async def test_missing_and_wrong_api_keys_get_401(client: httpx.AsyncClient) -> None:
    """No Authorization header, a wrong key and a non-Bearer scheme all get 401."""
    body = {"model": "gpt-image-2", "prompt": "a fox"}
    missing = await client.post("/images/generations", json=body, headers={"Authorization": ""})
    wrong = await client.post(
        "/images/generations", json=body, headers={"Authorization": "Bearer sk-nope"}
    )
    basic = await client.post(
        "/images/generations", json=body, headers={"Authorization": "Basic c2s6eA=="}
    )
    for response in (missing, wrong, basic):
        assert (401, "authentication_error") == error_of(response)[:2]
    assert "sk-nope" not in wrong.text


async def test_the_key_is_compared_to_the_fakes_current_key(
    client: httpx.AsyncClient, fake: FakeLinkAI
) -> None:
    """Changing `fake.api_key` makes the old key fail."""
    fake.api_key = "sk-rotated"
    assert 401 == (await generate(client)).status_code


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"not json", "JSON object"),
        (b"[1, 2]", "JSON object"),
        (b"", "JSON object"),
        (b'{"prompt": "a fox"}', "model is required"),
        (b'{"model": 3, "prompt": "a fox"}', "model is required"),
        (b'{"model": "gpt-image-2"}', "prompt is required"),
        (b'{"model": "gpt-image-2", "prompt": "  \\n "}', "prompt must not be empty"),
    ],
)
async def test_bad_bodies_get_400(client: httpx.AsyncClient, content: bytes, message: str) -> None:
    """A body that is not a JSON object, or lacks model or a non-blank prompt, is 400."""
    response = await client.post("/images/generations", content=content)
    status, type_, text = error_of(response)
    assert (400, "invalid_request_error") == (status, type_)
    assert message in text


async def test_unknown_model_gets_402_naming_it(client: httpx.AsyncClient) -> None:
    """An unknown model code is 402 with the platform's message."""
    response = await generate(client, model="dall-e-9")
    assert (
        402,
        "invalid_request_error",
        "model does not exist or the account may not use it: dall-e-9",
    ) == error_of(response)


async def test_extra_models_are_accepted_without_table_checks(
    client: httpx.AsyncClient, fake: FakeLinkAI
) -> None:
    """A configured extra model passes with any size or quality, served at 1K 1:1 by default."""
    fake.extra_models = {"flux-2-pro"}
    response = await generate(client, model="flux-2-pro", size="8K", quality="ultra")
    assert 200 == response.status_code
    image = await client.get(response.json()["data"][0]["url"])
    assert (64, 64) == png_size(image.content)


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"size": "3K"}, "size '3K' is not offered by gpt-image-2; choose one of 1K, 2K, 4K"),
        ({"aspect_ratio": "4:3"}, "aspect_ratio '4:3' is not offered by gpt-image-2"),
        ({"aspect_ratio": "auto"}, "aspect_ratio 'auto' is not offered by gpt-image-2"),
        ({"quality": "hd"}, "quality 'hd' is not offered by gpt-image-2; choose one of low"),
        ({"size": 2048}, "size must be a string"),
        ({"model": "doubao-seedream-4.0", "size": "1K"}, "size '1K' is not offered by doubao"),
        ({"response_format": "xml"}, "response_format 'xml' is not supported"),
    ],
)
async def test_values_outside_the_models_table_get_400_naming_them(
    client: httpx.AsyncClient, fields: dict[str, object], message: str
) -> None:
    """size, aspect_ratio, quality outside the model's table, or a bad response_format, are 400."""
    status, type_, text = error_of(await generate(client, **fields))
    assert (400, "invalid_request_error") == (status, type_)
    assert message in text


@pytest.mark.parametrize(
    "fields",
    [
        {"model": "gemini-2.5-flash-image", "size": "9K", "quality": "ultra"},
        {"model": "doubao-seedream-4.5", "quality": "hd"},
        {"model": "gemini-3-pro-image-preview", "quality": 7},
    ],
)
async def test_fields_a_model_does_not_have_are_ignored(
    client: httpx.AsyncClient, fields: dict[str, object]
) -> None:
    """A field missing from a model's table altogether is ignored, as the platform says."""
    assert 200 == (await generate(client, **fields)).status_code


async def test_reference_images_accept_urls_and_true_data_uris(
    client: httpx.AsyncClient, fake: FakeLinkAI
) -> None:
    """http(s) URLs and data URIs whose bytes match their type are accepted and recorded."""
    images = [
        "https://example.com/a.jpg",
        data_uri("image/png", PNG),
        data_uri("image/jpeg", JPEG),
        data_uri("image/gif", GIF),
        data_uri("image/webp", WEBP),
    ]
    response = await generate(client, images=images)
    assert 200 == response.status_code
    recorded = fake.requests[-1].images
    assert "https://example.com/a.jpg" == recorded[0].url
    assert [
        ("image/png", len(PNG)),
        ("image/jpeg", len(JPEG)),
        ("image/gif", len(GIF)),
        ("image/webp", len(WEBP)),
    ] == [(image.mime_type, image.size) for image in recorded[1:]]
    assert all(image.valid for image in recorded)


@pytest.mark.parametrize(
    ("images", "message"),
    [
        ("https://example.com/a.png", "images must be a list"),
        ([42], "images[0] is not a string"),
        (["ftp://example.com/a.png"], "images[0] is neither"),
        (["/tmp/a.png"], "images[0] is neither"),
        (["http:///a.png"], "images[0] is not a valid http(s) URL"),
        ([data_uri("image/jpeg", PNG)], "images[0] says image/jpeg but its bytes are image/png"),
        ([data_uri("image/png", b"hello")], "its bytes are not an image"),
        (["data:image/png;base64,@@@not-base64@@@"], "base64 payload is invalid"),
        ([data_uri("image/bmp", b"BM" + b"\x00" * 20)], "images[0] is a data URI but not"),
        (["data:image/png," + "x" * 10], "images[0] is a data URI but not"),
        ([], None),
    ],
)
async def test_bad_reference_images_get_400(
    client: httpx.AsyncClient, images: object, message: str | None
) -> None:
    """Anything but an http(s) URL or a true image data URI is 400, naming the entry."""
    response = await generate(client, images=images)
    if message is None:
        assert 200 == response.status_code
    else:
        status, _, text = error_of(response)
        assert 400 == status
        assert message in text


async def test_more_images_than_the_model_takes_get_400(client: httpx.AsyncClient) -> None:
    """gemini-3-pro takes 3 reference images: 3 pass, 4 are 400."""
    url = "https://example.com/a.png"
    model = "gemini-3-pro-image-preview"
    assert 200 == (await generate(client, model=model, images=[url] * 3)).status_code
    status, _, text = error_of(await generate(client, model=model, images=[url] * 4))
    assert 400 == status
    assert "4 reference images given; gemini-3-pro-image-preview takes at most 3" == text


async def test_b64_json_is_answered_inline(client: httpx.AsyncClient) -> None:
    """response_format=b64_json returns the PNG inline (a fake-only convenience)."""
    response = await generate(client, response_format="b64_json", size="1K", aspect_ratio="1:1")
    item = response.json()["data"][0]
    assert ["b64_json"] == list(item)
    assert (64, 64) == png_size(base64.b64decode(item["b64_json"]))


async def test_default_response_format_can_be_b64_json() -> None:
    """A fake made with default_response_format="b64_json" answers inline unless asked for url."""
    fake = FakeLinkAI(default_response_format="b64_json")
    with fake.serve() as server:
        async with httpx.AsyncClient(base_url=server.base_url, verify=TLS) as client:
            client.headers["Authorization"] = f"Bearer {fake.api_key}"
            inline = await generate(client)
            url = await generate(client, response_format="url")
    assert ["b64_json"] == list(inline.json()["data"][0])
    assert ["url"] == list(url.json()["data"][0])


async def test_credits_run_out_into_406(client: httpx.AsyncClient, fake: FakeLinkAI) -> None:
    """Each success spends one credit; at zero the answer is 406 insufficient_quota."""
    fake.credits = 2
    assert 400 == (await generate(client, size="9K")).status_code  # failures are free
    assert [200, 200] == [(await generate(client)).status_code for _ in range(2)]
    assert (406, "insufficient_quota") == error_of(await generate(client))[:2]
    assert 0 == fake.credits
    assert 2 == fake.images_generated


async def test_banned_words_get_409(client: httpx.AsyncClient, fake: FakeLinkAI) -> None:
    """A prompt containing a moderation word (any case) is 409 content_policy_violation."""
    assert (409, "content_policy_violation") == error_of(
        await generate(client, prompt="a FORBIDDEN city")
    )[:2]
    fake.banned_words = {"Gore"}
    assert 200 == (await generate(client, prompt="a forbidden city")).status_code
    assert 409 == (await generate(client, prompt="some gore")).status_code
    assert 1 == fake.images_generated


async def test_unknown_paths_and_methods(client: httpx.AsyncClient) -> None:
    """Another API path is 404 and GET on the endpoint is 405, both in the error shape."""
    assert 404 == error_of(await client.post("/images/edits", json={}))[0]
    assert 405 == error_of(await client.get("/images/generations"))[0]


async def test_cdn_answers_404_for_unknown_and_forged_paths(
    client: httpx.AsyncClient, server: FakeServer
) -> None:
    """Only URLs the fake generated resolve: a made-up or altered image path is 404."""
    url = (await generate(client)).json()["data"][0]["url"]
    forged = url[:-8] + ("0000" if url[-8:-4] != "0000" else "1111") + ".png"
    made_up = f"{server.cdn_url}/user/generate/00000000-0000-0000-0000-000000000000.png"
    for bad in (forged, made_up, f"{server.cdn_url}/elsewhere.png"):
        assert 404 == (await client.get(bad)).status_code
    assert 405 == (await client.post(url)).status_code
    head = await client.head(url)
    assert (200, b"") == (head.status_code, head.content)
    assert int(head.headers["content-length"]) > 0


async def test_requests_are_recorded(client: httpx.AsyncClient, fake: FakeLinkAI) -> None:
    """Each API request is recorded with headers, parsed body, status and request id."""
    response = await generate(client, prompt="recorded", size="1K")
    (record,) = fake.requests
    assert "POST" == record.method
    assert "/v1/images/generations" == record.path
    assert f"Bearer {fake.api_key}" == record.headers["authorization"]
    assert {"model": "gpt-image-2", "prompt": "recorded", "size": "1K"} == record.body
    assert ("recorded", "gpt-image-2", 200) == (record.prompt, record.model, record.status)
    assert response.headers["x-request-id"] == record.request_id
    assert record.fault is None
    assert 1 == fake.attempts("recorded")


async def test_cdn_requests_are_recorded_with_their_headers(
    client: httpx.AsyncClient, fake: FakeLinkAI
) -> None:
    """Image downloads are recorded with their headers, so a test can see what reached the CDN."""
    url = (await generate(client)).json()["data"][0]["url"]
    async with httpx.AsyncClient(verify=TLS) as plain:
        await plain.get(url, headers={"X-Probe": "1"})
    (record,) = fake.cdn_requests
    assert ("GET", 200, "1") == (record.method, record.status, record.headers["x-probe"])
    assert "authorization" not in record.headers
    assert url.split("/", 3)[3] == record.path.lstrip("/")

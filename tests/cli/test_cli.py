"""The `linkai-images` command line: in process and as a child process, over the loopback fake."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from helpers import Run, error_line, pngs, write_jsonl

from linkai_images import CATALOG, AsyncImageClient, __version__, set_testing
from linkai_images._cli.generate import output_paths
from linkai_images._cli.main import main
from linkai_images._cli.run import CHECKPOINT_NAME, slug
from linkai_images.testing import FakeLinkAI, FakeServer, Fault, make_png, png_size

# --- generate ---------------------------------------------------------------------


def test_generate_writes_a_png_and_prints_its_path(
    cli: Run, api: list[str], tmp_path: Path
) -> None:
    """generate saves the image at -o and prints where it went."""
    target = tmp_path / "fox.png"
    status, out, err = cli(
        "generate", "a fox", "-m", "gpt-image-2", "--size", "2K", "--aspect-ratio", "16:9",
        "--quality", "high", "-o", str(target), *api,
    )  # fmt: skip
    assert (0, "") == (status, err)
    assert str(target) == out.strip()
    assert (128, 72) == png_size(target.read_bytes())  # the fake serves 1/16 scale


def test_generate_sends_a_local_reference_image_encoded(
    cli: Run,
    api: list[str],
    linkai_fake: FakeLinkAI,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """--image with a relative path is read from the current directory and sent as a data URI."""
    monkeypatch.chdir(tmp_path)
    Path("ref.png").write_bytes(make_png(8, 8))
    status, out, _ = cli("generate", "make it blue", "-m", "doubao-seedream-4.5",
                         "--image", "ref.png", "-o", "out/", *api)  # fmt: skip
    assert 0 == status
    assert [str(Path("out") / "make-it-blue.png")] == out.split()
    assert ["image/png"] == [image.mime_type for image in linkai_fake.requests[0].images]


def test_generate_takes_key_and_base_url_from_the_environment(
    cli: Run, linkai_server: FakeServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """LINKAI_API_KEY and LINKAI_BASE_URL stand in for --api-key and --base-url."""
    monkeypatch.setenv("LINKAI_API_KEY", linkai_server.fake.api_key)
    monkeypatch.setenv("LINKAI_BASE_URL", linkai_server.base_url)
    status, _, _ = cli("generate", "a fox", "-m", "gpt-image-2", "-o", str(tmp_path / "f.png"))
    assert 0 == status
    assert 1 == linkai_server.fake.images_generated


def test_generate_retries_a_503_and_says_so(
    cli: Run, api: list[str], linkai_fake: FakeLinkAI, tmp_path: Path
) -> None:
    """A 503 with Retry-After 0 is retried; the retry is reported on stderr."""
    linkai_fake.fail(Fault.status(503, retry_after=0), prompt="a fox")
    with set_testing():
        status, _, err = cli("generate", "a fox", "-m", "gpt-image-2", "-o", str(tmp_path), *api)
    assert 0 == status
    assert 2 == linkai_fake.attempts("a fox")
    assert "attempt 1 failed" in err
    assert "(503)" in err


def test_several_images_get_numbered_names(tmp_path: Path) -> None:
    """Several images of one call go to FILE-1, FILE-2, ... or into a directory by prompt."""
    file = tmp_path / "fox.png"
    expected = [tmp_path / "fox-1.png", tmp_path / "fox-2.png"]
    assert expected == output_paths(str(file), "x", 2, ".png")
    assert [tmp_path / "a-fox-1.webp"] == output_paths(str(tmp_path), "A fox!", 2, ".webp")[:1]
    assert [Path("a-fox.png")] == output_paths(None, "A fox!", 1, ".png")


# --- batch ------------------------------------------------------------------------


def test_batch_jsonl_writes_one_file_per_line(cli: Run, api: list[str], tmp_path: Path) -> None:
    """Each request line gets one image, named by its line number; blank lines are skipped."""
    source = write_jsonl(
        tmp_path / "prompts.jsonl",
        "a lighthouse",
        "",
        {"prompt": "a red fox", "model": "doubao-seedream-4.0", "size": "4K"},
        {"prompt": "an owl", "aspect_ratio": "9:16"},
    )
    out_dir = tmp_path / "images"
    status, out, err = cli("batch", str(source), "--out", str(out_dir), "-m", "gpt-image-2", *api)
    assert (0, "") == (status, err)
    expected = ["0001-a-lighthouse.png", "0003-a-red-fox.png", "0004-an-owl.png"]
    assert expected == pngs(out_dir)
    assert (256, 256) == png_size((out_dir / "0003-a-red-fox.png").read_bytes())
    assert "done 3, failed 0, uncertain 0, skipped (checkpoint) 0, retried 0" in out
    assert (out_dir / CHECKPOINT_NAME).is_file()


def test_batch_csv_resolves_images_against_the_file(
    cli: Run,
    api: list[str],
    linkai_fake: FakeLinkAI,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A CSV row per request; `images` is ;-separated, relative to the CSV's directory."""
    data = tmp_path / "data"
    (data / "refs").mkdir(parents=True)
    (data / "refs" / "a.png").write_bytes(make_png(4, 4))
    source = data / "jobs.csv"
    source.write_text(
        "prompt,model,size,images\n"
        '"a cat, sitting",gpt-image-2,1K,\n'
        "blend them,doubao-seedream-4.5,,refs/a.png; refs/a.png\n"
    )
    monkeypatch.chdir(tmp_path)  # elsewhere than the CSV
    status, _, _ = cli("batch", str(source), "--out", "out", "--no-progress", *api)
    assert 0 == status
    assert ["0002-a-cat-sitting.png", "0003-blend-them.png"] == pngs(tmp_path / "out")
    sent = {r.prompt: [i.mime_type for i in r.images] for r in linkai_fake.requests}
    assert {"a cat, sitting": [], "blend them": ["image/png", "image/png"]} == sent


def test_batch_resumes_without_resending_done_requests(
    cli: Run, api: list[str], linkai_server: FakeServer, tmp_path: Path
) -> None:
    """A failed line fails the run; the rerun sends only it and downloads only its image."""
    fake = linkai_server.fake
    fake.fail(Fault.status(500), prompt="p2")
    source = write_jsonl(tmp_path / "p.jsonl", "p1", "p2", "p3")
    args = ("batch", str(source), "--out", str(tmp_path / "out"), "-m", "gpt-image-2",
            "--max-retries", "0", "--no-progress", *api)  # fmt: skip

    status, out, err = cli(*args)
    assert 1 == status
    assert "1 of 3 requests failed" in error_line(err)
    assert "line 2: the API refused the request (500)" in out
    assert ["0001-p1.png", "0003-p3.png"] == pngs(tmp_path / "out")
    downloads = len(fake.cdn_requests)

    status, out, err = cli(*args)
    assert (0, "") == (status, err)
    assert [1, 2, 1] == [fake.attempts(p) for p in ("p1", "p2", "p3")]
    assert downloads + 1 == len(fake.cdn_requests)
    assert "done 1, failed 0, uncertain 0, skipped (checkpoint) 2" in out
    assert ["0001-p1.png", "0002-p2.png", "0003-p3.png"] == pngs(tmp_path / "out")


def test_batch_downloads_again_an_image_missing_from_disk(
    cli: Run, api: list[str], linkai_server: FakeServer, tmp_path: Path
) -> None:
    """A request in the checkpoint whose file is gone is downloaded again, not regenerated."""
    fake = linkai_server.fake
    source = write_jsonl(tmp_path / "p.jsonl", "p1", "p2")
    args = ("batch", str(source), "--out", str(tmp_path / "out"), "-m", "gpt-image-2", *api)
    assert 0 == cli(*args)[0]
    (tmp_path / "out" / "0002-p2.png").unlink()
    assert 0 == cli(*args)[0]
    assert [1, 1] == [fake.attempts("p1"), fake.attempts("p2")]
    assert 3 == len(fake.cdn_requests)
    assert ["0001-p1.png", "0002-p2.png"] == pngs(tmp_path / "out")


def test_batch_interrupted_by_ctrl_c_resumes(
    linkai_server: FakeServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """SIGINT mid-batch exits 130; the rerun lists the request in flight as uncertain."""
    fake = linkai_server.fake
    fake.fail(Fault.hang(30), prompt="p3")
    source = write_jsonl(tmp_path / "p.jsonl", "p1", "p2", "p3")
    command = [sys.executable, "-m", "linkai_images", "batch", str(source), "--out",
               str(tmp_path / "out"), "-m", "gpt-image-2", "--no-progress",
               "--base-url", linkai_server.base_url]  # fmt: skip
    env = {**os.environ, "LINKAI_API_KEY": fake.api_key}
    child = subprocess.Popen(command, env=env, stderr=subprocess.PIPE, text=True)
    try:
        checkpoint = tmp_path / "out" / CHECKPOINT_NAME
        for _ in range(2000):  # a guard against a hung test, not a timing assertion
            if (
                fake.in_flight == 1
                and checkpoint.is_file()
                and checkpoint.read_text().count('"ok":true') == 2
                and len(pngs(tmp_path / "out")) == 2
            ):
                break
            assert child.poll() is None, child.communicate()
            time.sleep(0.01)
        child.send_signal(signal.SIGINT)
        _, err = child.communicate(timeout=20)
    finally:
        if child.poll() is None:
            child.kill()
            child.communicate()
    assert 130 == child.returncode
    assert "interrupted (run the same command again to resume)" in err
    assert "Traceback" not in err

    # p3 was in flight: it may be billed, so the rerun lists it instead of sending it...
    status = main([*command[3:], "--api-key", fake.api_key])
    out = capsys.readouterr().out
    assert 1 == status
    assert [1, 1, 1] == [fake.attempts(p) for p in ("p1", "p2", "p3")]
    assert '  line 3: "p3": sent by a run that stopped before the answer' in out
    assert "with --resend-uncertain" in out
    # ...and sends it when asked to.
    status = main([*command[3:], "--api-key", fake.api_key, "--resend-uncertain"])
    assert 0 == status
    assert [1, 1, 2] == [fake.attempts(p) for p in ("p1", "p2", "p3")]


@pytest.mark.filterwarnings("default")
def test_a_damaged_checkpoint_is_a_one_line_warning(
    cli: Run, api: list[str], tmp_path: Path
) -> None:
    """A non-JSON line in the checkpoint is skipped with a warning line, not a source quote."""
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / CHECKPOINT_NAME).write_text("garbage\n")
    source = write_jsonl(tmp_path / "p.jsonl", "p1")
    status, _, err = cli("batch", str(source), "--out", str(tmp_path / "out"), "-m", "gpt-image-2",
                         "--no-progress", *api)  # fmt: skip
    assert 0 == status
    assert [f"linkai-images: warning: checkpoint {str(tmp_path / 'out' / CHECKPOINT_NAME)!r}: "
            "line 1 is not JSON; skipped"] == err.splitlines()  # fmt: skip


# --- user errors: one line, no traceback, no key ------------------------------------


def test_bad_batch_lines_are_all_reported_and_nothing_is_sent(
    cli: Run, api: list[str], linkai_fake: FakeLinkAI, tmp_path: Path
) -> None:
    """Every bad line is named with its number in one error line, before any request."""
    source = tmp_path / "bad.jsonl"
    source.write_text(
        '"fine"\n'
        '{"prompt": "x", "size": "3K"}\n'
        "[1, 2]\n"
        '{"prompt": "y"\n'
        '{"colour": "red"}\n'
        '{"prompt": "w", "images": "missing.png"}\n'
    )
    status, out, err = cli(
        "batch", str(source), "--out", str(tmp_path / "o"), "-m", "gpt-image-2", *api
    )
    line = error_line(err)
    assert (1, "") == (status, out)
    assert "5 bad lines, nothing was sent" in line
    for number in (2, 3, 4, 5):
        assert f"line {number}: " in line
    assert "size '3K' is not offered by gpt-image-2" in line
    assert "line 5: no 'prompt'" in line
    assert "and 1 more" not in line  # five are shown
    assert 0 == linkai_fake.request_count


def test_batch_line_without_a_model(cli: Run, api: list[str], tmp_path: Path) -> None:
    """A line with no model and no --model says how to give one."""
    source = write_jsonl(tmp_path / "p.jsonl", "a fox")
    status, _, err = cli("batch", str(source), "--out", str(tmp_path / "o"), *api)
    assert 1 == status
    assert 'line 1: no model: add a "model" field or pass --model' in error_line(err)


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("missing.jsonl", None, "missing.jsonl: No such file or directory"),
        ("prompts.txt", "a fox\n", "unknown batch file type '.txt'"),
        ("empty.jsonl", "\n\n", "no requests in the file"),
        (
            "bad.csv",
            "colour,model\nred,gpt-image-2\n",
            "line 1: the header row has no 'prompt' column (it has 'colour', 'model')",
        ),
        ("latin1.jsonl", b'"caf\xe9"\n', "not UTF-8 text"),
    ],
)
def test_unusable_batch_files(
    cli: Run, api: list[str], tmp_path: Path, name: str, content: str | bytes | None, message: str
) -> None:
    """A missing, unknown, empty, badly headed or non-UTF-8 file gives one clear line."""
    source = tmp_path / name
    if isinstance(content, str):
        source.write_text(content)
    elif content is not None:
        source.write_bytes(content)
    status, _, err = cli(
        "batch", str(source), "--out", str(tmp_path / "o"), "-m", "gpt-image-2", *api
    )
    assert 1 == status
    assert message in error_line(err)


def test_missing_key_names_the_variable(cli: Run, linkai_server: FakeServer) -> None:
    """No --api-key and no LINKAI_API_KEY: one line naming both, nothing sent."""
    status, _, err = cli(
        "generate", "a fox", "-m", "gpt-image-2", "--base-url", linkai_server.base_url
    )
    assert 1 == status
    assert "linkai-images: error: no API key: set LINKAI_API_KEY or pass --api-key" == error_line(
        err
    )
    assert 0 == linkai_server.fake.request_count


def test_a_refused_key_is_never_printed(
    cli: Run, linkai_server: FakeServer, tmp_path: Path
) -> None:
    """A wrong key gives the 401 in one line, and the key appears nowhere."""
    secret = "sk-wrong-but-secret-0123456789"
    status, out, err = cli("generate", "a fox", "-m", "gpt-image-2", "-o", str(tmp_path),
                           "--base-url", linkai_server.base_url, "--api-key", secret)  # fmt: skip
    assert 1 == status
    assert "the API refused the request (401)" in error_line(err)
    assert secret not in out + err
    assert "Traceback" not in err


def test_a_value_outside_the_models_table(
    cli: Run, api: list[str], linkai_fake: FakeLinkAI
) -> None:
    """A bad --size names the allowed values, before any request."""
    status, _, err = cli("generate", "a fox", "-m", "gpt-image-2", "--size", "3K", *api)
    assert 1 == status
    expected = "size '3K' is not offered by gpt-image-2; choose one of 1K, 2K, 4K"
    assert f"linkai-images: error: {expected}" == error_line(err)
    assert 0 == linkai_fake.request_count


def test_an_unknown_model_refused_by_the_server(cli: Run, api: list[str]) -> None:
    """An unknown model code is sent; the platform's 402 comes back as one line with a hint."""
    status, _, err = cli("generate", "a fox", "-m", "no-such-model", *api)
    assert 1 == status
    line = error_line(err)
    assert "(402)" in line
    assert "`linkai-images models`" in line


def test_a_missing_reference_image(cli: Run, api: list[str], linkai_fake: FakeLinkAI) -> None:
    """A reference file that does not exist is one line, and nothing is sent."""
    status, _, err = cli("generate", "a fox", "-m", "gpt-image-2", "--image", "nope.png", *api)
    assert 1 == status
    assert "file 'nope.png' does not exist" in error_line(err)
    assert 0 == linkai_fake.request_count


def test_ctrl_c_exits_130(cli: Run, api: list[str], monkeypatch: pytest.MonkeyPatch) -> None:
    """KeyboardInterrupt during a command is exit status 130 and a short line."""

    async def interrupted(*args: object, **kwargs: object) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(AsyncImageClient, "generate", interrupted)
    status, _, err = cli("generate", "a fox", "-m", "gpt-image-2", *api)
    assert (130, "linkai-images: interrupted\n") == (status, err)


def test_usage_errors_are_argparse_status_2(cli: Run) -> None:
    """A missing required option is a usage error (status 2), as argparse reports it."""
    with pytest.raises(SystemExit) as exit_info:
        cli("generate", "a fox")
    assert 2 == exit_info.value.code


# --- models, --version, names --------------------------------------------------------


def test_models_lists_all_six_in_an_aligned_table(cli: Run) -> None:
    """models prints a header and one row per catalog model, columns aligned."""
    status, out, _ = cli("models")
    lines = out.splitlines()
    assert 0 == status
    assert lines[0].split() == ["MODEL", "NAME", "SIZES", "DEFAULT", "ASPECT", "RATIOS",
                                "QUALITIES", "MAX", "IMAGES"]  # fmt: skip
    rows = lines[1:7]
    assert list(CATALOG) == [row.split()[0] for row in rows]
    column = lines[0].index("NAME")
    assert [spec.name for spec in CATALOG.values()] == [row[column:].split("  ")[0] for row in rows]
    assert "low medium high (medium)" in rows[0]


def test_models_json(cli: Run) -> None:
    """models --json is the catalog as data."""
    status, out, _ = cli("models", "--json")
    assert 0 == status
    assert list(CATALOG) == [model["code"] for model in json.loads(out)]


def test_version(cli: Run, capsys: pytest.CaptureFixture[str]) -> None:
    """--version prints the package version."""
    with pytest.raises(SystemExit) as exit_info:
        main(["--version"])
    assert 0 == exit_info.value.code
    assert f"linkai-images {__version__}\n" == capsys.readouterr().out


def test_slugs_are_safe_and_short() -> None:
    """File names keep words, drop punctuation, end on a whole word, never come out empty."""
    assert "a-white-fox-in-moonlight" == slug("A white fox, in moonlight!")
    assert "a-lighthouse-on-a-cliff-at-dawn-oil" == slug(
        "a lighthouse on a cliff at dawn, oil painting"
    )
    assert "image" == slug("?!")
    assert "白狐" == slug("白狐")


# --- demo -------------------------------------------------------------------------


def test_demo_in_process(cli: Run, tmp_path: Path) -> None:
    """The demo saves every image, retries the injected 503s and reports them."""
    status, out, _ = cli("demo", "--out", str(tmp_path), "--count", "2", "--no-progress")
    assert 0 == status
    assert 5 == len(pngs(tmp_path))  # 2 text-to-image, 2 image-to-image, the reference
    assert "retried 3 times" in out
    assert "done 4, failed 0" in out


def test_demo_as_a_child_process(tmp_path: Path) -> None:
    """`python -m linkai_images demo` exits 0, saves real PNGs and reports its retries."""
    result = subprocess.run(
        [sys.executable, "-m", "linkai_images", "demo", "--out", str(tmp_path / "demo")],
        capture_output=True,
        text=True,
        timeout=60,
        env={k: v for k, v in os.environ.items() if not k.startswith("LINKAI_")},
    )
    assert 0 == result.returncode, result.stderr
    files = [tmp_path / "demo" / name for name in pngs(tmp_path / "demo")]
    assert 15 == len(files)  # 12 + 2 images, and the reference image
    assert all(png_size(file.read_bytes()) for file in files)
    assert "retried 3 times" in result.stdout
    assert "done 14, failed 0" in result.stdout
    assert "Traceback" not in result.stderr


def test_the_models_table_in_the_docs_is_current(cli: Run) -> None:
    """docs/cli.md shows exactly what `linkai-images models` prints."""
    docs = (Path(__file__).parents[2] / "docs" / "cli.md").read_text()
    block = docs.split("$ linkai-images models\n", 1)[1].split("```", 1)[0]
    assert block == cli("models")[1]

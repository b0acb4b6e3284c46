"""Developer tasks; each session works alone: `nox -s tests`, `nox -s lint`, ..."""

from __future__ import annotations

import nox

nox.options.sessions = ["tests", "lint", "typecheck"]
nox.options.reuse_existing_virtualenvs = True

PYTHON = ["3.10", "3.11", "3.12"]


@nox.session(python=PYTHON)
def tests(session: nox.Session) -> None:
    """The test suite on asyncio and trio, with coverage."""
    session.install("-e", ".[dev]")
    session.run("coverage", "run", "-m", "pytest", *session.posargs)
    session.run("coverage", "report")


@nox.session
def lint(session: nox.Session) -> None:
    """ruff check and ruff format --check."""
    session.install("ruff")
    session.run("ruff", "check", ".")
    session.run("ruff", "format", "--check", ".")


@nox.session
def typecheck(session: nox.Session) -> None:
    """mypy --strict on the package."""
    session.install("-e", ".[dev]")
    session.run("mypy")


@nox.session
def bench(session: nox.Session) -> None:
    """The benchmarks of benchmarks/ (see benchmarks/README.md); pass a case to run one."""
    session.install("-e", ".[dev]")
    session.run("python", "benchmarks/run.py", *session.posargs)


@nox.session
def demo(session: nox.Session) -> None:
    """The end-to-end demo against the bundled fake server: no key, no network."""
    session.install(".")
    session.run("linkai-images", "demo", *session.posargs)

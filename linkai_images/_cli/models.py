"""``linkai-images models``: the model catalog as an aligned text table, or as JSON."""

from __future__ import annotations

import argparse
import json

import attrs

from .._catalog import ALL_ASPECT_RATIOS, CATALOG, ModelSpec

__all__ = ["add_command", "models_table"]


def add_command(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``models`` to the command parsers."""
    models = commands.add_parser("models", help="list the known models and what they accept")
    models.add_argument("--json", action="store_true", help="print the catalog as JSON")
    models.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    """Print the catalog."""
    if args.json:
        print(json.dumps([attrs.asdict(spec) for spec in CATALOG.values()], indent=2))
    else:
        print(models_table())
    return 0


def _ratios(spec: ModelSpec) -> str:
    shown = "all" if spec.aspect_ratios == ALL_ASPECT_RATIOS else " ".join(spec.aspect_ratios)
    return f"{shown} ({spec.default_aspect_ratio or 'auto'})"


def models_table() -> str:
    """The catalog as an aligned text table, with a key to its notation."""
    header = ("MODEL", "NAME", "SIZES", "DEFAULT", "ASPECT RATIOS", "QUALITIES", "MAX IMAGES")
    rows = [header]
    for spec in CATALOG.values():
        qualities = " ".join(spec.qualities)
        rows.append(
            (
                spec.code,
                spec.name,
                " ".join(spec.sizes) or "-",
                spec.default_size or "-",
                _ratios(spec),
                f"{qualities} ({spec.default_quality})" if qualities else "-",
                str(spec.max_images),
            )
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    lines = [
        "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
        for row in rows
    ]
    lines += [
        "",
        f"all: {' '.join(ALL_ASPECT_RATIOS)}. (x): the default; auto: the model decides.",
        "DEFAULT is the size used when --size is left out. MAX IMAGES: reference images per "
        "request.",
        "Other model codes are sent as given, unchecked.",
    ]
    return "\n".join(lines)

"""``mailsmith i18n``: a campaign's gettext catalogs (a sub-app of :mod:`cli`).

Each command makes one library call (``renderer.extract_messages`` and friends,
Babel's tooling in renderer/i18n/tools.py) and prints what it wrote; errors go
through the CLI's one error boundary, :func:`cli._run`.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, TypeVar

import typer

import cli_output
import renderer

if TYPE_CHECKING:
    from renderer import CatalogFile

T = TypeVar("T")
app = typer.Typer(
    help="Translations: extract messages, init/update/compile catalogs (docs/delivery.md).",
    no_args_is_help=True,
    rich_markup_mode=None,
)
CampaignArg = Annotated[
    Path | None,
    typer.Argument(help="Campaign YAML file. Default: the shipped demo.", show_default=False),
]


def _report(files: list[CatalogFile]) -> None:
    for file in files:
        counts = f"{file.messages} messages"
        if file.locale is not None:
            counts += f", {file.translated} translated"
        cli_output.out.print(f"{file.path} ({file.locale or 'template'}: {counts})")


def _run(action: Callable[[], T]) -> T:
    """The CLI's error boundary (cli.py imports this module before defining it)."""
    from cli import _run

    return _run(action)


def _campaign(path: Path | None) -> renderer.Campaign:
    from cli import _campaign

    return _run(lambda: _campaign(path))


@app.command("extract")
def extract(campaign: CampaignArg = None) -> None:
    """Messages of the campaign's template, blocks, subject and preheader -> messages.pot."""
    loaded = _campaign(campaign)
    _report([_run(lambda: renderer.extract_messages(loaded))])


@app.command("init")
def init(
    locale: Annotated[str, typer.Argument(help="The new locale (BCP 47: fr, fr-CA, de, ar).")],
    campaign: CampaignArg = None,
) -> None:
    """A new locale's messages.po from messages.pot."""
    loaded = _campaign(campaign)
    _report([_run(lambda: renderer.init_catalog(loaded, locale))])


@app.command("update")
def update(campaign: CampaignArg = None) -> None:
    """Every locale's messages.po merged with messages.pot."""
    loaded = _campaign(campaign)
    _report(_run(lambda: renderer.update_catalogs(loaded)))


@app.command("compile")
def compile_(campaign: CampaignArg = None) -> None:
    """Every locale's messages.po compiled to the messages.mo a build reads."""
    loaded = _campaign(campaign)
    _report(_run(lambda: renderer.compile_catalogs(loaded)))

"""msigvault value / msigvault report: daily mark-to-market of the reserve and the reports people read (issue 17)."""

from __future__ import annotations

import click


def register(cli: click.Group) -> None:
    """Add this module's commands to ``cli`` (none yet)."""

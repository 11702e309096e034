"""msigvault intake / msigvault migrate: taking in seized coins and rotating keys by migrating to a successor vault (issue 19)."""

from __future__ import annotations

import click


def register(cli: click.Group) -> None:
    """Add this module's commands to ``cli`` (none yet)."""

"""msigvault coordinator serve / msigvault site: the coordinator service over HTTPS and a keyholder site's online side (issue 16)."""

from __future__ import annotations

import click


def register(cli: click.Group) -> None:
    """Add this module's commands to ``cli`` (none yet)."""

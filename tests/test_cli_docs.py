"""docs/cli.md is the real --help output of every command. Regenerate it with:

    .venv/bin/python tests/test_cli_docs.py > docs/cli.md
"""

from pathlib import Path

import click

from msigvault.cli import cli

DOC = Path(__file__).resolve().parent.parent / "docs" / "cli.md"
HEADER = """# Command-line reference

Generated from the real `--help` output (`tests/test_cli_docs.py` checks that it is current).
Every command exits 0 on success and 2 with one line on stderr for anything a user can get wrong.
Commands that print results accept `--json`; with it an error is printed on stdout as
`{"error": {"code": ..., "message": ..., ...}}` instead (the codes: [errors.md](errors.md)).
"""


def _walk(command: click.Command, path: list):
    yield path, command
    if isinstance(command, click.Group):
        for name in sorted(command.commands):
            yield from _walk(command.commands[name], path + [name])


def render() -> str:
    parts = [HEADER]
    for path, command in _walk(cli, ["msigvault"]):
        with click.Context(command, info_name=" ".join(path), terminal_width=100, max_content_width=100,
                           help_option_names=["-h", "--help"]) as ctx:
            text = command.get_help(ctx)
        parts.append(f"\n## `{' '.join(path)}`\n\n```text\n{text}\n```\n")
    return "".join(parts)


def test_cli_reference_is_current():
    assert DOC.exists(), "docs/cli.md is missing: regenerate it (see this module's docstring)"
    assert DOC.read_text() == render(), "docs/cli.md is stale: regenerate it (see this module's docstring)"


if __name__ == "__main__":
    print(render(), end="")

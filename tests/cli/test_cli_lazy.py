"""``msigvault --help`` imports no command module (issue 20), and its command table is the truth.

The top-level group lists its commands from ``msigvault.cli._COMMANDS``; these tests check that
table against what the command modules really register, so a new command cannot go missing.
"""

import subprocess
import sys

import click

from msigvault import cli as climod


_PROBE = """
import importlib, json, sys
import click
from msigvault import cli as climod
out = {}
group = click.Group("probe")
for name in climod._MODULES:
    before = set(group.commands)
    before_sub = {n: set(c.commands) for n, c in group.commands.items() if isinstance(c, click.Group)}
    importlib.import_module(f"msigvault.cli.{name}").register(group)
    for cmd_name, cmd in group.commands.items():
        entry = out.setdefault(cmd_name, [[], (cmd.help or "").split("\\n\\n")[0]])
        new = cmd_name not in before
        extended = isinstance(cmd, click.Group) and set(cmd.commands) != before_sub.get(cmd_name, set())
        if (new or extended) and name not in entry[0]:
            entry[0].append(name)
json.dump(out, sys.stdout)
"""


def registered():
    """{name: (modules registering or extending it, first help paragraph)} from the modules themselves.

    Computed in a fresh interpreter: in this one an earlier in-process CLI test may have loaded
    the command modules already, and a group another module extends (``vault``, by backends) then
    carries that module's subcommands before the probe registers it, so the probe could not see
    who extends what (the result depended on test order)."""
    import json

    text = subprocess.run([sys.executable, "-c", _PROBE], capture_output=True, text=True, check=True).stdout
    return {name: (set(mods), help_text) for name, (mods, help_text) in json.loads(text).items()}


def test_command_table_matches_the_modules():
    real = registered()
    table = climod._COMMANDS
    missing = sorted(set(real) - set(table))
    assert not missing, (f"msigvault.cli._COMMANDS lacks {missing}: add a line for each "
                         "(modules, one-line help) so --help lists it")
    assert not set(table) - set(real), f"_COMMANDS names commands no module registers: {set(table) - set(real)}"
    for name, (modules, text) in table.items():
        assert set(modules) == real[name][0], f"{name}: built by {sorted(real[name][0])}, table says {modules}"
        short = click.Command(name, help=text).get_short_help_str(300)
        assert short == click.Command(name, help=real[name][1]).get_short_help_str(300), name


def test_help_imports_no_command_module_and_lists_every_command():
    code = ("import sys; from msigvault.cli import main\n"
            "try:\n    main(['--help'])\nexcept SystemExit:\n    pass\n"
            "print('LOADED', sorted(m for m in sys.modules if m.startswith('msigvault.cli.')))\n"
            "print('HEAVY', sorted(m for m in ('embit', 'pbk', 'sqlalchemy', 'cryptography') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert "LOADED []" in out  # not even cli.common: it is imported when a command runs
    assert "HEAVY []" in out
    for name in climod._COMMANDS:
        assert f"  {name} " in out


def test_a_command_loads_only_its_modules():
    code = ("import sys; from msigvault.cli import main\n"
            "try:\n    main(['psbt', '--help'])\nexcept SystemExit:\n    pass\n"
            "print('LOADED', sorted(m for m in sys.modules if m.startswith('msigvault.cli.')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert "LOADED ['msigvault.cli.common', 'msigvault.cli.psbts']" in out  # psbts imports common
    assert "sign" in out and "combine" in out


def test_a_group_another_module_extends_loads_only_those_modules():
    code = ("import sys; from msigvault.cli import main\n"
            "try:\n    main(['vault', '--help'])\nexcept SystemExit:\n    pass\n"
            "print('LOADED', sorted(m for m in sys.modules if m.startswith('msigvault.cli.')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    loaded = out.split("LOADED ")[1]
    for name in ("vaults", "chain", "backends"):  # vault, the group backends extends, and what it needs
        assert f"msigvault.cli.{name}'" in loaded
    for name in ("psbts", "sessions", "identity", "reserves", "qr", "demo"):
        assert f"msigvault.cli.{name}'" not in loaded
    assert "  scan " in out  # a subcommand backends adds to vault

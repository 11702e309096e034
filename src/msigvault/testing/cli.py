"""Run the ``msigvault`` command in a subprocess, as a test suite (ours or yours) does."""

from __future__ import annotations

import os
import subprocess
import sys


def run_cli(*args: object, cwd: "str | os.PathLike[str]", passphrase: "str | None" = None,
            stdin: "str | None" = None, timeout: float = 120) -> "subprocess.CompletedProcess[str]":
    """``python -m msigvault ARGS`` in ``cwd``; ``passphrase`` goes in $MSIGVAULT_PASSPHRASE (which is
    otherwise removed from the environment, so nothing leaks in from the caller's), ``stdin`` is typed."""
    env = {k: v for k, v in os.environ.items() if k != "MSIGVAULT_PASSPHRASE"}
    if passphrase is not None:
        env["MSIGVAULT_PASSPHRASE"] = passphrase
    return subprocess.run([sys.executable, "-m", "msigvault", *map(str, args)], cwd=cwd, env=env,
                          capture_output=True, text=True, input=stdin, timeout=timeout)

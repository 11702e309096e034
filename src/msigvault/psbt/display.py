"""Text from a PSBT or a coordinator, made safe to show a keyholder on a terminal.

A message, a name or an address the keyholder approves is shown line by line with every
character that does not print as itself escaped: C0 and C1 controls (ESC and CSI sequences
redraw the screen, CR overwrites a line), bidi overrides and isolates (U+202A..U+202E,
U+2066..U+2069 reorder what is read), line and paragraph separators and zero-width characters.
What is shown can then only be read one way, and it is what is signed.
"""

from __future__ import annotations

import json


def escaped(text: str) -> str:
    """``text`` as one line: JSON string escapes (without the quotes), then every character
    that is not printable (``str.isprintable``) as its ``\\xNN`` / ``\\uNNNN`` escape."""
    body = json.dumps(str(text), ensure_ascii=False)[1:-1]
    return "".join(ch if ch.isprintable() else ascii(ch)[1:-1] for ch in body)


def escaped_lines(text: str) -> "list[str]":
    """Each line of ``text`` (split at LF only), :func:`escaped`."""
    return [escaped(line) for line in str(text).split("\n")]

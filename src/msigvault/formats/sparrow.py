"""Sparrow's "Output Descriptor" export (File > Export Wallet > Output Descriptor)::

    # Receive and change descriptor (BIP389):
    wsh(sortedmulti(2,[...]xpub.../<0;1>/*,...))#checksum


    # Receive descriptor (Bitcoin Core):
    wsh(sortedmulti(2,[...]xpub.../0/*,...))#checksum

    # Change descriptor (Bitcoin Core):
    wsh(sortedmulti(2,[...]xpub.../1/*,...))#checksum

On import the file is read as Sparrow reads it (``#`` lines are comments, a descriptor may wrap
over several lines of one paragraph, a ``Label:`` in front is dropped), and then more strictly than
Sparrow does: *every* descriptor in the file is parsed and checksum-verified, and all of them must
describe the same vault (a file whose receive descriptor disagrees with its multipath descriptor is
refused, not read from the first paragraph only).

Sparrow's own wallet file is encrypted application state, not an interchange format; for other
coordinators Sparrow exports the Coldcard, Specter, Caravan and BSMS formats, read by those modules.
"""

from __future__ import annotations

from ..policy.vault import Vault
from ._common import FormatError, as_text
from .descriptor import combine, strip_label

FORMAT = "sparrow"


def export(vault: Vault, *, name: str = "msigvault") -> str:
    receive, change = vault.descriptors()
    return (
        "# Receive and change descriptor (BIP389):\n"
        f"{vault.descriptor()}\n\n\n"
        "# Receive descriptor (Bitcoin Core):\n"
        f"{receive}\n\n"
        "# Change descriptor (Bitcoin Core):\n"
        f"{change}\n"
    )


def paragraphs(text: str) -> "list[str]":
    """Sparrow's reading: comment lines skipped, lines of a paragraph joined, blank lines separate.

    A line that follows a complete descriptor (balanced parentheses) starts a new one, so two
    descriptors on consecutive lines are read as two.
    """
    out, current = [], []
    for raw in text.split("\n"):
        line = raw.strip()
        if not line:
            if current:
                out.append("".join(current))
                current = []
        elif line.startswith("#"):
            continue
        else:
            joined = "".join(current)
            if current and joined.count("(") == joined.count(")"):
                # the paragraph already holds a whole descriptor: this line starts another one
                out.append(joined)
                current = []
            current.append(line)
    if current:
        out.append("".join(current))
    return out


def parse(text, *, network=None, fmt: str = FORMAT):
    text = as_text(text, fmt)
    paras = paragraphs(text)
    if not paras:
        raise FormatError(f"{fmt}: the file holds no output descriptor")
    if len(paras) > 16:
        raise FormatError(f"{fmt}: the file holds {len(paras)} paragraphs; an output descriptor export has at most 3")
    entries = [(strip_label(p), None) for p in paras]
    vault, warnings = combine(entries, network, fmt)
    return vault, None, warnings

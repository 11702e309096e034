"""ScriptType: the four vault script types, as a ``str`` enum.

A member *is* its string (``ScriptType.WSH == "wsh"``, ``str(ScriptType.WSH) == "wsh"``, an
f-string or ``json.dumps`` gives ``"wsh"``), so vault files, JSON output and comparisons with
plain strings work unchanged; :meth:`ScriptType.parse` turns user input into a member or raises
:class:`~msigvault.errors.PolicyError`.
"""

from __future__ import annotations

import enum
from typing import Literal, Union

from .errors import PolicyError

__all__ = ["ScriptType", "ScriptTypeName", "ScriptTypeLike"]

#: the script type names as a ``Literal``, for signatures that take a plain string
ScriptTypeName = Literal["sh", "sh-wsh", "wsh", "tr"]
#: what the public API accepts wherever it takes a script type
ScriptTypeLike = Union["ScriptType", ScriptTypeName]


class ScriptType(str, enum.Enum):
    """How a vault's multisig script is wrapped into an output.

    ``SH`` is P2SH (legacy, up to 15 keys), ``SH_WSH`` P2SH-P2WSH (nested segwit), ``WSH`` P2WSH
    (native segwit v0) and ``TR`` taproot (an unspendable internal key and one ``multi_a`` leaf).
    """

    SH = "sh"
    SH_WSH = "sh-wsh"
    WSH = "wsh"
    TR = "tr"

    # a member prints and formats as its value on every Python version (not "ScriptType.WSH")
    def __str__(self) -> str:
        return self.value

    def __format__(self, spec: str) -> str:
        return format(self.value, spec)

    @property
    def max_keys(self) -> int:
        """The most cosigners a vault of this type can have (BIP383/BIP387 and consensus limits)."""
        return _MAX_KEYS[self]

    @property
    def is_segwit(self) -> bool:
        """True for every type whose inputs are signed with a segwit sighash (all but ``sh``)."""
        return self is not ScriptType.SH

    @classmethod
    def parse(cls, value: object, *, argument: str = "script") -> "ScriptType":
        """``value`` (a member or one of ``"sh"``, ``"sh-wsh"``, ``"wsh"``, ``"tr"``) as a member.

        Raises PolicyError naming ``argument`` for anything else.
        """
        if isinstance(value, cls):
            return value
        if isinstance(value, str):
            try:
                return cls(value)
            except ValueError:
                pass
        names = ", ".join(t.value for t in cls)
        raise PolicyError(f"unknown script type {value!r} for {argument}: use one of {names}", field=argument)


_MAX_KEYS = {ScriptType.SH: 15, ScriptType.SH_WSH: 20, ScriptType.WSH: 20, ScriptType.TR: 999}

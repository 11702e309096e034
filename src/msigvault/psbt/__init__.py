"""Partially signed bitcoin transactions (BIP174 v0, BIP370 v2).

Psbt is the container: parse, check, serialize and convert between versions.
PsbtMap is one of its key-value maps. The key type constants (PSBT_IN_*, ...)
live in msigvault.psbt.fields. The BIP174 roles (create, update, sign,
combine, finalize, extract) build on this and live in their own modules.
"""

from . import fields
from .fields import *  # noqa: F401,F403  the PSBT_GLOBAL_*, PSBT_IN_*, PSBT_OUT_* key types
from .fields import PSBT_MAGIC
from .psbt import DEFAULT_MAX_SIZE, Psbt, PsbtMap

__all__ = ["Psbt", "PsbtMap", "DEFAULT_MAX_SIZE", "PSBT_MAGIC", *fields.__all__]

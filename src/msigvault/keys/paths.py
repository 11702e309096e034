"""BIP32 derivation paths: parse, format, and the BIP48 / BIP87 multisig account paths."""

from __future__ import annotations

from ..errors import InvalidKey
from ..network import Network

HARDENED = 0x80000000
MAX_DEPTH = 255  # a BIP32 key's depth is one byte

# BIP48 script type component (the 4th level): m/48'/coin'/account'/script'
BIP48_SCRIPT_TYPES = {"sh-wsh": 1, "wsh": 2}


def parse_path(text: str) -> "tuple[int, ...]":
    """Parse ``m/48h/1'/0H/2h`` (the leading ``m/`` is optional) into child numbers.

    Hardened steps may be written ``h``, ``H`` or ``'``. ``m`` alone is the empty path.
    """
    if not isinstance(text, str):
        raise InvalidKey(f"a derivation path must be a string like m/48h/0h/0h/2h, got {type(text).__name__}")
    s = text.strip()
    if s in ("", "m", "M"):
        return ()
    parts = s.split("/")
    if parts[0] in ("m", "M"):
        parts = parts[1:]
    out = []
    for part in parts:
        out.append(_parse_step(part, text))
    return tuple(out)


def check_path(path: object, argument: str = "path") -> "tuple[int, ...]":
    """``path`` (a path string, or a sequence of child numbers) as a tuple of child numbers.

    Raises InvalidKey naming ``argument`` for anything that is not a BIP32 path: a step that is not
    an integer from 0 to 2^32-1, or more than 255 steps (a BIP32 key's depth is one byte).
    """
    if isinstance(path, str):
        return parse_path(path)
    if isinstance(path, (bytes, bytearray)) or not isinstance(path, (tuple, list)):
        raise InvalidKey(
            f"{argument} must be a derivation path like m/48h/1h/0h/2h or a tuple of child numbers, "
            f"not {type(path).__name__}", field=argument)
    if len(path) > MAX_DEPTH:
        raise InvalidKey(f"{argument} has {len(path)} steps; a BIP32 path has at most {MAX_DEPTH}", field=argument)
    for step in path:
        if isinstance(step, bool) or not isinstance(step, int) or not 0 <= step < 2 * HARDENED:
            raise InvalidKey(f"{argument} has a step {step!r} that is not a child number from 0 to 2^32-1",
                             field=argument)
    return tuple(path)


def _parse_step(part: str, whole: str) -> int:
    hardened = part.endswith(("h", "H", "'"))
    digits = part[:-1] if hardened else part
    if (not digits.isdigit() or not digits.isascii() or len(digits) > 10
            or (len(digits) > 1 and digits[0] == "0")):
        raise InvalidKey(
            f"bad derivation step {part[:16]!r} in path {whole[:40]!r}: each step is a decimal number, "
            "optionally followed by h or ' for hardened"
        )
    n = int(digits)
    if n >= HARDENED:
        raise InvalidKey(
            f"derivation step {part!r} in path {whole!r} is out of range: write indexes below 2^31 "
            "and mark hardened steps with h"
        )
    return n + HARDENED if hardened else n


def format_path(path: "tuple[int, ...] | list[int]", *, prefix: str = "m", hardened_marker: str = "h") -> str:
    """Format child numbers as ``m/48h/1h/0h/2h`` (``prefix=""`` omits the ``m``)."""
    steps = [
        f"{i - HARDENED}{hardened_marker}" if i >= HARDENED else str(i) for i in path
    ]
    return "/".join(([prefix] if prefix else []) + steps)


def is_hardened(index: int) -> bool:
    return index >= HARDENED


def bip48_path(network: Network, script: str, account: int = 0) -> "tuple[int, ...]":
    """BIP48 multisig account path ``m/48'/coin'/account'/script'`` (script: ``sh-wsh`` or ``wsh``)."""
    if script not in BIP48_SCRIPT_TYPES:
        raise InvalidKey(f"BIP48 defines paths for sh-wsh (1') and wsh (2'), not {script!r}")
    _check_account(account)
    return (48 + HARDENED, network.coin_type + HARDENED, account + HARDENED,
            BIP48_SCRIPT_TYPES[script] + HARDENED)


def bip87_path(network: Network, account: int = 0) -> "tuple[int, ...]":
    """BIP87 multisig account path ``m/87'/coin'/account'``."""
    _check_account(account)
    return (87 + HARDENED, network.coin_type + HARDENED, account + HARDENED)


def bip45_path(network: "Network | None" = None) -> "tuple[int, ...]":
    """Legacy P2SH multisig path: BIP45 ``m/45'`` on mainnet; on test networks ``m/45'/1'/0'``
    (Caravan's testnet convention), so a test vault never uses the keys of a mainnet one."""
    if network is not None and not network.is_mainnet:
        return (45 + HARDENED, 1 + HARDENED, 0 + HARDENED)
    return (45 + HARDENED,)


def default_account_path(network: Network, script: str, account: int = 0) -> "tuple[int, ...]":
    """The path wallets use by default for a vault of ``script`` type.

    sh-wsh and wsh: BIP48; sh: BIP45 ``m/45'`` on mainnet (as Coldcard and Sparrow do; it has
    no account level, so ``account`` must be 0) and ``m/45'/1'/0'`` on test networks (as
    Caravan does: BIP45 has no coin type, and the same seed must not sign for mainnet and test
    vaults with one key); tr: BIP87 (as Sparrow and Bitcoin Core do for taproot multisig).
    """
    if script in BIP48_SCRIPT_TYPES:
        return bip48_path(network, script, account)
    if script == "sh":
        if account != 0:
            raise InvalidKey("BIP45 (sh vaults) has no account level: use account 0, or another script type")
        return bip45_path(network)
    return bip87_path(network, account)


def coin_type_problem(path: "tuple[int, ...]", network: Network) -> "str | None":
    """For BIP44-family paths (purpose 44/48/49/84/86/87) the coin type must match the network."""
    if len(path) >= 2 and path[0] - HARDENED in (44, 48, 49, 84, 86, 87) and path[0] >= HARDENED:
        coin = path[1] - HARDENED if path[1] >= HARDENED else path[1]
        if coin != network.coin_type:
            return (f"derivation path {format_path(path)} has coin type {coin}, but {network.name} "
                    f"uses coin type {network.coin_type}")
    return None


def separation_problem(path: "tuple[int, ...]", network: Network) -> "str | None":
    """On a test network, a path must carry the test coin type (1') as its second step.

    A scriptPubKey carries no network: a test vault whose keys sit at a path without a coin type
    (BIP45 ``m/45'``, a master key, a custom path) derives the very keys a mainnet vault of the
    same seed uses, so a "test" signature could spend mainnet coins.
    """
    if network.is_mainnet:
        return None
    if len(path) >= 2 and path[0] >= HARDENED and path[1] == network.coin_type + HARDENED:
        return None
    return (f"derivation path {format_path(path)} has no test-network coin type (1h as its second step): "
            "the same seed would use these keys on mainnet too")


def check_coin_type(path: "tuple[int, ...]", network: Network, who: str) -> None:
    """Raise NetworkMismatch if ``path`` has a coin type other than ``network``'s."""
    from ..errors import NetworkMismatch

    problem = coin_type_problem(path, network)
    if problem:
        raise NetworkMismatch(f"{who}: {problem}: export the key for {network.name}")


def _check_account(account: int) -> None:
    if not isinstance(account, int) or not 0 <= account < HARDENED:
        raise InvalidKey(f"account must be an integer from 0 to 2^31-1, got {account!r}")

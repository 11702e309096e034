"""Online: find the coins of a watch file through a chain backend (no secrets involved).

Fixed-script groups are asked about once; account groups are scanned branch by branch with a gap
limit (asking ``gap`` scripts past the last used one until a whole gap is unused). A backend's
answers are claims: every previous transaction is fetched, checked against its txid, and must pay
the amount and script the backend claimed (as backends/scan.py does for vaults).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Optional, Sequence

from ..address import address_from_script
from .discover import MAX_INDEX, VERSION, Deriver, Watch, WatchGroup, load_json
from .errors import IntakeFileError

if TYPE_CHECKING:
    from ..backends.base import Backend, ChainUtxo

FOUND_FORMAT = "msigvault-intake-found"
MAX_FOUND_BYTES = 256 * 1024 * 1024
DEFAULT_GAP = 20
MAX_GAP = 10_000


@dataclass(frozen=True)
class FoundCoin:
    """A coin of the source: where it is (group, branch, index) and the checked previous tx."""

    group: str
    kind: str
    branch: Optional[int]
    index: Optional[int]
    address: str
    txid: str
    vout: int
    amount: int
    script_pubkey: bytes
    height: Optional[int]
    prev_tx: bytes

    @property
    def outpoint(self) -> str:
        return f"{self.txid}:{self.vout}"

    def to_dict(self) -> "dict[str, Any]":
        return {"group": self.group, "type": self.kind, "branch": self.branch, "index": self.index,
                "address": self.address, "txid": self.txid, "vout": self.vout, "amount": self.amount,
                "script_pubkey": self.script_pubkey.hex(), "height": self.height, "prev_tx": self.prev_tx.hex()}


@dataclass(frozen=True)
class Found:
    network: str
    watch_sha256: str
    scanned_at: str
    tip_height: int
    gap_limit: int
    used: "tuple[dict[str, Any], ...]"
    coins: "tuple[FoundCoin, ...]"
    warnings: "tuple[str, ...]" = ()
    sha256: str = ""

    @property
    def total(self) -> int:
        return sum(c.amount for c in self.coins)

    def to_bytes(self) -> bytes:
        doc = {"format": FOUND_FORMAT, "version": VERSION, "network": self.network,
               "watch_sha256": self.watch_sha256, "scanned_at": self.scanned_at, "tip_height": self.tip_height,
               "gap_limit": self.gap_limit, "used": list(self.used), "warnings": list(self.warnings),
               "total": self.total, "coins": [c.to_dict() for c in self.coins]}
        return json.dumps(doc, indent=2).encode() + b"\n"


def scan_watch(watch: Watch, backend: "Backend", *, gap_limit: int = DEFAULT_GAP, scanned_at: str) -> Found:
    """Discover every coin the watch file's scripts hold on ``backend``."""
    if isinstance(gap_limit, bool) or not isinstance(gap_limit, int) or not 1 <= gap_limit <= MAX_GAP:
        raise IntakeFileError(f"the gap limit is a whole number from 1 to {MAX_GAP}")
    tip = backend.tip()
    where: "dict[bytes, tuple[WatchGroup, Optional[int], Optional[int]]]" = {}
    used: "set[bytes]" = set()
    fixed = [g for g in watch.groups if not g.is_account]
    for g in fixed:
        assert g.script_pubkey is not None
        where[g.script_pubkey] = (g, None, None)
    used |= _used(backend, [g.script_pubkey for g in fixed if g.script_pubkey is not None])
    warnings = []
    for g in watch.groups:
        if g.is_account:
            used |= _scan_account(g, backend, gap_limit, where)
    last_accounts = _last_accounts(watch)
    for g in watch.groups:
        if g.id in last_accounts and any(where[s][0].id == g.id for s in used):
            warnings.append(f"the last account prepared ({g.id}) has been used: prepare the watch file again with "
                            "more --accounts and scan again, or coins in later accounts are missed")
    coins = _coins(backend, sorted(used), where, watch)
    used_rows = sorted(({"group": where[s][0].id, "branch": where[s][1], "index": where[s][2],
                         "address": address_from_script(s, watch.network)} for s in used),
                       key=lambda r: (r["group"], r["branch"] or 0, r["index"] or 0))
    return Found(watch.network.name, watch.sha256, scanned_at, tip.height, gap_limit, tuple(used_rows),
                 tuple(coins), tuple(warnings))


def _last_accounts(watch: Watch) -> "set[str]":
    best: "dict[str, tuple[int, str]]" = {}
    for g in watch.groups:
        if g.id.startswith("bip"):
            purpose, account = g.id.split("/")
            if int(account) >= best.get(purpose, (-1, ""))[0]:
                best[purpose] = (int(account), g.id)
    return {gid for _, gid in best.values()}


def _used(backend: "Backend", scripts: "Sequence[bytes]") -> "set[bytes]":
    """Which of ``scripts`` have ever been used (history) or hold coins (UTXO-only backends)."""
    if not scripts:
        return set()
    if backend.has_history:
        return {s for s, h in backend.history(list(scripts)).items() if h}
    return {u.script_pubkey for u in backend.utxos(list(scripts))}


def _scan_account(g: WatchGroup, backend: "Backend", gap: int,
                  where: "dict[bytes, tuple[WatchGroup, Optional[int], Optional[int]]]") -> "set[bytes]":
    deriver = Deriver(g)
    found: "set[bytes]" = set()
    for branch in (0, 1):
        scanned, last = 0, -1
        while scanned <= last + gap and scanned <= MAX_INDEX:
            end = min(last + gap + 1, MAX_INDEX + 1)
            batch = []
            for i in range(scanned, end):
                s = deriver.script(branch, i)
                where[s] = (g, branch, i)
                batch.append(s)
            hits = _used(backend, batch)
            for s in hits:
                last = max(last, where[s][2] or 0)
            found |= hits
            scanned = end
    return found


def _coins(backend: "Backend", scripts: "list[bytes]", where: Any, watch: Watch) -> "list[FoundCoin]":
    from ..backends.base import BackendProtocolError
    from ..psbt import fields as F

    if not scripts:
        return []
    claims: "list[ChainUtxo]" = list({u.outpoint: u for u in backend.utxos(scripts)}.values())
    txs = backend.get_txs(u.txid for u in claims)
    out = []
    for u in claims:
        if u.script_pubkey not in where:
            raise BackendProtocolError("the server reported a coin for a script we did not ask about",
                                       where=backend.where, what="intake scan")
        vout = F.parse_tx(txs[u.txid], "previous transaction").vout
        if u.vout >= len(vout) or (vout[u.vout][0], bytes(vout[u.vout][1])) != (u.amount, u.script_pubkey):
            raise BackendProtocolError(f"the server claims {u.outpoint} pays {u.amount} sats to the source, but "
                                       "the transaction itself says otherwise: do not trust this server",
                                       where=backend.where, what="intake scan")
        g, branch, index = where[u.script_pubkey]
        out.append(FoundCoin(g.id, g.kind.value, branch, index, address_from_script(u.script_pubkey, watch.network),
                             u.txid, u.vout, u.amount, u.script_pubkey, u.height, txs[u.txid]))
    out.sort(key=lambda c: (c.group, c.branch or 0, c.index or 0, c.txid, c.vout))
    return out


def parse_found(data: bytes) -> Found:
    """A found file, checked: every coin's previous transaction pays what the record says."""
    import hashlib

    from ..psbt import fields as F
    from ..types import MAX_MONEY

    obj = load_json(data, FOUND_FORMAT, "found file", MAX_FOUND_BYTES)
    coins_raw = obj.get("coins")
    if not isinstance(coins_raw, list):
        raise IntakeFileError("the found file has no list of coins")
    coins = []
    for n, c in enumerate(coins_raw):
        try:
            coin = FoundCoin(str(c["group"]), str(c["type"]), _opt_int(c.get("branch")), _opt_int(c.get("index")),
                             str(c["address"]), str(c["txid"]).lower(), int(c["vout"]), int(c["amount"]),
                             bytes.fromhex(c["script_pubkey"]), _opt_int(c.get("height")), bytes.fromhex(c["prev_tx"]))
        except (KeyError, TypeError, ValueError, AttributeError):
            raise IntakeFileError(f"coin {n} of the found file is malformed") from None
        _check_coin(n, coin)
        tx = F.parse_tx(coin.prev_tx, "previous transaction")
        if tx.txid()[::-1].hex() != coin.txid or coin.vout >= len(tx.vout) or \
                (tx.vout[coin.vout][0], bytes(tx.vout[coin.vout][1])) != (coin.amount, coin.script_pubkey):
            raise IntakeFileError(f"coin {n} ({coin.txid}:{coin.vout}): its previous transaction does not pay "
                                  "what the found file says: the file was altered; scan again")
        if not 0 < coin.amount <= MAX_MONEY:
            raise IntakeFileError(f"coin {n} has an amount out of range")
        coins.append(coin)
    if len({c.outpoint for c in coins}) != len(coins):
        raise IntakeFileError("the found file lists a coin twice")
    used: "list[Any]" = obj["used"] if isinstance(obj.get("used"), list) else []
    warnings: "list[Any]" = obj["warnings"] if isinstance(obj.get("warnings"), list) else []
    try:
        return Found(str(obj["network"]), str(obj["watch_sha256"]), str(obj["scanned_at"]), int(obj["tip_height"]),
                     int(obj["gap_limit"]), tuple(used), tuple(coins), tuple(map(str, warnings)),
                     hashlib.sha256(data).hexdigest())
    except (KeyError, TypeError, ValueError):
        raise IntakeFileError("the found file lacks network, watch_sha256, scanned_at, tip_height or gap_limit") from None


def _check_coin(n: int, c: FoundCoin) -> None:
    from .sources import ScriptKind

    kinds = {k.value for k in ScriptKind}
    if c.kind not in kinds or not 0 <= c.vout <= 0xFFFFFFFF or len(c.txid) != 64 or \
            any(ch not in "0123456789abcdef" for ch in c.txid) or \
            (c.branch is None) != (c.index is None) or c.branch not in (None, 0, 1) or \
            (c.index is not None and not 0 <= c.index <= MAX_INDEX) or (c.height is not None and c.height < 0) or \
            not 1 <= len(c.group) <= 40:
        raise IntakeFileError(f"coin {n} of the found file has a field out of range (type, vout, txid, branch, "
                              "index, height or group)")


def _opt_int(v: object) -> Optional[int]:
    if v is None:
        return None
    if isinstance(v, bool) or not isinstance(v, int):
        raise ValueError("not an integer")
    return v

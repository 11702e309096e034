"""Key-health checks: every keyholder proves, offline, that they still hold their vault key.

The coordinator issues one dated :class:`Challenge` per keyholder (vault, fingerprint, date,
nonce, a vault path). The keyholder answers with a BIP322 *simple* signature made with their
own vault key at that path, for the P2WPKH address of that one key (a single key cannot sign
for a multisig address; the signature spends only BIP322's virtual ``to_spend``, so it can
never move coins). :func:`report` checks every answer against the vault (the address is
rebuilt from the registered cosigners, never taken from the files) and says who passed, who
failed and who has not answered, for how many days.
"""

from __future__ import annotations

import base64
import datetime as _dt
import re
import secrets
from dataclasses import dataclass
from typing import Any, Iterable, Optional

from embit.hashes import hash160

from ..address import address_from_script
from ..keys.bip32 import ExtendedKey
from ..policy.registration import own_cosigner
from ..policy.vault import CHANGE, RECEIVE, Vault
from ..psbt import bip322 as B
from ..psbt.common import ecdsa_sign, pubkey_of
from ..psbt.sighash import SIGHASH_ALL, SighashCache, TxIn, TxOut, UnsignedTx
from ..script import compact_size
from . import bip322 as R
from .errors import HealthCheckError, ProofError

KIND = "msigvault-key-health-challenge"
_NONCE = re.compile(r"[0-9a-f]{32}")


def _date(value: object, name: str) -> str:
    if isinstance(value, _dt.date):
        return value.isoformat()
    if isinstance(value, str):
        try:
            return _dt.date.fromisoformat(value).isoformat()
        except ValueError:
            pass
    raise HealthCheckError(f"{name} must be a date written YYYY-MM-DD, not {value!r}", field=name)


@dataclass(frozen=True)
class Challenge:
    """What one keyholder must sign: the message names the vault, the key, the date and a nonce."""

    policy_id: str
    fingerprint: str  # 8 hex digits
    date: str  # YYYY-MM-DD
    nonce: str  # 32 hex digits
    branch: int
    index: int
    address: str  # P2WPKH of the keyholder's vault key at (branch, index)

    @property
    def message(self) -> str:
        return (f"msigvault key-health check\nvault: {self.policy_id}\nkeyholder: {self.fingerprint}\n"
                f"key: vault branch {self.branch} index {self.index}\ndate: {self.date}\nnonce: {self.nonce}")

    def to_dict(self) -> "dict[str, Any]":
        return {"kind": KIND, "policy_id": self.policy_id, "fingerprint": self.fingerprint, "date": self.date,
                "nonce": self.nonce, "branch": self.branch, "index": self.index, "address": self.address,
                "message": self.message}

    @classmethod
    def from_dict(cls, obj: object) -> "Challenge":
        if not isinstance(obj, dict) or obj.get("kind") != KIND:
            raise HealthCheckError("not a msigvault key-health challenge (its 'kind' is missing or different)")
        try:
            c = cls(str(obj["policy_id"]), str(obj["fingerprint"]), _date(obj["date"], "date"), str(obj["nonce"]),
                    int(obj["branch"]), int(obj["index"]), str(obj["address"]))
        except (KeyError, TypeError, ValueError) as e:
            raise HealthCheckError(f"a key-health challenge is missing or has a malformed field ({e})") from None
        if not re.fullmatch(r"[0-9a-f]{8}", c.fingerprint) or not _NONCE.fullmatch(c.nonce) \
                or c.branch not in (RECEIVE, CHANGE) or not 0 <= c.index < 0x80000000:
            raise HealthCheckError("a key-health challenge has a malformed fingerprint, nonce, branch or index")
        return c


def key_address(vault: Vault, fingerprint: bytes, branch: int, index: int) -> "tuple[bytes, str]":
    """(public key, P2WPKH address) of keyholder ``fingerprint``'s vault key at (branch, index)."""
    d = vault.derive_branch(branch, index)
    for pos, ci in enumerate(d.signers):
        if vault.cosigners[ci].fingerprint == fingerprint:
            pub = d.pubkeys[pos]
            return pub, address_from_script(b"\x00\x14" + hash160(pub), vault.network)
    raise HealthCheckError(f"{fingerprint.hex()} is not a cosigner of this vault", fingerprint=fingerprint)


def issue(vault: Vault, *, date: "str | _dt.date", branch: int = RECEIVE, index: int = 0,
          nonce: Optional[str] = None) -> "list[Challenge]":
    """One challenge per cosigner of ``vault``, dated ``date`` (a fresh nonce each unless given)."""
    day = _date(date, "date")
    if branch not in (RECEIVE, CHANGE) or isinstance(index, bool) or not isinstance(index, int) \
            or not 0 <= index < 0x80000000:
        raise HealthCheckError(f"the challenge path must be branch 0 or 1 and index 0 to 2^31-1, not {branch}/{index}",
                               field="index")
    if nonce is not None and not _NONCE.fullmatch(nonce):
        raise HealthCheckError("a nonce is 32 lowercase hex digits", field="nonce")
    out = []
    for c in vault.cosigners:
        _, address = key_address(vault, c.fingerprint, branch, index)
        out.append(Challenge(vault.policy_id, c.fingerprint.hex(), day, nonce or secrets.token_hex(16),
                             branch, index, address))
    return out


def sign_p2wpkh_simple(secret: bytes, message: str) -> str:
    """BIP322 simple signature (base64) of ``message`` for the P2WPKH address of ``secret``."""
    pub = pubkey_of(secret)
    h = hash160(pub)
    txid = B.to_spend_txid(b"\x00\x14" + h, B.check_message(message))
    tx = UnsignedTx(0, 0, (TxIn(txid, 0, 0),), (TxOut(0, B.OP_RETURN),))
    digest = SighashCache(tx).segwit_v0(0, b"\x76\xa9\x14" + h + b"\x88\xac", 0, SIGHASH_ALL)
    sig = ecdsa_sign(secret, digest) + bytes([SIGHASH_ALL])
    stack = compact_size(2) + compact_size(len(sig)) + sig + compact_size(len(pub)) + pub
    return base64.b64encode(stack).decode()


@dataclass(frozen=True)
class Response:
    fingerprint: str
    nonce: str
    signature: str  # BIP322 simple, base64

    def to_dict(self) -> "dict[str, str]":
        return {"kind": "msigvault-key-health-response", "fingerprint": self.fingerprint, "nonce": self.nonce,
                "signature": self.signature}

    @classmethod
    def from_dict(cls, obj: object) -> "Response":
        if not isinstance(obj, dict) or obj.get("kind") != "msigvault-key-health-response":
            raise HealthCheckError("not a msigvault key-health response (its 'kind' is missing or different)")
        try:
            return cls(str(obj["fingerprint"]), str(obj["nonce"]), str(obj["signature"]))
        except KeyError as e:
            raise HealthCheckError(f"a key-health response lacks {e}") from None


def check_challenge(challenge: Challenge, vault: Vault, fingerprint: bytes) -> bytes:
    """Before anything of ``challenge`` is shown: it is for this keyholder, this vault and their
    vault key at its path (its address rebuilt from the vault). The public key; HealthCheckError."""
    if challenge.fingerprint != fingerprint.hex():
        raise HealthCheckError(f"this challenge is for {challenge.fingerprint}, not for this key "
                               f"({fingerprint.hex()})", fingerprint=fingerprint)
    if challenge.policy_id != vault.policy_id:
        raise HealthCheckError("this challenge is for another vault (policy id differs): check the vault file")
    pub, address = key_address(vault, fingerprint, challenge.branch, challenge.index)
    if address != challenge.address:
        raise HealthCheckError("the challenge's address is not your vault key at its path: the challenge was "
                               "altered; ask the coordinator for a new one")
    return pub


def respond(challenge: Challenge, vault: Vault, root: ExtendedKey) -> Response:
    """The keyholder's answer (offline): the challenge is checked against their vault first."""
    cosigner, account = own_cosigner(vault, root)
    pub = check_challenge(challenge, vault, cosigner.fingerprint)
    secret = account.child(challenge.branch).child(challenge.index).key[1:]
    if pubkey_of(secret) != pub:  # pragma: no cover - a corrupt vault record
        raise HealthCheckError("this key does not derive the vault key at the challenge's path")
    return Response(challenge.fingerprint, challenge.nonce, sign_p2wpkh_simple(secret, challenge.message))


@dataclass(frozen=True)
class HealthRow:
    fingerprint: str
    status: str  # "passed", "failed" or "missing"
    reason: str
    days_waiting: int  # days since the challenge date (0 once answered the same day)

    def to_dict(self) -> "dict[str, Any]":
        return {"fingerprint": self.fingerprint, "status": self.status, "reason": self.reason,
                "days_waiting": self.days_waiting}


@dataclass(frozen=True)
class HealthReport:
    policy_id: str
    date: str
    as_of: str
    rows: "tuple[HealthRow, ...]"

    @property
    def passed(self) -> bool:
        return all(r.status == "passed" for r in self.rows)

    def to_dict(self) -> "dict[str, Any]":
        return {"kind": "msigvault-key-health-report", "policy_id": self.policy_id, "challenge_date": self.date,
                "as_of": self.as_of, "all_passed": self.passed, "keyholders": [r.to_dict() for r in self.rows]}

    def text(self) -> str:
        lines = [f"Key-health check of vault {self.policy_id}, challenged {self.date}, as of {self.as_of}:"]
        for r in self.rows:
            lines.append(f"  {r.fingerprint}  {r.status.upper():<7} {r.reason}")
        return "\n".join(lines)


def report(vault: Vault, challenges: "Iterable[Challenge]", responses: "Iterable[Response]", *,
           as_of: "str | _dt.date") -> HealthReport:
    """Who passed, failed or has not answered. Each challenge is rebuilt from the vault (address,
    policy) so an edited challenge file cannot make a foreign key pass."""
    day = _dt.date.fromisoformat(_date(as_of, "as_of"))
    chs = list(challenges)
    if not chs:
        raise HealthCheckError("no challenges given")
    dates = {c.date for c in chs}
    if len(dates) != 1 or {c.policy_id for c in chs} != {vault.policy_id}:
        raise HealthCheckError("the challenges are not one dated check of this vault")
    by_fp: "dict[str, list[Response]]" = {}
    for r in responses:
        by_fp.setdefault(r.fingerprint, []).append(r)
    rows = []
    for c in chs:
        waiting = (day - _dt.date.fromisoformat(c.date)).days
        rows.append(_row(vault, c, by_fp.get(c.fingerprint, []), waiting))
    return HealthReport(vault.policy_id, dates.pop(), day.isoformat(), tuple(rows))


def _row(vault: Vault, c: Challenge, answers: "list[Response]", waiting: int) -> HealthRow:
    if not answers:
        return HealthRow(c.fingerprint, "missing", f"no answer after {waiting} day(s)", waiting)
    try:
        _, address = key_address(vault, bytes.fromhex(c.fingerprint), c.branch, c.index)
    except HealthCheckError as e:
        return HealthRow(c.fingerprint, "failed", str(e), waiting)
    if address != c.address:
        return HealthRow(c.fingerprint, "failed", "the challenge's address is not this keyholder's vault key", waiting)
    failure = None  # any one answer that verifies passes: a planted bad answer cannot make a keyholder fail
    for a in answers:
        if a.nonce != c.nonce:
            continue
        try:
            R.verify(c.message, address, a.signature, vault.network)
        except ProofError as e:
            failure = failure or f"signature does not verify: {e}"
            continue
        return HealthRow(c.fingerprint, "passed", "signed the challenge with the vault key", 0)
    return HealthRow(c.fingerprint, "failed", failure or "answered another challenge (nonce differs)", waiting)

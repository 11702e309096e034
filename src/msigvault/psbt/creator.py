"""Creator (BIP174): choose coins, build the unsigned transaction, then run the Updater.

``create_psbt`` is what ``Vault.create_psbt`` calls. Change goes to the vault's change branch at
the index the caller gives (the coordinator tracks which indexes it has used).
"""

from __future__ import annotations

import math
import secrets
from typing import Sequence, Union

from ..address import script_from_address
from ..errors import CoinSelectionError, PolicyError
from ..keys.paths import HARDENED
from ..policy.vault import CHANGE, Vault
from ..standardness import MAX_STANDARD_TX_WEIGHT, MIN_RELAY_FEE_RATE, dust_threshold, is_dust, is_standard_output
from ..types import Utxo
from . import fields as F
from .coinselect import fee_for, select_coins
from .psbt import Psbt
from .signer import SignerPolicy, fee_problem
from .updater import add_global_xpubs, update_input, update_output
from .paths import SpendPath, opened_by, select_path, spend_fields, spend_weight
from .weight import output_weight, tx_weight, vsize

SEQUENCE_RBF = 0xFFFFFFFD
LOCKTIME_THRESHOLD = 500_000_000  # nLockTime below this is a block height, above it a time
SEQUENCE_LOCKTIME_NO_RBF = 0xFFFFFFFE

Destination = Union[str, bytes]


def create_psbt(vault: Vault, utxos: Sequence[Utxo], outputs: "Sequence[tuple[Destination, int]]", *,
                fee_rate: float, change_index: int, rbf: bool = True, locktime: "int | None" = None,
                current_height: "int | None" = None, version: int = 0,
                max_weight: "int | None" = MAX_STANDARD_TX_WEIGHT,
                fee_limits: "SignerPolicy | None" = SignerPolicy(), path: "str | int | None" = None) -> Psbt:
    """A new PSBT paying ``outputs`` ([(address or scriptPubKey, sats)]) from ``utxos``.

    ``locktime`` defaults to ``current_height`` when given (anti-fee-sniping, as Bitcoin Core
    does), else 0. The final transaction's weight may not exceed ``max_weight`` (the standard
    400,000 WU; ``None`` lifts it). The fee must pass ``fee_limits``, by default the signer's own
    default limits (so no keyholder is asked to sign what their signer would refuse); ``None``
    lifts them. To spend everything, use :func:`create_sweep`. ``path``: for a vault with
    recovery paths, ``"recovery"`` (or ``"recovery N"``) spends by that path once its lock has
    passed: every input's nSequence (``older``) or the nLockTime (``after``) is set to meet it,
    and fees are estimated for its witness; the default, the primary path, sets neither.
    """
    _check_args(vault, fee_rate=fee_rate, rbf=rbf, locktime=locktime, current_height=current_height,
                version=version, max_weight=max_weight, fee_limits=fee_limits)
    _check_index(change_index, "change_index")
    spend = select_path(vault, path)
    payments = _payments(vault, outputs)
    _check_utxos(vault, utxos)
    in_nonwit, in_wit = spend_weight(vault, opened_by(vault, spend))
    change_script = vault.derive_branch(CHANGE, change_index).script_pubkey
    per_input = 4 * in_nonwit + in_wit
    # everything but the inputs, with the input-count prefix sized for all candidates (an upper bound)
    count = max(1, len(utxos))
    base_weight = tx_weight([(in_nonwit, in_wit)] * count, [len(s) for s, _ in payments]) - count * per_input
    target = sum(a for _, a in payments)
    selection = select_coins(
        utxos, target=target, fee_rate=fee_rate, base_weight=base_weight, input_weight=per_input,
        change_output_weight=output_weight(len(change_script)), change_spend_weight=per_input,
        min_change=dust_threshold(change_script),
    )
    chosen = sorted(selection.utxos, key=lambda u: (u.txid, u.vout))
    total_in = sum(u.amount for u in chosen)
    out_list = list(payments)
    change_pos = None
    if selection.change:
        weight = tx_weight([(in_nonwit, in_wit)] * len(chosen), [len(s) for s, _ in payments] + [len(change_script)])
        change_amount = total_in - target - fee_for(weight, fee_rate)
        if not is_dust(change_amount, change_script):
            change_pos = secrets.randbelow(len(out_list) + 1)
            out_list.insert(change_pos, (change_script, change_amount))
    weight = tx_weight([(in_nonwit, in_wit)] * len(chosen), [len(s) for s, _ in out_list])
    if total_in - sum(a for _, a in out_list) < fee_for(weight, fee_rate):
        raise CoinSelectionError("internal: the selected coins do not cover the fee")  # pragma: no cover
    _check_weight(weight, max_weight, len(chosen))
    _check_fee(vault, chosen, out_list, change_pos, fee_limits, spend)
    return _build(vault, chosen, out_list, change_pos, change_index, rbf, locktime, current_height, version, spend)


def create_sweep(vault: Vault, utxos: Sequence[Utxo], destination: Destination, *, fee_rate: float,
                 rbf: bool = True, locktime: "int | None" = None, current_height: "int | None" = None,
                 version: int = 0, max_weight: "int | None" = MAX_STANDARD_TX_WEIGHT,
                 fee_limits: "SignerPolicy | None" = SignerPolicy(), path: "str | int | None" = None) -> Psbt:
    """Spend every UTXO to one destination, everything but the fee (within ``fee_limits``);
    ``path`` as in :func:`create_psbt`."""
    _check_args(vault, fee_rate=fee_rate, rbf=rbf, locktime=locktime, current_height=current_height,
                version=version, max_weight=max_weight, fee_limits=fee_limits)
    if not utxos:
        raise CoinSelectionError("there is nothing to sweep: no UTXOs given")
    spend = select_path(vault, path)
    _check_utxos(vault, utxos)
    script = _destination_script(vault, destination)
    weight = tx_weight([spend_weight(vault, opened_by(vault, spend))] * len(utxos), [len(script)])
    _check_weight(weight, max_weight, len(utxos))
    amount = sum(u.amount for u in utxos) - fee_for(weight, fee_rate)
    if amount <= 0 or is_dust(amount, script):
        raise CoinSelectionError(f"after a fee of {fee_for(weight, fee_rate)} sats nothing worth sending is left")
    chosen = sorted(utxos, key=lambda u: (u.txid, u.vout))
    _check_fee(vault, chosen, [(script, amount)], None, fee_limits, spend)
    return _build(vault, chosen, [(script, amount)], None, None, rbf, locktime, current_height, version, spend)


def _check_args(vault: Vault, *, fee_rate: float, rbf: bool, locktime: "int | None",
                current_height: "int | None", version: int, max_weight: "int | None",
                fee_limits: "SignerPolicy | None") -> None:
    """Every argument of create_psbt/create_sweep, checked before any work; PolicyError names it."""
    if not isinstance(vault, Vault):
        raise PolicyError(f"vault must be a msigvault Vault, not {type(vault).__name__}", field="vault")
    if isinstance(version, bool) or version not in (0, 2):
        raise PolicyError(f"PSBT version must be 0 (BIP174) or 2 (BIP370), not {version!r}", field="version")
    if (isinstance(fee_rate, bool) or not isinstance(fee_rate, (int, float)) or not math.isfinite(fee_rate)
            or fee_rate < MIN_RELAY_FEE_RATE):
        raise PolicyError(f"fee rate must be a number of at least {MIN_RELAY_FEE_RATE} sat/vB (the minimum "
                          f"relay fee), not {fee_rate!r}", field="fee_rate")
    if not isinstance(rbf, bool):
        raise PolicyError(f"rbf must be True or False, not {rbf!r}", field="rbf")
    if locktime is not None and (isinstance(locktime, bool) or not isinstance(locktime, int)
                                 or not 0 <= locktime <= 0xFFFFFFFF):
        raise PolicyError(f"locktime must be a whole number from 0 to 2^32-1 (or None), not {locktime!r}",
                          field="locktime")
    if current_height is not None and (isinstance(current_height, bool) or not isinstance(current_height, int)
                                       or not 0 <= current_height < LOCKTIME_THRESHOLD):
        raise PolicyError(f"current_height must be a block height from 0 to {LOCKTIME_THRESHOLD - 1} (or None), "
                          f"not {current_height!r}", field="current_height")
    if max_weight is not None and (isinstance(max_weight, bool) or not isinstance(max_weight, int) or max_weight <= 0):
        raise PolicyError(f"max_weight must be a positive whole number of weight units (or None), not {max_weight!r}",
                          field="max_weight")
    if fee_limits is not None and not isinstance(fee_limits, SignerPolicy):
        raise PolicyError(f"fee_limits must be a SignerPolicy (or None), not {type(fee_limits).__name__}",
                          field="fee_limits")


def _check_index(index: object, argument: str) -> None:
    if isinstance(index, bool) or not isinstance(index, int) or not 0 <= index < HARDENED:
        raise PolicyError(f"{argument} must be a whole number from 0 to 2^31-1, not {index!r}", field=argument)


def _check_fee(vault: Vault, chosen: "Sequence[Utxo]", out_list: "list[tuple[bytes, int]]", change_pos: "int | None",
               limits: "SignerPolicy | None", spend: "SpendPath | None" = None) -> None:
    """The signer's fee rule, applied by the coordinator before anyone is asked to sign."""
    if limits is None:
        return
    total_in = sum(u.amount for u in chosen)
    fee = total_in - sum(a for _, a in out_list)
    size = vsize(tx_weight([spend_weight(vault, opened_by(vault, spend) if spend else None)] * len(chosen),
                           [len(s) for s, _ in out_list]))
    sent = sum(a for o, (_, a) in enumerate(out_list) if o != change_pos)
    problem = fee_problem(limits, fee=fee, rate=fee / size, sent=sent, input_total=total_in,
                          returns_to_vault=change_pos is not None)
    if problem:
        raise PolicyError(f"{problem}: the keyholders' signers would refuse this PSBT; lower the fee "
                          "rate, or lift the limit explicitly (fee_limits / --max-fee-*)")


def _build(vault: Vault, chosen: "Sequence[Utxo]", out_list: "list[tuple[bytes, int]]", change_pos: "int | None",
           change_index: "int | None", rbf: bool, locktime: "int | None", current_height: "int | None",
           version: int, spend: "SpendPath | None" = None) -> Psbt:
    if locktime is None:
        locktime = current_height if current_height is not None else 0
    sequence = SEQUENCE_RBF if rbf else SEQUENCE_LOCKTIME_NO_RBF
    if spend is not None:  # a recovery path's lock (the primary path leaves both as they are)
        sequence, locktime = spend_fields(vault, spend, sequence=sequence, locktime=locktime)
    vin = [(bytes.fromhex(u.txid)[::-1], u.vout, sequence) for u in chosen]
    vout = [(amount, script) for script, amount in out_list]
    psbt = Psbt.from_unsigned_tx(F.serialize_tx(2, vin, vout, locktime))
    add_global_xpubs(psbt, vault)
    for i, u in enumerate(chosen):
        update_input(psbt, i, vault, u)
    if change_pos is not None and change_index is not None:
        update_output(psbt, change_pos, vault, CHANGE, change_index)
    psbt.canonicalize()
    return psbt.to_v2() if version == 2 else psbt


def _check_weight(weight: int, max_weight: "int | None", inputs: int) -> None:
    if max_weight is not None and weight > max_weight:
        raise CoinSelectionError(
            f"the transaction would weigh {weight} WU with {inputs} inputs, above {max_weight}: nodes "
            "would not relay it; pay in several transactions or consolidate coins first"
        )


def _payments(vault: Vault, outputs: "Sequence[tuple[Destination, int]]") -> "list[tuple[bytes, int]]":
    if not outputs:
        raise PolicyError("a payment needs at least one output")
    result = []
    for dest, amount in outputs:
        script = _destination_script(vault, dest)
        if isinstance(amount, bool) or not isinstance(amount, int) or amount <= 0:
            raise PolicyError(f"output amount must be a positive whole number of sats, got {amount!r}")
        if is_dust(amount, script):
            raise PolicyError(f"output of {amount} sats is below the dust limit for its script type")
        result.append((script, amount))
    return result


def _destination_script(vault: Vault, dest: Destination) -> bytes:
    script = script_from_address(dest, vault.network) if isinstance(dest, str) else bytes(dest)
    if not is_standard_output(script):
        raise PolicyError(f"output script {script.hex()[:40]} is not a standard output type")
    return script


def _check_utxos(vault: Vault, utxos: Sequence[Utxo]) -> None:
    seen = set()
    for u in utxos:
        if not isinstance(u, Utxo):
            raise PolicyError("utxos must be msigvault.Utxo records")
        if u.outpoint in seen:
            raise PolicyError(f"UTXO {u.outpoint} is listed twice")
        seen.add(u.outpoint)
        if u.amount <= 0:
            raise PolicyError(f"UTXO {u.outpoint} has a non-positive amount")

"""BIP174's role examples reproduced byte for byte (tests/vectors/bip174.json, "roles").

Creator, Updater and Signer use the script-driven functions of msigvault.psbt.hazmat (the
example's keys are not a vault's); the Combiner is msigvault's merge, the Finalizer shares the
vault finalizer's final-script assembly, and the Extractor is msigvault's extractor.
"""

import json
from decimal import Decimal
from pathlib import Path

from embit import ec

from msigvault.keys import ExtendedKey, parse_path
from msigvault.psbt import hazmat
from msigvault.psbt.extractor import extract
from msigvault.psbt.psbt import Psbt

ROLES = json.loads((Path(__file__).parent.parent / "vectors" / "bip174.json").read_text())["roles"]


def expected(role):
    return bytes.fromhex(ROLES[role]["expected_psbt"]["hex"])


def test_creator():
    r = ROLES["creator"]
    psbt = hazmat.create([(x["txid"], x["index"], 0xFFFFFFFF) for x in r["inputs"]],
                         [(bytes.fromhex(o["scriptPubKey"]), int(Decimal(o["amount_btc"]) * 100_000_000))
                          for o in r["outputs"]])
    assert psbt.serialize() == expected("creator")


def test_updater():
    r = ROLES["updater"]
    master = ExtendedKey.parse(ROLES["master_key"]["extended_private_key"])
    derivations = []
    for k in r["public_keys"]:
        path = parse_path(k["derivation_path"])
        assert master.derive(path).public_key.hex() == k["pubkey"]
        derivations.append((bytes.fromhex(k["pubkey"]), master.fingerprint, path))
    updated = hazmat.update(Psbt.parse(expected("creator")),
                            previous_txs=[bytes.fromhex(t) for t in r["previous_transactions"]],
                            redeem_scripts=[bytes.fromhex(s) for s in r["redeem_scripts"]],
                            witness_scripts=[bytes.fromhex(s) for s in r["witness_scripts"]],
                            derivations=derivations)
    assert updated.serialize() == expected("updater")
    assert hazmat.set_sighash(updated).serialize() == expected("updater_sighash_all")


def test_signers():
    base = Psbt.parse(expected("updater_sighash_all"))
    for role in ("signer_1", "signer_2"):
        secrets = [ec.PrivateKey.from_wif(k["wif"]).secret for k in ROLES[role]["keys"]]
        # the example predates low-R grinding: plain RFC6979 nonces, as the BIP text says
        assert hazmat.sign(base, secrets, grind=False).serialize() == expected(role)


def test_combiner():
    a, b = (Psbt.parse(expected(r)) for r in ("signer_1", "signer_2"))
    from msigvault.psbt.combiner import merge

    assert merge([a, b]).serialize() == expected("combiner")
    assert merge([b, a]).serialize() == expected("combiner")
    u = ROLES["combiner_unknown_keys"]
    parts = [Psbt.parse(bytes.fromhex(p["hex"])) for p in u["input_psbts"]]
    assert merge(parts).serialize() == bytes.fromhex(u["expected_psbt"]["hex"])


def test_finalizer():
    assert hazmat.finalize(Psbt.parse(expected("combiner"))).serialize() == expected("finalizer")


def test_extractor():
    tx = extract(Psbt.parse(expected("finalizer")))
    assert tx.raw.hex() == ROLES["extractor"]["expected_tx_hex"]
    assert tx.verified_by_kernel  # libbitcoinkernel verifies both inputs' scripts

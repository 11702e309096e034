"""Fuzzing the text parsers msigvault writes: anything malformed raises a MsigvaultError
subclass, never another exception (the PSBT parser has its own fuzz tests in tests/psbt)."""

import json

from hypothesis import given, strategies as st

from msigvault import Cosigner, Vault
from msigvault.address import script_from_address
from msigvault.errors import MsigvaultError
from msigvault.keys import parse_path
from msigvault.keys.keyexpr import parse_key_expression
from msigvault.network import Network
from msigvault.policy.descriptor import expand_multipath
from msigvault.testing.keyholders import TestKeyholder
from msigvault.types import Utxo

NET = Network.REGTEST
VAULTS = [Vault.multisig(2, [TestKeyholder.from_label(f"fz{i}").cosigner(s) for i in range(3)], script=s, network=NET)
          for s in ("sh", "sh-wsh", "wsh", "tr")]
SEEDS = [v.descriptor() for v in VAULTS] + [v.descriptor(checksum=False) for v in VAULTS]
ALPHABET = "0123456789()[],'/*abcdefgh@:$%{}<>;#hHxpubtpubsortedmultiwsh_ "


@st.composite
def mutated(draw, seeds):
    text = draw(st.sampled_from(seeds))
    for _ in range(draw(st.integers(1, 4))):
        op = draw(st.sampled_from(["flip", "delete", "insert", "truncate", "duplicate"]))
        if not text:
            break
        i = draw(st.integers(0, len(text) - 1))
        if op == "flip":
            text = text[:i] + draw(st.sampled_from(ALPHABET)) + text[i + 1:]
        elif op == "delete":
            text = text[:i] + text[i + 1:]
        elif op == "insert":
            text = text[:i] + draw(st.text(ALPHABET, max_size=5)) + text[i:]
        elif op == "truncate":
            text = text[:i]
        else:
            j = draw(st.integers(i, len(text)))
            text = text[:j] + text[i:j] + text[j:]
    return text


def only_msigvault_errors(fn, *args, **kw):
    try:
        fn(*args, **kw)
    except MsigvaultError:
        pass


@given(mutated(SEEDS))
def test_vault_descriptor_parser(text):
    only_msigvault_errors(Vault.from_descriptor, text, network=NET)
    only_msigvault_errors(Vault.from_descriptor, text, network=NET, require_checksum=False)
    only_msigvault_errors(expand_multipath, text)


@given(st.text(max_size=200))
def test_vault_descriptor_parser_random_text(text):
    only_msigvault_errors(Vault.from_descriptor, text, network=NET, require_checksum=False)


@given(mutated([str(c) for v in VAULTS for c in v.cosigners]))
def test_cosigner_and_key_expression_parsers(text):
    only_msigvault_errors(Cosigner.parse, text)
    only_msigvault_errors(parse_key_expression, text)


@given(st.text(max_size=40))
def test_path_parser(text):
    only_msigvault_errors(parse_path, text)


@given(mutated([v.address(0) for v in VAULTS]))
def test_address_parser(text):
    only_msigvault_errors(script_from_address, text, NET)


@given(st.dictionaries(st.sampled_from(["txid", "vout", "amount", "script_pubkey", "branch", "index", "prev_tx"]),
                       st.one_of(st.none(), st.integers(-5, 10**9), st.text(max_size=70), st.booleans())))
def test_utxo_records(record):
    only_msigvault_errors(Utxo.from_dict, record)


@given(mutated([json.dumps({"format": "msigvault-vault", "version": 1, "name": "x", "network": "regtest",
                            "descriptor": VAULTS[2].descriptor(), "policy_id": VAULTS[2].policy_id,
                            "next_change_index": 0})]))
def test_vault_file_loader(tmp_path_factory, text):
    from msigvault.vaultfile import load_vault_file

    path = tmp_path_factory.mktemp("vf") / "vault.json"
    path.write_text(text)
    only_msigvault_errors(load_vault_file, path)

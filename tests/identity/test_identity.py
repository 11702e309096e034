"""Identities: encrypted at rest like a keystore, records bound to the cosigner's vault key."""

from __future__ import annotations

import io
import json
import logging
import os
import traceback

import pytest

from msigvault.errors import MsigvaultError
from msigvault.identity import IDENTITY_BRANCH, IdentityFileError, IdentityKey, IdentityRecord, IdentityRecordError
from msigvault.identity import identity as idmod
from msigvault.keys import keystore as ksmod
from msigvault.keys.keystore import MIN_SCRYPT_N, WrongPassphrase
from msigvault.policy.registration import REGISTRATION_BRANCH

PW = "hunter2 staple battery"


def test_the_identity_branch_is_its_own_unhardened_branch():
    assert IDENTITY_BRANCH == int.from_bytes(b"msgi", "big") == 1836279657
    assert IDENTITY_BRANCH < 2 ** 31 and IDENTITY_BRANCH not in (0, 1, REGISTRATION_BRANCH)


def test_a_site_record_verifies_with_only_the_vaults_xpub(vault, alice_site):
    _, record = alice_site
    again = IdentityRecord.from_bytes(record.to_bytes())
    assert again == record and again.verify_for_vault(vault) is again
    assert again.fingerprint == vault.cosigners[0].fingerprint.hex() or again.cosigner in {str(c) for c in vault.cosigners}
    assert again.network == "regtest" and again.role == "keyholder-site"


def test_a_record_signed_by_another_cosigners_key_is_refused(vault, alice, bob):
    key = IdentityKey.generate("mallory", "keyholder-site")
    # bob's key cannot sign for alice's cosigner
    with pytest.raises(IdentityRecordError, match="not cosigner"):
        key.record("regtest", root=bob.root, cosigner=alice.cosigner())
    # a coordinator that swaps the cosigner text of bob's genuine record to alice's is caught
    genuine = key.record("regtest", root=bob.root, cosigner=bob.cosigner())
    forged = IdentityRecord(genuine.name, genuine.role, genuine.signing_key, genuine.encryption_key,
                            str(alice.cosigner()), genuine.network, genuine.created, genuine.self_signature,
                            genuine.cosigner_signature)
    with pytest.raises(IdentityRecordError):
        forged.verify_for_vault(vault)


def test_a_record_whose_cosigner_signature_is_made_by_another_key_is_refused(vault, alice, bob):
    key = IdentityKey.generate("mallory", "keyholder-site")
    alice_rec = key.record("regtest", root=alice.root, cosigner=alice.cosigner())
    bob_rec = key.record("regtest", root=bob.root, cosigner=bob.cosigner())
    # bob signs a body that names alice: rebuild alice's body with bob's BIP340 signature
    mixed = IdentityRecord(alice_rec.name, alice_rec.role, alice_rec.signing_key, alice_rec.encryption_key,
                           alice_rec.cosigner, alice_rec.network, alice_rec.created, alice_rec.self_signature,
                           bob_rec.cosigner_signature)
    with pytest.raises(IdentityRecordError, match="not signed by cosigner"):
        mixed.verify_for_vault(vault)


def test_a_record_for_another_cosigner_is_refused_when_checked_against_mine(alice, bob, alice_site):
    _, record = alice_site
    with pytest.raises(IdentityRecordError, match="another cosigner"):
        record.verify(bob.cosigner())
    record.verify(alice.cosigner())


def test_a_record_for_a_cosigner_outside_the_vault_is_refused(alice):
    from msigvault.testing.samples import example_vault

    dave = __import__("msigvault.testing.keyholders", fromlist=["TestKeyholder"]).TestKeyholder.from_label("dave")
    key = IdentityKey.generate("dave-site", "keyholder-site")
    with pytest.raises(IdentityRecordError, match="not a cosigner of this vault"):
        key.record("regtest", root=dave.root, cosigner=dave.cosigner()).verify_for_vault(example_vault())


def test_a_coordinator_cannot_make_a_site_record_without_the_vault_key(alice):
    key = IdentityKey.generate("fake-site", "keyholder-site")
    with pytest.raises(IdentityRecordError, match="signed by the cosigner's vault key"):
        key.record("regtest")
    with pytest.raises(IdentityRecordError, match="private master key"):
        key.record("regtest", root=alice.cosigner().key, cosigner=alice.cosigner())


def test_a_changed_public_key_or_field_breaks_the_record(vault, alice_site):
    _, record = alice_site
    obj = record.to_dict()
    for name, value in (("name", "alice-site2"), ("signing_key", "00" * 32), ("encryption_key", "11" * 32),
                        ("network", "testnet"), ("created", "2020-01-01T00:00:00Z")):
        changed = dict(obj, **{name: value})
        data = ksmod._canonical(changed) + b"\n"
        with pytest.raises(IdentityRecordError):
            IdentityRecord.from_bytes(data).verify_for_vault(vault)


def test_coordinator_records_are_self_signed_and_speak_for_nobody(coordinator, alice):
    key, record = coordinator
    assert record.cosigner is None and record.cosigner_signature is None
    assert IdentityRecord.from_bytes(record.to_bytes()).verify() == record
    with pytest.raises(IdentityRecordError, match="speaks for no cosigner"):
        record.verify(alice.cosigner())
    with pytest.raises(IdentityRecordError, match="no cosigner"):
        key.record("regtest", root=alice.root, cosigner=alice.cosigner())
    obj = dict(record.to_dict(), name="other")
    with pytest.raises(IdentityRecordError, match="own signing key"):
        IdentityRecord.from_bytes(ksmod._canonical(obj) + b"\n").verify()


def test_record_parser_refuses_non_canonical_oversized_and_mixed_shapes(alice_site, coordinator):
    _, record = alice_site
    data = record.to_bytes()
    for bad in (data.replace(b",", b", ", 1), data + b" ", b"{}", b"[1]", b"\xff" * 10, b"x" * 9000,
                data.replace(b'"version":1', b'"version":2')):
        with pytest.raises(IdentityRecordError):
            IdentityRecord.from_bytes(bad)
    obj = dict(coordinator[1].to_dict(), role="keyholder-site")  # a site record with no cosigner
    with pytest.raises(IdentityRecordError, match="names its cosigner"):
        IdentityRecord.from_bytes(ksmod._canonical(obj) + b"\n")


def test_wrong_network_is_refused(alice_site):
    _, record = alice_site
    with pytest.raises(MsigvaultError):
        record.verify(network="testnet")
    with pytest.raises(MsigvaultError):
        IdentityKey.generate("x", "keyholder-site").record("bitcoin", root=_root("alice"),
                                                             cosigner=_cosigner("alice"))


def _root(label):
    from msigvault.testing.keyholders import TestKeyholder

    return TestKeyholder.from_label(label).root


def _cosigner(label):
    from msigvault.testing.keyholders import TestKeyholder

    return TestKeyholder.from_label(label).cosigner()


# -- the encrypted file -------------------------------------------------------------------------


@pytest.fixture
def saved(tmp_path):
    key = IdentityKey.generate("site", "keyholder-site")
    key.save(tmp_path / "site.identity", PW, kdf_cost=MIN_SCRYPT_N)
    return key, tmp_path / "site.identity"


def test_identity_file_round_trip_mode_and_public_part(saved):
    key, path = saved
    assert path.stat().st_mode & 0o777 == 0o600
    assert IdentityKey.read_public(path) == key.public
    loaded = IdentityKey.load(path, PW)
    assert loaded.public == key.public
    assert loaded.signing.private_bytes_raw() == key.signing.private_bytes_raw()
    assert loaded.encryption.private_bytes_raw() == key.encryption.private_bytes_raw()
    obj = json.loads(path.read_bytes())
    assert obj["kdf"]["name"] == "scrypt" and obj["aead"]["name"] == "chacha20-poly1305"


def test_identity_file_is_never_overwritten(saved):
    key, path = saved
    before = path.read_bytes()
    with pytest.raises(IdentityFileError, match="already exists"):
        key.save(path, PW, kdf_cost=MIN_SCRYPT_N)
    assert path.read_bytes() == before


def test_wrong_passphrase_and_every_edit_are_refused(saved):
    _, path = saved
    with pytest.raises(WrongPassphrase):
        IdentityKey.load(path, "not it")
    obj = json.loads(path.read_bytes())
    for change in (lambda o: o["public"].update(name="other"),
                   lambda o: o["public"].update(signing_key="00" * 32),
                   lambda o: o["public"].update(role="auditor"),
                   lambda o: o.update(ciphertext=("00" if o["ciphertext"][:2] != "00" else "11") + o["ciphertext"][2:])):
        copy = json.loads(json.dumps(obj))
        change(copy)
        path.write_bytes(ksmod._canonical(copy) + b"\n")
        with pytest.raises(IdentityFileError):
            IdentityKey.load(path, PW)


def test_hostile_kdf_parameters_are_refused_before_the_kdf(saved, monkeypatch):
    _, path = saved
    obj = json.loads(path.read_bytes())
    obj["kdf"].update(n=2 ** 20, r=8, p=16)
    path.write_bytes(ksmod._canonical(obj) + b"\n")
    monkeypatch.setattr(ksmod, "Scrypt", lambda **kw: pytest.fail(f"scrypt ran with {kw}"))
    with pytest.raises(IdentityFileError, match="scrypt parameters"):
        IdentityKey.load(path, PW)


def test_oversized_and_foreign_files_are_refused(tmp_path):
    big = tmp_path / "big"
    big.write_bytes(b"{" * 9000)
    with pytest.raises(IdentityFileError, match="larger"):
        IdentityKey.read_public(big)
    other = tmp_path / "other"
    other.write_bytes(b'{"magic":"msigvault-keystore"}\n')
    with pytest.raises(IdentityFileError, match="not a msigvault identity file"):
        IdentityKey.read_public(other)
    with pytest.raises(IdentityFileError, match="does not exist"):
        IdentityKey.read_public(tmp_path / "missing")


def test_generation_fails_closed_without_os_randomness(monkeypatch):
    def broken(n):
        raise NotImplementedError

    monkeypatch.setattr(os, "urandom", broken)
    with pytest.raises(MsigvaultError, match="random number generator failed"):
        IdentityKey.generate("site", "coordinator")
    monkeypatch.setattr(os, "urandom", lambda n: bytes(n))
    with pytest.raises(MsigvaultError, match="constant bytes"):
        IdentityKey.generate("site", "coordinator")


def test_bad_names_and_roles_are_refused():
    for name in ("", "x" * 65, "tab\there"):
        with pytest.raises(IdentityFileError):
            IdentityKey.generate(name, "coordinator")
    with pytest.raises(IdentityFileError, match="role"):
        IdentityKey.generate("x", "admin")


# -- no secret anywhere ------------------------------------------------------------------------


def _traceback_of_wrong_passphrase(path) -> str:
    try:
        IdentityKey.load(path, "wrong")
    except WrongPassphrase as e:
        return "".join(traceback.TracebackException.from_exception(e, capture_locals=True).format())
    raise AssertionError("a wrong passphrase opened the identity")


def _traceback_of_tampered_file(path) -> str:
    obj = json.loads(path.read_bytes())
    obj["ciphertext"] = ("00" if obj["ciphertext"][:2] != "00" else "11") + obj["ciphertext"][2:]
    path.write_bytes(ksmod._canonical(obj) + b"\n")
    try:
        IdentityKey.load(path, PW)
    except IdentityFileError as e:
        return "".join(traceback.TracebackException.from_exception(e, capture_locals=True).format())
    raise AssertionError("a modified identity file opened")


def _traceback_holding(key) -> str:
    buf = io.StringIO()
    try:
        raise RuntimeError(key)
    except RuntimeError:
        traceback.print_exc(file=buf)
    return buf.getvalue()


def test_no_secret_in_repr_str_format_logs_or_tracebacks(saved, caplog):
    key, path = saved
    with caplog.at_level(logging.DEBUG):
        loaded = IdentityKey.load(path, PW)
        texts = [repr(key), str(key), f"{key}", f"{key:>10}", repr(key.public), repr(loaded),
                 _traceback_holding(loaded), _traceback_of_wrong_passphrase(path), _traceback_of_tampered_file(path)]
    texts.append(caplog.text)
    blob = "\n".join(texts)
    assert "IdentityKey(name='site'" in blob  # the texts are really there
    for secret in (key.signing.private_bytes_raw(), key.encryption.private_bytes_raw()):
        assert secret.hex() not in blob and secret.hex().upper() not in blob and repr(secret) not in blob
    assert PW not in blob


def test_the_identity_layer_stays_offline():
    import subprocess
    import sys

    code = ("import sys, msigvault.identity, msigvault.identity.envelope; "
            "bad = [m for m in sys.modules if m.split('.')[0] in ('sqlalchemy', 'httpx', 'socket_server', 'bitcoinlib')"
            " or m.startswith(('msigvault.coordinator', 'msigvault.backends', 'msigvault.service'))]; print(bad)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402


@settings(max_examples=200)
@given(data=st.binary(max_size=2000) | st.text(max_size=500).map(str.encode))
def test_arbitrary_bytes_are_refused_as_a_record(data):
    with pytest.raises(IdentityRecordError):
        IdentityRecord.from_bytes(data)


@settings(max_examples=100)
@given(pos=st.integers(min_value=0), flip=st.integers(1, 255))
def test_any_changed_byte_of_a_record_is_refused(vault, alice_site, pos, flip):
    data = bytearray(alice_site[1].to_bytes())
    data[pos % len(data)] ^= flip
    with pytest.raises(MsigvaultError):
        IdentityRecord.from_bytes(bytes(data)).verify_for_vault(vault)


def test_a_record_for_an_unknown_network_is_refused_at_parse(coordinator):
    obj = dict(coordinator[1].to_dict(), network="bitcoin")  # an alias Network.from_name knows, not a record's
    with pytest.raises(IdentityRecordError, match="network"):
        IdentityRecord.from_bytes(ksmod._canonical(obj) + b"\n")

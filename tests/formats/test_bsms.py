"""BIP129 (BSMS): the BIP's official vectors, key records made by msigvault, and tampering."""

import base64
import hashlib
import json

import pytest
from embit.ec import PrivateKey

from msigvault import Cosigner, Network
from msigvault.errors import InvalidKey
from msigvault.formats import (
    FormatError,
    bsms_key_record,
    export_vault,
    import_cosigner,
    import_vault,
    parse_bsms_key_record,
    verify_bsms_key_record,
)
from msigvault.formats import bsms
from msigvault.keys import bip48_path


@pytest.fixture(scope="module")
def bip129(vectors):
    return json.loads((vectors / "bip129" / "vectors.json").read_text())["modes"]


def records(bip129):
    for mode, data in bip129.items():
        for signer in data["signers"]:
            yield mode, data, signer


def test_key_record_vectors_verify(vectors, bip129):
    count = 0
    for mode, data, signer in records(bip129):
        text = (vectors / "bip129" / mode / signer["record"]).read_text()
        rec = parse_bsms_key_record(text)
        assert rec.key.startswith(f"[{signer['fingerprint']}/48'/0'/0'/")
        if "xpub" in signer:
            cosigner = verify_bsms_key_record(text)
            assert cosigner == Cosigner.parse(rec.key)
            assert cosigner.xpub == signer["xpub"] and cosigner.fingerprint.hex() == signer["fingerprint"]
            assert import_cosigner(text) == cosigner
        else:
            assert rec.cosigner is None and rec.public_key.hex() == signer["public_key"]
            with pytest.raises(FormatError, match="raw public key"):
                verify_bsms_key_record(text)
        # the record's key is the one that signed: the BIP's private key reproduces the signature
        # exactly (RFC6979 deterministic nonces, as Bitcoin Core's signmessage)
        secret = PrivateKey.from_wif(signer["private_key"]).secret
        message = "\n".join(text.split("\n")[:4]).encode()
        assert bsms.sign_message(secret, message) == rec.signature
        assert bsms.recover_message_key(message, rec.signature) == rec.public_key
        count += 1
    assert count == 9


def test_encryption_vectors(vectors, bip129):
    std = bip129["standard"]
    assert bsms.encryption_key(std["token"]).hex() == std["encryption_key"]
    assert hashlib.sha256(bsms.encryption_key(std["token"])).hexdigest() == std["hmac_key"]
    # the other forms of the same TOKEN
    assert bsms.parse_token(std["token_decimal"]) == bytes.fromhex(std["token"])
    assert bsms.parse_token(int(std["token_decimal"])) == bytes.fromhex(std["token"])
    assert bsms.parse_token(std["token_mnemonic"]) == bytes.fromhex(std["token"])
    for signer in bip129["extended"]["signers"]:
        assert bsms.encryption_key(signer["token"]).hex() == signer["encryption_key"]
        assert bsms.parse_token(signer["token_decimal"]) == bytes.fromhex(signer["token"])
    checked = 0
    for mode in ("standard", "extended"):
        for signer in bip129[mode]["signers"]:
            token = signer.get("token", bip129[mode].get("token"))
            plain = (vectors / "bip129" / mode / signer["record"]).read_text()
            dat = (vectors / "bip129" / mode / signer["encrypted"]).read_text()
            assert dat[:64] == signer["mac"] and signer["iv"] == signer["mac"][:32]
            assert bsms.encrypt(plain, token) == dat  # byte-exact: the IV comes from the MAC
            assert bsms.decrypt(dat, token) == plain
            assert verify_bsms_key_record(dat, token) == verify_bsms_key_record(plain)
            checked += 1
        for enc in bip129[mode]["descriptor_record_encrypted"]:
            plain = (vectors / "bip129" / mode / "my_multisig_wallet.bsms").read_text()
            dat = (vectors / "bip129" / mode / enc["file"]).read_text()
            assert bsms.encrypt(plain, enc["token"]) == dat
            checked += 1
    assert checked == 9


def test_wrong_token(vectors, bip129):
    dat = (vectors / "bip129" / "standard" / "signer_1_key.dat").read_text()
    with pytest.raises(FormatError, match="MAC does not match"):
        verify_bsms_key_record(dat, "a54044308ceac9b8")
    with pytest.raises(FormatError, match="encrypted"):
        verify_bsms_key_record(dat)
    flipped = dat[:100] + ("0" if dat[100] != "0" else "1") + dat[101:]
    with pytest.raises(FormatError, match="MAC does not match"):
        verify_bsms_key_record(flipped, "a54044308ceac9b7")
    # a plaintext record made for another session's TOKEN
    plain = (vectors / "bip129" / "standard" / "signer_1_key.bsms").read_text()
    with pytest.raises(FormatError, match="another TOKEN"):
        verify_bsms_key_record(plain, "108a2360adb302774eb521daebbeda5e")
    desc = (vectors / "bip129" / "extended" / "my_multisig_wallet_for_signer_1.dat").read_text()
    with pytest.raises(FormatError, match="MAC does not match"):
        import_vault(desc, token=bip129["extended"]["signers"][1]["token"])


@pytest.mark.parametrize("token", [None, "a54044308ceac9b7", "78a7d5e7549453d719150de5459c9ce5"])
@pytest.mark.parametrize("network", ["mainnet", "testnet", "regtest"])
def test_key_record_roundtrip(keyholder, token, network):
    net = Network.from_name(network)
    holder = keyholder("bsms-alice", net)
    path = bip48_path(net, "wsh")
    record = bsms_key_record(holder.root, path, net, token=token, description="Alice, office safe")
    expected = Cosigner.from_root(holder.root, path, net)
    if token:
        assert bsms.is_encrypted(record)
        with pytest.raises(FormatError):
            verify_bsms_key_record(record)
        assert "BSMS 1.0\n" + token in bsms.decrypt(record, token)
    else:
        lines = record.split("\n")
        assert lines[:2] == ["BSMS 1.0", "00"] and lines[3] == "Alice, office safe" and len(lines) == 5
    assert verify_bsms_key_record(record, token) == expected
    assert import_cosigner(record, token=token, network=net) == expected


def test_key_record_never_carries_private_data(keyholder):
    holder = keyholder("bsms-secret", Network.MAINNET)
    record = bsms_key_record(holder.root, "m/48h/0h/0h/2h", "mainnet")
    assert "prv" not in record and holder.root.to_base58() not in record


def test_key_record_tampering(keyholder):
    net = Network.REGTEST
    alice, mallory = keyholder("bsms-a", net), keyholder("bsms-m", net)
    path = bip48_path(net, "wsh")
    record = bsms_key_record(alice.root, path, net)
    lines = record.split("\n")
    # the coordinator swaps in another key
    other = Cosigner.from_root(mallory.root, path, net)
    swapped = "\n".join(lines[:2] + [f"{other.origin(chr(39))}{other.xpub}"] + lines[3:])
    with pytest.raises(FormatError, match="not made by the key it carries"):
        verify_bsms_key_record(swapped)
    # ... or keeps the key but changes its origin
    reorigin = "\n".join(lines[:2] + [lines[2].replace(lines[2][1:9], "deadbeef")] + lines[3:])
    with pytest.raises(FormatError, match="not made by the key it carries"):
        verify_bsms_key_record(reorigin)
    # ... or the description
    with pytest.raises(FormatError, match="not made by the key"):
        verify_bsms_key_record("\n".join(lines[:3] + ["Mallory"] + lines[4:]))
    # one changed character of the xpub breaks its base58 checksum
    xpub_at = lines[2].index("]") + 10
    broken = lines[2][:xpub_at] + ("A" if lines[2][xpub_at] != "A" else "B") + lines[2][xpub_at + 1:]
    with pytest.raises(InvalidKey):
        verify_bsms_key_record("\n".join(lines[:2] + [broken] + lines[3:]))
    # a signature by the right key over other text
    with pytest.raises(FormatError):
        verify_bsms_key_record("\n".join(lines[:4] + [lines[4][:-4] + "AAA="]))


def test_signature_forms():
    key = PrivateKey(hashlib.sha256(b"msigvault sig forms").digest())
    msg = b"BSMS 1.0\n00\nkey\ndescription"
    sig = bsms.sign_message(key.secret, msg)
    assert bsms.recover_message_key(msg, sig) == key.sec()
    raw = base64.b64decode(sig)
    # Electrum/Trezor segwit headers (35-42) name the same key
    for offset in (4, 8):
        alt = base64.b64encode(bytes([raw[0] + offset]) + raw[1:]).decode()
        assert bsms.recover_message_key(msg, alt) == key.sec()
    uncompressed = base64.b64encode(bytes([raw[0] - 4]) + raw[1:]).decode()
    with pytest.raises(FormatError, match="uncompressed"):
        bsms.recover_message_key(msg, uncompressed)
    with pytest.raises(FormatError, match="BIP322"):
        bsms.recover_message_key(msg, base64.b64encode(b"\x00" * 100).decode())
    with pytest.raises(FormatError, match="base64"):
        bsms.recover_message_key(msg, "not base64!")
    long_msg = b"x" * 300  # compact size 0xfd prefix
    assert bsms.recover_message_key(long_msg, bsms.sign_message(key.secret, long_msg)) == key.sec()


def test_key_record_limits(keyholder):
    holder = keyholder("bsms-limits", Network.REGTEST)
    with pytest.raises(FormatError, match="80"):
        bsms_key_record(holder.root, "m/48h/1h/0h/2h", "regtest", description="x" * 81)
    with pytest.raises(FormatError, match="one line"):
        bsms_key_record(holder.root, "m/48h/1h/0h/2h", "regtest", description="a\nb")
    with pytest.raises(InvalidKey, match="master private key"):
        bsms_key_record(holder.root.neuter(), "m/48h/1h/0h/2h", "regtest")


@pytest.mark.parametrize("bad", ["12g", "-5", "0xz1", "zz" * 8, "one two three", "abandon " * 6, b"\x01" * 5, 2**128, True, 1.5])
def test_bad_tokens(bad):
    with pytest.raises(FormatError):
        bsms.parse_token(bad)


def test_no_encryption_tokens():
    for none in (None, "00", "0", "0x00", 0, b"", b"\x00"):
        assert bsms.parse_token(none) is None


def test_descriptor_record_export(make_vault):
    vault = make_vault("wsh")
    lines = export_vault(vault, "bsms").rstrip("\n").split("\n")
    assert lines[0] == "BSMS 1.0" and lines[2] == "/0/*,/1/*" and lines[3] == vault.address(0)
    assert lines[1].count("/**") == 3 and lines[1].startswith("wsh(sortedmulti(2,[")


def test_descriptor_record_is_not_a_key_record(vectors):
    key_record = (vectors / "bip129" / "no_encryption" / "signer_1_key.bsms").read_text()
    with pytest.raises(FormatError, match="key record"):
        import_vault(key_record)
    desc_record = (vectors / "bip129" / "no_encryption" / "my_multisig_wallet.bsms").read_text()
    with pytest.raises(FormatError, match="5 lines"):
        verify_bsms_key_record(desc_record)
    with pytest.raises(FormatError, match="version"):
        import_vault(desc_record.replace("BSMS 1.0", "BSMS 2.0"))
    with pytest.raises(FormatError, match="version"):
        verify_bsms_key_record(key_record.replace("BSMS 1.0", "BSMS 1.1"))

"""Sealed envelopes: round trips, and every attack the brief lists refused with its own code."""

from __future__ import annotations

import datetime as dt
import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from msigvault.identity import (
    ContentType, EnvelopeError, EnvelopeExpired, EnvelopeOutOfOrder, EnvelopeReplayed, EnvelopeTampered,
    EnvelopeTooLarge, EnvelopeTruncated, IdentityKey, ReplayGuard, WrongRecipient, WrongSender, open_envelope,
    read_header, seal,
)
from msigvault.identity import envelope as envmod

NOW = dt.datetime(2026, 12, 1, 12, 0, tzinfo=dt.timezone.utc)
PSBT = b"psbt\xff" + bytes(range(256)) * 3


def make(sender, recipient, *, payload=PSBT, session="s1", seq=1, kind="psbt", expires=dt.timedelta(hours=1)):
    return seal(payload, sender=sender[0], recipient=recipient[1], session_id=session, sequence=seq,
                content_type=kind, expires=expires, now=NOW)


def open_(data, recipient, senders, guard=None, now=NOW):
    return open_envelope(data, recipient=recipient[0], senders=senders, guard=guard or ReplayGuard(), now=now)


def test_round_trip_carries_every_field(alice_site, coordinator):
    env = make(alice_site, coordinator, session="abc:1", seq=7, kind="partial-signature")
    opened = open_(env, coordinator, [alice_site[1]])
    assert opened.payload == PSBT and opened.sender == alice_site[1]
    assert (opened.session_id, opened.sequence, opened.content_type) == ("abc:1", 7, ContentType.PARTIAL_SIGNATURE)
    assert opened.created == NOW and opened.expires == NOW + dt.timedelta(hours=1)
    assert opened.recipient_id == coordinator[0].id
    assert PSBT.hex()[:32] not in repr(opened) and "payload=" in repr(opened)


def test_only_routing_data_is_outside_the_encryption(alice_site, coordinator):
    env = make(alice_site, coordinator, session="secret-session-name", seq=123456789)
    header = read_header(env)
    assert header.recipient_id == coordinator[0].id and header.length == len(env) - envmod.HEADER_LEN
    for inside in (b"secret-session-name", alice_site[0].id, PSBT[:16], (123456789).to_bytes(8, "big")):
        assert inside not in env


@settings(max_examples=30)
@given(payload=st.binary(max_size=3000), session=st.from_regex(r"[A-Za-z0-9._:-]{1,64}", fullmatch=True),
       seq=st.integers(0, 2 ** 64 - 1), kind=st.sampled_from(list(ContentType)))
def test_any_payload_round_trips(alice_site, coordinator, payload, session, seq, kind):
    env = make(alice_site, coordinator, payload=payload, session=session, seq=seq, kind=kind)
    opened = open_(env, coordinator, [alice_site[1]])
    assert (opened.payload, opened.session_id, opened.sequence, opened.content_type) == (payload, session, seq, kind)


@pytest.fixture(scope="module")
def one(alice_site, coordinator):
    return make(alice_site, coordinator, payload=b"x" * 40)


@settings(max_examples=200)
@given(data=st.data())
def test_any_one_byte_change_anywhere_is_refused(alice_site, coordinator, one, data):
    pos = data.draw(st.integers(0, len(one) - 1))
    flip = data.draw(st.integers(1, 255))
    bad = bytearray(one)
    bad[pos] ^= flip
    with pytest.raises(EnvelopeError):
        open_(bytes(bad), coordinator, [alice_site[1]])


def test_every_single_bit_flip_is_refused(alice_site, coordinator, one):
    codes = set()
    for pos in range(len(one)):
        for bit in range(8):
            bad = bytearray(one)
            bad[pos] ^= 1 << bit
            with pytest.raises(EnvelopeError) as info:
                open_(bytes(bad), coordinator, [alice_site[1]])
            codes.add(info.value.code)
    assert "envelope.tampered" in codes and "envelope.wrong-recipient" in codes and "envelope.invalid" in codes


def test_every_truncation_and_extension_is_refused(alice_site, coordinator, one):
    for n in range(len(one)):
        with pytest.raises(EnvelopeError) as info:
            open_(one[:n], coordinator, [alice_site[1]])
        assert n == 0 or info.value.code in ("envelope.truncated", "envelope.invalid")
    with pytest.raises(EnvelopeTruncated):
        open_(one[:-1], coordinator, [alice_site[1]])
    with pytest.raises(EnvelopeTruncated, match="follow"):
        open_(one + b"\0", coordinator, [alice_site[1]])


def test_replay_is_refused(alice_site, coordinator):
    guard = ReplayGuard()
    env = make(alice_site, coordinator, seq=1)
    open_(env, coordinator, [alice_site[1]], guard)
    with pytest.raises(EnvelopeReplayed) as info:
        open_(env, coordinator, [alice_site[1]], guard)
    assert info.value.code == "envelope.replayed"


def test_reordering_is_refused(alice_site, coordinator):
    guard = ReplayGuard()
    first, second = make(alice_site, coordinator, seq=1), make(alice_site, coordinator, seq=2)
    open_(second, coordinator, [alice_site[1]], guard)
    with pytest.raises(EnvelopeOutOfOrder) as info:
        open_(first, coordinator, [alice_site[1]], guard)
    assert info.value.code == "envelope.out-of-order"
    open_(make(alice_site, coordinator, seq=3), coordinator, [alice_site[1]], guard)  # later ones still pass
    open_(make(alice_site, coordinator, session="s2", seq=1), coordinator, [alice_site[1]], guard)


def test_a_refused_envelope_does_not_advance_the_guard(alice_site, coordinator):
    guard = ReplayGuard()
    late = make(alice_site, coordinator, seq=5, expires=dt.timedelta(seconds=10))
    with pytest.raises(EnvelopeExpired):
        open_(late, coordinator, [alice_site[1]], guard, now=NOW + dt.timedelta(seconds=11))
    assert guard.accepted == {}
    open_(make(alice_site, coordinator, seq=2), coordinator, [alice_site[1]], guard)


def test_expiry_is_refused(alice_site, coordinator):
    env = make(alice_site, coordinator, expires=dt.timedelta(minutes=5))
    open_(env, coordinator, [alice_site[1]], now=NOW + dt.timedelta(minutes=4))
    with pytest.raises(EnvelopeExpired) as info:
        open_(env, coordinator, [alice_site[1]], now=NOW + dt.timedelta(minutes=5))
    assert info.value.code == "envelope.expired"


def test_wrong_recipient_is_refused_before_any_crypto(alice_site, bob_site, coordinator, monkeypatch):
    env = make(alice_site, coordinator)
    monkeypatch.setattr(envmod, "_suite", lambda: pytest.fail("HPKE ran"))
    with pytest.raises(WrongRecipient) as info:
        open_(env, bob_site, [alice_site[1]])
    assert info.value.code == "envelope.wrong-recipient"


def test_wrong_sender_is_refused(alice_site, bob_site, coordinator):
    env = make(bob_site, coordinator)
    with pytest.raises(WrongSender) as info:
        open_(env, coordinator, [alice_site[1]])
    assert info.value.code == "envelope.wrong-sender"
    open_(env, coordinator, [alice_site[1], bob_site[1]])


def test_a_forged_sender_signature_is_refused(alice_site, bob_site, coordinator):
    """Bob seals an envelope claiming to be alice (her id inside) but signs with his own key."""
    impostor = IdentityKey(alice_site[0].public, bob_site[0].signing, bob_site[0].encryption)
    env = seal(PSBT, sender=impostor, recipient=coordinator[1], session_id="s1", sequence=1, content_type="psbt",
               expires=dt.timedelta(hours=1), now=NOW)
    with pytest.raises(EnvelopeTampered, match="signature"):
        open_(env, coordinator, [alice_site[1]])


def test_a_recipient_cannot_forward_a_senders_envelope_as_if_sent_to_another(alice_site, bob_site, coordinator):
    """The coordinator decrypts alice's envelope and re-encrypts the same signed contents to bob."""
    env = make(alice_site, coordinator)
    inner = envmod._suite().decrypt(env[envmod.HEADER_LEN:], coordinator[0].encryption,
                                    info=envmod._INFO_TAG + env[:envmod.HEADER_LEN])
    header = envmod.EnvelopeHeader(1, 1, bob_site[0].id, len(env) - envmod.HEADER_LEN).to_bytes()
    from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PublicKey

    forwarded = header + envmod._suite().encrypt(inner, X25519PublicKey.from_public_bytes(bob_site[1].encryption_key),
                                                 info=envmod._INFO_TAG + header)
    with pytest.raises(EnvelopeTampered, match="re-addressed"):
        open_(forwarded, bob_site, [alice_site[1]])


def test_size_limits_come_before_any_crypto(alice_site, coordinator, monkeypatch):
    monkeypatch.setattr(envmod, "_suite", lambda: pytest.fail("HPKE ran"))
    with pytest.raises(EnvelopeTooLarge) as info:
        open_(b"MSVE" + bytes(envmod.MAX_ENVELOPE), coordinator, [alice_site[1]])
    assert info.value.limit == envmod.MAX_ENVELOPE
    huge_length = envmod.EnvelopeHeader(1, 1, coordinator[0].id, 2 ** 32 - 1).to_bytes()
    with pytest.raises(EnvelopeError, match="length field"):
        open_(huge_length + bytes(100), coordinator, [alice_site[1]])
    with pytest.raises(EnvelopeTooLarge):
        seal(bytes(envmod.MAX_PAYLOAD + 1), sender=alice_site[0], recipient=coordinator[1], session_id="s",
             sequence=1, content_type="psbt", expires=dt.timedelta(hours=1))


def test_seal_refuses_bad_arguments(alice_site, coordinator):
    base = dict(sender=alice_site[0], recipient=coordinator[1], session_id="s", sequence=1, content_type="psbt",
                expires=dt.timedelta(hours=1), now=NOW)
    for change in ({"session_id": ""}, {"session_id": "x" * 65}, {"session_id": "a b"}, {"sequence": -1},
                   {"sequence": 2 ** 64}, {"sequence": True}, {"content_type": "picture"},
                   {"expires": dt.timedelta(0)}, {"now": dt.datetime(2026, 1, 1)}):
        with pytest.raises(EnvelopeError):
            seal(b"p", **{**base, **change})


def test_replay_state_persists_across_processes(tmp_path, alice_site, coordinator):
    path = tmp_path / "seen.json"
    open_(make(alice_site, coordinator, seq=4), coordinator, [alice_site[1]], ReplayGuard.load(path))
    again = ReplayGuard.load(path)
    with pytest.raises(EnvelopeReplayed):
        open_(make(alice_site, coordinator, seq=4), coordinator, [alice_site[1]], again)
    with pytest.raises(EnvelopeOutOfOrder):
        open_(make(alice_site, coordinator, seq=3), coordinator, [alice_site[1]], again)
    path.write_text("{not json")
    with pytest.raises(EnvelopeError, match="damaged"):
        ReplayGuard.load(path)


def test_an_envelope_travels_through_bbqr_parts_and_back(alice_site, coordinator):
    from msigvault.transport.bbqr import bbqr_join, bbqr_split

    payload = random.Random(16).randbytes(6000)
    env = make(alice_site, coordinator, payload=payload)
    split = bbqr_split(env, "B", max_version=12)
    assert len(split.parts) > 1
    parts = list(split.parts)
    random.Random(1).shuffle(parts)
    rebuilt = bbqr_join(parts)
    assert rebuilt.file_type == "B" and rebuilt.data == env
    assert open_(rebuilt.data, coordinator, [alice_site[1]]).payload == payload


def test_an_envelope_travels_as_a_file(tmp_path, alice_site, coordinator):
    from msigvault.fileio import write_atomic

    path = write_atomic(tmp_path / "to-coordinator.msve", make(alice_site, coordinator))
    assert open_(path.read_bytes(), coordinator, [alice_site[1]]).payload == PSBT


def test_the_bytes_are_where_docs_envelopes_md_says(alice_site, coordinator):
    """Parse an envelope with nothing but the documented offsets and RFC 9180 HPKE."""
    import hashlib
    import struct

    from cryptography.hazmat.primitives import hpke
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

    payload, session = b"documented payload", "sess.42"
    env = make(alice_site, coordinator, payload=payload, session=session, seq=9, kind="refusal")
    assert len(env) == 200 + len(session) + len(payload)
    assert env[0:4] == b"MSVE" and env[4] == 1 and env[5] == 1
    assert env[6:22] == hashlib.sha256(b"msigvault/identity-id/v1\0" + coordinator[1].signing_key
                                       + coordinator[1].encryption_key).digest()[:16]
    assert struct.unpack(">I", env[22:26])[0] == len(env) - 26
    suite = hpke.Suite(hpke.KEM.X25519, hpke.KDF.HKDF_SHA256, hpke.AEAD.CHACHA20_POLY1305)
    inner = suite.decrypt(env[26:], coordinator[0].encryption, info=b"msigvault/envelope/v1\0" + env[:26])
    assert inner[0:16] == alice_site[0].id and inner[16:32] == coordinator[0].id and inner[32] == 4
    assert struct.unpack(">Qqq", inner[33:57]) == (9, int(NOW.timestamp()), int(NOW.timestamp()) + 3600)
    s = inner[57]
    assert inner[58:58 + s] == session.encode()
    p = struct.unpack(">I", inner[58 + s:62 + s])[0]
    assert inner[62 + s:62 + s + p] == payload and len(inner) == 62 + s + p + 64
    Ed25519PublicKey.from_public_bytes(alice_site[1].signing_key).verify(
        inner[-64:], b"msigvault/envelope-sig/v1\0" + env[:26] + inner[:-64])
    assert envmod.MAX_ENVELOPE == 200 + 64 + 8 * 1024 * 1024 == 8_388_872


@pytest.mark.parametrize("content", ['{"format":"x"}', '{"format":"msigvault-replay-guard","version":1,"entries":'
                                     '[{"sender":"00","session":"s","accepted":["1"]}]}',
                                     '{"format":"msigvault-replay-guard","version":1,"entries":'
                                     '[{"sender":"00","session":"s","accepted":[2,1]}]}',
                                     '{"format":"msigvault-replay-guard","version":1,"entries":'
                                     '[{"sender":"00","session":"s","accepted":[true]}]}'])
def test_a_damaged_replay_state_is_refused(tmp_path, content):
    path = tmp_path / "seen.json"
    path.write_text(content)
    with pytest.raises(EnvelopeError, match="damaged"):
        ReplayGuard.load(path)


@settings(max_examples=200)
@given(data=st.binary(max_size=600))
def test_arbitrary_bytes_are_refused_with_an_envelope_error(alice_site, coordinator, data):
    with pytest.raises(EnvelopeError):
        open_(data, coordinator, [alice_site[1]])
    with pytest.raises(EnvelopeError):
        open_(b"MSVE\x01\x01" + coordinator[0].id + data, coordinator, [alice_site[1]])

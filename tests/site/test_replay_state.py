"""A site pulls the same pending requests again and again (each pull is a freshly sealed envelope): its
replay state must stay as small as the live sessions, or after months it passes the state file's limit and
the site can pull nothing more (adversarial review of issue 16)."""

from __future__ import annotations

import datetime as dt

import pytest

from msigvault.identity import IdentityKey, ReplayGuard, open_envelope, seal
from msigvault.identity.errors import EnvelopeExpired, EnvelopeOutOfOrder, EnvelopeReplayed
from msigvault.testing.keyholders import TestKeyholder

NOW = dt.datetime(2026, 12, 1, 12, 0, tzinfo=dt.timezone.utc)


def test_the_replay_state_keeps_one_entry_per_live_session(tmp_path):
    """Before: every accepted sequence was kept forever and the whole file rewritten at each one."""
    coordinator = IdentityKey.generate("coordinator", "coordinator")
    site = IdentityKey.generate("alice-site", "keyholder-site")
    alice = TestKeyholder.from_label("replay-alice")
    record = site.record("regtest", root=alice.root, cosigner=alice.cosigner("wsh"))
    path = tmp_path / "seen.json"
    guard = ReplayGuard.load(path)
    seq = 0
    envelopes = {}
    for pull in range(150):  # 150 pulls of two pending sessions, a minute apart
        moment = NOW + dt.timedelta(minutes=pull)
        for session in ("s1", "s2"):
            seq += 1
            env = seal(b"psbt", sender=coordinator, recipient=record, session_id=session, sequence=seq,
                       content_type="psbt", expires=NOW + dt.timedelta(days=1), now=moment)
            open_envelope(env, recipient=site, senders=coordinator.record("regtest"), guard=guard, now=moment)
            envelopes[(session, pull)] = env
    assert sum(len(v) for v in guard.accepted.values()) == 2
    assert len(path.read_bytes()) < 1000
    again = ReplayGuard.load(path)
    later = NOW + dt.timedelta(minutes=150)
    with pytest.raises(EnvelopeReplayed):  # the newest envelope again
        open_envelope(envelopes[("s2", 149)], recipient=site, senders=coordinator.record("regtest"), guard=again,
                      now=later)
    with pytest.raises(EnvelopeOutOfOrder):  # any older one
        open_envelope(envelopes[("s1", 3)], recipient=site, senders=coordinator.record("regtest"), guard=again,
                      now=later)
    # a day on, both sessions' envelopes have expired: their entries go with the next acceptance
    tomorrow = NOW + dt.timedelta(days=1, minutes=1)
    env = seal(b"psbt", sender=coordinator, recipient=record, session_id="s3", sequence=seq + 1,
               content_type="psbt", expires=dt.timedelta(hours=1), now=tomorrow)
    open_envelope(env, recipient=site, senders=coordinator.record("regtest"), guard=again, now=tomorrow)
    assert [k[1] for k in again.accepted] == ["s3"]
    with pytest.raises(EnvelopeExpired):  # and what they refused is refused by its expiry
        open_envelope(envelopes[("s1", 149)], recipient=site, senders=coordinator.record("regtest"), guard=again,
                      now=tomorrow)

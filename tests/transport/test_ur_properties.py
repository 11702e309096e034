"""Properties of the UR encoder/decoder: any order, losses, duplicates; progress; hostile input."""

import cbor2
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from msigvault.errors import MsigvaultError
from msigvault.transport import ForeignFrameError, IncompleteTransfer, TransportError
from msigvault.transport import bytewords
from msigvault.transport.fountain import FountainPart, make_message
from msigvault.transport.ur import URDecoder, UREncoder, decode_ur, encode_ur, ur_to_psbt


@st.composite
def transfers(draw):
    payload = cbor2.dumps(draw(st.binary(min_size=1, max_size=3000)))
    max_fragment_len = draw(st.integers(10, 400))
    first_seq_num = draw(st.sampled_from([0, 0, 0, 7, 2**32 - 3]))
    return payload, max_fragment_len, first_seq_num


@given(transfers(), st.randoms(use_true_random=False), st.floats(0.0, 0.5),
       st.floats(0.0, 0.3), st.integers(0, 3))
def test_any_order_losses_and_duplicates_give_the_exact_payload(transfer, rnd, loss, dup, extra_loops):
    payload, max_fragment_len, first_seq_num = transfer
    encoder = UREncoder("bytes", payload, max_fragment_len, first_seq_num)
    n = encoder.seq_len
    # what a scanner sees: a shuffled window of frames with some lost and some seen twice ...
    frames = encoder.parts(n + n * extra_loops // 2 + 2)
    rnd.shuffle(frames)
    seen = []
    for f in frames:
        if rnd.random() >= loss:
            seen.append(f)
            if rnd.random() < dup:
                seen.insert(rnd.randrange(len(seen)), f)
    decoder = URDecoder()
    progress = [decoder.progress]
    for f in seen:
        decoder.receive_part(f if rnd.random() < 0.5 else f.upper())
        progress.append(decoder.progress)
    # ... and, if that was not enough, whatever frames keep coming (still lossy)
    budget = 40 * n + 100
    while not decoder.is_complete and budget:
        f = encoder.next_part()
        budget -= 1
        if rnd.random() >= loss:
            assert decoder.receive_part(f) is True
            progress.append(decoder.progress)
    assert decoder.is_complete
    assert decoder.result == ("bytes", payload)
    assert all(0.0 <= p <= 1.0 for p in progress)
    assert progress == sorted(progress)  # never goes backwards
    assert progress[-1] == 1.0
    # a complete decoder ignores further frames of the same transfer
    assert decoder.receive_part(encoder.next_part()) is False
    assert decoder.progress == 1.0


@given(st.binary(min_size=1, max_size=500), st.sampled_from(["standard", "uri", "minimal"]))
def test_bytewords_round_trip(data, style):
    assert bytewords.decode(bytewords.encode(data, style), style) == data
    assert bytewords.decode(bytewords.encode(data, style).upper(), style) == data


@given(st.binary(min_size=1, max_size=300))
def test_single_part_round_trip(payload):
    assert decode_ur(encode_ur("crypto-psbt", payload)) == ("crypto-psbt", payload)


def _valid_frame(seq_num=1):
    encoder = UREncoder("bytes", cbor2.dumps(make_message(200)), 30)
    frames = encoder.parts(seq_num)
    return frames[-1]


garbage = st.one_of(
    st.text(max_size=200),
    st.text(max_size=200).map(lambda s: "ur:" + s),
    st.text(alphabet="abcdefghijklmnopqrstuvwxyz-/0123456789", max_size=200).map(lambda s: "ur:" + s),
    st.tuples(st.integers(0, 2**40), st.integers(0, 2**40), st.binary(max_size=80)).map(
        lambda t: f"ur:bytes/{t[0]}-{t[1]}/{bytewords.encode(t[2]) if t[2] else ''}"),
    # valid bytewords (so the checksum passes) around arbitrary CBOR-ish bytes
    st.binary(min_size=1, max_size=120).map(lambda b: f"ur:bytes/1-3/{bytewords.encode(b)}"),
    # well-formed fountain parts with hostile header values
    st.tuples(st.integers(0, 2**32 - 1), st.integers(0, 2**32 - 1), st.integers(0, 2**32 - 1),
              st.integers(0, 2**32 - 1), st.binary(max_size=40)).map(
        lambda t: f"ur:bytes/{max(t[0], 1)}-{max(t[1], 1)}/"
                  + bytewords.encode(FountainPart(*t).cbor())),
    # a valid frame with one character changed
    st.tuples(st.integers(1, 20), st.integers(0, 10_000), st.sampled_from("abcdefghijklmnopqrstuvwxyz")).map(
        lambda t: (lambda f: f[:t[1] % len(f)] + t[2] + f[t[1] % len(f) + 1:])(_valid_frame(t[0]))),
    st.recursive(st.none() | st.booleans() | st.integers() | st.binary(max_size=20) | st.text(max_size=5),
                 lambda c: st.lists(c, max_size=6) | st.dictionaries(st.integers(), c, max_size=4),
                 max_leaves=12).map(lambda v: f"ur:bytes/2-5/{bytewords.encode(cbor2.dumps(v))}"),
)


@settings(max_examples=300)
@given(garbage)
def test_garbage_gives_transport_error_never_anything_else(text):
    decoder = URDecoder()
    try:
        decoder.receive_part(text)
    except TransportError:
        return
    # a few generated strings are genuinely valid frames (e.g. an unchanged character)
    assert decoder.progress >= 0.0


@settings(max_examples=100)
@given(garbage)
def test_garbage_as_a_psbt_is_refused(text):
    with pytest.raises(MsigvaultError):
        ur_to_psbt([text])


@given(st.lists(st.text(max_size=50) | st.binary(max_size=50) | st.integers(), max_size=3))
def test_non_text_frames_are_refused(items):
    decoder = URDecoder()
    for item in items:
        if isinstance(item, str):
            continue
        with pytest.raises(TransportError):
            decoder.receive_part(item)


def test_frames_of_another_transfer_are_refused_and_the_scan_goes_on():
    a = UREncoder("crypto-psbt", cbor2.dumps(b"psbt\xff" + make_message(500, "a")), 60)
    b = UREncoder("crypto-psbt", cbor2.dumps(b"psbt\xff" + make_message(500, "b")), 60)
    decoder = URDecoder()
    decoder.receive_part(a.next_part())
    with pytest.raises(ForeignFrameError, match="different transfer"):
        decoder.receive_part(b.next_part())
    other_type = UREncoder("crypto-output", cbor2.dumps(b"x" * 500), 60).next_part()
    with pytest.raises(ForeignFrameError, match="ur:crypto-output"):
        decoder.receive_part(other_type)
    with pytest.raises(ForeignFrameError, match="single-part"):
        decoder.receive_part(encode_ur("crypto-psbt", cbor2.dumps(b"psbt\xff")))
    while not decoder.is_complete:  # the foreign frames did no harm
        decoder.receive_part(a.next_part())
    assert decoder.result[1] == a.cbor_payload


def test_result_before_completion_says_how_far_it_got():
    decoder = URDecoder()
    with pytest.raises(IncompleteTransfer, match="no UR frame"):
        decoder.result
    encoder = UREncoder("bytes", cbor2.dumps(make_message(300)), 30)
    decoder.receive_part(encoder.next_part())
    with pytest.raises(IncompleteTransfer, match="1 of 11 fragments"):
        decoder.result
    assert 0 < decoder.progress < 1
    decoder.reset()
    assert decoder.progress == 0.0 and decoder.expected_part_count is None


def test_frame_header_must_match_its_contents():
    frame = _valid_frame(3)  # ur:bytes/3-7/...
    seq, body = frame.split("/")[1:]
    with pytest.raises(TransportError, match="corrupt"):
        URDecoder().receive_part(f"ur:bytes/4-7/{body}")


def test_oversized_message_announcement_is_refused():
    part = FountainPart(1, 2**20, 2**32 - 1, 0, b"x" * 4096)
    with pytest.raises(TransportError, match="limit"):
        URDecoder().receive_part(f"ur:bytes/1-{2**20}/{bytewords.encode(part.cbor())}")


def test_encoder_arguments_are_checked():
    with pytest.raises(TransportError):
        UREncoder("Bytes!", b"\x41a")
    with pytest.raises(TransportError):
        UREncoder("bytes", b"")
    with pytest.raises(TransportError):
        UREncoder("bytes", b"\x41a", max_fragment_len=0)
    with pytest.raises(TransportError):
        encode_ur("bytes", "text")


def test_tiny_payload_is_a_single_part():
    encoder = UREncoder("bytes", b"\x41a", max_fragment_len=200)
    assert encoder.is_single_part
    assert encoder.next_part() == encode_ur("bytes", b"\x41a") == encoder.next_part()


@pytest.mark.parametrize("size,fragment,seed", [(20_000, 200, 1), (32_767, 1000, 2), (5_000, 10, 3)])
def test_large_payloads_with_heavy_loss(size, fragment, seed):
    import random

    rnd = random.Random(seed)
    payload = cbor2.dumps(make_message(size, f"large-{seed}"))
    encoder = UREncoder("crypto-psbt", payload, fragment)
    decoder = URDecoder()
    last = 0.0
    while not decoder.is_complete:
        frame = encoder.next_part()
        if rnd.random() < 0.3:  # lose 30% of the frames
            continue
        decoder.receive_part(frame)
        assert decoder.progress >= last
        last = decoder.progress
    assert decoder.result == ("crypto-psbt", payload)
    # Gaussian elimination needs barely more frames than there are fragments
    assert decoder.processed_parts_count <= encoder.seq_len * 1.25 + 5

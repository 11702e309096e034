"""The BC-UR fountain code (BCR-2020-005): a Luby transform over fixed-size fragments.

A message is cut into ``seq_len`` equal fragments (the last one zero-padded). Part ``n`` for
``n <= seq_len`` is fragment ``n - 1`` itself; every later part is the XOR of a pseudo-random set of
fragments chosen by a Xoshiro256** generator seeded with ``SHA-256(seq_num || checksum)``. The
degree (how many fragments are mixed) follows the ideal soliton distribution, sampled with Vose's
alias method exactly as the reference implementation does, so any compliant decoder (Sparrow,
Passport, Keystone, ...) can reassemble what we emit and vice versa.

The algorithms follow BlockchainCommons/bc-ur (C++ reference); the tests check this module against
that repository's vectors.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from functools import lru_cache

from . import ForeignFrameError, TransportError
from . import _cbor
from .bytewords import crc32

_MASK64 = (1 << 64) - 1
_TWO64 = 18446744073709551616.0  # 2**64 as a double, as in the reference's next_double()

#: Largest message a decoder accepts by default (bytes). A PSBT the signer accepts is far smaller;
#: the limit stops a hostile frame announcing a huge message from exhausting memory.
DEFAULT_MAX_MESSAGE_LEN = 16 * 1024 * 1024
#: Most fragments a decoder accepts by default: 10,000 fragments of 200 bytes is a 2 MB PSBT and
#: hours of scanning. The limit bounds the work a hostile frame can cause.
DEFAULT_MAX_FRAGMENTS = 10_000


# ----------------------------------------------------------------------------- Xoshiro256**


def _rotl(x: int, k: int) -> int:
    return ((x << k) | (x >> (64 - k))) & _MASK64


class Xoshiro256:
    """xoshiro256** 1.0 (Blackman and Vigna), seeded the BC-UR way.

    ``Xoshiro256(seed)`` hashes ``seed`` (bytes, or str as UTF-8) with SHA-256 and loads the 32
    digest bytes as four big-endian 64-bit words. :meth:`from_crc32` seeds from the 4 big-endian
    bytes of a CRC32 value.
    """

    __slots__ = ("s",)

    def __init__(self, seed: "bytes | str"):
        if isinstance(seed, str):
            seed = seed.encode()
        digest = hashlib.sha256(bytes(seed)).digest()
        self.s = [int.from_bytes(digest[i:i + 8], "big") for i in range(0, 32, 8)]

    @classmethod
    def from_crc32(cls, checksum: int) -> "Xoshiro256":
        return cls(checksum.to_bytes(4, "big"))

    def next(self) -> int:
        s = self.s
        result = (_rotl((s[1] * 5) & _MASK64, 7) * 9) & _MASK64
        t = (s[1] << 17) & _MASK64
        s[2] ^= s[0]
        s[3] ^= s[1]
        s[1] ^= s[2]
        s[0] ^= s[3]
        s[2] ^= t
        s[3] = _rotl(s[3], 45)
        return result

    def next_double(self) -> float:
        """A double in [0, 1]: next() converted to double (round to nearest) divided by 2**64."""
        return float(self.next()) / _TWO64

    def next_int(self, low: int, high: int) -> int:
        """An integer in [low, high], by truncating next_double() * (high - low + 1)."""
        return int(self.next_double() * float(high - low + 1)) + low

    def next_byte(self) -> int:
        return self.next_int(0, 255) & 0xFF

    def next_data(self, count: int) -> bytes:
        return bytes(self.next_byte() for _ in range(count))


def make_message(length: int, seed: str = "Wolf") -> bytes:
    """The reference test suite's deterministic message: ``length`` bytes from Xoshiro256(seed)."""
    return Xoshiro256(seed).next_data(length)


# ----------------------------------------------------------------------------- sampling


class RandomSampler:
    """Vose's alias method, with the reference's index order, for a discrete distribution."""

    __slots__ = ("probs", "aliases")

    def __init__(self, weights):
        weights = [float(w) for w in weights]
        if not weights or any(w < 0 for w in weights):
            raise TransportError("random sampler weights must be non-negative")
        total = 0.0
        for w in weights:  # left to right, as the reference does (not math.fsum, not sum())
            total += w
        if total <= 0:
            raise TransportError("random sampler weights must not all be zero")
        n = len(weights)
        p = [(w * float(n)) / total for w in weights]
        small, large = [], []
        for i in range(n - 1, -1, -1):
            (small if p[i] < 1 else large).append(i)
        probs = [0.0] * n
        aliases = [0] * n
        while small and large:
            a = small.pop()
            g = large.pop()
            probs[a] = p[a]
            aliases[a] = g
            p[g] += p[a] - 1
            (small if p[g] < 1 else large).append(g)
        while large:
            probs[large.pop()] = 1.0
        while small:  # only through numeric instability
            probs[small.pop()] = 1.0
        self.probs = probs
        self.aliases = aliases

    def next(self, rng_double) -> int:
        """One sample; ``rng_double`` is a callable returning doubles in [0, 1)."""
        r1 = rng_double()
        r2 = rng_double()
        i = int(float(len(self.probs)) * r1)
        return i if r2 < self.probs[i] else self.aliases[i]


@lru_cache(maxsize=64)
def _degree_sampler(seq_len: int) -> RandomSampler:
    return RandomSampler([1.0 / i for i in range(1, seq_len + 1)])


def choose_degree(seq_len: int, rng: Xoshiro256) -> int:
    """How many fragments a mixed part combines: 1..seq_len, weights 1/1, 1/2, ..., 1/seq_len."""
    return _degree_sampler(seq_len).next(rng.next_double) + 1


def shuffled(items, rng: Xoshiro256) -> list:
    """The reference's Fisher-Yates variant: repeatedly remove a random remaining item."""
    remaining = list(items)
    result = []
    while remaining:
        index = rng.next_int(0, len(remaining) - 1)
        result.append(remaining.pop(index))
    return result


def choose_fragments(seq_num: int, seq_len: int, checksum: int) -> "frozenset[int]":
    """The fragment indexes XORed into part ``seq_num`` of a ``seq_len``-fragment message."""
    if seq_num <= seq_len:
        return frozenset((seq_num - 1,))
    seed = seq_num.to_bytes(4, "big") + checksum.to_bytes(4, "big")
    rng = Xoshiro256(seed)
    degree = choose_degree(seq_len, rng)
    # The reference shuffles all indexes and keeps the first `degree`; those depend only on the
    # first `degree` draws, so stopping there gives the same set with far less work.
    remaining = list(range(seq_len))
    return frozenset(remaining.pop(rng.next_int(0, len(remaining) - 1)) for _ in range(degree))


# ----------------------------------------------------------------------------- fragments


def find_nominal_fragment_length(message_len: int, min_fragment_len: int, max_fragment_len: int) -> int:
    """The fragment length the reference picks: the fewest equal fragments of at most
    ``max_fragment_len`` bytes, with no fragment shorter than ``min_fragment_len``."""
    if message_len <= 0:
        raise TransportError("cannot split an empty message into fragments")
    if min_fragment_len <= 0 or max_fragment_len < min_fragment_len:
        raise TransportError(
            f"fragment length limits {min_fragment_len}..{max_fragment_len} are not valid: "
            "the minimum must be at least 1 and not above the maximum"
        )
    max_fragment_count = message_len // min_fragment_len
    fragment_len = None
    for fragment_count in range(1, max_fragment_count + 1):
        fragment_len = -(-message_len // fragment_count)
        if fragment_len <= max_fragment_len:
            break
    if fragment_len is None:  # message shorter than min_fragment_len: one fragment
        fragment_len = message_len
    return fragment_len


def partition_message(message: bytes, fragment_len: int) -> "list[bytes]":
    """Cut ``message`` into ``fragment_len``-byte fragments, zero-padding the last one."""
    fragments = []
    for i in range(0, len(message), fragment_len):
        chunk = message[i:i + fragment_len]
        fragments.append(chunk + bytes(fragment_len - len(chunk)))
    return fragments


def join_fragments(fragments, message_len: int) -> bytes:
    """Concatenate fragments and drop the padding."""
    return b"".join(fragments)[:message_len]


def xor_bytes(a: bytes, b: bytes) -> bytes:
    n = len(a)
    return (int.from_bytes(a, "little") ^ int.from_bytes(b, "little")).to_bytes(n, "little")


# ----------------------------------------------------------------------------- parts


@dataclass(frozen=True)
class FountainPart:
    """One fountain-coded part: the CBOR array ``[seqNum, seqLen, messageLen, checksum, data]``."""

    seq_num: int
    seq_len: int
    message_len: int
    checksum: int
    data: bytes

    def cbor(self) -> bytes:
        return _cbor.dumps([self.seq_num, self.seq_len, self.message_len, self.checksum, self.data])

    @classmethod
    def from_cbor(cls, data: bytes) -> "FountainPart":
        value = _cbor.loads(data, "a UR frame")
        if not isinstance(value, (list, tuple)) or len(value) != 5:
            raise TransportError(
                "a UR frame must hold [seqNum, seqLen, messageLen, checksum, data]: this one does not"
            )
        *header, body = value
        if not all(type(x) is int for x in header) or not isinstance(body, bytes):
            raise TransportError("a UR frame header must be four unsigned integers followed by bytes")
        seq_num, seq_len, message_len, checksum = header
        if not (0 <= seq_num < 2**32 and 0 <= seq_len < 2**32 and 0 <= message_len < 2**32
                and 0 <= checksum < 2**32):
            raise TransportError("a UR frame header field is outside the 32-bit range the format allows")
        return cls(seq_num, seq_len, message_len, checksum, body)

    def description(self) -> str:
        """The reference test suite's text form of a part."""
        return (f"seqNum:{self.seq_num}, seqLen:{self.seq_len}, messageLen:{self.message_len}, "
                f"checksum:{self.checksum}, data:{self.data.hex()}")


class FountainEncoder:
    """Emits parts 1, 2, ... without end: the first ``seq_len`` are the plain fragments, the rest
    are fountain-mixed, so a receiver that missed some frames catches up from any later ones."""

    def __init__(self, message: bytes, max_fragment_len: int, first_seq_num: int = 0,
                 min_fragment_len: int = 10):
        message = bytes(message)
        for name, value in (("max_fragment_len", max_fragment_len), ("first_seq_num", first_seq_num),
                            ("min_fragment_len", min_fragment_len)):
            if isinstance(value, bool) or not isinstance(value, int):
                raise TransportError(f"{name} must be a whole number, not {value!r}")
        if len(message) >= 2**32:
            raise TransportError("a UR message must be shorter than 4 GiB")
        if not 0 <= first_seq_num < 2**32:
            raise TransportError("first_seq_num must be a 32-bit unsigned integer")
        self.message_len = len(message)
        self.checksum = crc32(message)
        self.fragment_len = find_nominal_fragment_length(len(message), min_fragment_len, max_fragment_len)
        self.fragments = partition_message(message, self.fragment_len)
        self.seq_num = first_seq_num
        self.last_part_indexes: "frozenset[int]" = frozenset()

    @property
    def seq_len(self) -> int:
        return len(self.fragments)

    @property
    def is_single_part(self) -> bool:
        return self.seq_len == 1

    @property
    def is_complete(self) -> bool:
        """True once at least ``seq_len`` parts have been emitted (enough for a lossless channel)."""
        return self.seq_num >= self.seq_len

    def _mix(self, indexes) -> bytes:
        acc = 0
        for i in indexes:
            acc ^= int.from_bytes(self.fragments[i], "little")
        return acc.to_bytes(self.fragment_len, "little")

    def next_part(self) -> FountainPart:
        self.seq_num = (self.seq_num + 1) & 0xFFFFFFFF  # wraps at 2**32 like the reference
        indexes = choose_fragments(self.seq_num, self.seq_len, self.checksum)
        self.last_part_indexes = indexes
        return FountainPart(self.seq_num, self.seq_len, self.message_len, self.checksum, self._mix(indexes))


class FountainDecoder:
    """Reassembles a message from fountain parts received in any order, with losses and repeats.

    Each part is one linear equation over GF(2): the XOR of the fragments ``choose_fragments``
    names. The decoder keeps the equations in reduced row-echelon form (Gaussian elimination with
    fragment sets as bit masks), so it finishes as soon as the parts received determine every
    fragment. That includes every case the reference's peeling decoder solves (which only
    subtracts a part from another whose fragments strictly contain it) and many it does not, so a
    scanner that missed frames completes with fewer extra ones. The emitted parts, and therefore
    interoperability, are unchanged.

    ``progress`` is the reference's estimate: processed parts / (1.75 x fragments), capped at 0.99
    until the message is complete, then 1.0. It never decreases.
    """

    def __init__(self, max_message_len: int = DEFAULT_MAX_MESSAGE_LEN,
                 max_fragments: int = DEFAULT_MAX_FRAGMENTS):
        self.max_message_len = max_message_len
        self.max_fragments = max_fragments
        self.reset()

    def reset(self) -> None:
        """Forget everything received (start a new scan)."""
        self.expected_count: "int | None" = None
        self.expected_message_len: "int | None" = None
        self.expected_checksum: "int | None" = None
        self.expected_fragment_len: "int | None" = None
        self.received_indexes: "set[int]" = set()
        self.last_part_indexes: "frozenset[int]" = frozenset()
        self.processed_parts_count = 0
        self.result: "bytes | None" = None
        self._rows: "dict[int, list[int]]" = {}  # pivot bit -> [fragment mask, XOR of fragments]

    # -- state ---------------------------------------------------------------------------------

    @property
    def is_complete(self) -> bool:
        return self.result is not None

    @property
    def expected_part_count(self) -> "int | None":
        return self.expected_count

    @property
    def progress(self) -> float:
        if self.is_complete:
            return 1.0
        if self.expected_count is None:
            return 0.0
        return min(0.99, self.processed_parts_count / (self.expected_count * 1.75))

    # -- receiving -----------------------------------------------------------------------------

    def validate_part(self, part: FountainPart) -> None:
        """Raise TransportError if ``part`` is malformed, ForeignFrameError if it belongs to another
        message than the parts received so far."""
        if part.seq_num < 1 or part.seq_len < 1 or part.message_len < 1 or not part.data:
            raise TransportError("a UR frame has a zero sequence number, length or empty data: it is corrupt")
        if part.message_len > self.max_message_len:
            raise TransportError(
                f"a UR frame announces a {part.message_len}-byte message, more than the limit of "
                f"{self.max_message_len} bytes: refusing it"
            )
        if part.seq_len > self.max_fragments:
            raise TransportError(
                f"a UR frame announces {part.seq_len} fragments, more than the limit of "
                f"{self.max_fragments}: refusing it (ask for larger fragments if this is genuine)"
            )
        if part.seq_len != -(-part.message_len // len(part.data)):
            raise TransportError(
                f"a UR frame says the message is {part.message_len} bytes in {part.seq_len} fragments of "
                f"{len(part.data)} bytes, which does not add up: the frame is corrupt"
            )
        if self.expected_count is None:
            return
        if (part.checksum, part.message_len, part.seq_len, len(part.data)) != (
            self.expected_checksum, self.expected_message_len, self.expected_count,
            self.expected_fragment_len,
        ):
            raise ForeignFrameError(
                f"this frame belongs to a different transfer (checksum {part.checksum:08x}, "
                f"{part.seq_len} parts, {part.message_len} bytes) than the one being collected "
                f"(checksum {self.expected_checksum:08x}, {self.expected_count} parts, "
                f"{self.expected_message_len} bytes): show one animated QR at a time, or start the "
                "scan again if the first frame came from the wrong code"
            )

    def receive_part(self, part: FountainPart) -> bool:
        """Process one part. Returns False (and ignores it) if the message is already complete."""
        self.validate_part(part)
        if self.is_complete:
            return False
        if self.expected_count is None:
            self.expected_count = part.seq_len
            self.expected_message_len = part.message_len
            self.expected_checksum = part.checksum
            self.expected_fragment_len = len(part.data)
        indexes = choose_fragments(part.seq_num, part.seq_len, part.checksum)
        self.last_part_indexes = indexes
        mask = 0
        for i in indexes:
            mask |= 1 << i
        self._add_equation(mask, int.from_bytes(part.data, "little"))
        self.processed_parts_count += 1
        if len(self.received_indexes) == self.expected_count:
            self._finish()
        return True

    def _add_equation(self, mask: int, value: int) -> None:
        rows = self._rows
        # Reduce by the existing pivots. Rows are fully reduced, so XORing one never brings in
        # another pivot bit: one pass over the bits of the original mask is enough.
        m = mask
        while m:
            low = m & -m
            m ^= low
            row = rows.get(low.bit_length() - 1)
            if row is not None:
                mask ^= row[0]
                value ^= row[1]
        if not mask:
            return  # a duplicate, or implied by the parts already received
        pivot = (mask & -mask).bit_length() - 1
        bit = 1 << pivot
        for p, row in rows.items():  # keep the form reduced: clear the new pivot from every row
            if row[0] & bit:
                row[0] ^= mask
                row[1] ^= value
                if row[0] == 1 << p:
                    self.received_indexes.add(p)
        rows[pivot] = [mask, value]
        if mask == bit:
            self.received_indexes.add(pivot)

    def _finish(self) -> None:
        n = self.expected_fragment_len
        fragments = [self._rows[i][1].to_bytes(n, "little") for i in range(self.expected_count)]
        message = join_fragments(fragments, self.expected_message_len)
        if crc32(message) != self.expected_checksum:
            checksum = self.expected_checksum
            self.reset()
            raise TransportError(
                f"the reassembled message fails its checksum ({checksum:08x}): frames from two "
                "different transfers were mixed or one was corrupted; the scan was reset, scan again"
            )
        self.result = message
        self._rows = {}

"""Daily closes of trading pairs (BTC/USD, BTC/EUR, ...) for the reserve's mark-to-market.

A :class:`PriceSource` answers "the close of PAIR on DAY", or None when it has none (a missing
price is reported, never guessed). Two sources ship: :class:`FilePriceSource`, an offline CSV or
JSON file of daily closes (the default; a small illustrative sample is shipped, see
:func:`sample_path`), and :class:`HttpPriceSource`, an adapter for an exchange or index API
(a URL template and a field path into its JSON answer). Every :class:`Price` carries its source
and the time it was observed. Closes are :class:`~decimal.Decimal`, never floats.
"""

from __future__ import annotations

import csv
import datetime as _dt
import io
import json
import re
import time
import zlib
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any, Iterable, Mapping, Optional, Protocol, Sequence

from ..errors import MsigvaultError
from ..fileio import read_bounded

MAX_PRICE_FILE_BYTES = 16 * 1024 * 1024  # a larger price file is refused before it is read
MAX_PRICE_ROWS = 200_000
MAX_HTTP_BYTES = 1024 * 1024  # an API answer larger than this is refused
MAX_CLOSE = Decimal("1e15")  # quote units per BTC; anything above is a typo or an attack
MAX_DECIMALS = 12
MAX_TEXT = 200  # source names and timestamps
COLUMNS = ("pair", "date", "close", "source")
_PAIR = re.compile(r"BTC/[A-Z]{3,5}")


class ValuationError(MsigvaultError):
    """The reserve's valuation cannot be computed as asked (base class of the valuation errors)."""

    code = "valuation.error"


class PriceFileError(ValuationError):
    """A price file is malformed, too large, or contradicts itself (``path``, ``line``)."""

    code = "valuation.price-file"


class PriceSourceError(ValuationError):
    """A price API could not be reached or gave an answer that is not a price."""

    code = "valuation.price-source"


@dataclass(frozen=True)
class Price:
    """The close of ``pair`` (``BTC/QUOTE``) on ``day``: ``close`` quote units per 1 BTC, from
    ``source``, observed at ``timestamp`` (ISO 8601, UTC)."""

    pair: str
    day: _dt.date
    close: Decimal
    source: str
    timestamp: str

    def to_dict(self) -> "dict[str, str]":
        return {"pair": self.pair, "date": self.day.isoformat(), "close": str(self.close), "source": self.source,
                "timestamp": self.timestamp}

    @classmethod
    def from_dict(cls, obj: object) -> "Price":
        """Parse ``to_dict()``'s shape (what the series file keeps); PriceFileError if malformed."""
        if not isinstance(obj, dict):
            raise PriceFileError("a price record is a JSON object")
        return make_price(obj.get("pair"), obj.get("date"), obj.get("close"), obj.get("source"),
                          obj.get("timestamp"))


class PriceSource(Protocol):
    """Where closes come from. ``price`` returns None when the source has no close that day."""

    name: str

    def price(self, pair: str, day: _dt.date) -> Optional[Price]:
        """The close of ``pair`` on ``day``, or None."""
        ...  # pragma: no cover


def check_pair(pair: object) -> str:
    """``pair`` as ``BTC/QUOTE`` (upper case, 3 to 5 letters); PriceFileError otherwise."""
    text = str(pair).strip().upper() if isinstance(pair, str) else ""
    if not _PAIR.fullmatch(text):
        raise PriceFileError(f"{str(pair)[:20]!r} is not a trading pair: write BTC/USD, BTC/EUR, BTC/KZT, ...",
                             field="pair")
    return text


def parse_day(value: object, what: str = "date") -> _dt.date:
    """A calendar day written YYYY-MM-DD."""
    if isinstance(value, _dt.date) and not isinstance(value, _dt.datetime):
        return value
    if isinstance(value, str) and re.fullmatch(r"\d{4}-\d{2}-\d{2}", value.strip()):
        try:
            return _dt.date.fromisoformat(value.strip())
        except ValueError:
            pass
    raise PriceFileError(f"the {what} must be a day written YYYY-MM-DD, not {str(value)[:30]!r}", field=what)


def parse_close(value: object) -> Decimal:
    """A positive decimal close with at most 12 decimals, below 10^15 (a string or a JSON number)."""
    if isinstance(value, bool) or not isinstance(value, (str, int, Decimal)):
        raise PriceFileError(f"a close is a decimal number such as 43210.55, not {str(value)[:30]!r}",
                             field="close")
    text = str(value).strip()
    if len(text) > 40 or not re.fullmatch(r"\d+(\.\d+)?", text):
        raise PriceFileError(f"a close is a decimal number such as 43210.55, not {text[:30]!r}", field="close")
    try:
        close = Decimal(text)
    except InvalidOperation:  # pragma: no cover - the pattern admits only valid decimals
        raise PriceFileError(f"{text[:30]!r} is not a decimal number", field="close") from None
    exponent = close.as_tuple().exponent
    if not 0 < close < MAX_CLOSE or (isinstance(exponent, int) and -exponent > MAX_DECIMALS):
        raise PriceFileError(f"a close must be above 0 and below 10^15 with at most {MAX_DECIMALS} decimals, "
                             f"not {text[:30]}", field="close")
    return close


def _text(value: object, what: str) -> str:
    if not isinstance(value, str) or not value.strip() or len(value) > MAX_TEXT or not value.isprintable():
        raise PriceFileError(f"the {what} must be printable text of 1 to {MAX_TEXT} characters", field=what)
    return value.strip()


def _timestamp(value: object, day: _dt.date) -> str:
    """An ISO 8601 time; the end of ``day`` (UTC) when none is given (a daily close)."""
    if value is None or value == "":
        return f"{day.isoformat()}T23:59:59Z"
    text = _text(value, "timestamp")
    try:
        _dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise PriceFileError(f"the timestamp must be ISO 8601 (2026-12-01T23:59:59Z), not {text[:30]!r}",
                             field="timestamp") from None
    return text


def make_price(pair: object, day: object, close: object, source: object, timestamp: object = None) -> Price:
    """A checked :class:`Price` from raw fields (PriceFileError naming the bad field)."""
    d = parse_day(day)
    return Price(check_pair(pair), d, parse_close(close), _text(source, "source"), _timestamp(timestamp, d))


class FilePriceSource:
    """Daily closes from a CSV or JSON file (the offline default).

    CSV: a header with at least ``pair,date,close,source`` (and optionally ``timestamp``), one close
    per line. JSON: a list of such objects, or ``{"prices": [...]}``; closes as strings or numbers
    (read as decimals, never floats). One close per (pair, date): a second one is an error.
    """

    def __init__(self, prices: Iterable[Price], *, name: str = "price file"):
        self.name = name
        self._by_key: "dict[tuple[str, _dt.date], Price]" = {}
        for p in prices:
            key = (p.pair, p.day)
            if key in self._by_key and self._by_key[key].close != p.close:
                raise PriceFileError(f"{name} gives two different closes of {p.pair} on {p.day}: keep one")
            self._by_key[key] = p

    @classmethod
    def load(cls, path: "str | Path") -> "FilePriceSource":
        """Read a ``.csv`` or ``.json`` price file (by its content: JSON starts with ``[`` or ``{``)."""
        p = Path(path)
        raw = read_bounded(p, MAX_PRICE_FILE_BYTES, PriceFileError, "price file")
        try:
            text = raw.decode("utf-8-sig")
        except UnicodeDecodeError:
            raise PriceFileError(f"{p} is not UTF-8 text", path=p) from None
        try:
            prices = parse_json(text) if text.lstrip()[:1] in ("[", "{") else parse_csv(text)
        except PriceFileError as e:
            raise e.locate(path=p)
        return cls(prices, name=str(p))

    def price(self, pair: str, day: _dt.date) -> Optional[Price]:
        return self._by_key.get((check_pair(pair), day))

    @property
    def prices(self) -> "list[Price]":
        return sorted(self._by_key.values(), key=lambda p: (p.pair, p.day))


def parse_csv(text: str) -> "list[Price]":
    """Prices from CSV text (header ``pair,date,close,source[,timestamp]``; ``#`` lines are comments)."""
    lines = [ln for ln in text.splitlines() if not ln.lstrip().startswith("#")]
    reader = csv.DictReader(io.StringIO("\n".join(lines)))
    try:
        header = [h.strip() for h in (reader.fieldnames or [])]
    except csv.Error as e:  # a field above the csv module's size limit, a stray quote...
        raise PriceFileError(f"the price file's header is not CSV ({e})") from None
    missing = [c for c in COLUMNS if c not in header]
    if missing:
        raise PriceFileError(f"the price file's header lacks {', '.join(missing)} "
                             f"(it needs {','.join(COLUMNS)}[,timestamp])")
    out = []
    for n, row in enumerate(_rows(reader), start=2):
        if n > MAX_PRICE_ROWS + 1:
            raise PriceFileError(f"a price file holds at most {MAX_PRICE_ROWS} closes", limit=MAX_PRICE_ROWS)
        row = {(k or "").strip(): (v or "").strip() if isinstance(v, str) else v for k, v in row.items()}
        try:
            out.append(make_price(row.get("pair"), row.get("date"), row.get("close"), row.get("source"),
                                  row.get("timestamp")))
        except PriceFileError as e:
            raise e.locate(line=n)
    return out


def _rows(reader: "csv.DictReader[str]") -> "Iterable[dict[str, Any]]":
    """The reader's rows; PriceFileError naming the line where the csv module gives up."""
    while True:
        try:
            row = next(reader)
        except StopIteration:
            return
        except csv.Error as e:
            line = reader.line_num + 1  # the line being read when the csv module gave up
            raise PriceFileError(f"the price file is not CSV near line {line} ({e})", line=line) from None
        yield row


def parse_json(text: str) -> "list[Price]":
    """Prices from JSON text: a list of records or ``{"prices": [...]}``."""
    try:
        data = json.loads(text, parse_float=Decimal)
    except (ValueError, RecursionError):  # ValueError: also an integer of more than 4,300 digits
        raise PriceFileError("the price file is not valid JSON") from None
    records = data.get("prices") if isinstance(data, dict) else data
    if not isinstance(records, list):
        raise PriceFileError('a JSON price file is a list of closes, or {"prices": [...]}')
    if len(records) > MAX_PRICE_ROWS:
        raise PriceFileError(f"a price file holds at most {MAX_PRICE_ROWS} closes", limit=MAX_PRICE_ROWS)
    out = []
    for i, r in enumerate(records):
        if not isinstance(r, dict):
            raise PriceFileError(f"price record {i + 1} is not a JSON object")
        try:
            out.append(make_price(r.get("pair"), r.get("date"), r.get("close"), r.get("source"), r.get("timestamp")))
        except PriceFileError as e:
            raise PriceFileError(f"price record {i + 1}: {e}", field=e.field) from None
    return out


def sample_path() -> Path:
    """The shipped sample of daily closes (BTC/USD, BTC/EUR, BTC/KZT). ILLUSTRATIVE, not market data."""
    return Path(__file__).with_name("data") / "sample_prices.csv"


def sample() -> FilePriceSource:
    """The shipped illustrative sample as a price source (see :func:`sample_path`)."""
    return FilePriceSource.load(sample_path())


# -- an exchange or index API ---------------------------------------------------------------------


def _template_fields(pair: str, day: _dt.date) -> "dict[str, str]":
    base, quote = pair.split("/")
    start = _dt.datetime(day.year, day.month, day.day, tzinfo=_dt.timezone.utc)
    return {"base": base, "quote": quote, "base_lower": base.lower(), "quote_lower": quote.lower(),
            "pair": f"{base}-{quote}", "date": day.isoformat(), "dmy": day.strftime("%d-%m-%Y"),
            "year": f"{day.year:04d}", "month": f"{day.month:02d}", "day": f"{day.day:02d}",
            "unix": str(int(start.timestamp()))}


TEMPLATE_FIELDS = tuple(_template_fields("BTC/USD", _dt.date(2026, 1, 1)))


def _fill(template: str, values: Mapping[str, str], what: str) -> str:
    try:
        return template.format_map(values)
    except (KeyError, IndexError, ValueError) as e:
        raise PriceSourceError(f"the {what} {template[:80]!r} uses an unknown or malformed field ({e}); "
                               f"it may use {{{'}, {'.join(TEMPLATE_FIELDS)}}}") from None


def _walk(data: Any, path: str) -> Any:
    """``data`` followed along ``path`` (dot-separated keys; whole numbers index lists)."""
    node = data
    for step in path.split("."):
        if isinstance(node, list) and re.fullmatch(r"-?\d{1,6}", step):
            idx = int(step)
            if -len(node) <= idx < len(node):
                node = node[idx]
                continue
        elif isinstance(node, dict) and step in node:
            node = node[step]
            continue
        raise PriceSourceError(f"the answer has no field {path!r} (stopped at {step!r}): check --price-field")
    return node


class HttpPriceSource:
    """Closes from an exchange or index HTTP API: ``url_template`` is filled with the pair and day
    (``{base}``, ``{quote}``, ``{quote_lower}``, ``{pair}`` = ``BTC-USD``, ``{date}`` =
    YYYY-MM-DD, ``{dmy}`` = DD-MM-YYYY, ``{year}``, ``{month}``, ``{day}``, ``{unix}`` = the
    day's start), the JSON answer is followed along ``field_path`` (same fields; ``a.b.0.c``) to
    the close. HTTP 404 means "no close that day" (None). Needs the online extra (httpx).

    A hostile or broken API cannot hold the valuation or the machine: redirects are not followed,
    ``timeout`` bounds each network wait and ``deadline`` the whole answer (a server dripping one
    byte at a time), the body is read up to :data:`MAX_HTTP_BYTES` *after* decompression (gzip or
    deflate, decoded here in bounded steps: a compression bomb stops at the limit)."""

    def __init__(self, url_template: str, field_path: str, *, name: str = "price API", timeout: float = 10.0,
                 deadline: float = 30.0, headers: Optional[Mapping[str, str]] = None, transport: Any = None):
        if not re.match(r"https?://", url_template):
            raise PriceSourceError("the price URL must start with http:// or https://")
        for what, value in (("timeout", timeout), ("deadline", deadline)):
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value <= 600:
                raise PriceSourceError(f"the price API {what} is 0 to 600 seconds, not {value!r}", field=what)
        self.url_template = url_template
        self.field_path = field_path
        self.name = name
        self.timeout = timeout
        self.deadline = deadline
        self.headers = dict(headers or {})
        self._transport = transport

    def url(self, pair: str, day: _dt.date) -> str:
        return _fill(self.url_template, _template_fields(check_pair(pair), day), "price URL")

    def price(self, pair: str, day: _dt.date) -> Optional[Price]:
        pair = check_pair(pair)
        url = self.url(pair, day)
        status, body = self._get(url)
        where = _redact(url)
        if status == 404:
            return None
        if status != 200:
            raise PriceSourceError(f"{where} answered HTTP {status}: check the URL template and the API's terms")
        try:
            data = json.loads(body, parse_float=Decimal)
        except (ValueError, RecursionError):  # ValueError: not UTF-8, not JSON, an integer of > 4,300 digits
            raise PriceSourceError(f"{where} did not answer with JSON") from None
        value = _walk(data, _fill(self.field_path, _template_fields(pair, day), "price field path"))
        if value is None:
            return None
        try:
            close = parse_close(value)
        except PriceFileError as e:
            raise PriceSourceError(f"{where}: {e}") from None
        observed = _dt.datetime.now(_dt.timezone.utc).replace(microsecond=0).isoformat().replace("+00:00", "Z")
        return Price(pair, day, close, f"{self.name} {where}"[:MAX_TEXT], observed)

    def _get(self, url: str) -> "tuple[int, bytes]":
        try:
            import httpx
        except ImportError:  # pragma: no cover - the online extra is missing
            raise PriceSourceError("the HTTP price source needs the online extra: pip install 'msigvault[online]'") \
                from None
        where = _redact(url)
        started = time.monotonic()
        try:
            with httpx.Client(timeout=self.timeout, transport=self._transport, follow_redirects=False,
                              headers={"User-Agent": "msigvault", "Accept-Encoding": "gzip, deflate",
                                       **self.headers}) as client:
                with client.stream("GET", url) as resp:
                    decoder = _decoder(resp.headers.get("content-encoding", ""), where)
                    chunks, size = [], 0
                    for raw in resp.iter_raw():
                        chunk = decoder.decompress(raw, MAX_HTTP_BYTES + 1 - size) if decoder else raw
                        size += len(chunk)
                        if size > MAX_HTTP_BYTES or (decoder is not None and decoder.unconsumed_tail):
                            raise PriceSourceError(f"{where} answered with more than {MAX_HTTP_BYTES} bytes: "
                                                   "that is not one price", limit=MAX_HTTP_BYTES)
                        if time.monotonic() - started > self.deadline:
                            raise PriceSourceError(f"{where} took more than {self.deadline:g} s to answer: "
                                                   "that is not a price API in working order", limit=self.deadline)
                        chunks.append(chunk)
                    return resp.status_code, b"".join(chunks)
        except zlib.error:
            raise PriceSourceError(f"{where} answered with a damaged compressed body") from None
        except httpx.TimeoutException:
            raise PriceSourceError(f"{where} did not answer within {self.timeout:g} s") from None
        except httpx.HTTPError as e:
            raise PriceSourceError(f"cannot reach {where} ({type(e).__name__}): is the price API reachable "
                                   "from here?") from None
        except httpx.InvalidURL:
            raise PriceSourceError(f"the price URL {where} is not a valid URL: check --price-url") from None


def _decoder(encoding: str, where: str) -> "Any":
    """A bounded decoder for the answer's Content-Encoding (None: identity)."""
    enc = encoding.strip().lower()
    if enc in ("", "identity"):
        return None
    if enc in ("gzip", "x-gzip", "deflate"):
        return zlib.decompressobj(wbits=47)  # gzip or zlib header, detected
    raise PriceSourceError(f"{where} answered with Content-Encoding {encoding[:40]!r}, which is not read here: "
                           "ask the API for plain or gzip JSON")


def _redact(url: str) -> str:
    """``url`` without a password or query string (API keys often travel there)."""
    from urllib.parse import urlsplit, urlunsplit

    parts = urlsplit(url)
    host = parts.hostname or ""
    try:
        port = parts.port
    except ValueError:  # a port out of range: shown as missing, the request then fails as an invalid URL
        port = None
    netloc = host + (f":{port}" if port else "")
    return urlunsplit((parts.scheme, netloc, parts.path, "", ""))


def closes(source: PriceSource, pairs: Sequence[str], day: _dt.date) -> "dict[str, Optional[Price]]":
    """{pair: the close on ``day`` or None} for each pair."""
    return {check_pair(p): source.price(check_pair(p), day) for p in pairs}

"""BIP388 wallet policies: a descriptor template plus a key information vector.

``wsh(sortedmulti(2,@0/**,@1/**))`` with ``["[6738736c/48'/0'/0'/2']xpub...", "[b2b1f0cf/...]xpub..."]``.
Ledger, BitBox02, Jade (libwally) and BTCPay register multisig wallets in this form.

Files: JSON ``{"name": ..., "descriptor_template": ..., "keys_info": [...]}`` (the fields of
Ledger's ``WalletPolicy``; ``template``/``keys`` are accepted as well), or the two-line text the BIP's
test vectors use (``Descriptor template: ...`` / ``Keys info: [...]``).

Every BIP388 rule is checked (placeholders in order, none skipped, none without a derivation or
with an explicit path, multipath pairs of two distinct unhardened indexes, disjoint pairs for a
repeated placeholder, no literal keys, no derivation inside ``musig()``, distinct keys). msigvault
then accepts only the wallet policies that are m-of-n vaults: ``sh``/``sh(wsh)``/``wsh`` of
``multi``/``sortedmulti`` with each placeholder once, as ``/**`` (= ``/<0;1>/*``).

Taproot vaults cannot be exported: their internal key is the fixed BIP341 NUMS point, and a
BIP388 policy can only name keys through ``@i`` placeholders.
"""

from __future__ import annotations

import json
import re

from ..keys.keyexpr import parse_key_expression
from ..policy.vault import Vault
from ._common import FormatError, as_text, clean_name, context, load_json, parse_descriptor

FORMAT = "bip388"

_KP = re.compile(r"@([0-9]+)")
_DERIV = re.compile(r"/\*\*|/<([0-9]+);([0-9]+)>/\*")
_LITERAL_KEY = re.compile(r"\[|[a-zA-Z]pub[1-9A-HJ-NP-Za-km-z]{20,}|[a-zA-Z]prv[1-9A-HJ-NP-Za-km-z]{20,}|\b[0-9a-fA-F]{64,}\b")
_MAX_KEYS = 1000


def template_of(vault: Vault) -> str:
    if vault.script == "tr":
        raise FormatError(
            f"{FORMAT}: a taproot vault's internal key is the fixed BIP341 NUMS point, which a BIP388 wallet "
            "policy cannot express (every key must be an @i placeholder); export it with fmt='descriptor'"
        )
    inner = ",".join(f"@{i}/**" for i in range(vault.n))
    multi = f"{'sortedmulti' if vault.sorted else 'multi'}({vault.m},{inner})"
    return {"sh": "sh({})", "sh-wsh": "sh(wsh({}))", "wsh": "wsh({})"}[vault.script].format(multi)


def export(vault: Vault, *, name: str = "msigvault", form: str = "json") -> str:
    template = template_of(vault)
    keys = [c.origin("'") + c.xpub for c in vault.cosigners]
    if form == "json":
        name = clean_name(name, FORMAT)
        return json.dumps({"name": name, "descriptor_template": template, "keys_info": keys}, indent=2) + "\n"
    if form == "text":
        return f"Descriptor template: {template}\nKeys info: {json.dumps(keys)}\n"
    raise FormatError(f"{FORMAT}: unknown form {form!r}; use 'json' or 'text'")


def parse(text, *, network=None, fmt: str = FORMAT):
    text = as_text(text, fmt)
    stripped = text.strip()
    name = None
    if stripped.startswith("{"):
        obj = load_json(stripped, fmt)
        if not isinstance(obj, dict):
            raise FormatError(f"{fmt}: expected a JSON object with descriptor_template and keys_info")
        template = obj.get("descriptor_template", obj.get("template"))
        keys = obj.get("keys_info", obj.get("keys"))
        if isinstance(obj.get("name"), str):
            name = obj["name"]
    else:
        template, keys = _parse_text(stripped, fmt)
    if not isinstance(template, str):
        raise FormatError(f"{fmt}: missing the descriptor template (\"descriptor_template\")")
    if not isinstance(keys, list) or not all(isinstance(k, str) for k in keys):
        raise FormatError(f"{fmt}: the key information vector (\"keys_info\") must be a list of strings")
    vault, warnings = policy_to_vault(template, keys, network, fmt, with_warnings=True)
    return vault, name, warnings


def _parse_text(text: str, fmt: str):
    template = keys = None
    for line in text.split("\n"):
        head, sep, rest = line.strip().partition(":")
        if not sep:
            continue
        label = head.strip().lower()
        if label == "descriptor template":
            template = rest.strip()
        elif label in ("keys info", "keys_info"):
            keys = load_json(rest.strip(), fmt)
    if template is None or keys is None:
        raise FormatError(f"{fmt}: expected 'Descriptor template:' and 'Keys info:' lines, or the JSON form")
    return template, keys


def check_template(template: str, nkeys: int, fmt: str = FORMAT) -> "list[tuple[int, tuple[int, int]]]":
    """Apply BIP388's rules; return the placeholders in order as (key index, (receive, change))."""
    if not template or any(ch.isspace() for ch in template):
        raise FormatError(f"{fmt}: the descriptor template is empty or contains spaces")
    if "musig(" in template:
        if re.search(r"musig\([^)]*/", template):
            raise FormatError(f"{fmt}: derivation before aggregation (inside musig()) is not allowed in wallet policies")
        raise FormatError(f"{fmt}: musig() key placeholders make a MuSig2 policy, not an m-of-n multisig msigvault holds")
    if _LITERAL_KEY.search(_KP.sub("", template)):
        raise FormatError(f"{fmt}: the template contains a literal key; a wallet policy names keys only as @0, @1, ...")
    if template.count("@") != len(_KP.findall(template)):
        raise FormatError(f"{fmt}: every '@' in the template must be followed by a key index (@0, @1, ...)")
    found = []
    pairs: "dict[int, list[tuple[int, int]]]" = {}
    for m in _KP.finditer(template):
        digits = m.group(1)
        if len(digits) > 1 and digits[0] == "0":
            raise FormatError(f"{fmt}: key placeholder @{digits} has a leading zero")
        if len(digits) > 4:
            raise FormatError(f"{fmt}: key placeholder @{digits[:8]}... is out of range")
        i = int(digits)
        rest = template[m.end():]
        d = _DERIV.match(rest)
        if not d:
            if rest.startswith("/<") and ";" in rest.split(">", 1)[0] and rest.split(">", 1)[0].count(";") > 1:
                raise FormatError(f"{fmt}: @{i} has a multipath with more than 2 choices; wallet policies allow exactly 2")
            if rest.startswith("/"):
                raise FormatError(f"{fmt}: @{i} has an explicit derivation path; a placeholder is followed only by /** or /<M;N>/*")
            raise FormatError(f"{fmt}: key placeholder @{i} has no /** or /<M;N>/* after it")
        after = rest[d.end():d.end() + 1]
        if after not in (",", ")", "}"):
            raise FormatError(f"{fmt}: @{i} has derivation steps after its /** or /<M;N>/*")
        if d.group(0) == "/**":
            pair = (0, 1)
        else:
            if len(d.group(1)) > 10 or len(d.group(2)) > 10:
                raise FormatError(f"{fmt}: @{i}'s multipath index is out of range")
            pair = (int(d.group(1)), int(d.group(2)))
            if pair[0] == pair[1]:
                raise FormatError(f"{fmt}: @{i}/<{pair[0]};{pair[1]}>/* repeats an index; the two must differ")
            if max(pair) >= 0x80000000:
                raise FormatError(f"{fmt}: @{i}'s multipath indexes must be unhardened (below 2^31)")
        for earlier in pairs.get(i, []):
            if set(earlier) & set(pair):
                if earlier == pair:
                    raise FormatError(f"{fmt}: @{i} appears twice with the same derivation (a repeated key)")
                raise FormatError(f"{fmt}: @{i} appears with overlapping multipath derivations (a key would repeat)")
        pairs.setdefault(i, []).append(pair)
        found.append((i, pair))
    if not found:
        raise FormatError(f"{fmt}: the template has no key placeholder")
    order = []
    for i, _ in found:
        if i not in order:
            order.append(i)
    for pos, i in enumerate(order):
        if i != pos:
            if pos in order:
                raise FormatError(f"{fmt}: key placeholders are out of order: @{i} appears before @{pos}")
            raise FormatError(f"{fmt}: key placeholder @{pos} is skipped")
    if len(order) != nkeys:
        raise FormatError(
            f"{fmt}: the template uses {len(order)} key placeholder(s) but the key information vector has "
            f"{nkeys} key(s); both must match"
        )
    return found


def policy_to_vault(template: str, keys: "list[str]", network, fmt: str = FORMAT, *, with_warnings: bool = False):
    if not keys:
        raise FormatError(f"{fmt}: the key information vector is empty")
    if len(keys) > _MAX_KEYS:
        raise FormatError(f"{fmt}: {len(keys)} keys is more than any vault holds")
    for i, k in enumerate(keys):
        with context(fmt, f"key information @{i}: "):
            expr = parse_key_expression(k.strip())
        if expr.kind != "xpub" or expr.steps or expr.wildcard:
            raise FormatError(
                f"{fmt}: key information @{i} must be [fingerprint/path]xpub with nothing after the xpub"
            )
    placeholders = check_template(template, len(keys), fmt)
    if len(placeholders) != len(keys):
        raise FormatError(
            f"{fmt}: a key appears more than once in the template; an m-of-n vault uses each key once"
        )
    for i, pair in placeholders:
        if pair != (0, 1):
            raise FormatError(
                f"{fmt}: @{i}/<{pair[0]};{pair[1]}>/*: msigvault vaults receive on /0/* and change on /1/*, "
                "so each key must be @i/** or @i/<0;1>/*"
            )

    def substitute(m):
        return keys[int(m.group(1))].strip()

    desc = _KP.sub(substitute, template).replace("/**", "/<0;1>/*")
    parsed = parse_descriptor(desc, fmt, allow=("multipath",))
    with context(fmt):
        vault, warnings = parsed.build(network, fmt)
    return (vault, warnings) if with_warnings else vault

"""The error contract: every MsigvaultError class has its own stable code, docs/errors.md lists
exactly those codes, and errors carry structured fields that to_dict() returns."""

import importlib
import pickle
import pkgutil
import re
from pathlib import Path

import pytest

import msigvault
from msigvault import errors as E

DOC = Path(__file__).resolve().parent.parent / "docs" / "errors.md"
ROW = re.compile(r"^\| `([^`]+)` \| `([A-Za-z_][A-Za-z0-9_]*)` \|", re.M)


def _all_error_classes() -> "list[type]":
    for info in pkgutil.walk_packages(msigvault.__path__, "msigvault."):
        if not info.name.endswith("__main__"):  # __main__ runs the CLI
            importlib.import_module(info.name)
    found, todo = [], [E.MsigvaultError]
    while todo:
        cls = todo.pop()
        if cls not in found:
            found.append(cls)
            todo.extend(cls.__subclasses__())
    return [c for c in found if c.__module__.startswith("msigvault.") and not c.__name__.startswith("_")]


CLASSES = _all_error_classes()


def _documented() -> "dict[str, str]":
    rows = ROW.findall(DOC.read_text().split("\n## The codes\n", 1)[1])
    codes = [code for code, _ in rows]
    assert len(codes) == len(set(codes)), "a code is listed twice in docs/errors.md"
    return dict(rows)


def test_every_class_has_its_own_code():
    missing = [f"{c.__module__}.{c.__name__}" for c in CLASSES if "code" not in c.__dict__]
    assert not missing, f"these error classes inherit their code instead of defining one: {missing}"


def test_no_two_classes_share_a_code():
    seen: "dict[str, str]" = {}
    for c in CLASSES:
        name = f"{c.__module__}.{c.__name__}"
        assert c.code not in seen, f"{name} and {seen[c.code]} share the code {c.code!r}"
        seen[c.code] = name


def test_codes_are_short_dotted_kebab_strings():
    for c in CLASSES:
        assert isinstance(c.code, str) and re.fullmatch(r"[a-z0-9]+(?:[.-][a-z0-9]+)*", c.code), (c, c.code)


def test_the_table_lists_exactly_the_codes_that_exist():
    documented = _documented()
    actual = {c.code: c.__name__ for c in CLASSES}
    assert set(documented) == set(actual), (
        f"undocumented: {sorted(set(actual) - set(documented))}; "
        f"documented but gone: {sorted(set(documented) - set(actual))}"
    )
    wrong = {code: (documented[code], cls) for code, cls in actual.items() if documented[code] != cls}
    assert not wrong, f"docs/errors.md names the wrong class for: {wrong}"


def test_docs_index_and_api_link_the_error_page():
    docs = DOC.parent
    for page in ("index.md", "api.md"):
        assert "(errors.md)" in (docs / page).read_text(), page


def test_specific_refusals_stay_kinds_of_todays_classes():
    for cls in (E.FeeLimitExceeded, E.ForeignInput, E.ForeignKey, E.ChangeFraud, E.IndexLimitExceeded,
                E.SighashRefused, E.MissingPreviousTx, E.UtxoMismatch, E.RegistrationError):
        assert issubclass(cls, E.SignerRefusal)
    assert issubclass(E.NotEnoughSignatures, E.FinalizeError)


def test_a_message_alone_still_works():
    e = E.InvalidPSBT("bad")
    assert str(e) == "bad" and e.message == "bad"
    assert e.to_dict() == {"code": "psbt.invalid", "message": "bad"}
    assert e.input_index is None and e.fields() == {}


def test_fields_are_keyword_only_and_returned_by_to_dict():
    e = E.SighashRefused("input 3 asks for NONE", input_index=3, field="PSBT_IN_SIGHASH_TYPE")
    assert e.to_dict() == {"code": "signer.sighash", "message": "input 3 asks for NONE", "input": 3,
                           "field": "PSBT_IN_SIGHASH_TYPE"}
    assert E.InvalidPSBT("x", 3).input_index is None  # positional arguments are the message's
    with pytest.raises(TypeError):
        E.InvalidPSBT("x").locate(index=3)  # no such field


def test_fingerprints_and_paths_are_normalised():
    e = E.KeystoreError("x", fingerprint=bytes.fromhex("d34db33f"), path=Path("/tmp/a.key"))
    assert e.to_dict() == {"code": "keystore.error", "message": "x", "fingerprint": "d34db33f", "path": "/tmp/a.key"}


def test_locate_fills_only_what_is_unset():
    e = E.InvalidPSBT("x", field="PSBT_IN_WITNESS_UTXO")
    assert e.locate(field="PSBT_IN_PARTIAL_SIG", input_index=2) is e
    assert (e.field, e.input_index) == ("PSBT_IN_WITNESS_UTXO", 2)


def test_fields_survive_pickling():
    e = pickle.loads(pickle.dumps(E.FeeLimitExceeded("too much", limit=1000)))
    assert type(e) is E.FeeLimitExceeded and e.limit == 1000 and str(e) == "too much"


def test_an_instance_attribute_named_code_cannot_change_the_reported_code():
    e = E.ChainError("the node said no")
    e.code = -26  # what a backend's RPC error number once was called
    assert e.to_dict()["code"] == "chain.error"


def test_narrow_keeps_the_roles_own_classes():
    assert E.narrow(E.SignerRefusal, E.ForeignInput) is E.ForeignInput
    assert E.narrow(E.CombineError, E.ForeignInput) is E.CombineError

"""Pseudonym tokens: marketing HMAC and kyc (vault HMAC, AES-SIV), joins, separation,
rotation, no leaks. The kyc vault itself: tests/test_pseudonym_vault.py."""

from __future__ import annotations

import hashlib
import hmac

import polars as pl
import pytest

from engine.errors import KeyMaterialError, PolicyError
from engine.pseudonym import Keyring, Pseudonymiser, parse_token
from engine.pseudonym.keyring import KeyVersion

MASTER = bytes(range(32))


@pytest.fixture
def ring() -> Keyring:
    return Keyring({1: KeyVersion(1, "2026-01-01", MASTER)})


def test_marketing_token_is_truncated_hmac_of_normalised_value(ring: Keyring) -> None:
    p = Pseudonymiser(ring)
    [tok] = p.tokenise(["  Ana@Example.COM "], "email", "marketing", "email")
    key = ring.derive("marketing", "email", 1).hex().encode()
    expected = hmac.new(key, b"ana@example.com", hashlib.sha256).hexdigest()[:32]
    assert tok == f"m1.{expected}"
    assert len(tok.split(".")[1]) * 4 >= 128


def test_nulls_stay_null_in_both_domains(ring: Keyring) -> None:
    p = Pseudonymiser(ring)
    for domain in ("marketing", "kyc"):
        assert p.tokenise([None, "x", None], "customer_id", domain)[0::2] == [None, None]


def test_same_value_same_token_across_sources_so_joins_work(ring: Keyring) -> None:
    p = Pseudonymiser(ring)
    crm = pl.DataFrame({"customer_id": ["C1", "C2", "C3"], "seg": [1, 2, 3]})
    loans = pl.DataFrame({"customer_id": ["C3", "C1", "C1"], "amount": [10.0, 20.0, 30.0]})
    for domain in ("marketing", "kyc"):
        expr = p.token_expr("customer_id", domain)
        a = crm.with_columns(expr)
        b = loans.with_columns(expr)
        joined = b.join(a, on="customer_id", how="inner")
        assert joined.height == 3
        assert sorted(joined["seg"].to_list()) == [1, 1, 3]
        assert not set(a["customer_id"]) & {"C1", "C2", "C3"}


def test_domains_and_columns_give_unrelated_tokens(ring: Keyring) -> None:
    p = Pseudonymiser(ring)
    m_id = p.tokenise(["C1"], "customer_id", "marketing")[0]
    m_email = p.tokenise(["C1"], "email", "marketing")[0]
    k_id = p.tokenise(["C1"], "customer_id", "kyc")[0]
    s_id = Pseudonymiser(ring, scheme="siv").tokenise(["C1"], "customer_id", "kyc")[0]
    assert m_id is not None and m_email is not None and k_id is not None and s_id is not None
    assert m_id.split(".")[1] != m_email.split(".")[1]
    # The kyc HMAC token uses its own key: it never equals the marketing token's body.
    assert k_id.split(".")[1] != m_id.split(".")[1]
    assert k_id.startswith("kv1.") and s_id.startswith("k1.") and m_id.startswith("m1.")


def test_kyc_tokens_are_deterministic_and_reversible(ring: Keyring) -> None:
    p = Pseudonymiser(ring, scheme="siv")
    toks = p.tokenise(["C1", "C2", "C1"], "customer_id", "kyc")
    assert toks[0] == toks[2] != toks[1]
    assert p.reveal([t for t in toks if t], "customer_id") == ["C1", "C2", "C1"]
    assert Pseudonymiser(Keyring({1: KeyVersion(1, "", MASTER)}), scheme="siv").tokenise(
        ["C1"], "customer_id", "kyc"
    ) == [toks[0]]


def test_wrong_key_wrong_column_or_altered_token_fails_authentication(ring: Keyring) -> None:
    p = Pseudonymiser(ring, scheme="siv")
    [tok] = p.tokenise(["C1"], "customer_id", "kyc")
    assert tok is not None
    other = Pseudonymiser(Keyring({1: KeyVersion(1, "", b"\x07" * 32)}), scheme="siv")
    with pytest.raises(KeyMaterialError, match="failed authentication"):
        other.reveal([tok], "customer_id")
    with pytest.raises(KeyMaterialError, match="failed authentication"):
        p.reveal([tok], "national_id")
    body = tok.split(".", 1)[1]
    flipped = tok[:3] + ("A" if body[0] != "A" else "B") + body[1:]
    with pytest.raises(KeyMaterialError, match="failed authentication"):
        p.reveal([flipped], "customer_id")
    with pytest.raises(KeyMaterialError):
        p.reveal(["not-a-token"], "customer_id")


def test_marketing_tokens_cannot_be_revealed(ring: Keyring) -> None:
    p = Pseudonymiser(ring)
    [tok] = p.tokenise(["C1"], "customer_id", "marketing")
    assert tok is not None
    with pytest.raises(KeyMaterialError, match="irreversible"):
        p.reveal([tok], "customer_id")


def test_rotation_new_version_in_tokens_old_still_reveal(ring: Keyring) -> None:
    old = Pseudonymiser(ring, scheme="siv")
    [t1] = old.tokenise(["C1"], "customer_id", "kyc")
    rotated = ring.with_new_version()
    new = Pseudonymiser(rotated, scheme="siv")
    [t2] = new.tokenise(["C1"], "customer_id", "kyc")
    [m2] = new.tokenise(["C1"], "customer_id", "marketing")
    assert t1 is not None and t2 is not None and m2 is not None
    assert parse_token(t1).version == 1 and parse_token(t2).version == 2
    assert m2.startswith("m2.")
    assert t1 != t2  # the linkage trade-off: versions do not link
    assert new.reveal([t1, t2], "customer_id") == ["C1", "C1"]
    # Re-pseudonymisation from source under an old version stays possible while it is kept.
    assert Pseudonymiser(rotated, version=1, scheme="siv").tokenise(
        ["C1"], "customer_id", "kyc"
    ) == [t1]
    with pytest.raises(KeyMaterialError):
        Pseudonymiser(rotated, version=5)


def test_unknown_domain_is_a_policy_error(ring: Keyring) -> None:
    with pytest.raises(PolicyError, match="unknown pseudonymisation domain"):
        Pseudonymiser(ring).token_expr("email", "analytics")


def test_key_material_not_in_repr_or_explain(ring: Keyring) -> None:
    p = Pseudonymiser(ring)
    lf = pl.LazyFrame({"email": ["a@b.co"]}).with_columns(
        p.token_expr("email", "marketing", "email")
    )
    secrets_hex = {
        MASTER.hex(),
        ring.derive("marketing", "email").hex(),
        ring.derive("kyc", "email", length=64).hex(),
        ring.derive("kyc_token", "email").hex(),
    }
    lf = lf.with_columns(p.token_expr("email", "kyc", "email").alias("k"))
    for text in (repr(p), lf.explain()):
        assert not any(s in text for s in secrets_hex)


def test_token_parser_refuses_anything_else() -> None:
    for bad in ["", "m.abc", "x1.abc", "m0.abc", "m1.", "k1.ab$c", "k1.abc\n"]:
        with pytest.raises(KeyMaterialError):
            parse_token(bad)


def test_kyc_batches_give_the_same_tokens_whether_values_repeat_or_not(ring: Keyring) -> None:
    p = Pseudonymiser(ring, scheme="siv")
    distinct = [f"CUST-{i:06d}" for i in range(6000)] + [None]
    repeated = [f"CUST-{i % 50:06d}" for i in range(6000)] + [None]
    a = p.tokenise(distinct, "customer_id", "kyc")
    b = p.tokenise(repeated, "customer_id", "kyc")
    assert a[-1] is None and b[-1] is None
    assert a[:50] == b[:50] and b[50] == a[0]
    assert p.reveal([t for t in b[:50] if t], "customer_id") == distinct[:50]


def test_serialised_plans_would_leak_the_hmac_key_so_we_never_serialise_them(
    ring: Keyring,
) -> None:
    """A canary for docs/keys.md: polars-hash embeds the key as a literal. If this ever
    stops holding, the warning can be relaxed; until then plans are never serialised."""
    p = Pseudonymiser(ring)
    marketing = pl.LazyFrame({"email": ["a@b.co"]}).with_columns(p.token_expr("email", "marketing"))
    assert ring.derive("marketing", "email").hex().encode() in marketing.serialize()
    kyc = pl.LazyFrame({"customer_id": ["C1"]}).with_columns(p.token_expr("customer_id", "kyc"))
    with pytest.raises(Exception, match=r"pickle|cannot be serialised"):
        kyc.serialize()  # the AES-SIV key object refuses to be pickled


def test_key_column_lets_differently_named_columns_link(ring: Keyring) -> None:
    p = Pseudonymiser(ring)
    for domain in ("marketing", "kyc"):
        a = pl.DataFrame({"cust_ref": ["C1"]}).select(
            p.token_expr("cust_ref", domain, key_column="customer_id")
        )["cust_ref"]
        b = p.tokenise(["C1"], "customer_id", domain)
        assert a.to_list() == b


def test_kyc_tokens_of_repeated_identifiers_are_computed_once_per_refresh(ring: Keyring) -> None:
    """The customer id is in every source: its AES-SIV tokens are reused, not recomputed,
    and reuse never changes a token."""
    p = Pseudonymiser(ring, scheme="siv")
    events = pl.DataFrame({"customer_id": ["C1", "C2", "C1", "C2", "C1", None]})
    first = events.select(p.token_expr("customer_id", "kyc"))["customer_id"]
    memo = p._memo.get("customer_id")
    assert memo is not None and sorted(memo["v"].to_list()) == ["C1", "C2"]
    crm = pl.DataFrame({"customer_id": ["C3", "C2", "C1"]})  # all distinct, one new
    second = crm.select(p.token_expr("customer_id", "kyc"))["customer_id"]
    memo = p._memo.get("customer_id")
    assert memo is not None and sorted(memo["v"].to_list()) == ["C1", "C2", "C3"]
    fresh = Pseudonymiser(ring, scheme="siv")
    assert first.to_list() == fresh.tokenise(events["customer_id"].to_list(), "customer_id", "kyc")
    assert second.to_list() == fresh.tokenise(crm["customer_id"].to_list(), "customer_id", "kyc")
    assert first[5] is None
    # A column seen once with distinct values (an e-mail) is not kept.
    pl.DataFrame({"email": ["a@b.co", "c@d.co"]}).select(p.token_expr("email", "kyc", "email"))
    assert p._memo.get("email") is None

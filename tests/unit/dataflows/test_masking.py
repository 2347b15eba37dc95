"""Masking of personal fields, the masking key, and dead-letter scrubbing."""

from __future__ import annotations

import ipaddress
import re
from pathlib import Path

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from dataflows.config import Settings
from dataflows.errors import ConfigurationError, InvalidTransaction
from dataflows.masking import (
    DEV_HMAC_KEY,
    DIGITS_MASK,
    Masker,
    load_hmac_key,
    scrub_digits,
)
from dataflows.schema import example_transaction, luhn_valid
from tests.pii import find_pii

KEY = b"k" * 32


@pytest.fixture
def masker() -> Masker:
    return Masker(KEY)


@pytest.fixture(autouse=True)
def no_key_in_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("FRAUDFLOW_HMAC_KEY", "FRAUDFLOW_HMAC_KEY_FILE", "FRAUDFLOW_DEV_MODE"):
        monkeypatch.delenv(name, raising=False)


def with_check_digit(body: str) -> str:
    """Append the digit that makes ``body`` Luhn-valid."""
    return next(body + d for d in "0123456789" if luhn_valid(body + d))


pans = st.integers(11, 18).flatmap(
    lambda n: st.text("0123456789", min_size=n, max_size=n).map(with_check_digit)
)


@given(pan=pans)
def test_a_masked_pan_shows_at_most_the_first_six_and_last_four_digits(pan: str):
    masked = Masker(KEY).pan(pan).masked

    assert len(masked) == len(pan)
    assert masked[:6] == pan[:6]
    assert masked[-4:] == pan[-4:]
    assert set(masked[6:-4]) <= {"*"}
    assert sum(c.isdigit() for c in masked) <= 10


def test_the_display_form_of_a_sixteen_digit_card(masker: Masker):
    assert masker.pan("4111111111111111").masked == "411111******1111"


def test_tokens_are_stable_for_one_key_and_differ_between_keys(masker: Masker):
    same = Masker(KEY).pan("4111111111111111").token
    other = Masker(b"o" * 32).pan("4111111111111111").token

    assert masker.pan("4111111111111111").token == same
    assert same != other
    assert re.fullmatch(r"[0-9a-f]{64}", same)


def test_the_same_text_gives_different_tokens_in_different_fields(masker: Masker):
    text = "4111111111111111"
    tokens = {masker.token(domain, text) for domain in ("pan", "email", "ip")}

    assert len(tokens | {masker.device(text)}) == 4


def test_an_email_keeps_its_first_letter_and_domain(masker: Masker):
    masked = masker.email("Jane.Doe@Example.com")

    assert masked.masked == "j***@example.com"
    assert masked.token == masker.email("jane.doe@example.com").token


@pytest.mark.parametrize(
    ("ip", "network"),
    [
        ("203.0.113.7", "203.0.113.0/24"),
        ("2001:db8:abcd:12:1:2:3:4", "2001:db8:abcd::/48"),
        ("2001:0db8:abcd:0012::1", "2001:db8:abcd::/48"),
    ],
)
def test_ips_are_truncated_to_their_network(masker: Masker, ip: str, network: str):
    assert masker.ip(ip).masked == network


def test_an_ip_token_is_of_the_canonical_address(masker: Masker):
    long_form = masker.ip("2001:0db8:0000:0000:0000:0000:0000:0001").token

    assert long_form == masker.ip("2001:db8::1").token


def test_masking_an_invalid_ip_raises_a_typed_error(masker: Masker):
    with pytest.raises(InvalidTransaction) as caught:
        masker.ip("not-an-ip")

    assert caught.value.field == "ip"


def test_masking_a_transaction_leaves_no_personal_data(masker: Masker):
    txn = example_transaction()
    identity = masker.mask(txn)

    assert identity.device_token == masker.device(txn.device_id)
    assert find_pii(repr(identity)) == []
    assert txn.device_id not in repr(identity)


def test_the_cache_serves_repeated_values(masker: Masker):
    masker.pan("4111111111111111")
    masker.pan("4111111111111111")

    assert masker.pan.cache_info().hits == 1


def test_the_key_comes_from_the_environment(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("FRAUDFLOW_HMAC_KEY", "e" * 40)

    assert load_hmac_key(Settings()) == b"e" * 40


def test_the_key_comes_from_a_file_without_its_newline(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
):
    key_file = tmp_path / "hmac.key"
    key_file.write_bytes(b"f" * 40 + b"\n")
    monkeypatch.setenv("FRAUDFLOW_HMAC_KEY_FILE", str(key_file))

    assert load_hmac_key(Settings()) == b"f" * 40


def test_an_unreadable_key_file_is_a_configuration_error(tmp_path: Path):
    settings = Settings(hmac_key_file=tmp_path / "missing.key")

    with pytest.raises(ConfigurationError, match=r"missing\.key"):
        load_hmac_key(settings)


def test_setting_both_key_sources_is_refused(tmp_path: Path):
    settings = Settings(hmac_key="e" * 40, hmac_key_file=tmp_path / "k")

    with pytest.raises(ConfigurationError, match="got both"):
        load_hmac_key(settings)


def test_a_short_key_is_refused():
    with pytest.raises(ConfigurationError, match=">= 32 bytes"):
        load_hmac_key(Settings(hmac_key="short"))


def test_the_development_key_is_refused_outside_development_mode():
    with pytest.raises(ConfigurationError, match="development key"):
        load_hmac_key(Settings())


def test_the_development_key_is_refused_even_when_configured_explicitly():
    settings = Settings(hmac_key=DEV_HMAC_KEY.decode())

    with pytest.raises(ConfigurationError, match="development key"):
        Masker.from_settings(settings)


def test_development_mode_accepts_the_development_key(
    monkeypatch: pytest.MonkeyPatch,
):
    monkeypatch.setenv("FRAUDFLOW_DEV_MODE", "true")

    assert load_hmac_key(Settings()) == DEV_HMAC_KEY


@pytest.mark.parametrize(
    ("raw", "scrubbed"),
    [
        (b"pan=4111111111111111;", b"pan=" + DIGITS_MASK + b";"),
        (b"4111 1111 1111 1111", DIGITS_MASK),
        (b"4111-1111-1111-1112", DIGITS_MASK),
        (b"x jane.doe@example.com y", b"x j***@example.com y"),
        (b"from 10.1.2.3.", b"from 10.1.2.0/24."),
        (b"[2001:db8:1:2::9]", b"[2001:db8:1::/48]"),
        (b"\xff\xfe4111111111111111\x00", b"\xff\xfe" + DIGITS_MASK + b"\x00"),
        (b"12:30:45 and 12345", b"12:30:45 and 12345"),
    ],
)
def test_scrubbing_masks_numbers_emails_and_ips(raw: bytes, scrubbed: bytes):
    assert scrub_digits(raw) == scrubbed


def test_an_email_domain_is_scrubbed_too():
    scrubbed = scrub_digits(b"x@10.1.2.3 y@4111111111111111.example")

    assert scrubbed == b"x***@10.1.2.0/24 y***@" + DIGITS_MASK + b".example"


# Fragments chosen so that random concatenations put card numbers, emails and
# addresses next to each other and to the separators that could join them.
fragments = st.sampled_from(
    [
        "4111111111111111",
        "4111 1111 1111 1111",
        "5500-0000-0000-0004",
        "378282246310005",
        "0",
        "42",
        "123",
        " ",
        "-",
        ".",
        ":",
        "::",
        "@",
        "/",
        "/24",
        "a",
        "ff",
        "x.com",
        "jane@example.com",
        "10.1.2.3",
        "2001:db8::1",
        "::ffff:1.2.3.4",
        "\xe9",
        "*",
    ]
)
texts = st.lists(fragments | st.text(max_size=8), max_size=30).map("".join)


@given(payload=st.binary(max_size=512) | texts.map(str.encode))
@example(payload=b"1.2.3.4 5678901234")
@example(payload=b"a:b:1.2.3.4")
@example(payload=b"::ffff:1.2.3.490")
@example(payload=b"ffff4111111111111111::x")
def test_scrubbing_never_raises_and_leaves_no_personal_data(payload: bytes):
    scrubbed = scrub_digits(payload)

    assert find_pii(scrubbed.decode("latin-1")) == []
    assert scrub_digits(scrubbed) == scrubbed


@given(texts)
def test_no_luhn_valid_card_number_survives_scrubbing(text: str):
    scrubbed = scrub_digits(text.encode()).decode()
    digit_runs = re.findall(r"[0-9](?:[ -]*[0-9])*", scrubbed)

    for run in digit_runs:
        digits = re.sub("[ -]", "", run)
        assert len(digits) < 12 or not luhn_valid(digits)


def test_a_long_garbage_payload_is_scrubbed_whole():
    payload = b"a" * 100_000 + b"4111111111111111" + b"." * 100_000

    assert scrub_digits(payload).count(DIGITS_MASK) == 1


def test_masked_networks_are_not_raw_addresses():
    network = str(ipaddress.ip_network("198.51.100.0/24"))

    assert find_pii(network) == []
    assert find_pii("198.51.100.1") == ["198.51.100.1"]


@given(address=st.ip_addresses())
def test_every_ip_is_truncated_like_the_ipaddress_module_would(address):
    masked = Masker(KEY).ip(str(address))
    prefix = 24 if address.version == 4 else 48

    assert masked.masked == str(ipaddress.ip_network((address, prefix), strict=False))
    assert find_pii(masked.masked) == []

from __future__ import annotations

import hashlib
import hmac

import pytest

from printers.base import WebhookVerificationError
from printers.signing import check_hmac_hex, check_timestamp, hmac_sha256_hex, parse_timestamp

NOW = 1_780_000_000.0


def test_it_computes_the_standard_hex_hmac_sha256():
    expected = hmac.new(b"k", b"body", hashlib.sha256).hexdigest()
    assert hmac_sha256_hex("k", b"body") == expected
    assert hmac_sha256_hex(b"k", b"body") == expected


def test_it_accepts_a_matching_signature_in_any_case():
    signature = hmac_sha256_hex("k", b"body")
    check_hmac_hex("k", b"body", signature)
    check_hmac_hex("k", b"body", signature.upper())


@pytest.mark.parametrize(
    ("secret", "message", "signature"),
    [
        ("k", b"body!", hmac_sha256_hex("k", b"body")),  # tampered body
        ("other", b"body", hmac_sha256_hex("k", b"body")),  # wrong secret
        ("k", b"body", None),  # missing
        ("k", b"body", ""),  # empty
        ("k", b"body", "not-hex-at-all"),  # malformed
        ("k", b"body", "\u00e9\u00e9"),  # non-ascii
        ("", b"body", hmac_sha256_hex("k", b"body")),  # no secret: fail closed
    ],
)
def test_it_rejects_bad_signatures_with_a_verification_error(secret, message, signature):
    with pytest.raises(WebhookVerificationError):
        check_hmac_hex(secret, message, signature)


def test_it_refuses_to_sign_without_a_secret():
    with pytest.raises(WebhookVerificationError, match="secret"):
        hmac_sha256_hex("", b"body")


@pytest.mark.parametrize("ts", [str(int(NOW)), str(int(NOW * 1000)), str(int(NOW) - 299), str(int(NOW) + 299)])
def test_it_accepts_timestamps_in_seconds_or_milliseconds_within_the_window(ts):
    check_timestamp(ts, 300, now=NOW)


@pytest.mark.parametrize(
    ("ts", "match"),
    [
        (str(int(NOW) - 301), "stale"),
        (str(int((NOW - 301) * 1000)), "stale"),
        (str(int(NOW) + 301), "future"),
        (str(int((NOW + 301) * 1000)), "future"),
        ("", "missing"),
        (None, "missing"),
        ("yesterday", "malformed"),
        ("nan", "malformed"),
        ("-5", "malformed"),
    ],
)
def test_it_rejects_stale_future_and_malformed_timestamps(ts, match):
    with pytest.raises(WebhookVerificationError, match=match):
        check_timestamp(ts, 300, now=NOW)


@pytest.mark.parametrize("tolerance", [0, -1])
def test_it_requires_a_positive_tolerance(tolerance):
    with pytest.raises(WebhookVerificationError, match="tolerance"):
        check_timestamp(str(int(NOW)), tolerance, now=NOW)


def test_it_reads_milliseconds_as_seconds():
    assert parse_timestamp("1780000000123") == pytest.approx(1_780_000_000.123)
    assert parse_timestamp(" 1780000000 ") == 1_780_000_000


@pytest.mark.parametrize("tolerance", [float("nan"), float("inf"), "abc", "nan", None])
def test_it_refuses_a_tolerance_that_is_not_a_finite_number(tolerance):
    # NaN compares False both ways: without this check it would accept a year-old timestamp.
    with pytest.raises(WebhookVerificationError, match="tolerance"):
        check_timestamp(str(int(NOW) - 365 * 86_400), tolerance, now=NOW)


def test_it_accepts_a_tolerance_given_as_text():
    check_timestamp(str(int(NOW) - 100), "300", now=NOW)

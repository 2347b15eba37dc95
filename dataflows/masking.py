"""Masking of personal data before anything is stored, sent or logged.

Each personal field of a transaction becomes a display form a person may see and
a keyed token that lets rows be joined on the same card, email, IP or device
without keeping the value:

=========  ==========================  ========================================
field      display form                token
=========  ==========================  ========================================
pan        first 6 + last 4 digits     HMAC-SHA256, domain ``pan``
email      first letter, ``***``, dom  HMAC-SHA256 of the lower-cased address
ip         IPv4 /24 or IPv6 /48        HMAC-SHA256 of the canonical address
device_id  (none)                      HMAC-SHA256, domain ``device``
=========  ==========================  ========================================

The PAN display rule is PCI DSS v4.0 requirement 3.4.1: at most the first six
and last four digits may be shown. Tokens are 64 lowercase hex characters. Each
field has its own HMAC key derived from the master key, so a card number and an
email with the same text give unrelated tokens.

:func:`scrub_digits` is for raw payloads that failed decoding (dead letters):
it masks anything that looks like a card number, email or IP in arbitrary bytes.

Example:
    >>> masker = Masker(DEV_HMAC_KEY)
    >>> masker.pan("4111111111111111").masked
    '411111******1111'
    >>> masker.email("jane.doe@example.com").masked
    'j***@example.com'
    >>> masker.ip("203.0.113.7").masked
    '203.0.113.0/24'
"""

from __future__ import annotations

import functools
import hmac
import ipaddress
import logging
import re
from typing import Final

import msgspec

from dataflows.config import Settings
from dataflows.errors import ConfigurationError, InvalidTransaction
from dataflows.schema import Transaction

logger = logging.getLogger(__name__)

#: Key used when none is configured. It is public, so tokens made with it can
#: be reversed by guessing; only development mode accepts it.
DEV_HMAC_KEY: Final = b"fraudflow-development-key-public-never-use-in-production"

#: Shortest accepted key: HMAC-SHA256 keys below the 32-byte output size weaken
#: the tokens (RFC 2104, section 3).
MIN_KEY_BYTES: Final = 32

IPV4_PREFIX: Final = 24
IPV6_PREFIX: Final = 48

_DOMAINS: Final = ("pan", "email", "ip", "device")

_OCTET = r"(?:25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])"
_CANONICAL_IPV4 = re.compile(rf"{_OCTET}(?:\.{_OCTET}){{3}}")


class Masked(msgspec.Struct, frozen=True, gc=False):
    """A personal value reduced to a display form and a join token."""

    masked: str
    token: str


class MaskedIdentity(msgspec.Struct, frozen=True, gc=False):
    """The masked personal fields of one transaction."""

    pan: Masked
    email: Masked
    ip: Masked
    device_token: str


def load_hmac_key(settings: Settings) -> bytes:
    """Return the masking key from the environment, a key file or the dev key.

    Args:
        settings: Settings carrying ``hmac_key``, ``hmac_key_file`` and
            ``dev_mode``.

    Returns:
        The key bytes.

    Raises:
        ConfigurationError: when both sources are set, the file cannot be read,
            the key is too short, or the development key is used outside
            development mode.
    """
    key = _configured_key(settings)
    if key is None:
        key = DEV_HMAC_KEY
    if key == DEV_HMAC_KEY and not settings.dev_mode:
        detail = (
            "expected FRAUDFLOW_HMAC_KEY or FRAUDFLOW_HMAC_KEY_FILE outside "
            "development mode, got the built-in development key"
        )
        raise ConfigurationError(detail)
    if len(key) < MIN_KEY_BYTES:
        detail = f"expected an HMAC key of >= {MIN_KEY_BYTES} bytes, got {len(key)}"
        raise ConfigurationError(detail)
    return key


def _configured_key(settings: Settings) -> bytes | None:
    """Read the key from the setting or the key file, if either is given."""
    if settings.hmac_key is not None and settings.hmac_key_file is not None:
        detail = "expected one of FRAUDFLOW_HMAC_KEY and FRAUDFLOW_HMAC_KEY_FILE"
        raise ConfigurationError(f"{detail}, got both")
    if settings.hmac_key is not None:
        return settings.hmac_key.get_secret_value().encode()
    if settings.hmac_key_file is None:
        return None

    path = settings.hmac_key_file
    try:
        # A trailing newline is an editor's, not part of the key.
        return path.read_bytes().rstrip(b"\r\n")
    except OSError as exc:
        detail = f"expected a readable HMAC key file, got {str(path)!r}: {exc}"
        raise ConfigurationError(detail) from exc


class Masker:
    """Masks personal fields, caching results per value.

    The same card, email and device recur for an account, so each field has a
    bounded LRU cache: a hit costs ~0.1 us against ~3 us for the HMAC.

    Args:
        key: The master HMAC key (see :func:`load_hmac_key`).
        cache_size: Entries kept in each field's cache; 0 disables caching.
    """

    def __init__(self, key: bytes, cache_size: int = 65_536) -> None:
        self._keys = {
            domain: hmac.digest(key, b"fraudflow-token-v1/" + domain.encode(), "sha256")
            for domain in _DOMAINS
        }
        cached = functools.lru_cache(maxsize=cache_size)
        self.pan = cached(self._mask_pan)
        self.email = cached(self._mask_email)
        self.ip = cached(self._mask_ip)
        self.device = cached(self._device_token)

    @classmethod
    def from_settings(cls, settings: Settings) -> Masker:
        """Build a masker from the configured key and cache size."""
        return cls(load_hmac_key(settings), settings.mask_cache_size)

    def token(self, domain: str, value: str) -> str:
        """Return the hex HMAC-SHA256 token of ``value`` in one field's domain."""
        return hmac.digest(self._keys[domain], value.encode(), "sha256").hex()

    def mask(self, txn: Transaction) -> MaskedIdentity:
        """Mask the four personal fields of a transaction."""
        return MaskedIdentity(
            pan=self.pan(txn.pan),
            email=self.email(txn.email),
            ip=self.ip(txn.ip),
            device_token=self.device(txn.device_id),
        )

    def _mask_pan(self, pan: str) -> Masked:
        hidden = "*" * (len(pan) - 10)
        return Masked(f"{pan[:6]}{hidden}{pan[-4:]}", self.token("pan", pan))

    def _mask_email(self, email: str) -> Masked:
        # Addresses are matched case-insensitively in practice, so the token is
        # of the lower-cased address: Jane@X.com and jane@x.com join.
        normalised = email.strip().lower()
        local, _, domain = normalised.rpartition("@")
        return Masked(f"{local[:1]}***@{domain}", self.token("email", normalised))

    def _mask_ip(self, ip: str) -> Masked:
        if _CANONICAL_IPV4.fullmatch(ip):
            # Dotted IPv4 in canonical form, the common case, is truncated with
            # string operations: ipaddress costs ~15 us a call.
            network = f"{ip[: ip.rindex('.')]}.0/{IPV4_PREFIX}"
            return Masked(network, self.token("ip", ip))
        try:
            address = ipaddress.ip_address(ip)
        except ValueError:
            raise InvalidTransaction("ip", "malformed", "expected an IP") from None
        return Masked(truncated_network(address), self.token("ip", address.compressed))

    def _device_token(self, device_id: str) -> str:
        return self.token("device", device_id)


# Dead-letter scrubbing works on bytes: the payload may not be UTF-8, and bytes
# patterns match ASCII digits only, which is all a card number can be. One
# pass over one alternation, so a masked form is never scanned again; the
# lookbehinds make each kind of match start at the beginning of its word, which
# keeps the scan linear on long garbage.
_EMAIL = rb"(?<![A-Za-z0-9._%+@-])[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)+"
_IPV4 = rb"(?<![0-9.])[0-9]{1,3}(?:\.[0-9]{1,3}){3}(?!\.?[0-9])"
_IPV6 = (
    rb"(?<![0-9A-Za-z:])[0-9A-Fa-f]{0,4}(?::[0-9A-Fa-f]{0,4}){2,7}"
    rb"(?:(?<=:)[0-9]{1,3}(?:\.[0-9]{1,3}){3})?(?![0-9A-Za-z:]|\.[0-9])"
)
_DIGIT_RUN = rb"(?<![0-9])[0-9](?:[ -]*[0-9]){11,}"
# A prefix length after an address belongs to it, so an already masked network
# is recognised whole and its "/24" never joins a following number.
_PREFIX = rb"(?:/(?P<prefix>[0-9]{1,3})(?![0-9]))?"
_PERSONAL = re.compile(
    rb"(?P<email>%s)|(?P<ip>%s|%s)%s|(?P<digits>%s)"
    % (_EMAIL, _IPV4, _IPV6, _PREFIX, _DIGIT_RUN)
)

_MAX_PASSES: Final = 16

#: What a masked number reads as; it holds no digit, so it cannot join
#: neighbouring digits into a new run.
DIGITS_MASK: Final = b"[masked-number]"


def scrub_digits(payload: bytes) -> bytes:
    """Mask card-like numbers, emails and IP addresses in raw bytes.

    Any run of 12 or more digits, with spaces or dashes allowed between them,
    becomes :data:`DIGITS_MASK` whether or not it passes the Luhn check (a
    mistyped card number is still a card number). Emails keep their first
    character and their domain (itself scrubbed); IPs are truncated to /24 or
    /48. Never raises.

    Args:
        payload: Raw bytes, possibly not UTF-8 or not text at all.

    Returns:
        The scrubbed bytes.

    Example:
        >>> scrub_digits(b'{"pan": "4111 1111 1111 1111", "ip": "10.1.2.3"}')
        b'{"pan": "[masked-number]", "ip": "10.1.2.0/24"}'
    """
    # A masked form can meet a neighbour it did not touch before (a "]" left
    # by a masked number before "::"), so scrub until nothing changes; each
    # pass only removes digits or local parts, so this ends within a few.
    for _ in range(_MAX_PASSES):
        scrubbed = _PERSONAL.sub(_scrub_match, payload)
        if scrubbed == payload:
            return scrubbed
        payload = scrubbed
    return payload


def _scrub_match(match: re.Match[bytes]) -> bytes:
    if match["digits"] is not None:
        return DIGITS_MASK
    if match["email"] is not None:
        local, _, domain = match["email"].rpartition(b"@")
        return local[:1] + b"***@" + scrub_digits(domain)

    try:
        address = ipaddress.ip_address(match["ip"].decode("ascii"))
    except ValueError:
        address = None
    if address is None:
        # Not an address after all, but what follows an IPv6-like word's last
        # colon may be an IPv4 one.
        head, colon, tail = match.group().rpartition(b":")
        return head + colon + scrub_digits(tail) if colon else match.group()
    prefix = None if match["prefix"] is None else int(match["prefix"])
    return truncated_network(address, prefix).encode()


def truncated_network(
    address: ipaddress.IPv4Address | ipaddress.IPv6Address, prefix: int | None = None
) -> str:
    """Return the /24 (IPv4) or /48 (IPv6) network holding ``address``.

    A /24 is a neighbourhood of 256 hosts and a /48 one site: enough to spot a
    burst from one network, too coarse to name a subscriber.

    Args:
        address: The address to truncate.
        prefix: A prefix length the address came with; a shorter one than the
            default is kept, a longer one is cut to the default.
    """
    limit = IPV4_PREFIX if address.version == 4 else IPV6_PREFIX
    bits = limit if prefix is None else min(prefix, limit)
    return str(ipaddress.ip_network((address, bits), strict=False))

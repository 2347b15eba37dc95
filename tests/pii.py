"""Find personal data that should have been masked, for tests to assert on.

:func:`find_pii` reports, in order of appearance:

- card numbers: runs of 12-19 ASCII digits (spaces or dashes allowed between
  digits) that pass the Luhn check. Longer runs are numbers, not cards;
- email addresses: ``local@domain.tld`` with a local part of ordinary address
  characters;
- IPv4 and IPv6 addresses that :mod:`ipaddress` accepts.

How masked forms are told apart from raw values:

- a masked email's local part ends in ``***``, and ``*`` is not an address
  character, so ``j***@example.com`` has no local part next to its ``@``;
- a masked IP is a network: the address is followed by ``/N`` with N at most 24
  (IPv4) or 48 (IPv6) and every host bit zero, e.g. ``203.0.113.0/24``. A raw
  address never carries a prefix length;
- a masked card number keeps at most 10 digits around ``*``, too few for a run.

Digit runs that are not card numbers by construction are blanked before the
scan: 64-hex-digit tokens, UUIDs and the fractional digits of decimal numbers
(a float such as a score prints 16-17 digits). :func:`find_pii_in` walks
decoded records and scans strings only: every personal field is a string in
fraudflow's schemas, while numbers such as epoch milliseconds are 13-digit runs
that would pass the Luhn check one time in ten.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Mapping
from datetime import date, datetime

from dataflows.schema import luhn_valid

_NOT_CARDS = re.compile(
    r"(?<![0-9A-Za-z])[0-9a-f]{64}(?![0-9A-Za-z])"
    r"|(?<![0-9A-Za-z-])[0-9a-fA-F]{8}(?:-[0-9a-fA-F]{4}){3}-[0-9a-fA-F]{12}"
    r"|(?<=[0-9]\.)[0-9]{12,}"
)
_EMAIL = r"(?<![A-Za-z0-9._%+@-])[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)+"
_IPV4 = r"(?<![0-9.])[0-9]{1,3}(?:\.[0-9]{1,3}){3}(?!\.?[0-9])"
_IPV6 = (
    r"(?<![0-9A-Za-z:])[0-9A-Fa-f]{0,4}(?::[0-9A-Fa-f]{0,4}){2,7}"
    r"(?:(?<=:)[0-9]{1,3}(?:\.[0-9]{1,3}){3})?(?![0-9A-Za-z:]|\.[0-9])"
)
_FINDINGS = re.compile(
    rf"(?P<email>{_EMAIL})"
    rf"|(?P<ip>{_IPV4}|{_IPV6})(?:/(?P<prefix>[0-9]{{1,3}})(?![0-9]))?"
    r"|(?P<digits>(?<![0-9])[0-9](?:[ -]*[0-9]){11,})"
)
_MASKED_PREFIX_LIMIT = {4: 24, 6: 48}


def find_pii(text: str) -> list[str]:
    """Return every raw card number, email and IP address found in ``text``."""
    text = _NOT_CARDS.sub(lambda match: "#" * len(match.group()), text)
    findings = []
    for match in _FINDINGS.finditer(text):
        findings.extend(_judge(match))
    return findings


def find_pii_in(value: object) -> list[str]:
    """Scan every string (and mapping key) in a decoded record or row."""
    if isinstance(value, str):
        return find_pii(value)
    if isinstance(value, bytes):
        return find_pii(value.decode("latin-1"))
    if isinstance(value, datetime | date):
        return find_pii(value.isoformat())
    if isinstance(value, Mapping):
        return [hit for k, v in value.items() for hit in find_pii_in([k, v])]
    if isinstance(value, list | tuple | set | frozenset):
        return [hit for item in value for hit in find_pii_in(item)]
    return []


def _judge(match: re.Match[str]) -> list[str]:
    """Return the match if it is raw personal data (or its raw IPv4 tail)."""
    if match["email"] is not None:
        return [match["email"]]
    if match["digits"] is not None:
        return [match["digits"]] if _is_card_number(match["digits"]) else []
    raw_ip = _raw_ip(match["ip"], match["prefix"])
    if raw_ip is None:
        # Not an address, but an IPv6-like word may end in an IPv4 address.
        _, colon, tail = match.group().rpartition(":")
        return find_pii(tail) if colon else []
    return [match["ip"]] if raw_ip else []


def _is_card_number(run: str) -> bool:
    digits = run.replace(" ", "").replace("-", "")
    return len(digits) <= 19 and luhn_valid(digits)


def _raw_ip(text: str, prefix: str | None) -> bool | None:
    """Whether an address is raw (True) or masked (False); None if not one."""
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        return None
    if prefix is None or int(prefix) > _MASKED_PREFIX_LIMIT[address.version]:
        return True
    try:
        ipaddress.ip_network(f"{address}/{prefix}", strict=True)
    except ValueError:
        return True
    return False

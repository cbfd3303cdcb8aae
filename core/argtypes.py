"""Command-line value types (``argparse`` ``type=``) shared by the core and the plugins.

Each turns the flag's text into its value or raises ``argparse.ArgumentTypeError``, which
argparse reports as a usage error naming the flag.
"""

from __future__ import annotations

import argparse
import ipaddress

__all__ = [
    "address_list",
    "ip_address",
    "namespaced_name",
    "non_negative_int",
    "non_negative_number",
    "port_number",
    "positive_number",
]


def address_list(value: str) -> tuple[str, ...]:
    """``ADDR[,ADDR...]``: IPs or hostnames, blanks dropped; at least one."""
    out = tuple(a.strip() for a in value.split(",") if a.strip())
    if not out:
        raise argparse.ArgumentTypeError("expected ADDR[,ADDR...]")
    return out


def namespaced_name(value: str) -> tuple[str, str]:
    """``NAMESPACE/NAME``."""
    parts = value.split("/")
    if len(parts) != 2 or not all(parts):
        raise argparse.ArgumentTypeError(f"{value!r} must be NAMESPACE/NAME")
    return parts[0], parts[1]


def ip_address(value: str) -> str:
    """An IPv4 or IPv6 address (every backend binds an address, not a name)."""
    try:
        return str(ipaddress.ip_address(value))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{value!r} is not an IP address") from None


def port_number(value: str) -> int:
    """A TCP port, 0-65535 (0: any free port, where the flag allows it)."""
    port = _integer(value)
    if not 0 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"{value} is out of range 0-65535")
    return port


def positive_number(value: str) -> float:
    number = _number(value)
    if not number > 0:
        raise argparse.ArgumentTypeError(f"{value} must be > 0")
    return number


def non_negative_number(value: str) -> float:
    number = _number(value)
    if not number >= 0:
        raise argparse.ArgumentTypeError(f"{value} must be >= 0")
    return number


def non_negative_int(value: str) -> int:
    number = _integer(value)
    if number < 0:
        raise argparse.ArgumentTypeError(f"{value} must be >= 0")
    return number


def _integer(value: str) -> int:
    try:
        return int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{value!r} is not a whole number") from None


def _number(value: str) -> float:
    try:
        return float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{value!r} is not a number") from None

"""The machine's network addresses, for the URLs `--lan` prints (no traffic is sent)."""

from __future__ import annotations

import contextlib
import ipaddress
import socket
import struct
import sys
from pathlib import Path

_SIOCGIFADDR = 0x8915  # Linux ioctl: an interface's IPv4 address


def lan_addresses() -> list[str]:
    """Non-loopback, non-link-local addresses of this machine, IPv4 first."""
    found: list[str] = []
    if sys.platform.startswith("linux"):
        found += _linux_ipv4()
        found += _linux_ipv6()
    with contextlib.suppress(OSError):
        for info in socket.getaddrinfo(socket.gethostname(), None):
            found.append(str(info[4][0]))
    usable = []
    for text in found:
        try:
            address = ipaddress.ip_address(text.split("%", 1)[0])
        except ValueError:
            continue
        if address.is_loopback or address.is_link_local or address.is_unspecified:
            continue
        if str(address) not in usable:
            usable.append(str(address))
    return sorted(usable, key=lambda a: (":" in a, a))


def _linux_ipv4() -> list[str]:
    import fcntl

    addresses = []
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        for _, name in socket.if_nameindex():
            request = struct.pack("256s", name.encode()[:15])
            with contextlib.suppress(OSError):
                reply = fcntl.ioctl(sock.fileno(), _SIOCGIFADDR, request)
                addresses.append(socket.inet_ntoa(reply[20:24]))
    return addresses


def _linux_ipv6() -> list[str]:
    try:
        lines = Path("/proc/net/if_inet6").read_text().splitlines()
    except OSError:
        return []
    addresses = []
    for line in lines:
        raw = line.split()[0]
        if len(raw) == 32:
            addresses.append(str(ipaddress.IPv6Address(bytes.fromhex(raw))))
    return addresses


def reaches_other_machines(lan: bool, bind: str | None) -> bool:
    """Whether a server with ``--lan`` or ``--bind`` as given can be reached from other
    machines: every interface, or an address that is not loopback (a host name counts)."""
    if lan:
        return True
    if bind is None or bind == "localhost":
        return False
    try:
        return not ipaddress.ip_address(bind).is_loopback
    except ValueError:
        return True


def url_host(address: str) -> str:
    """An address as it stands in a URL (IPv6 in brackets)."""
    return f"[{address}]" if ":" in address else address

"""Where the judge server may listen: loopback unless remote access is asked for, a free port,
and one-line messages for the addresses that cannot be bound."""

from __future__ import annotations

import ipaddress
import socket
from typing import Any

from paco_core.errors import InputError


def is_loopback(host: str) -> bool:
    """Whether ``host`` names only loopback addresses (127.0.0.0/8, ::1, localhost)."""
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        pass
    try:
        infos = socket.getaddrinfo(host, None)
    except OSError:
        return False
    return bool(infos) and all(ipaddress.ip_address(info[4][0].split("%")[0]).is_loopback for info in infos)


def check_bind_address(host: str, port: Any, *, allow_remote: bool = False, probe: bool = True) -> None:
    """Refuse a port out of range, a non-loopback host without ``allow_remote`` and (with
    ``probe``) an address that cannot be bound, before anything slow starts.

    Raises:
        InputError: saying what to change.
    """
    if isinstance(port, bool) or not isinstance(port, int) or not 0 <= port <= 65535:
        raise InputError(
            f"the port should be a whole number from 0 to 65535 (0: any free port), got {port!r}."
        )
    try:
        socket.getaddrinfo(host, port)
    except (OSError, UnicodeError) as error:
        raise InputError(f"cannot bind host {host!r}: {error}. Use an address such as 127.0.0.1.") from None
    if not allow_remote and not is_loopback(host):
        raise InputError(
            f"host {host!r} is not a loopback address, so the judge would be reachable from other machines; "
            "add --allow-remote to mean it (and set an API key), or use 127.0.0.1."
        )
    if not probe:
        return
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as the server binds
        try:
            sock.bind((host, port))
        except OSError as error:
            raise InputError(bind_error_message(host, port, error)) from None


def bind_error_message(host: str, port: int, error: OSError) -> str:
    import errno

    if error.errno == errno.EADDRINUSE:
        return f"port {port} on {host} is already in use; stop what uses it or pick another --port (0: any free)."
    if error.errno == errno.EACCES:
        return f"no permission to bind port {port} on {host}; use a port above 1023."
    return f"cannot bind {host}:{port}: {error.strerror or error}."

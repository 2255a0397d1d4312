"""Where the gateway may send webhooks: never to its own network unless the environment allows it.

A subscription URL must be https (plain http only where `events.allow_http`), carry no credentials, and its host
must resolve only to public addresses: private, loopback, link-local, shared, multicast, reserved and unspecified
ranges are refused (IPv4-mapped IPv6 addresses are judged as the IPv4 address they carry). The check runs when the
subscription is written and again at every connection, by a resolver that refuses such answers, so a name that
later resolves to an internal host (DNS rebinding) still gets nothing. Redirects are never followed.
"""
from __future__ import annotations

import asyncio
import errno
import ipaddress
import socket
from typing import Any
from urllib.parse import urlsplit

from aiohttp.abc import AbstractResolver
from aiohttp.resolver import DefaultResolver


class TargetRefused(Exception):
    """The URL may not receive webhooks; the message says why."""


def _address(value: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        address = ipaddress.ip_address(value.split("%", 1)[0])
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def public(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    return address.is_global and not address.is_multicast


def check_url(url: str, *, allow_http: bool) -> str:
    """The URL's host, when the URL's form is acceptable; TargetRefused otherwise (no DNS here)."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise TargetRefused(f"not a valid URL ({exc})") from None
    if parts.scheme not in ("https", "http") or (parts.scheme == "http" and not allow_http):
        raise TargetRefused("must be an https URL" + ("" if allow_http else " (plain http is not allowed here)"))
    if not parts.hostname:
        raise TargetRefused("has no host")
    if parts.username is not None or parts.password is not None:
        raise TargetRefused("must not carry credentials")
    if parts.fragment:
        raise TargetRefused("must not have a fragment")
    if port == 0:
        raise TargetRefused("port 0 is not a port")
    return parts.hostname


async def check_target(url: str, *, allow_http: bool, allow_private: bool) -> None:
    """Refuse a URL whose form is wrong or whose host resolves to an address the gateway must not call."""
    host = check_url(url, allow_http=allow_http)
    if allow_private:
        return
    literal = _address(host)
    if literal is not None:
        if not public(literal):
            raise TargetRefused(f"{literal} is not a public address")
        return
    try:
        infos = await asyncio.get_running_loop().getaddrinfo(host, None, type=socket.SOCK_STREAM)
    except socket.gaierror as exc:
        raise TargetRefused(f"{host} does not resolve ({exc.strerror})") from None
    for info in infos:
        address = _address(str(info[4][0]))
        if address is None or not public(address):
            raise TargetRefused(f"{host} resolves to {info[4][0]}, which is not a public address")


class PublicOnlyResolver(AbstractResolver):
    """Resolves like `inner`, but refuses a name any of whose addresses is not public (checked at connect)."""

    def __init__(self, inner: AbstractResolver | None = None) -> None:
        self._inner = inner or DefaultResolver()

    async def resolve(self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET) -> list[Any]:
        answers = await self._inner.resolve(host, port, family)
        for answer in answers:
            address = _address(str(answer["host"]))
            if address is None or not public(address):
                # With an errno, so the message is the `strerror` aiohttp shows in its connection error.
                raise OSError(errno.EACCES,
                              f"webhook target {host} resolves to {answer['host']}, which is not a public address")
        return answers

    async def close(self) -> None:
        await self._inner.close()


def literal_refused(url: str) -> str | None:
    """Why a URL whose host is an IP literal may not be called (aiohttp does not resolve literals), or None."""
    host = urlsplit(url).hostname or ""
    address = _address(host)
    if address is not None and not public(address):
        return f"{address} is not a public address"
    return None

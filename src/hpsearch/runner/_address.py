"""A Ray cluster address (``--address``), checked without Ray: its form, and that it answers."""

from __future__ import annotations

import socket

from hpsearch.errors import InputError


def check_address(address: str) -> None:
    """Refuse a ``--address`` that no Ray cluster answers at, before storage is opened.

    ``hpsearch run`` checks it before storage is opened (a typo must not leave a new, empty
    study behind), and the runner again before ``ray.init``, which would wait forever for an
    address where nothing listens.

    Raises:
        InputError: The address is not ``auto``, ``local``, ``HOST:PORT`` or
            ``ray://HOST:PORT``, or nothing answers there.
    """
    if address in ("auto", "local"):
        return
    host, sep, port = address.removeprefix("ray://").rpartition(":")
    if not sep or not host or not port.isdigit():
        raise InputError(
            "--address",
            "address",
            f"{address!r} is not a Ray address (HOST:PORT, ray://HOST:PORT or auto)",
            "give the head node's address, e.g. `--address HEAD_IP:6379` or "
            "`--address ray://HEAD_IP:10001`, or leave --address out to run locally",
        )
    _probe(address)


def _probe(address: str) -> None:
    """Refuse at once an address where nothing listens.

    Raises:
        InputError: ``host:port`` (or ``ray://host:port``) refuses or times out a connection.
    """
    hostport = address.removeprefix("ray://")
    host, sep, port = hostport.rpartition(":")
    if address == "auto" or not sep or not port.isdigit():
        return  # `auto` and other forms: Ray itself answers those quickly
    try:
        with socket.create_connection((host or "127.0.0.1", int(port)), timeout=5):
            pass
    except OSError as exc:
        raise InputError(
            "--address",
            "address",
            f"nothing answers at {address!r} ({exc})",
            "start the cluster (`ray start --head`) and give its address, e.g. "
            "`--address HEAD_IP:6379` or `--address ray://HEAD_IP:10001`, or leave --address "
            "out to run locally",
        ) from exc

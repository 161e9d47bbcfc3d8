"""A TCP forwarder: pods reach a loopback-only listener of the rig through the pod network's host address.

The apiserver binds 127.0.0.1 only; pods live in their own network namespaces and reach the host solely at the
bridge's host address. This process listens there and relays every connection byte for byte to the loopback
target, so TLS stays end to end (the apiserver's serving certificate carries the host address in its SANs) and
the apiserver sees an ordinary client. It plays the part kube-proxy plays for the `kubernetes` Service.

Run as its own process (stdlib only, started by file path): `python forward.py --listen HOST:PORT --to
127.0.0.1:PORT`. It logs one line per connection to stdout.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import signal
import sys

log = logging.getLogger("forward")

CHUNK = 256 * 1024


def parse_address(text: str) -> tuple[str, int]:
    """`HOST:PORT` -> (host, port); ValueError naming the form expected."""
    host, sep, port = text.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"expected HOST:PORT with a port in 1..65535, got {text!r}")
    return host, int(port)


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> int:
    """Copy until EOF, then half-close the other side; the byte count."""
    total = 0
    try:
        while data := await reader.read(CHUNK):
            writer.write(data)
            await writer.drain()
            total += len(data)
        if writer.can_write_eof():
            writer.write_eof()
    except (ConnectionError, OSError):
        pass
    return total


class Forwarder:
    """Relays every accepted connection to `target`."""

    def __init__(self, target: tuple[str, int]) -> None:
        self.target = target
        self.connections = 0

    async def handle(self, client_reader: asyncio.StreamReader, client_writer: asyncio.StreamWriter) -> None:
        """One client: connect to the target and copy both ways until both sides are done."""
        self.connections += 1
        peer = client_writer.get_extra_info("peername")
        try:
            target_reader, target_writer = await asyncio.open_connection(*self.target)
        except OSError as exc:
            log.warning("connection from %s: target %s:%d unreachable: %s", peer, *self.target, exc)
            client_writer.close()
            return
        up, down = await asyncio.gather(
            _pipe(client_reader, target_writer), _pipe(target_reader, client_writer)
        )
        for w in (client_writer, target_writer):
            w.close()
            with contextlib.suppress(ConnectionError, OSError):
                await w.wait_closed()
        log.info("connection from %s closed: %d bytes up, %d down", peer, up, down)


async def start(listen: tuple[str, int], target: tuple[str, int]) -> tuple[asyncio.Server, Forwarder]:
    """Accept on `listen` and relay to `target` (the server is serving when this returns)."""
    forwarder = Forwarder(target)
    server = await asyncio.start_server(forwarder.handle, *listen, reuse_address=True)
    log.info("forwarding %s:%d -> %s:%d", *listen, *target)
    return server, forwarder


async def serve(listen: tuple[str, int], target: tuple[str, int]) -> None:
    """Relay until SIGTERM/SIGINT."""
    server, forwarder = await start(listen, target)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    async with server:
        await stop.wait()
    log.info("stopped after %d connections", forwarder.connections)


def main(argv: list[str] | None = None) -> int:
    """Entry point."""
    parser = argparse.ArgumentParser(description="Relay TCP connections from HOST:PORT to a loopback target.")
    parser.add_argument("--listen", required=True, type=parse_address, help="HOST:PORT to accept on")
    parser.add_argument("--to", required=True, type=parse_address, help="HOST:PORT to relay to")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s", stream=sys.stdout)
    asyncio.run(serve(args.listen, args.to))
    return 0


if __name__ == "__main__":
    sys.exit(main())

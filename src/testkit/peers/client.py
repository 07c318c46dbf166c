#!/usr/bin/env python3
"""Run the real SniTun client (ClientPeer plus an endpoint connector) on loopback.

Part of sluice-testkit (`real_client.rs` starts it with a peer venv's python):

    client.py --config client.json --server HOST:PORT --end HOST:PORT [--debug]

The config is a JSON object: "token" (the Fernet token, sent verbatim), "aes_key" (hex, 32
bytes), "aes_iv" (hex, 16 bytes), and optionally "protocol_version" (0, 1 or 2; default 0),
"cipher" ("aes-cbc", "aes-gcm" or "aes-gcm-siv"; default aes-cbc) and "hostname" (logging
only). Every channel the server opens is forwarded to the plain TCP endpoint --end.

Connectors: 0.40.0 has `Connector(end_host, end_port, whitelist)` and speaks protocol 0 with
aes-cbc only; 0.47.0 has `EndpointConnector(end_host, end_port, access_list)` and takes the
protocol version and cipher as ClientPeer.start() arguments. When the installed release cannot
speak what the config asks for, stdout gets `UNSUPPORTED <why>` and the exit status is 2.

Lines on stdout, flushed at once (logging goes to stderr):
  CONNECTED server=HOST:PORT    the challenge was answered and the multiplexer runs (the
                                server sends no acknowledgement, so a server that rejects the
                                answer shows up as a DISCONNECTED right after)
  DISCONNECTED                  the tunnel ended
  CONNECT_FAILED <reason>       an attempt failed before the multiplexer ran
snitun has no reconnect of its own: this script retries after --reconnect-delay seconds
(default 0.5). SIGTERM or SIGINT stops it; stdout then gets `STOPPED`. It also stops when its
parent process is gone.
"""
from __future__ import annotations

import argparse
import asyncio
import importlib.metadata as md
import inspect
import json
import logging
import os
import signal
import sys
import threading
import time


def watch_parent() -> None:
    """SIGTERM ourselves when the process that started us is gone (e.g. a test binary killed
    with SIGKILL, whose drop handlers never ran), so that no peer outlives its test; SIGKILL
    our process group if that does not end us within 10 s."""
    parent = os.getppid()

    def watch() -> None:
        while True:
            time.sleep(0.5)
            if os.getppid() != parent:
                os.kill(os.getpid(), signal.SIGTERM)
                time.sleep(10)  # no clean stop by then: end the whole process group
                os.killpg(os.getpgid(0), signal.SIGKILL)

    threading.Thread(target=watch, name="watch-parent", daemon=True).start()


def say(line: str) -> None:
    """One machine-readable line on stdout, flushed at once."""
    print(line, flush=True)


def host_port(value: str) -> tuple[str, int]:
    host, sep, port = value.rpartition(":")
    if not sep or not port.isdigit():
        raise argparse.ArgumentTypeError(f"expected HOST:PORT, got {value!r}")
    return host.strip("[]") or "127.0.0.1", int(port)


def capabilities() -> tuple[list[int], list[str]]:
    """Protocol versions and ciphers the installed snitun speaks."""
    import snitun
    from snitun.multiplexer import crypto

    versions = list(range(getattr(snitun, "PROTOCOL_VERSION", 0) + 1))  # absent before 0.42
    ciphers = ["aes-cbc"]
    if hasattr(crypto, "GCMCryptoTransport"):
        ciphers.append("aes-gcm")
    if hasattr(crypto, "GCMSIVCryptoTransport") and getattr(
            crypto, "gcm_siv_supported", lambda: True)():
        ciphers.append("aes-gcm-siv")
    return versions, ciphers


def make_connector(end_host: str, end_port: int):  # noqa: ANN201
    from snitun.client import connector as conn_mod

    if hasattr(conn_mod, "EndpointConnector"):  # 0.46 and later
        return conn_mod.EndpointConnector(end_host, end_port, access_list=None)
    return conn_mod.Connector(end_host, end_port, whitelist=False)  # 0.40.0


async def run(args: argparse.Namespace, cfg: dict) -> None:
    from snitun.client.client_peer import ClientPeer

    server_host, server_port = args.server
    end_host, end_port = args.end
    connector = make_connector(end_host, end_port)
    extra = {}
    params = inspect.signature(ClientPeer.start).parameters
    if "protocol_version" in params:
        extra["protocol_version"] = cfg["protocol_version"]
    if "cipher" in params:
        extra["cipher"] = cfg["cipher"]
    logging.info("connector %s, extra %s", type(connector).__name__, extra)

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)

    while not stop.is_set():
        peer = ClientPeer(server_host, server_port)  # a fresh one per attempt
        try:
            await peer.start(connector, cfg["token"].encode(), bytes.fromhex(cfg["aes_key"]),
                             bytes.fromhex(cfg["aes_iv"]), throttling=args.throttling, **extra)
        except Exception as err:  # noqa: BLE001 - any failure is one failed attempt
            logging.warning("connect failed: %r", err)
            say(f"CONNECT_FAILED {type(err).__name__}: {err}".replace("\n", " "))
        else:
            logging.info("connected to %s:%d as %s", server_host, server_port, cfg.get("hostname"))
            say(f"CONNECTED server={server_host}:{server_port}")
            waiter = asyncio.ensure_future(peer.wait())
            stopper = asyncio.ensure_future(stop.wait())
            await asyncio.wait({waiter, stopper}, return_when=asyncio.FIRST_COMPLETED)
            stopper.cancel()
            if stop.is_set():
                if peer.is_connected:
                    try:
                        await asyncio.wait_for(peer.stop(), 5)
                    except Exception as err:  # noqa: BLE001
                        logging.warning("stop: %r", err)
                break
            logging.warning("connection to the SniTun server lost")
            say("DISCONNECTED")
        try:
            await asyncio.wait_for(stop.wait(), args.reconnect_delay)
        except (asyncio.TimeoutError, TimeoutError):
            pass


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--config", required=True, help="client JSON (see the module doc)")
    p.add_argument("--server", type=host_port, required=True, metavar="HOST:PORT")
    p.add_argument("--end", type=host_port, required=True, metavar="HOST:PORT")
    p.add_argument("--throttling", type=int, default=None)
    p.add_argument("--reconnect-delay", type=float, default=0.5)
    p.add_argument("--debug", action="store_true")
    args = p.parse_args()
    watch_parent()
    logging.basicConfig(level=logging.DEBUG if args.debug else logging.INFO, stream=sys.stderr,
                        format="%(asctime)s %(process)d %(name)s %(levelname)s %(message)s")

    with open(args.config, encoding="utf-8") as fh:
        cfg = json.load(fh)
    cfg.setdefault("protocol_version", 0)
    cfg.setdefault("cipher", "aes-cbc")
    versions, ciphers = capabilities()
    logging.info("snitun %s on Python %s: protocol %s, ciphers %s", md.version("snitun"),
                 sys.version.split()[0], versions, ciphers)
    if cfg["protocol_version"] not in versions or cfg["cipher"] not in ciphers:
        say(f"UNSUPPORTED config asks for protocol {cfg['protocol_version']} / {cfg['cipher']}, "
            f"snitun {md.version('snitun')} speaks protocol {versions} with {ciphers}")
        sys.exit(2)
    asyncio.run(run(args, cfg))
    say("STOPPED")


if __name__ == "__main__":
    main()

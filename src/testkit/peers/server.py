#!/usr/bin/env python3
"""Run the real SniTun server (snitun 0.40.0 or 0.47.0 from PyPI) on loopback, port 0.

Part of sluice-testkit (`real_server.rs` starts it with a peer venv's python):

    server.py --config keys.json [--mode single|worker|dual] [--workers N] [--debug]
    server.py --fernet-key KEY [--fernet-key OLD_KEY ...] ...

Modes:
  single  SniTunServerSingle: one port; tunnel peers ("gA...") and TLS (0x16) share it
  worker  SniTunServerWorker: an epoll acceptor thread plus N worker processes
  dual    SniTunServer: TLS (SNI) on one port, tunnel peers on another

Keys come from `--config` (JSON: "fernet_keys", a list whose first entry is current, or
"fernet_key") and/or `--fernet-key` (repeatable). Everything else (host names, AES key and
IV, protocol version, cipher) arrives inside each client's token.

Every listener binds 127.0.0.1 port 0 (or --host). Once they all listen, stdout gets one line

    LISTENING port=<public port> [peer_port=<tunnel port, dual mode only>]

and logging goes to stderr. SIGTERM or SIGINT stops the server; stdout then gets `STOPPED`.
It also stops when its parent process is gone.

Port 0: every snitun server class turns `port or 443` (or 8080) into its default, so port 0
cannot be passed in. This script sets the private `_port` attribute(s) to 0 after
construction instead, and reads the bound port back from the listening socket(s); it checks
that the attributes exist, so a snitun release that renamed them fails loudly.
"""
from __future__ import annotations

import argparse
import asyncio
import importlib.metadata as md
import json
import logging
import os
import signal
import sys
import threading
import time

LOG_FORMAT = "%(asctime)s %(process)d %(name)s %(levelname)s %(message)s"
LOG_ENV = "SLUICE_TESTKIT_LOG_LEVEL"

# In worker mode 0.47.0 starts its workers through multiprocessing's forkserver, which imports
# this file as __mp_main__ (without running main()); configure logging there as well, so that
# worker logs ("New peer connection: ...") reach the same stderr. 0.40.0 forks directly.
if __name__ == "__mp_main__" and os.environ.get(LOG_ENV):
    logging.basicConfig(level=os.environ[LOG_ENV], format=LOG_FORMAT, stream=sys.stderr)


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


def need_attr(obj: object, name: str) -> None:
    if not hasattr(obj, name):
        raise SystemExit(f"snitun {md.version('snitun')}: {type(obj).__name__} has no {name}; "
                         "server.py needs updating for this release")


def bound_port(sock) -> int:  # noqa: ANN001 - a socket.socket or an asyncio TransportSocket
    return sock.getsockname()[1]


def load_keys(args: argparse.Namespace) -> list[str]:
    keys: list[str] = []
    if args.config:
        with open(args.config, encoding="utf-8") as fh:
            cfg = json.load(fh)
        keys += cfg.get("fernet_keys") or ([cfg["fernet_key"]] if cfg.get("fernet_key") else [])
    keys += args.fernet_key
    if not keys:
        raise SystemExit("no Fernet key: pass --config with fernet_keys/fernet_key, or --fernet-key")
    return keys


def run_worker(args: argparse.Namespace, keys: list[str]) -> None:
    from snitun.server.run import SniTunServerWorker

    server = SniTunServerWorker(keys, host=args.host, port=1, worker_size=args.workers,
                                throttling=args.throttling)
    need_attr(server, "_port")
    server._port = 0  # see the module doc: port 0 would become 443
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    server.start()
    if hasattr(server, "_servers"):  # 0.47.0: a list of listening sockets
        port = bound_port(server._servers[0])
    else:  # 0.40.0: one socket
        need_attr(server, "_server")
        port = bound_port(server._server)
    logging.info("worker server listening on %s:%d with %d workers", args.host, port, args.workers)
    say(f"LISTENING port={port}")
    stop.wait()
    logging.info("stopping worker server")
    server.stop()
    say("STOPPED")


async def run_asyncio(args: argparse.Namespace, keys: list[str]) -> None:
    from snitun.server.run import SniTunServer, SniTunServerSingle

    if args.mode == "single":
        server = SniTunServerSingle(keys, host=args.host, port=1, throttling=args.throttling)
        need_attr(server, "_port")
        server._port = 0
        await server.start()
        line = f"LISTENING port={bound_port(server._server.sockets[0])}"
    else:
        server = SniTunServer(keys, sni_host=args.host, sni_port=1, peer_host=args.host,
                              peer_port=1, throttling=args.throttling)
        for listener in ("_list_sni", "_list_peer"):
            need_attr(server, listener)
            need_attr(getattr(server, listener), "_port")
            getattr(server, listener)._port = 0
        await server.start()
        sni = bound_port(server._list_sni._server.sockets[0])
        peer = bound_port(server._list_peer._server.sockets[0])
        line = f"LISTENING port={sni} peer_port={peer}"
    logging.info("%s server: %s", args.mode, line)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    say(line)
    await stop.wait()
    logging.info("stopping")
    try:
        # Python >= 3.12 waits in wait_closed() for every open connection: bound it.
        await asyncio.wait_for(server.peers.close_connections(), 5)
        await asyncio.wait_for(server.stop(), 5)
    except (asyncio.TimeoutError, TimeoutError):
        logging.warning("stop timed out; exiting anyway")
    say("STOPPED")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--config", help="JSON with fernet_keys (list) or fernet_key")
    p.add_argument("--fernet-key", action="append", default=[], help="repeatable; first is current")
    p.add_argument("--mode", choices=["single", "worker", "dual"], default="single")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--workers", type=int, default=2, help="worker mode only")
    p.add_argument("--throttling", type=int, default=None)
    p.add_argument("--debug", action="store_true", help="DEBUG logging (peer registration etc.)")
    args = p.parse_args()
    watch_parent()

    os.environ[LOG_ENV] = "DEBUG" if args.debug else "INFO"  # inherited by worker processes
    logging.basicConfig(level=os.environ[LOG_ENV], format=LOG_FORMAT, stream=sys.stderr)
    keys = load_keys(args)
    logging.info("snitun %s on Python %s, mode %s, %d key(s)", md.version("snitun"),
                 sys.version.split()[0], args.mode, len(keys))
    if args.mode == "worker":
        run_worker(args, keys)
    else:
        asyncio.run(run_asyncio(args, keys))


if __name__ == "__main__":
    main()

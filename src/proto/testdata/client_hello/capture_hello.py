#!/usr/bin/env python3
"""Record the first TLS ClientHello a real client sends, byte for byte.

Listens on 127.0.0.1, port 0 (the kernel picks one), writes the port to --port-file,
accepts one connection, reads until the TLS records hold one whole handshake message, writes
exactly those records' bytes (as received) to --out, then closes without answering. The client
fails its handshake; that is expected.

This reassembles the hello across records on purpose: it must not depend on the parser it
provides test data for.
"""

import argparse
import os
import socket
import sys


def hello_records_len(buf: bytes):
    """Length of the records holding the first complete handshake message, or None."""
    at, payload = 0, b""
    while True:
        if len(buf) < at + 5:
            return None
        if buf[at] != 0x16:
            raise ValueError(f"record of type {buf[at]:#x} at {at}: not a TLS handshake")
        length = int.from_bytes(buf[at + 3 : at + 5], "big")
        if len(buf) < at + 5 + length:
            return None
        payload += buf[at + 5 : at + 5 + length]
        at += 5 + length
        if len(payload) >= 4 and len(payload) >= 4 + int.from_bytes(payload[1:4], "big"):
            return at


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", required=True, help="file to write the hello records to")
    parser.add_argument("--port-file", required=True, help="file to write the port to")
    parser.add_argument("--timeout", type=float, default=60.0)
    args = parser.parse_args()

    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as listener:
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", 0))
        listener.listen(8)
        listener.settimeout(args.timeout)
        with open(args.port_file + ".tmp", "w") as f:
            f.write(str(listener.getsockname()[1]))
        # Renamed into place so the waiting script never reads a half-written port.
        os.replace(args.port_file + ".tmp", args.port_file)

        while True:
            conn, _ = listener.accept()
            with conn:
                conn.settimeout(args.timeout)
                buf = b""
                end = None
                while end is None:
                    chunk = conn.recv(65536)
                    if not chunk:
                        break
                    buf += chunk
                    end = hello_records_len(buf)
                if end is None:
                    # A connection that closed before a hello (a probe): wait for the next.
                    print(f"connection closed after {len(buf)} bytes, waiting again", file=sys.stderr)
                    continue
                with open(args.out, "wb") as f:
                    f.write(buf[:end])
                print(f"{args.out}: {end} bytes", file=sys.stderr)
                return 0


if __name__ == "__main__":
    sys.exit(main())

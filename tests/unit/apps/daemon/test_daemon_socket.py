"""The listening socket: answers are not held back by Nagle's algorithm."""

from __future__ import annotations

import socket

from defectkit.apps.daemon.service import _bind


def test_accepted_connections_send_without_delay():
    server = _bind("127.0.0.1", 0)
    try:
        client = socket.create_connection(server.getsockname()[:2], timeout=5)
        conn, _ = server.accept()
        try:
            # inherited from the listener: headers and body of an answer go out at once
            assert conn.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) != 0
        finally:
            conn.close()
            client.close()
    finally:
        server.close()

#!/usr/bin/env python3
"""Runs SIPVicious' svcrack from a given source address: `svcrack_from.py IP svcrack-args...`.

svcrack 0.3.8 parses `-b/--bindingip` but never passes it on (it always binds every
interface), so on one machine every instance would send from the same address. This wrapper
binds its sockets to IP instead, so tests can play 20 attackers on 127.0.1.1-20. The
attack itself is svcrack's, unchanged.
"""
import socket
import sys

source_ip = sys.argv.pop(1)
_bind = socket.socket.bind


def bind_to_source(sock, address):
    host, port = address[0], address[1]
    if host in ("", "0.0.0.0"):
        host = source_ip
    return _bind(sock, (host, port) + tuple(address[2:]))


socket.socket.bind = bind_to_source

from sipvicious import svcrack  # noqa: E402  (after the patch, which it must see)

sys.argv[0] = "sipvicious_svcrack"
svcrack.main()

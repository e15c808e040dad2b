"""Which node a piece of work ran on, and how to say that a node cannot read a path."""

from __future__ import annotations

import socket


def node_name() -> str:
    return socket.gethostname()


def unreadable_here(path: str) -> str:
    """"" when this node can read `path`; else why not, naming the node (paths must be on a filesystem
    every node mounts)."""
    try:
        with open(path, "rb"):
            return ""
    except OSError as exc:
        return f"node {node_name()} cannot read this path ({exc.strerror or type(exc).__name__}); " \
               "inputs must be on a filesystem every Ray node mounts"


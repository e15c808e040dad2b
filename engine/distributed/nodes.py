"""Which node a piece of work ran on, and how to say that a node cannot read a path."""

from __future__ import annotations

import socket

import ray


def node_id() -> str:
    """The Ray node this runs on (several nodes can share a host name: a test cluster on one machine)."""
    return ray.get_runtime_context().get_node_id()


def unreadable_here(path: str) -> str:
    """"" when this node can read `path`; else why not, naming the host (paths must be on a filesystem
    every node mounts)."""
    try:
        with open(path, "rb"):
            return ""
    except OSError as exc:
        return f"node {socket.gethostname()} cannot read this path ({exc.strerror or type(exc).__name__}); " \
               "inputs must be on a filesystem every Ray node mounts"

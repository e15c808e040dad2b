"""A real Orthanc PACS (Debian `orthanc` + `orthanc-dicomweb`) on 127.0.0.1, for tests.

    with OrthancServer(tmp_path) as pacs:
        pacs.upload(path); pacs.dicomweb  # http://127.0.0.1:PORT/dicom-web

Free ports chosen at run time, a throw-away storage folder, stopped at the end. `ORTHANC` is None where
the binary is absent (tests skip with that reason; .ci/run installs it).
"""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import time
from pathlib import Path

import requests

ORTHANC = shutil.which("Orthanc")
PLUGINS = "/usr/share/orthanc/plugins"
SKIP_REASON = "Orthanc is not installed (apt-get install -y orthanc orthanc-dicomweb; .ci/run does)"
AET = "ORTHANC"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class OrthancServer:
    def __init__(self, folder: Path, users: dict[str, str] | None = None) -> None:
        self.folder = Path(folder)
        self.users = users or {}
        self.http_port, self.dicom_port = free_port(), free_port()
        self.url = f"http://127.0.0.1:{self.http_port}"
        self.dicomweb = f"{self.url}/dicom-web"
        self.process: subprocess.Popen | None = None

    def config(self) -> dict:
        return {
            "Name": "mammo-batch-tests", "StorageDirectory": str(self.folder / "storage"),
            "IndexDirectory": str(self.folder / "index"), "HttpPort": self.http_port,
            "DicomPort": self.dicom_port, "DicomAet": AET, "RemoteAccessAllowed": False,
            "AuthenticationEnabled": bool(self.users), "RegisteredUsers": self.users,
            "Plugins": [PLUGINS], "DicomWeb": {"Enable": True, "Root": "/dicom-web/"},
            "DicomCheckCalledAet": False, "ConcurrentJobs": 1, "HttpThreadsCount": 4,
        }

    def __enter__(self) -> OrthancServer:
        self.folder.mkdir(parents=True, exist_ok=True)
        config = self.folder / "orthanc.json"
        config.write_text(json.dumps(self.config()), encoding="utf-8")
        self.log = (self.folder / "orthanc.log").open("w")
        self.process = subprocess.Popen([ORTHANC, str(config)], stdout=self.log, stderr=subprocess.STDOUT)
        self._wait()
        return self

    def _wait(self, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"Orthanc exited with {self.process.returncode}: see {self.folder}/orthanc.log")
            try:
                if self.get("/system").ok:
                    return
            except requests.ConnectionError:
                pass
            time.sleep(0.2)
        raise RuntimeError(f"Orthanc did not answer within {timeout} s")

    def __exit__(self, *exc) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.log.close()

    @property
    def auth(self) -> tuple[str, str] | None:
        return next(iter(self.users.items())) if self.users else None

    def get(self, path: str, **kwargs) -> requests.Response:
        return requests.get(self.url + path, auth=self.auth, timeout=30, **kwargs)

    def upload(self, path: Path) -> str:
        """POST one DICOM file to /instances (Orthanc's REST API); returns its Orthanc id."""
        response = requests.post(self.url + "/instances", data=Path(path).read_bytes(), auth=self.auth, timeout=60)
        response.raise_for_status()
        return response.json()["ID"]

    def instances(self) -> list[str]:
        return self.get("/instances").json()


class BearerGate:
    """A real HTTP front door that admits only `Authorization: Bearer <token>` and forwards to Orthanc
    (Orthanc 1.10 has no bearer authentication of its own; sites put such a gateway in front of it).

    Records every Authorization header it saw, so tests can check what the client sent."""

    def __init__(self, upstream: OrthancServer, token: str) -> None:
        import http.server
        import threading

        gate = self
        self.seen: list[str | None] = []
        self.upstream, self.token = upstream, token

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                gate._forward(self, "GET")

            def do_POST(self) -> None:
                gate._forward(self, "POST")

            def log_message(self, *args) -> None:  # quiet
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.dicomweb = f"{self.url}/dicom-web"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def _forward(self, handler, method: str) -> None:
        header = handler.headers.get("Authorization")
        self.seen.append(header)
        if header != f"Bearer {self.token}":
            handler.send_response(401)
            handler.send_header("Content-Length", "0")
            handler.end_headers()
            return
        length = int(handler.headers.get("Content-Length") or 0)
        body = handler.rfile.read(length) if length else None
        headers = {k: v for k, v in handler.headers.items() if k.lower() in ("accept", "content-type")}
        response = requests.request(method, self.upstream.url + handler.path, data=body, headers=headers,
                                    auth=self.upstream.auth, timeout=60)
        handler.send_response(response.status_code)
        handler.send_header("Content-Type", response.headers.get("Content-Type", "application/octet-stream"))
        handler.send_header("Content-Length", str(len(response.content)))
        handler.end_headers()
        handler.wfile.write(response.content)

    def __enter__(self) -> BearerGate:
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.server.shutdown()
        self.server.server_close()

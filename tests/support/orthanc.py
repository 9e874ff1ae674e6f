"""A real Orthanc (Debian's `orthanc` package) as the establishment's PACS, on free loopback
ports with its own configuration in a temporary folder; never the system service."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import socket
import subprocess
import threading
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import IN_CI, free_port

ORTHANC = os.environ.get("CONSILIUM_ORTHANC", "/usr/sbin/Orthanc")
PLUGINS = [p for p in ("/usr/share/orthanc/plugins/libOrthancDicomWeb.so",) if Path(p).exists()]


def need_orthanc() -> None:
    if Path(ORTHANC).exists():
        return
    msg = f"Orthanc is not installed ({ORTHANC}; Debian packages orthanc, orthanc-dicomweb)"
    if IN_CI:
        pytest.fail(msg + " — CI must run this test", pytrace=False)
    pytest.skip(msg)


class Orthanc:
    def __init__(self, root: Path, *, consilium_ae: str, consilium_port: int) -> None:
        self.root = root
        self.consilium_port = consilium_port
        self.http_port = free_port()
        self.dicom_port = free_port()
        self.ae_title = "ORTHANC"
        self.url = f"http://127.0.0.1:{self.http_port}"
        self.config = {
            "Name": "PACS de test",
            "StorageDirectory": str(root / "storage"),
            "IndexDirectory": str(root / "index"),
            "HttpPort": self.http_port,
            "DicomPort": self.dicom_port,
            "DicomAet": self.ae_title,
            "RemoteAccessAllowed": False,
            "AuthenticationEnabled": False,
            "HttpServerEnabled": True,
            "DicomServerEnabled": True,
            "DicomCheckCalledAet": False,
            "DicomModalities": {
                "consilium": {
                    "AET": consilium_ae,
                    "Host": "127.0.0.1",
                    "Port": consilium_port,
                    "AllowEcho": True,
                    "AllowFind": True,
                    "AllowGet": True,
                    "AllowMove": True,
                    "AllowStore": True,
                }
            },
            "Plugins": PLUGINS,
            "DicomWeb": {"Enable": True, "Root": "/dicom-web/"},
            "StableAge": 1,
            "SaveJobs": False,
        }
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        (self.root / "storage").mkdir(parents=True, exist_ok=True)
        cfg = self.root / "orthanc.json"
        cfg.write_text(json.dumps(self.config))
        self.log = (self.root / "orthanc.log").open("wb")
        self.proc = subprocess.Popen(
            [ORTHANC, "--no-jobs", str(cfg)], stdout=self.log, stderr=subprocess.STDOUT
        )
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError("Orthanc exited:\n" + (self.root / "orthanc.log").read_text())
            with contextlib.suppress(OSError):
                self.get("/system")
                with socket.create_connection(("127.0.0.1", self.dicom_port), timeout=1):
                    return
            time.sleep(0.2)
        raise RuntimeError("Orthanc did not start:\n" + (self.root / "orthanc.log").read_text())

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.terminate()
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
            self.log.close()

    def get(self, path: str) -> Any:
        with urllib.request.urlopen(self.url + path, timeout=30) as r:
            return json.loads(r.read())

    def store(self, dicom: bytes) -> dict[str, Any]:
        """POST /instances: what a modality's C-STORE would have left in the PACS."""
        req = urllib.request.Request(
            self.url + "/instances",
            data=dicom,
            headers={"Content-Type": "application/dicom"},
            method="POST",
        )
        with urllib.request.urlopen(req, timeout=30) as r:
            return json.loads(r.read())  # type: ignore[no-any-return]

    def send_to(self, modality: str, resource_ids: list[str]) -> Any:
        """Ask Orthanc to C-STORE resources to one of its DICOM modalities."""
        req = urllib.request.Request(
            self.url + f"/modalities/{modality}/store",
            data=json.dumps({"Resources": resource_ids, "Synchronous": True}).encode(),
            headers={"Content-Type": "application/json"},
            method="POST",
        )
        with urllib.request.urlopen(req, timeout=60) as r:
            return json.loads(r.read())


@contextlib.contextmanager
def running_orthanc(root: Path, *, consilium_ae: str, consilium_port: int) -> Iterator[Orthanc]:
    need_orthanc()
    o = Orthanc(root, consilium_ae=consilium_ae, consilium_port=consilium_port)
    o.start()
    try:
        yield o
    finally:
        o.stop()
        shutil.rmtree(root, ignore_errors=True)


class StalledPeer:
    """A TCP server on loopback that accepts connections and never answers."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(8)
        self.port = int(self.sock.getsockname()[1])
        self.accepted: list[socket.socket] = []
        self._stop = False
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        self.sock.settimeout(0.2)
        while not self._stop:
            try:
                conn, _ = self.sock.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            self.accepted.append(conn)  # held open, never read, never answered

    def close(self) -> None:
        self._stop = True
        self.thread.join(5)
        for c in self.accepted:
            c.close()
        self.sock.close()

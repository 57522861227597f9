"""Helpers of the dashboard tests: a real preview result, a real server, plain HTTP.

The server is started the way a user starts it (``python -m skytriage dashboard ...``) on a
free loopback port, and stopped at the end; HTTP goes through the standard library only.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

START_TIMEOUT_S = 60


def make_result(root: Path) -> Path:
    """Simulate 2 datasets of 12 frames (256x256 px), run preview on them; return the result."""
    import skytriage.preview
    from skytriage.preview.simulate import simulate_frames

    night, out = root / "night", root / "result"
    simulate_frames(night, n_datasets=2, frames_per_dataset=12, shape=(256, 256), seed=1)
    skytriage.preview.run([night], workers=1).write(out)
    return out


def make_big_result(small: Path, out: Path, n_frames: int = 3000) -> Path:
    """A ``frames.parquet`` of ``n_frames`` rows (datasets of 100) made by repeating ``small``'s."""
    frames = pd.read_parquet(small / "frames.parquet")
    rows = frames.iloc[np.arange(n_frames) % len(frames)].reset_index(drop=True)
    rows["dataset"] = [f"field_{i // 100:03d}" for i in range(n_frames)]
    rows["frame"] = np.arange(n_frames) % 100
    out.mkdir(parents=True, exist_ok=True)
    rows.to_parquet(out / "frames.parquet", index=False)
    return out


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nobody listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class Answer:
    """An HTTP answer: status, headers, body bytes."""

    status: int
    headers: dict[str, str]
    body: bytes

    def json(self):
        return json.loads(self.body)


def request(url: str, data: bytes | None = None, method: str | None = None,
            content_type: str = "application/json", timeout: float = 30) -> Answer:
    """One HTTP request; 4xx and 5xx answers are returned, not raised."""
    req = urllib.request.Request(url, data=data, method=method,
                                 headers={"Content-Type": content_type} if data else {})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            return Answer(resp.status, dict(resp.headers), resp.read())
    except urllib.error.HTTPError as err:
        return Answer(err.code, dict(err.headers), err.read())


def post_json(url: str, obj) -> Answer:
    """POST ``obj`` as JSON."""
    return request(url, json.dumps(obj).encode())


class DashboardServer:
    """``python -m skytriage dashboard RESULT --db URL --port P`` in a subprocess.

    Use as a context manager: it waits until ``/api/datasets`` answers, and stops the
    server (SIGINT, then SIGKILL) on exit.
    """

    def __init__(self, result_dir: Path, db_url: str | None = None, cwd: Path | None = None):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        args = [sys.executable, "-m", "skytriage", "dashboard", str(result_dir),
                "--port", str(self.port)]
        if db_url:
            args += ["--db", db_url]
        self.log = (Path(result_dir) / f"server-{self.port}.log").open("w")
        self.process = subprocess.Popen(args, cwd=cwd, stdout=self.log, stderr=subprocess.STDOUT,
                                        env={**os.environ, "PYTHONUNBUFFERED": "1"})

    def wait(self) -> None:
        """Block until the API answers; fail with the server's log if it never does."""
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                break
            try:
                if request(self.url + "/api/datasets", timeout=2).status == 200:
                    return
            except OSError:
                time.sleep(0.2)
        self.stop()
        raise RuntimeError(f"dashboard did not start: {Path(self.log.name).read_text()}")

    def stop(self) -> None:
        """Stop the server process and close its log."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.log.close()

    def __enter__(self) -> DashboardServer:
        self.wait()
        return self

    def __exit__(self, *exc) -> None:
        self.stop()


def post_labels(url: str, rows: list[dict]) -> list[int]:
    """POST each row to ``url/api/labels`` (a worker of the concurrency test); statuses."""
    return [post_json(url + "/api/labels", row).status for row in rows]

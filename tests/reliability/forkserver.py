"""Run ``assetlens`` commands in forked children of one warm interpreter.

Importing torch, open_clip and faster-whisper costs 5-15 s per process on a small machine,
which would make a suite of dozens of crash, concurrency and disk-full runs take many minutes.
This server pays it once: it imports the CLI and every module an ingest loads lazily, then
forks one child per command. Each child is a real, separate process running the real
``assetlens`` entry point (``enrich.cli.main``) with its own arguments, environment, working
directory, stdout/stderr files, optional ``RLIMIT_FSIZE`` and optional unprivileged user, so
the tests can SIGKILL it, starve it of disk, or run it as ``nobody``.

The parent never runs a model: no OpenMP or CTranslate2 thread pool exists at fork time, so
children start their own. Requests and replies are JSON lines on the server's stdin/stdout:

- ``{"op": "spawn", "argv": [...], "env": {...}, "cwd": D, "stdout": F, "stderr": F,
  "user": UID|null, "fsize": BYTES|null}`` -> ``{"pid": PID}``
- ``{"op": "poll", "pid": PID}`` -> ``{"returncode": CODE|null, "maxrss_kb": N|null}``
  (a negative code is the signal that ended the child, as in :mod:`subprocess`)

Run as a script (``python forkserver.py``); :class:`ForkServer` is the client the tests use.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

# Modules an ingest, search or transcription imports lazily. A child that dropped to
# ``nobody`` may not be able to read the interpreter's own stdlib folder (here it sits under
# /root), so everything must already be in memory when it forks.
PRELOAD = (
    "assetlens.enrich.cli",
    "assetlens.enrich.lock",
    "assetlens.search.api",
    "assetlens.search.catalog.meta",
    "assetlens.search.catalog.export",
    "assetlens.models.clip",
    "assetlens.models.torch_towers",
    "assetlens.models.onnx_export",
    "assetlens.models.tokenizer",
    "assetlens.models.whisper",
    "faster_whisper",
    "ctranslate2",
    "rapidocr.main",  # OCR: the engine, its ONNX Runtime backend and what its config loads
    "rapidocr.inference_engine.onnxruntime",
    "omegaconf._impl",
    "tokenizers",
    "onnxruntime",
    "av",
    "PIL.Image",
    "PIL.JpegImagePlugin",
    "PIL.PngImagePlugin",
    "PIL.GifImagePlugin",
    "PIL.WebPImagePlugin",
    "PIL.TiffImagePlugin",
    "PIL.BmpImagePlugin",
    "PIL.IcoImagePlugin",
    "PIL.MpoImagePlugin",
    "faiss",
    "sqlite3",
    "zlib",
    "uuid",
    "hashlib",
    "email.utils",
    "json",
    "csv",
    "traceback",
    "concurrent.futures.thread",
    "multiprocessing",
    "tqdm",
)


# --- the server (runs in its own interpreter) ------------------------------------------------


def _preload() -> None:
    import importlib

    for name in PRELOAD:
        with contextlib.suppress(ImportError):  # optional extras: a child imports them if it can
            importlib.import_module(name)
    import encodings
    import pkgutil

    for info in pkgutil.iter_modules(encodings.__path__):  # codecs are looked up lazily
        with contextlib.suppress(ImportError):  # platform codecs (mbcs, oem) exist on Windows only
            importlib.import_module(f"encodings.{info.name}")
    from PIL import Image

    Image.init()  # registers every plugin now, not on the first open in the child


def _child(request: dict[str, Any]) -> None:
    """Become the command: redirect, limit, drop privileges, run the CLI, never return."""
    code = 1
    try:
        os.setsid()  # its own process group: a signal to it never reaches the server
        devnull = os.open(os.devnull, os.O_RDONLY)
        out = os.open(request["stdout"], os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        err = os.open(request["stderr"], os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        for fd, target in ((devnull, 0), (out, 1), (err, 2)):
            os.dup2(fd, target)
            os.close(fd)
        if request.get("fsize") is not None:
            import resource

            limit = int(request["fsize"])
            resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))
        os.environ.clear()
        os.environ.update(request["env"])
        os.chdir(request["cwd"])
        if request.get("user") is not None:
            uid = int(request["user"])
            os.setgroups([])
            os.setgid(uid)
            os.setuid(uid)
        sys.argv = ["assetlens", *request["argv"]]
        from assetlens.enrich.cli import main

        try:
            main()
            code = 0
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    except BaseException:
        import traceback

        traceback.print_exc()
    finally:
        for stream in (sys.stdout, sys.stderr):
            with contextlib.suppress(Exception):  # e.g. a full disk: the exit code still tells
                stream.flush()
        os._exit(code)


def _serve() -> None:
    _preload()
    finished: dict[int, tuple[int, int]] = {}
    buffer = b""
    os.write(1, b'{"ready": true}\n')
    while True:
        while b"\n" not in buffer:
            chunk = os.read(0, 65536)
            if not chunk:
                return  # the client went away
            buffer += chunk
        line, buffer = buffer.split(b"\n", 1)
        request = json.loads(line)
        if request["op"] == "spawn":
            pid = os.fork()
            if pid == 0:
                _child(request)
            reply: dict[str, Any] = {"pid": pid}
        else:
            pid = int(request["pid"])
            if pid not in finished:
                done, status, usage = os.wait4(pid, os.WNOHANG)
                if done:
                    finished[pid] = (os.waitstatus_to_exitcode(status), usage.ru_maxrss)
            code, rss = finished.get(pid, (None, None))
            reply = {"returncode": code, "maxrss_kb": rss}
        os.write(1, json.dumps(reply).encode() + b"\n")


# --- the client (runs in the test process) ---------------------------------------------------


@dataclass(frozen=True)
class Result:
    """How a command ended."""

    returncode: int
    stdout: str
    stderr: str
    maxrss_kb: int
    seconds: float

    def json(self) -> Any:
        """The command's ``--json`` document."""
        return json.loads(self.stdout)


class Child:
    """One running command."""

    def __init__(self, server: ForkServer, pid: int, stdout: Path, stderr: Path) -> None:
        self.server, self.pid, self.stdout, self.stderr = server, pid, stdout, stderr
        self.started = time.monotonic()
        self._result: Result | None = None

    def poll(self) -> Result | None:
        """The result once the command has ended, else None."""
        if self._result is None:
            reply = self.server.request({"op": "poll", "pid": self.pid})
            if reply["returncode"] is not None:
                self._result = Result(
                    reply["returncode"],
                    self.stdout.read_text(errors="replace"),
                    self.stderr.read_text(errors="replace"),
                    reply["maxrss_kb"],
                    time.monotonic() - self.started,
                )
        return self._result

    def wait(self, timeout: float = 300.0) -> Result:
        """Wait for the command to end.

        Raises:
            TimeoutError: It is still running after ``timeout`` seconds (it is killed).
        """
        deadline = time.monotonic() + timeout
        while (result := self.poll()) is None:
            if time.monotonic() > deadline:
                self.kill()
                raise TimeoutError(f"command {self.pid} still running after {timeout} s")
            time.sleep(0.02)
        return result

    def kill(self, signal_number: int = 9) -> None:
        """Send a signal (default SIGKILL) unless the command has already been reaped."""
        if self._result is None:
            with contextlib.suppress(ProcessLookupError):  # ended, not yet reaped
                os.kill(self.pid, signal_number)


class ForkServer:
    """Client of a fork server started with ``env`` (the environment its imports see).

    Args:
        env: Environment of the server process (children get their own per command).
        log: File receiving the server's stderr.
    """

    def __init__(self, env: dict[str, str], log: Path) -> None:
        self._lock = threading.Lock()
        self._log = log.open("wb")
        self.process = subprocess.Popen(
            [sys.executable, __file__],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self._log,
            env=env,
            cwd=Path(__file__).resolve().parents[2],
        )
        self._count = 0
        self._outputs = log.parent
        ready = self._readline()
        if not ready.get("ready"):
            raise RuntimeError(f"fork server did not start (see {log})")

    def _readline(self) -> dict[str, Any]:
        assert self.process.stdout is not None
        line = self.process.stdout.readline()
        if not line:
            raise RuntimeError(f"fork server died (see {self._log.name})")
        result: dict[str, Any] = json.loads(line)
        return result

    def request(self, message: dict[str, Any]) -> dict[str, Any]:
        """Send one request and read its reply (thread-safe)."""
        with self._lock:
            assert self.process.stdin is not None
            self.process.stdin.write(json.dumps(message).encode() + b"\n")
            self.process.stdin.flush()
            return self._readline()

    def spawn(
        self,
        argv: list[str],
        env: dict[str, str],
        *,
        cwd: Path | None = None,
        user: int | None = None,
        fsize: int | None = None,
    ) -> Child:
        """Start ``assetlens ARGV...`` in a forked child.

        Args:
            argv: Arguments after the program name.
            env: The child's whole environment.
            cwd: Its working directory (default: the repository root).
            user: Run as this uid (and gid) after dropping supplementary groups.
            fsize: ``RLIMIT_FSIZE`` in bytes: writes past it fail with EFBIG.
        """
        with self._lock:
            self._count += 1
            number = self._count
        stdout = self._outputs / f"cmd-{number}.out"
        stderr = self._outputs / f"cmd-{number}.err"
        reply = self.request(
            {
                "op": "spawn",
                "argv": argv,
                "env": env,
                "cwd": str(cwd or Path(__file__).resolve().parents[2]),
                "stdout": str(stdout),
                "stderr": str(stderr),
                "user": user,
                "fsize": fsize,
            }
        )
        return Child(self, int(reply["pid"]), stdout, stderr)

    def run(self, argv: list[str], env: dict[str, str], timeout: float = 300.0, **kwargs: Any) -> Result:
        """Run a command to its end."""
        return self.spawn(argv, env, **kwargs).wait(timeout)

    def close(self) -> None:
        """Stop the server (children still running are left alone)."""
        if self.process.stdin is not None:
            self.process.stdin.close()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self._log.close()


if __name__ == "__main__":
    # This folder first on sys.path could shadow real modules with the tests' helpers.
    sys.path = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]
    _serve()

"""Throwaway servers for the cluster gallery tests: a real PostgreSQL and a real Milvus (milvus-lite's gRPC server).

PostgreSQL: Debian's binaries (scripts/install-postgresql.sh), ``initdb`` into a temporary directory, listening on
a Unix socket in it only (no TCP port). PostgreSQL refuses to run as root, so as root it runs as ``nobody``.
"""

from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

from service.config import ClusterSettings

SUPERUSER = "shitu"


def postgres_bin_dir() -> Path | None:
    candidates = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda path: int(path.split("/")[4]))
    if candidates:
        return Path(candidates[-1]).parent
    found = shutil.which("initdb")
    return Path(found).resolve().parent if found else None


@dataclass
class PostgresServer:
    directory: Path
    bin_dir: Path

    @property
    def dsn(self) -> str:
        return f"host={self.directory} user={SUPERUSER} dbname=postgres"

    @classmethod
    def start(cls) -> PostgresServer:
        """Raises RuntimeError (with the server's log) when it cannot start."""
        bin_dir = postgres_bin_dir()
        if bin_dir is None:
            raise RuntimeError("no PostgreSQL server binaries (run scripts/install-postgresql.sh)")
        directory = Path(tempfile.mkdtemp(prefix="shitu-pg-"))  # short: a Unix socket path has ~100 characters
        server = cls(directory, bin_dir)
        if os.geteuid() == 0:
            shutil.chown(directory, "nobody")
        server._run("initdb", "-D", str(directory / "data"), "-A", "trust", "-U", SUPERUSER, "-E", "UTF8",
                    "--no-sync")
        options = f"-k {directory} -c listen_addresses='' -c max_connections=200 -c fsync=on"
        try:
            server._run("pg_ctl", "-D", str(directory / "data"), "-o", options, "-l", str(directory / "log"), "-w",
                        "-t", "60", "start")
        except RuntimeError as error:
            log = (directory / "log").read_text(errors="replace") if (directory / "log").exists() else ""
            shutil.rmtree(directory, ignore_errors=True)
            raise RuntimeError(f"{error}\n{log}") from error
        return server

    def _run(self, program: str, *arguments: str) -> None:
        command = [str(self.bin_dir / program), *arguments]
        if os.geteuid() == 0:
            command = ["runuser", "-u", "nobody", "--", *command]
        completed = subprocess.run(command, capture_output=True, text=True, timeout=120, cwd=self.directory)
        if completed.returncode:
            raise RuntimeError(f"{program} failed: {completed.stderr.strip() or completed.stdout.strip()}")

    def stop(self) -> None:
        try:
            self._run("pg_ctl", "-D", str(self.directory / "data"), "-m", "immediate", "-w", "stop")
        finally:
            shutil.rmtree(self.directory, ignore_errors=True)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@dataclass
class MilvusServer:
    """milvus-lite's gRPC server in a process of its own: what several service processes connect to, as they
    would to a Milvus standalone or cluster (the same client calls)."""

    process: subprocess.Popen[bytes]
    directory: Path
    port: int

    @property
    def uri(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @classmethod
    def start(cls, directory: Path) -> MilvusServer:
        port = free_port()
        process = subprocess.Popen(
            [sys.executable, "-m", "milvus_lite", "server", "--data-dir", str(directory), "--host", "127.0.0.1",
             "--port", str(port)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        server = cls(process, directory, port)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if process.poll() is not None:
                raise RuntimeError(f"milvus-lite server exited with {process.returncode}")
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
                return server
            except OSError:
                time.sleep(0.2)
        server.stop()
        raise RuntimeError("milvus-lite server did not listen within 60 s")

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


@dataclass
class ClusterServers:
    """A PostgreSQL server and a milvus-lite database for the session; each test gets its own gallery name
    (PostgreSQL schema and Milvus collection) in them."""

    postgres_dsn: str
    milvus_uri: str

    def settings(self, **overrides: object) -> ClusterSettings:
        return ClusterSettings(postgres_dsn=self.postgres_dsn, milvus_uri=self.milvus_uri,
                               name=f"t{uuid.uuid4().hex[:16]}", **overrides)  # type: ignore[arg-type]

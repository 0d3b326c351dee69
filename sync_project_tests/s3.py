"""A real S3-compatible server for tests: moto's server mode, from the dev packages, with IAM checks on.

Moto authenticates and authorises requests once `INITIAL_NO_AUTH_ACTION_COUNT` requests have passed without
(its docs, iam.rst): the set-up makes exactly that many (the bucket, and for each principal its user, policy and
access key), and from then on every request needs a key IAM knows, allowed by that key's policy. So a worker's
key writes, an analyst's key only reads, and an unknown key is refused, as on AWS.

`CuttableProxy` stands between a client and the server so a test can make the endpoint stop answering at a
moment it chooses (a real socket that closes, not a mock).
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

BUCKET = "sync-lake"
REGION = "us-east-1"
# Each principal: the S3 actions its policy allows on the bucket and everything in it. Moto checks a listing and
# a delete of many objects against the operations' names (s3:ListObjectsV2, s3:ListObjects, s3:DeleteObjects)
# where AWS checks s3:ListBucket and s3:DeleteObject, so the policies name both for each one permission.
_LIST = ["s3:ListBucket", "s3:ListObjects", "s3:ListObjectsV2"]
PRINCIPALS = {
    "worker": [*_LIST, "s3:GetObject", "s3:PutObject", "s3:DeleteObject", "s3:DeleteObjects"],
    "analyst": [*_LIST, "s3:GetObject"],
}
_SETUP_REQUESTS = 1 + 3 * len(PRINCIPALS)  # create_bucket; per principal: user, policy, access key


@dataclass(frozen=True)
class S3Server:
    endpoint: str  # http://127.0.0.1:port
    keys: dict[str, tuple[str, str]]  # principal -> (key id, secret)

    def env(self, principal: str = "worker", endpoint: str | None = None) -> dict[str, str]:
        """The standard AWS variables a process of this principal runs with."""
        key_id, secret = self.keys[principal] if principal in self.keys else ("AKIA" + "X" * 16, "not-a-secret")
        return {
            "AWS_ACCESS_KEY_ID": key_id,
            "AWS_SECRET_ACCESS_KEY": secret,
            "AWS_REGION": REGION,
            "AWS_ENDPOINT_URL_S3": endpoint or self.endpoint,
        }

    def use(self, monkeypatch: Any, principal: str = "worker", endpoint: str | None = None) -> None:
        """Give the test's process this principal's AWS variables (undone with the test's monkeypatch)."""
        for name, value in self.env(principal, endpoint).items():
            monkeypatch.setenv(name, value)

    def new_prefix(self) -> str:
        """A data path of its own for one test's lake."""
        return f"s3://{BUCKET}/{uuid.uuid4().hex[:12]}/"

    def client(self, principal: str = "worker") -> Any:
        import boto3

        key_id, secret = self.keys[principal]
        return boto3.client(
            "s3", endpoint_url=self.endpoint, region_name=REGION, aws_access_key_id=key_id, aws_secret_access_key=secret
        )

    def objects(self, data_path: str) -> list[str]:
        """Every object under a data path, as keys relative to it."""
        prefix = data_path.removeprefix(f"s3://{BUCKET}/")
        pages = self.client().get_paginator("list_objects_v2").paginate(Bucket=BUCKET, Prefix=prefix)
        return sorted(o["Key"][len(prefix) :] for page in pages for o in page.get("Contents", []))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait_for_port(port: int, process: subprocess.Popen[bytes], log: Path) -> None:
    """Wait by connecting only: an HTTP request would count as one of the unauthenticated set-up requests."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"moto_server exited: {log.read_text()[-2000:]}")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=1):
            return
        time.sleep(0.1)
    raise TimeoutError(f"moto_server did not listen on {port}: {log.read_text()[-2000:]}")


def _set_up(endpoint: str) -> dict[str, tuple[str, str]]:
    import boto3

    anyone = {
        "endpoint_url": endpoint,
        "region_name": REGION,
        "aws_access_key_id": "setup",
        "aws_secret_access_key": "x",
    }
    boto3.client("s3", **anyone).create_bucket(Bucket=BUCKET)
    iam = boto3.client("iam", **anyone)
    keys = {}
    for principal, actions in PRINCIPALS.items():
        iam.create_user(UserName=principal)
        resources = [f"arn:aws:s3:::{BUCKET}", f"arn:aws:s3:::{BUCKET}/*"]
        policy = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": actions, "Resource": resources}]}
        iam.put_user_policy(UserName=principal, PolicyName="lake", PolicyDocument=json.dumps(policy))
        key = iam.create_access_key(UserName=principal)["AccessKey"]
        keys[principal] = (key["AccessKeyId"], key["SecretAccessKey"])
    return keys


@contextlib.contextmanager
def s3_server(folder: Path) -> Iterator[S3Server]:
    port = _free_port()
    log = folder / "moto.log"
    env = os.environ | {"INITIAL_NO_AUTH_ACTION_COUNT": str(_SETUP_REQUESTS)}
    server = Path(sys.executable).parent / "moto_server"
    with open(log, "wb") as out:
        process = subprocess.Popen(
            [str(server), "-H", "127.0.0.1", "-p", str(port)], stdout=out, stderr=subprocess.STDOUT, env=env
        )
    try:
        _wait_for_port(port, process, log)
        endpoint = f"http://127.0.0.1:{port}"
        s3 = S3Server(endpoint, _set_up(endpoint))
        _require_checks_on(s3)
        yield s3
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()


def _require_checks_on(s3: S3Server) -> None:
    """The set-up's count was right: an analyst's write is refused (else every test would pass on a lenient
    server)."""
    import botocore.exceptions

    try:
        s3.client("analyst").put_object(Bucket=BUCKET, Key="probe", Body=b"x")
    except botocore.exceptions.ClientError as e:
        if e.response["Error"]["Code"] == "AccessDenied":
            return
        raise
    raise RuntimeError("moto_server accepted an analyst's write: its IAM checks are not on")


class CuttableProxy:
    """A TCP relay to `target` that a test can cut: open connections are closed and new ones refused."""

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self._listener = socket.socket()
        self._listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._listener.bind(("127.0.0.1", 0))
        self._listener.listen(64)
        self.port = int(self._listener.getsockname()[1])
        self._open: list[socket.socket] = []
        self._cut = threading.Event()
        self._lock = threading.Lock()
        threading.Thread(target=self._accept, daemon=True).start()

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def cut(self) -> None:
        self._cut.set()
        with self._lock:
            for s in self._open:
                with contextlib.suppress(OSError):
                    s.shutdown(socket.SHUT_RDWR)
                    s.close()
            self._open.clear()

    def resume(self) -> None:
        self._cut.clear()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            if self._cut.is_set():
                client.close()  # refused: the endpoint does not answer
                continue
            try:
                upstream = socket.create_connection(("127.0.0.1", self.target_port))
            except OSError:
                client.close()
                continue
            with self._lock:
                self._open += [client, upstream]
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    @staticmethod
    def _pipe(source: socket.socket, sink: socket.socket) -> None:
        with contextlib.suppress(OSError):
            while data := source.recv(65536):
                sink.sendall(data)
        with contextlib.suppress(OSError):
            sink.shutdown(socket.SHUT_WR)

    def close(self) -> None:
        self.cut()
        self._listener.close()

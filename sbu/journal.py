"""The forget protocol's journal: an append-only JSON-lines file, each record flushed and fsynced before the step it
records is considered done, and a sealer for what must be kept but must not be readable.

A crash can tear the last line (a write cut short); :meth:`Journal.records` ignores a last line that does not
parse, which is exactly the record whose step had not finished. Records never hold plaintext of forgotten data:
what resuming needs of it (the targets, the seeds and closure of the plan) is *sealed* — encrypted and
authenticated with Fernet (AES-128-CBC + HMAC-SHA256) under a key derived from the barrier key, so a journal
without the key file reveals nothing, and a tampered seal is refused.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
from datetime import UTC, datetime
from pathlib import Path

from cryptography.fernet import Fernet, InvalidToken, MultiFernet

from sbu.errors import JournalError


class Journal:
    def __init__(self, path: str | Path):
        self.path = Path(path)

    def append(self, record: dict) -> dict:
        """Write one record durably (flush + fsync; the folder too when the file is new); return it with its
        sequence number and time."""
        new = not self.path.exists()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._drop_torn_tail()
        record = {"seq": len(self.records()) + 1, "at": datetime.now(UTC).isoformat(), **record}
        line = json.dumps(record, sort_keys=True, ensure_ascii=True) + "\n"
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        try:
            os.write(fd, line.encode())
            os.fsync(fd)
        finally:
            os.close(fd)
        if new:
            dir_fd = os.open(self.path.parent, os.O_RDONLY)
            try:
                os.fsync(dir_fd)
            finally:
                os.close(dir_fd)
        return record

    def _drop_torn_tail(self) -> None:
        """Cut a record torn by a crash (the bytes after the last newline) so the next one starts on its own line."""
        if not self.path.exists():
            return
        data = self.path.read_bytes()
        if data and not data.endswith(b"\n"):
            with open(self.path, "r+b") as handle:
                handle.truncate(data.rfind(b"\n") + 1)
                handle.flush()
                os.fsync(handle.fileno())

    def records(self, request: str | None = None) -> list[dict]:
        if not self.path.exists():
            return []
        if not self.path.is_file():
            raise JournalError(f"the journal {self.path} is not a file")
        lines = self.path.read_text(encoding="utf-8").split("\n")
        out = []
        for number, line in enumerate(lines, 1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError:
                if number == len(lines):  # no newline after it: torn by a crash mid-write, its step never finished
                    continue
                raise JournalError(f"{self.path}: line {number} is not a journal record (the journal is "
                                   "corrupted; it is append-only and only its last line can be torn)") from None
            if not isinstance(record, dict) or "request" not in record or "state" not in record:
                raise JournalError(f"{self.path}: line {number} is not a journal record: {line[:80]!r}")
            out.append(record)
        return [r for r in out if request is None or r["request"] == request]

    def requests(self) -> list[str]:
        return list(dict.fromkeys(r["request"] for r in self.records()))

    def pending(self) -> list[str]:
        """Requests received but not committed, oldest first."""
        done = {r["request"] for r in self.records() if r["state"] == "COMMITTED"}
        return [r for r in self.requests() if r not in done]


class Sealer:
    """Encrypt-and-authenticate JSON values for the journal, under a key derived from the barrier key."""

    def __init__(self, barrier_key: bytes, *retired: bytes):
        fernets = [Fernet(base64.urlsafe_b64encode(hmac.new(k, b"sbu journal seal v1", hashlib.sha256).digest()))
                   for k in (barrier_key, *retired)]
        self._fernet = MultiFernet(fernets)  # seals with the current key, opens with any (after a rotation)

    def seal(self, value) -> str:
        return self._fernet.encrypt(json.dumps(value, sort_keys=True).encode()).decode()

    def open(self, token: str):
        try:
            return json.loads(self._fernet.decrypt(token.encode()))
        except (InvalidToken, ValueError, TypeError):
            raise JournalError("a sealed journal entry does not open with this barrier key (another key, or the "
                               "journal was altered)") from None

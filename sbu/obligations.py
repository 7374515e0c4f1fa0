"""Standing obligations: what a committed forget request keeps so that the agent's later parameter updates cannot
quietly undo it.

A consolidation trains the weights on retained data, and that alone can bring a suppressed answer back. So a
committed request leaves an :class:`Obligation`: its targets, the plan's forget set (for D_f), the ids of its
probes, ε and how many consolidations in a row have since re-verified clean. :mod:`sbu.sync` re-verifies it
after every parameter update and runs a PARAMETER round when leakage exceeds ε; this module only keeps the
obligations, one file per request under ``<work>/obligations/``:

- **sealed**: the file holds the request id (already a keyed hash) and one :class:`sbu.journal.Sealer` token —
  nothing else in clear; a file that does not open with the barrier key, or is not an obligation, is a clear
  :class:`~sbu.errors.ObligationError`;
- **atomic**: every change rewrites the file whole (:func:`sbu.files.write_atomic`, mode 0600);
- **pending**: set before an update trains and cleared when its re-verification is done, so a crash between the
  two leaves the update owed a check (resume: :meth:`sbu.sync.StandingObligations.settle`);
- **discharged**: after ``discharge_after`` clean consolidations in a row, or once the agent's model is a retrain
  that never saw the targets, the file is removed (and the folder fsynced): nothing of the targets stays.

The trade-off (docs/method.md): until it is discharged an obligation is sealed plaintext of the forgotten
patients' identifiers, readable by whoever holds the barrier key.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

from sbu.errors import JournalError, ObligationError
from sbu.files import write_atomic
from sbu.journal import Sealer

FORMAT = 1  # how an obligation file is written
SUFFIX = ".obligation"
STATES = ("standing", "unverified update")  # what `sbu obligations` shows: checked, or owed a check


@dataclass(frozen=True)
class Obligation:
    """One committed request's standing obligation (everything but ``request`` is sealed on disk)."""

    request: str  # the request id (a keyed hash; the file's name)
    targets: tuple[str, ...]  # entity ids
    forget_set: dict = field(hash=False)  # ForgetSet.as_record() of the request's plan: D_f of a re-suppression
    probes: tuple[str, ...] = ()  # QA item ids re-verified after each update
    epsilon: float = 0.15  # parameter leakage above chance allowed
    discharge_after: int = 5  # clean consolidations in a row that discharge it
    clean: int = 0  # consolidations re-verified clean since the last leak
    checks: int = 0  # re-verifications so far
    resuppressions: int = 0  # PARAMETER rounds run for it so far
    pending: bool = False  # an update has trained and is not yet re-verified

    @property
    def state(self) -> str:
        return STATES[1] if self.pending else STATES[0]

    def sealed_part(self) -> dict:
        return {k: v for k, v in asdict(self).items() if k != "request"}


@dataclass(frozen=True)
class Listing:
    """One row of ``sbu obligations``: what can be shown without any plaintext."""

    request: str
    state: str
    clean: int
    discharge_after: int
    checks: int
    resuppressions: int


class ObligationBook:
    """The obligations of one work folder (``folder``: ``<work>/obligations``), sealed with ``sealer``."""

    def __init__(self, folder: str | Path, sealer: Sealer):
        self.folder = Path(folder)
        self.sealer = sealer

    def path(self, request: str) -> Path:
        if not request or "/" in request or request.startswith("."):
            raise ObligationError(f"{request!r:.80} is not a request id")
        return self.folder / f"{request}{SUFFIX}"

    def write(self, obligation: Obligation) -> Obligation:
        record = {"format": FORMAT, "request": obligation.request,
                  "sealed": self.sealer.seal(obligation.sealed_part())}
        write_atomic(self.path(obligation.request), json.dumps(record, sort_keys=True) + "\n", mode=0o600)
        return obligation

    def read(self, request: str) -> Obligation:
        path = self.path(request)
        if not path.is_file():
            raise ObligationError(f"no standing obligation for request {request} in {self.folder}")
        try:
            record = json.loads(path.read_text(encoding="utf-8"))
            if not isinstance(record, dict) or record.get("format") != FORMAT or record.get("request") != request:
                raise ValueError
            sealed = record["sealed"]
        except (ValueError, KeyError, UnicodeDecodeError):
            raise ObligationError(f"{path} is not an obligation file (corrupted?); it is written whole or not at "
                                  "all, so it was altered: restore it from a backup, or discharge the request by a "
                                  "retrain without its patients") from None
        try:
            value = self.sealer.open(sealed)
        except JournalError:
            raise ObligationError(f"the obligation {path.name} does not open with this barrier key (another key, "
                                  "or the file was altered); restore the key file from its backup") from None
        try:
            return Obligation(request=request, **{**value, "targets": tuple(value["targets"]),
                                                  "probes": tuple(value["probes"])})
        except (TypeError, KeyError):
            raise ObligationError(f"the obligation {path.name} opens but is not an obligation of this sbu "
                                  "(another format)") from None

    def requests(self) -> list[str]:
        """The requests with a standing obligation, sorted."""
        if not self.folder.is_dir():
            return []
        return sorted(p.name[: -len(SUFFIX)] for p in self.folder.glob(f"*{SUFFIX}") if not p.name.startswith("."))

    def all(self) -> list[Obligation]:
        return [self.read(r) for r in self.requests()]

    def listing(self) -> list[Listing]:
        return [Listing(o.request, o.state, o.clean, o.discharge_after, o.checks, o.resuppressions)
                for o in self.all()]

    def mark_pending(self) -> list[Obligation]:
        """Before an update trains: every obligation opened (a bad one fails here, before anything changes) and
        marked as owed a check."""
        return [self.write(replace(o, pending=True)) for o in self.all()]

    def discharge(self, request: str) -> None:
        """Destroy ``request``'s obligation: the file is removed and the removal made durable."""
        self.path(request).unlink(missing_ok=True)
        fd = os.open(self.folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)

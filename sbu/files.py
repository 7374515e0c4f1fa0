"""Files that appear whole or not at all: written to a private temporary file beside the target, flushed, fsynced,
then renamed (or linked) into place, so a crash or a concurrent reader never sees a torn file."""

from __future__ import annotations

import os
import stat
import tempfile
from collections.abc import Callable
from pathlib import Path


def write_atomic(path: str | Path, data: str | bytes, *, mode: int | None = None, exclusive: bool = False) -> bool:
    """Write ``data`` to ``path`` atomically; ``mode`` sets the file's permissions (e.g. 0o600 for a key). With
    ``exclusive`` an existing file wins: the new one is linked only if ``path`` does not exist yet (processes that
    create it at once agree on the first), and False is returned when it already did."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        if mode is not None:
            os.chmod(tmp, mode)
        with os.fdopen(fd, "wb") as handle:
            handle.write(data.encode() if isinstance(data, str) else data)
            handle.flush()
            os.fsync(handle.fileno())
        if not exclusive:
            os.replace(tmp, path)
            return True
        try:
            os.link(tmp, path)
        except FileExistsError:
            return False
        return True
    finally:
        Path(tmp).unlink(missing_ok=True)


def read_key_file(env: str, path: Path, what: str, error: type[Exception], missing: str,
                  make: Callable[[], str] | None = None) -> tuple[str, str]:
    """The text of private keys and where it came from: ``$env`` if set, else the key file at ``path`` (``what``:
    how messages name it), written whole with mode 0600 from ``make()`` when it is missing and ``make`` is given,
    else ``error(missing)``; a file that others can read is refused."""
    if os.environ.get(env):
        return os.environ[env], f"${env}"
    if not path.exists():
        if make is None:
            raise error(missing)
        write_atomic(path, make(), mode=0o600, exclusive=True)  # the first one made wins
    mode = path.stat().st_mode
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise error(f"{what} {str(path)!r} is readable by others (mode {oct(mode & 0o777)}); run `chmod 600 {path}`")
    return path.read_text(), f"{what} {str(path)!r}"

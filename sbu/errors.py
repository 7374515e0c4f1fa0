"""Errors a user can cause. Each names the offending value and what to do about it.

Every class derives from :class:`SbuError` and from the matching built-in (``ValueError``, ``KeyError``,
``FileNotFoundError``) so that callers who catch the built-in keep working.
"""

from __future__ import annotations


class SbuError(Exception):
    """Base class of every error this package raises on purpose."""


class ConfigError(SbuError, ValueError):
    """A parameter is out of range or of the wrong kind (a size ≤ 0, a share outside (0, 1), …)."""


class UnknownSplitError(SbuError, KeyError):
    """A split name that the cohort does not define."""

    def __str__(self) -> str:  # KeyError quotes its message; keep it readable
        return str(self.args[0]) if self.args else ""


class ParameterError(ConfigError):
    """A notebook parameter of the wrong kind or out of its allowed values (:mod:`sbu.params`). In a notebook it
    shows as its one line, without a traceback: the message says all there is to fix."""

    def _render_traceback_(self) -> list[str]:  # IPython shows this instead of the traceback
        return [f"{type(self).__name__}: {self}"]


class DataFileError(SbuError, FileNotFoundError):
    """A data file or model path that does not exist or cannot be read."""


class ProfileError(ConfigError):
    """An experiment profile name that is not defined in :mod:`sbu.config`."""


class StoreError(SbuError):
    """A memory store that cannot be opened or used as asked (bad URL, missing path, unreachable endpoint)."""


class StoreUnavailableError(StoreError, ConnectionError):
    """A SPARQL endpoint that does not answer."""


class JournalError(SbuError):
    """A forget journal that cannot be read or trusted (a corrupted record, a seal that does not open, a request
    that is not in it)."""


class KeyStoreError(StoreError):
    """A memory's key store or master key that is missing, corrupt or does not match (never replaced silently: a
    new key cannot open what the old one sealed)."""


class SweepFolderError(SbuError):
    """A sweep's results folder that cannot be used: another ``sbu batch`` holds it, it is read-only, or a run's
    marker in it is damaged."""


class ClusterError(SbuError, ConnectionError):
    """A Dask cluster that cannot run a sweep: its scheduler does not answer, it has no workers, or a worker lacks
    this version of the package, the notebook or the shared results folder."""


class ObligationError(SbuError):
    """A standing obligation that cannot be used: its file is missing or corrupted, its seal does not open with the
    barrier key, or it names probes the corpus does not hold."""


class DeviceError(ConfigError):
    """A device or number format this machine cannot run: ``device='cuda'`` without a CUDA GPU, MPS where there is
    none, ``float16`` on the CPU, an unknown name."""

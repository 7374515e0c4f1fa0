"""Running a sweep's runs on a Dask cluster: a scheduler already running (``--scheduler tcp://HOST:PORT``) or
workers that ``dask-jobqueue`` submits as Slurm, PBS, SGE or LSF jobs (``--cluster slurm CONFIG.yaml``).

Dask does the scheduling; this module connects, checks every worker before a run starts (this package at this
version, the notebook with the same code, the results folder — a file system the workers share with this
machine), and hands :func:`sbu.batch.run.execute_run` to the workers through ``Client.get_executor``, so the
loop, markers, resume and progress of the local pool serve the cluster unchanged. A worker runs one notebook at a
time (a worker resource that Dask schedules by) and gives it its threads as its thread count. A worker lost in the
middle of a run: the scheduler gives the run to another worker, which starts it again from an empty folder; lost
more often than the scheduler allows (``distributed.scheduler.allowed-failures``), the run is recorded as failed.
"""

from __future__ import annotations

import importlib
import os
import shlex
import shutil
import threading
from collections.abc import Iterator
from concurrent.futures import Executor
from contextlib import contextmanager
from dataclasses import dataclass, replace
from functools import partial
from pathlib import Path

import dask_jobqueue
import yaml
from distributed import Client, WorkerPlugin, get_worker

import sbu
from sbu.batch.run import RunOutcome, RunTask, execute_run, failure_outcome, write_marker
from sbu.errors import ClusterError, ConfigError
from sbu.kernel import THREAD_VARIABLES

CONNECT_SECONDS = 10.0  # how long an unreachable scheduler is tried before the sweep stops
WORKERS_SECONDS = 60.0  # how long a reachable scheduler may have no worker (a jobqueue cluster waits for its jobs)
JOBQUEUE = {"slurm": dask_jobqueue.SLURMCluster, "pbs": dask_jobqueue.PBSCluster, "sge": dask_jobqueue.SGECluster,
            "lsf": dask_jobqueue.LSFCluster}
RESOURCE = "sbu-run"  # the Dask worker resource a run takes (one per worker: OneRunPerWorker)
_ONE_NOTEBOOK = threading.Lock()  # one notebook at a time in a worker process, whatever it is sent


@dataclass(frozen=True)
class JobQueueConfig:
    """A ``--cluster`` file: the batch system, how many jobs (one worker each) to ask for, and the rest of the
    file as the keyword arguments of dask-jobqueue's cluster class (cores, memory, queue, walltime, …)."""

    kind: str
    path: Path
    jobs: int
    options: dict


def read_jobqueue_config(kind: str, path: str | Path) -> JobQueueConfig:
    """Read and check a ``--cluster`` file; a :class:`ConfigError` names what is wrong."""
    path = Path(path)
    if kind not in JOBQUEUE:
        raise ConfigError(f"--cluster {kind}: the batch systems are {', '.join(JOBQUEUE)}")
    if not path.is_file():
        raise ConfigError(f"no cluster file {path}; it holds dask-jobqueue's settings, e.g. cores: 8, memory: 32GB")
    try:
        raw = yaml.safe_load(path.read_text())
    except yaml.YAMLError as err:
        raise ConfigError(f"cluster file {path} is not valid YAML: {err}") from None
    if not isinstance(raw, dict):
        raise ConfigError(f"cluster file {path} must be a mapping of {JOBQUEUE[kind].__name__} settings")
    options = dict(raw)
    jobs = options.pop("jobs", 1)
    if not isinstance(jobs, int) or isinstance(jobs, bool) or jobs < 1:
        raise ConfigError(f"cluster file {path}: jobs must be a whole number ≥ 1 (batch jobs, one worker each), "
                          f"got {jobs!r}")
    return JobQueueConfig(kind, path, jobs, options)


def jobqueue_cluster(config: JobQueueConfig):
    """dask-jobqueue's cluster of the file's kind with its settings; nothing is submitted until it is scaled."""
    try:
        return JOBQUEUE[config.kind](**config.options)
    except (TypeError, ValueError) as err:
        raise ConfigError(f"cluster file {config.path}: {_first_line(err)}") from None


@contextmanager
def dask_client(scheduler: str | None = None, jobqueue: JobQueueConfig | None = None, echo=print) -> Iterator[Client]:
    """A client of the scheduler at ``scheduler``, or of a jobqueue cluster asked for ``jobs`` jobs, with at least
    one worker; closed (and the jobs cancelled) when the block ends."""
    if jobqueue:
        _check_submit_command(jobqueue)
    cluster = jobqueue_cluster(jobqueue) if jobqueue else None
    try:
        if cluster is not None:
            cluster.scale(jobs=jobqueue.jobs)
            echo(f"[sbu batch] asked {jobqueue.kind} for {jobqueue.jobs} job(s); waiting for the first worker")
        client = _connect(cluster if cluster is not None else scheduler)
        try:
            _wait_for_a_worker(client, None if cluster is not None else WORKERS_SECONDS)
            yield client
        finally:
            client.close()
    finally:
        if cluster is not None:
            cluster.close()


def _check_submit_command(config: JobQueueConfig) -> None:
    """Without the batch system's submit command here, the jobs would never start and the sweep would wait for
    ever: stop at once instead."""
    command = shlex.split(JOBQUEUE[config.kind].job_cls.submit_command)[0]
    if shutil.which(command) is None:
        raise ClusterError(f"--cluster {config.kind}: no {command} on this machine; start sbu batch where "
                           f"{config.kind} jobs are submitted (a login node)")


def _connect(address) -> Client:
    try:
        return Client(address, timeout=CONNECT_SECONDS, set_as_default=False)
    except (OSError, TimeoutError, ValueError) as err:
        raise ClusterError(f"cannot reach the Dask scheduler at {address}: {_first_line(err)}; start one with "
                           "`dask scheduler`, or give its address as tcp://HOST:PORT") from None


def _wait_for_a_worker(client: Client, seconds: float | None) -> None:
    try:
        client.wait_for_workers(1, timeout=seconds)
    except TimeoutError:
        raise ClusterError(f"the Dask scheduler at {client.scheduler.address} has had no worker for {seconds:.0f} s; "
                           f"start one with `dask worker {client.scheduler.address}`") from None


def _first_line(err: BaseException) -> str:
    return (str(err).strip().splitlines() or [type(err).__name__])[0]


@dataclass(frozen=True)
class WorkerCheck:
    """What a worker reported before the runs: this package's version there (or why it does not import), the
    notebook's code hash there (empty: no such file), and whether the results folder is there and writable."""

    address: str
    version: str
    import_error: str
    notebook_sha256: str
    folder_seen: bool
    folder_writable: bool


def _probe(notebook: str, folder: str):
    """The check each worker runs. A function defined here is sent by value (cloudpickle), so that a worker
    without this package can still answer that it has none; it returns a tuple for the same reason."""

    def probe():
        try:  # a package missing or broken there: say so, do not fail the call
            version = importlib.import_module("sbu").__version__
        except Exception as err:
            return "", f"{type(err).__name__}: {err}", "", False, False
        try:
            hashing = importlib.import_module("sbu.batch.folder").notebook_hash
        except Exception as err:
            return version, f"{type(err).__name__}: {err}", "", False, False
        code = hashing(notebook) if os.path.isfile(notebook) else ""
        return version, "", code, os.path.isdir(folder), os.access(folder, os.W_OK | os.X_OK)

    return probe


def check_workers(client: Client, notebook: Path, code_hash: str, folder: Path) -> list[WorkerCheck]:
    """Ask every worker what it has; a :class:`ClusterError` names the first worker that cannot run the sweep."""
    try:
        replies = client.run(_probe(str(notebook), str(folder)))
    except Exception as err:  # a worker that went away while answering
        raise ClusterError(f"the Dask workers did not answer the check before the runs: {_first_line(err)}") from None
    checks = [WorkerCheck(address, *reply) for address, reply in sorted(replies.items())]
    for check in checks:
        where = f"Dask worker {check.address}"
        if not check.version:
            raise ClusterError(f"{where} cannot import sbu ({check.import_error}); install this package in the "
                               "workers' environment (pip install -e . in the same checkout)")
        if check.version != sbu.__version__:
            raise ClusterError(f"{where} has sbu {check.version}, this machine {sbu.__version__}; run the "
                               "workers from the same checkout")
        if check.import_error:
            raise ClusterError(f"{where} has a broken sbu ({check.import_error}); reinstall it there")
        if not check.notebook_sha256:
            raise ClusterError(f"{where} has no notebook {notebook}; the workers need this checkout at the same "
                               "path (a shared file system)")
        if check.notebook_sha256 != code_hash:
            raise ClusterError(f"{where} has another {notebook.name} at {notebook} (its code differs); run the "
                               "workers from the same checkout")
        if not check.folder_seen:
            raise ClusterError(f"{where} does not see the results folder {folder}; the results folder must be on a "
                               "file system this machine and every worker share (--out)")
        if not check.folder_writable:
            raise ClusterError(f"{where} cannot write into the results folder {folder}")
    return checks


class OneRunPerWorker(WorkerPlugin):
    """Gives every worker, present and joining, one unit of :data:`RESOURCE`; each run asks for one, so Dask sends
    a worker its next run only when the last one ended (a worker with 8 threads is one run of 8 threads, not 8
    runs queued behind each other where no other worker can take them)."""

    name = "sbu-batch-one-run-per-worker"

    async def setup(self, worker) -> None:
        await worker.set_resources(**{RESOURCE: 1})


@contextmanager
def cluster_pool(client: Client) -> Iterator[tuple[Executor, partial]]:
    """The cluster as a ``concurrent.futures`` executor (``Client.submit`` underneath; impure: a run is never
    taken from Dask's cache; one run per worker at a time), and the function its workers call for each run."""
    client.register_plugin(OneRunPerWorker())
    try:
        yield (client.get_executor(pure=False, resources={RESOURCE: 1}),
               partial(execute_on_worker, version=sbu.__version__))
    finally:
        client.unregister_worker_plugin(OneRunPerWorker.name)


def execute_on_worker(task: RunTask, version: str) -> RunOutcome:
    """:func:`execute_run` on a Dask worker: one notebook at a time, with the worker's threads as its thread
    count (unless the worker's environment sets one), on a worker with the client's version of this package."""
    worker = get_worker()
    if version != sbu.__version__:  # a worker that joined after the check
        outcome = RunOutcome("failed", 0.0, worker=worker.address, error_type="ClusterError",
                             message=f"this worker has sbu {sbu.__version__}, the sweep was started with {version}")
        write_marker(task, outcome)
        return outcome
    own = any(os.environ.get(name) for name in THREAD_VARIABLES)
    with _ONE_NOTEBOOK:
        try:
            return execute_run(replace(task, threads=None if own else worker.state.nthreads), worker.address)
        except OSError as err:  # the run's folder cannot be written there: on record, not lost
            return failure_outcome(err, 0.0, worker=worker.address)

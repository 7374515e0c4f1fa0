"""``sbu batch`` on a Dask cluster: a real ``dask scheduler`` and ``dask worker`` processes on 127.0.0.1 (free
ports the system picks, stopped by their PIDs), the sweep of ``tests/data/sweep_notebook.ipynb`` run through them;
a worker killed in the middle of a run; workers that cannot run the sweep stopped before any run; and the Slurm
job script dask-jobqueue writes from a ``--cluster`` file, checked as text (no Slurm here).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import sysconfig
import time
from dataclasses import dataclass, field, replace
from pathlib import Path

import pandas as pd
import pytest
import yaml
from distributed import Client

from sbu.batch import cluster as batch_cluster
from sbu.batch.cluster import check_workers, jobqueue_cluster, read_jobqueue_config
from sbu.batch.folder import notebook_hash
from sbu.cli import main
from sbu.errors import ClusterError, ConfigError

ROOT = Path(__file__).resolve().parents[1]
DATA = Path(__file__).resolve().parent / "data"
NOTEBOOK = DATA / "sweep_notebook.ipynb"
LOCAL_SCHEDULER = {"host": "127.0.0.1", "dashboard_address": ":0"}  # the jobqueue cluster's scheduler in the tests
WAIT_SECONDS = 120  # a loaded test machine starts a worker in seconds; this is only the give-up point


def _environment(**changes: str) -> dict:
    """The test's environment for a Dask process: this checkout first on the path, no thread count of its own
    (a worker gives each run its threads)."""
    env = {k: v for k, v in os.environ.items() if k not in ("OMP_NUM_THREADS", "MKL_NUM_THREADS")}
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    return {**env, **changes}


def _wait_for(check, what: str, seconds: float = WAIT_SECONDS):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        found = check()
        if found:
            return found
        time.sleep(0.1)
    raise AssertionError(f"{what} did not happen within {seconds} s")


def _stop(process: subprocess.Popen) -> None:
    if process.poll() is None:
        os.kill(process.pid, signal.SIGKILL)
    process.wait(timeout=30)


@dataclass
class DaskCluster:
    """A scheduler and its workers, each a process of this test run; ``client`` watches them."""

    folder: Path
    scheduler: subprocess.Popen
    address: str
    client: Client
    workers: dict[str, subprocess.Popen] = field(default_factory=dict)  # worker address → its process

    def start_worker(self, name: str, python: tuple[str, ...] = (), env: dict | None = None, threads: int = 1) -> str:
        """Start ``dask worker`` (no nanny: its PID is the process that runs the notebooks) and wait until the
        scheduler has it; its address."""
        before = set(self.client.scheduler_info()["workers"])
        local = self.folder / name
        local.mkdir(exist_ok=True)
        log = (self.folder / f"{name}.log").open("w")
        process = subprocess.Popen(
            [sys.executable, *python, "-m", "distributed.cli.dask_worker", self.address, "--name", name,
             "--nthreads", str(threads), "--no-nanny", "--no-dashboard", "--host", "127.0.0.1", "--local-directory",
             str(local)], stdout=log, stderr=subprocess.STDOUT, env=env or _environment(), cwd=local)
        try:
            address = _wait_for(lambda: set(self.client.scheduler_info()["workers"]) - before, f"worker {name}").pop()
        except AssertionError:
            _stop(process)
            log_text = (self.folder / f"{name}.log").read_text()[-2000:]
            raise AssertionError(f"worker {name} did not start: {log_text}") from None
        self.workers[address] = process
        return address

    def stop_worker(self, address: str) -> None:
        _stop(self.workers.pop(address))
        _wait_for(lambda: address not in self.client.scheduler_info()["workers"], f"{address} leaving")

    def worker_pids(self) -> dict[int, str]:
        return {process.pid: address for address, process in self.workers.items()}


@pytest.fixture(scope="module")
def dask_cluster(tmp_path_factory):
    """``dask scheduler`` on a port the system picks, with no workers yet; every process stopped by its PID."""
    folder = tmp_path_factory.mktemp("dask")
    scheduler_file = folder / "scheduler.json"
    log = (folder / "scheduler.log").open("w")
    scheduler = subprocess.Popen(
        [sys.executable, "-m", "distributed.cli.dask_scheduler", "--host", "127.0.0.1", "--port", "0",
         "--no-dashboard", "--scheduler-file", str(scheduler_file)], stdout=log, stderr=subprocess.STDOUT,
        env=_environment(), cwd=folder)
    try:
        _wait_for(lambda: scheduler_file.is_file() and scheduler_file.stat().st_size, "the scheduler file")
        address = json.loads(scheduler_file.read_text())["address"]
        client = Client(address, timeout=WAIT_SECONDS, set_as_default=False)
    except Exception:
        _stop(scheduler)
        raise
    cluster = DaskCluster(folder, scheduler, address, client)
    yield cluster
    for process in cluster.workers.values():
        _stop(process)
    client.close()
    _stop(scheduler)


@pytest.fixture
def workers(dask_cluster):
    """The test's workers, stopped after it so that the next test starts from none."""
    yield dask_cluster
    for address in list(dask_cluster.workers):
        dask_cluster.stop_worker(address)


def _sweep(folder: Path, name: str = "xs", **params) -> Path:
    path = folder / f"{name}.yaml"
    path.write_text(yaml.safe_dump({"notebook": "sweep_notebook", "params": params, "grid": {"x": [1, 2, 3]}}))
    return path


def _batch_command(sweep: Path, out: Path, *options: str) -> list[str]:
    return [sys.executable, "-m", "sbu.cli", "batch", str(sweep), "--out", str(out), "--notebooks-dir", str(DATA),
            *options]


def _batch(sweep: Path, out: Path, *options: str) -> int:
    return main(["batch", str(sweep), "--out", str(out), "--notebooks-dir", str(DATA), *options])


def _read_json(path: Path):
    """A file's JSON, or None while it is not there or not whole yet."""
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def _files(folder: Path) -> set[Path]:
    return {path for path in folder.rglob("*")}


# ---------------------------------------------------------------------------------------- runs on workers


def test_a_worker_killed_mid_run_loses_nothing_and_the_results_equal_a_local_run(workers, tmp_path):
    """Two workers; the run x = 1 waits in its notebook until the worker running it (and that run's kernel) is
    killed. The scheduler gives the run to the other worker, which runs it again from an empty folder; nothing the
    killed run wrote is counted, and results.csv equals the local pool's, row for row."""
    first, second = workers.start_worker("w1"), workers.start_worker("w2")
    release = tmp_path / "release"
    sweep = _sweep(tmp_path, hold_on=1, release_file=str(release))
    out = tmp_path / "cluster"
    log = (tmp_path / "batch.log").open("w")
    batch = subprocess.Popen(_batch_command(sweep, out, "--scheduler", workers.address), stdout=log,
                             stderr=subprocess.STDOUT, env=_environment(), cwd=tmp_path)
    try:
        held = _wait_for(lambda: _read_json(out / "xs" / "x=1" / "held.json"), "the held run")
        pids = workers.worker_pids()
        assert held["worker"] in pids, "the notebook's kernel is a child of the worker that runs it"
        lost = pids[held["worker"]]
        os.kill(held["worker"], signal.SIGKILL)  # the worker first: its run must not end as a failure
        workers.workers.pop(lost).wait(timeout=30)
        os.kill(held["kernel"], signal.SIGKILL)
        release.touch()
        assert batch.wait(timeout=WAIT_SECONDS * 2) == 0, (tmp_path / "batch.log").read_text()[-3000:]
    finally:
        _stop(batch)
    survivor = ({first, second} - {lost}).pop()
    sweep_dir = out / "xs"
    runs = pd.read_csv(sweep_dir / "runs.csv").set_index("run_id")
    assert runs["status"].to_dict() == {"x=1": "done", "x=2": "done", "x=3": "done"}
    done = json.loads((sweep_dir / "x=1" / "done.json").read_text())
    assert done["worker"] == survivor and done["threads"] == "1", "run again on the other worker, with its thread"
    (survivor_pid,) = workers.worker_pids()
    assert _read_json(sweep_dir / "x=1" / "held.json")["worker"] == survivor_pid, "the second attempt's folder only"
    assert not any(sweep_dir.rglob("failed.json"))
    assert json.loads((sweep_dir / "x=2" / "environment.json").read_text())["OMP_NUM_THREADS"] == "1", (
        "a run gets its worker's threads as its thread count")

    assert _batch(sweep, tmp_path / "local", "--workers", "2") == 0
    local = pd.read_csv(tmp_path / "local" / "xs" / "results.csv")
    remote = pd.read_csv(sweep_dir / "results.csv")
    pd.testing.assert_frame_equal(remote.sort_values(["run_id", "condition", "metric", "seed"]).reset_index(drop=True),
                                  local.sort_values(["run_id", "condition", "metric", "seed"]).reset_index(drop=True))
    assert len(remote) == 3 * 12

    assert _batch(sweep, out, "--scheduler", workers.address) == 0, "started again: every run is finished"
    assert set(pd.read_csv(sweep_dir / "runs.csv")["status"]) == {"skipped"}


def test_a_run_whose_notebook_goes_missing_on_the_worker_is_recorded_as_failed(workers, tmp_path):
    """The notebook is there when the workers are checked and gone when the second run starts (one worker: the
    runs go one after another): that run fails with a record naming the worker, the first finishes."""
    workers.start_worker("w3")
    notebooks = tmp_path / "notebooks"
    notebooks.mkdir()
    shutil.copy(NOTEBOOK, notebooks / NOTEBOOK.name)
    release = tmp_path / "release"
    sweep = tmp_path / "two.yaml"
    sweep.write_text(yaml.safe_dump({"notebook": "sweep_notebook", "grid": {"x": [1, 2]},
                                     "params": {"hold_on": 1, "release_file": str(release)}}))
    out = tmp_path / "out"
    log = (tmp_path / "batch.log").open("w")
    batch = subprocess.Popen([sys.executable, "-m", "sbu.cli", "batch", str(sweep), "--out", str(out),
                              "--notebooks-dir", str(notebooks), "--scheduler", workers.address], stdout=log,
                             stderr=subprocess.STDOUT, env=_environment(), cwd=tmp_path)
    try:
        _wait_for(lambda: (out / "two" / "x=1" / "held.json").is_file(), "the held run")
        (notebooks / NOTEBOOK.name).unlink()
        release.touch()
        assert batch.wait(timeout=WAIT_SECONDS * 2) == 1, (tmp_path / "batch.log").read_text()[-3000:]
    finally:
        _stop(batch)
    failed = json.loads((out / "two" / "x=2" / "failed.json").read_text())
    assert failed["error_type"] == "DataFileError" and failed["message"] == (
        f"no notebook {notebooks / NOTEBOOK.name} on {failed['worker']}")
    assert (out / "two" / "x=1" / "done.json").is_file()
    assert "failed x=2: DataFileError: no notebook" in (tmp_path / "batch.log").read_text()


def test_a_worker_runs_one_notebook_at_a_time_with_all_its_threads(workers, tmp_path):
    """A worker of two threads is one run of two threads: while its run x = 1 waits, the run x = 2 goes to the
    other worker and finishes (sent to the busy worker's free thread, it would wait behind x = 1 for ever)."""
    wide = workers.start_worker("wide", threads=2)
    workers.start_worker("narrow")
    release = tmp_path / "release"
    sweep = tmp_path / "two.yaml"
    sweep.write_text(yaml.safe_dump({"notebook": "sweep_notebook", "grid": {"x": [1, 2]},
                                     "params": {"hold_on": 1, "release_file": str(release)}}))
    out = tmp_path / "out"
    log = (tmp_path / "batch.log").open("w")
    batch = subprocess.Popen(_batch_command(sweep, out, "--scheduler", workers.address), stdout=log,
                             stderr=subprocess.STDOUT, env=_environment(), cwd=tmp_path)
    try:
        _wait_for(lambda: (out / "two" / "x=1" / "held.json").is_file(), "the held run")
        _wait_for(lambda: (out / "two" / "x=2" / "done.json").is_file(), "the other run, on the other worker")
        release.touch()
        assert batch.wait(timeout=WAIT_SECONDS * 2) == 0, (tmp_path / "batch.log").read_text()[-3000:]
    finally:
        _stop(batch)
    done = {x: json.loads((out / "two" / f"x={x}" / "done.json").read_text()) for x in (1, 2)}
    assert done[1]["worker"] != done[2]["worker"]
    assert {d["worker"]: d["threads"] for d in done.values()}[wide] == "2", "the run gets its worker's threads"


# ---------------------------------------------------------------------------------------- checked before any run


def _fake_package(folder: Path, version: str) -> Path:
    """A package called sbu of another version, first on a worker's path."""
    (folder / "sbu").mkdir(parents=True)
    (folder / "sbu" / "__init__.py").write_text(f'__version__ = "{version}"\n')
    return folder


@pytest.mark.parametrize("case", ["another-version", "no-package"])
def test_a_worker_that_cannot_run_the_sweep_stops_it_before_any_run(workers, tmp_path, capsys, case):
    if case == "another-version":
        env = _environment(PYTHONPATH=str(_fake_package(tmp_path / "other", "0.0.1")))
        address = workers.start_worker("old", env=env)
        expected = f"Dask worker {address} has sbu 0.0.1, this machine"
    else:  # no site processing: the environment's packages without the editable install of this checkout
        env = _environment(PYTHONPATH=sysconfig.get_paths()["purelib"])
        address = workers.start_worker("bare", python=("-S",), env=env)
        expected = f"Dask worker {address} cannot import sbu (ModuleNotFoundError: No module named 'sbu')"
    sweep = _sweep(tmp_path)
    assert _batch(sweep, tmp_path / "out", "--scheduler", workers.address) == 2
    err = capsys.readouterr().err
    assert expected in err and len(err.strip().splitlines()) == 1
    written = {p.relative_to(tmp_path / "out") for p in _files(tmp_path / "out")}
    assert written <= {Path("xs"), Path("xs/.sbu-batch.lock")}, "no run started"


def test_a_notebook_missing_on_a_worker_or_a_folder_it_does_not_share_stops_the_sweep(workers, tmp_path):
    """What the check asks each worker, on the real workers: a notebook path they do not have, a folder they do
    not see (the file system is not shared)."""
    workers.start_worker("w4")
    client = workers.client
    missing = tmp_path / "elsewhere" / NOTEBOOK.name
    with pytest.raises(ClusterError, match=f"has no notebook {missing}; the workers need this checkout"):
        check_workers(client, missing, notebook_hash(NOTEBOOK), tmp_path)
    with pytest.raises(ClusterError, match="has another sweep_notebook.ipynb"):
        check_workers(client, NOTEBOOK, "0" * 64, tmp_path)
    with pytest.raises(ClusterError, match="does not see the results folder .*nowhere; the results folder must be on"):
        check_workers(client, NOTEBOOK, notebook_hash(NOTEBOOK), tmp_path / "nowhere")
    (check,) = check_workers(client, NOTEBOOK, notebook_hash(NOTEBOOK), tmp_path)
    assert check.folder_seen and check.folder_writable and check.version


def test_an_unreachable_scheduler_is_a_one_line_error_and_writes_nothing(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(batch_cluster, "CONNECT_SECONDS", 2.0)
    with socket.socket() as free:  # a port nothing listens on
        free.bind(("127.0.0.1", 0))
        port = free.getsockname()[1]
    sweep = _sweep(tmp_path)
    before = _files(tmp_path)
    assert _batch(sweep, tmp_path / "out", "--scheduler", f"tcp://127.0.0.1:{port}") == 2
    err = capsys.readouterr().err
    assert f"cannot reach the Dask scheduler at tcp://127.0.0.1:{port}" in err and len(err.strip().splitlines()) == 1
    assert _files(tmp_path) == before


@pytest.mark.parametrize(("options", "message"), [
    (["--scheduler", "tcp://127.0.0.1:1", "--workers", "2"], "--workers sizes the local pool"),
    (["--scheduler", "tcp://127.0.0.1:1", "--cluster", "slurm", "x.yaml"], "not both"),
    (["--cluster", "kubernetes", "x.yaml"], "--cluster kubernetes: the batch systems are slurm, pbs, sge, lsf"),
    (["--cluster", "slurm", "nothing.yaml"], "no cluster file nothing.yaml"),
])
def test_wrong_cluster_options_are_one_line_errors(tmp_path, capsys, options, message):
    sweep = _sweep(tmp_path)
    assert _batch(sweep, tmp_path / "out", *options) == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


# ---------------------------------------------------------------------------------------- dask-jobqueue


def test_the_slurm_job_script_comes_from_the_cluster_file(tmp_path):
    """What ``--cluster slurm lab.yaml`` asks Slurm to run, as dask-jobqueue writes it: one worker per job with
    the job's cores as its threads (a run's thread count), the lab's queue, account, time and environment."""
    path = tmp_path / "lab.yaml"
    path.write_text(yaml.safe_dump({
        "jobs": 4, "cores": 8, "processes": 1, "memory": "32GB", "queue": "cpu", "account": "unlearning",
        "walltime": "04:00:00", "job_script_prologue": ["source /shared/sbu/.venv/bin/activate"],
        "scheduler_options": LOCAL_SCHEDULER}))
    config = read_jobqueue_config("slurm", path)
    assert config.jobs == 4 and "jobs" not in config.options
    cluster = jobqueue_cluster(config)
    try:
        script = cluster.job_script()
        address = cluster.scheduler_address
    finally:
        cluster.close()
    lines = script.splitlines()
    for line in ("#SBATCH -p cpu", "#SBATCH -A unlearning", "#SBATCH --cpus-per-task=8", "#SBATCH -t 04:00:00",
                 "source /shared/sbu/.venv/bin/activate"):
        assert line in lines, f"{line!r} not in the job script:\n{script}"
    worker = next(line for line in lines if "distributed.cli.dask_worker" in line)
    assert worker.startswith(f"{sys.executable} -m distributed.cli.dask_worker {address} ")
    assert "--nthreads 8" in worker and "--memory-limit" in worker


def test_the_shipped_slurm_file_asks_for_one_run_per_job():
    config = read_jobqueue_config("slurm", ROOT / "params" / "clusters" / "slurm.yaml")
    assert config.jobs == 9, "one job per run of params/sweeps/paper.yaml"
    cluster = jobqueue_cluster(replace(config, options={**config.options, "scheduler_options": LOCAL_SCHEDULER}))
    try:
        script = cluster.job_script()
    finally:
        cluster.close()
    assert "#SBATCH --cpus-per-task=8" in script and "#SBATCH -p cpu" in script
    assert "--nthreads 8 " in script, "one worker per job, with every core of the job: one run of 8 threads"


def test_no_batch_system_here_is_a_one_line_error(tmp_path, capsys):
    """No sbatch on this machine: the jobs would never start, and the sweep stops at once, writing nothing."""
    if shutil.which("sbatch"):
        pytest.skip("this machine submits Slurm jobs")
    sweep = _sweep(tmp_path)
    assert _batch(sweep, tmp_path / "out", "--cluster", "slurm", str(ROOT / "params" / "clusters" / "slurm.yaml")) == 2
    err = capsys.readouterr().err
    assert "--cluster slurm: no sbatch on this machine" in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize(("content", "message"), [
    ({"cores": 8, "memory": "1GB", "jobs": 0}, "jobs must be a whole number ≥ 1"),
    ({"cores": 8, "memory": "1GB", "queu": "cpu"}, "Got unexpected keyword argument 'queu'"),
    ("- a list\n", "must be a mapping of SLURMCluster settings"),
])
def test_a_wrong_cluster_file_is_a_config_error_naming_it(tmp_path, content, message):
    path = tmp_path / "lab.yaml"
    path.write_text(content if isinstance(content, str) else yaml.safe_dump(content))
    with pytest.raises(ConfigError, match=message) as caught:
        jobqueue_cluster(read_jobqueue_config("slurm", path))
    assert str(path) in str(caught.value) and "\n" not in str(caught.value)

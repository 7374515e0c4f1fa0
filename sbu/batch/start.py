"""A start of a sweep (``sbu batch``): load and check the sweep file, plan its runs, skip the finished ones, run
the rest on the local pool or a Dask cluster, collect the tables and the summary figure, report. The sweep file's
format and the folder it fills are described in :mod:`sbu.batch`."""

from __future__ import annotations

from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

from sbu.batch.cluster import check_workers, cluster_pool, dask_client, read_jobqueue_config
from sbu.batch.collect import write_tables
from sbu.batch.folder import check_markers, locked, notebook_hash
from sbu.batch.run import execute_run
from sbu.batch.runner import execute_runs, finished_before, local_pool, run_tasks
from sbu.batch.sweep import PROJECT, Run, Sweep, load_sweep, plan_runs
from sbu.errors import ConfigError

__all__ = ["SweepReport", "run_sweep"]


@dataclass(frozen=True)
class SweepReport:
    """What a start of a sweep did: each run's status, and the files it wrote into the sweep's folder."""

    sweep: Sweep
    folder: Path
    runs: list[Run]
    written: list[Path]

    @property
    def failed(self) -> list[Run]:
        return [run for run in self.runs if run.status == "failed"]

    @property
    def ok(self) -> bool:
        return not self.failed


def run_sweep(sweep_file: str | Path, workers: int = 1, out: str | Path | None = None,
              notebooks_dir: str | Path | None = None, echo=print, scheduler: str | None = None,
              cluster: tuple[str, str | Path] | None = None) -> SweepReport:
    """Check the sweep, run what is not finished — in a local pool of ``workers`` processes, or on the Dask
    scheduler at ``scheduler``, or on a dask-jobqueue ``cluster`` (kind, settings file) — write the tables and
    figures, print a short report."""
    if not isinstance(workers, int) or isinstance(workers, bool) or workers < 1:
        raise ConfigError(f"--workers must be a whole number ≥ 1 (processes running notebooks at once), got {workers}")
    if scheduler and cluster:
        raise ConfigError("give --scheduler (a Dask scheduler running) or --cluster (one dask-jobqueue starts), not "
                          "both")
    if (scheduler or cluster) and workers != 1:
        raise ConfigError("--workers sizes the local pool; on a Dask cluster the workers decide how many runs go at "
                          "once (one per worker)")
    sweep = load_sweep(sweep_file, notebooks_dir)  # everything is checked before anything is written
    jobqueue = read_jobqueue_config(*cluster) if cluster else None
    folder = (Path(out) if out else PROJECT / "results").resolve() / sweep.name
    code_hash = notebook_hash(sweep.notebook)
    with ExitStack() as stack:
        client = stack.enter_context(dask_client(scheduler, jobqueue, echo)) if scheduler or jobqueue else None
        stack.enter_context(locked(folder))
        runs = plan_runs(sweep, folder)
        check_markers([run.folder for run in runs])
        _skip_finished(runs, sweep, code_hash, echo)
        pending = sum(run.status == "pending" for run in runs)
        if client is not None:
            check_workers(client, sweep.notebook, code_hash, folder)
            (pool, execute), threads = stack.enter_context(cluster_pool(client)), None
        else:
            (pool, threads), execute = local_pool(workers, pending), execute_run
        execute_runs(runs, run_tasks(runs, sweep, code_hash, threads), sweep, pool, execute)
        written = write_tables(runs, sweep, folder, echo)
    report = SweepReport(sweep, folder, runs, written)
    print_report(report, echo)
    return report


def _skip_finished(runs: list[Run], sweep: Sweep, code_hash: str, echo=print) -> None:
    changed = 0
    for run in runs:
        done = finished_before(run, sweep.collect, code_hash)
        if done:
            run.status, run.seconds = "skipped", done.get("seconds", float("nan"))
        changed += not done and (run.folder / "done.json").is_file()
    if changed:
        echo(f"[sbu batch] {changed} finished run(s) ran with other parameters or another version of "
             f"{sweep.notebook.name} (or lost their {sweep.collect}): running them again")


def print_report(report: SweepReport, echo=print) -> None:
    """The counts, the files written and one line per failed run, pointing at its failed.json."""
    counts = {status: sum(run.status == status for run in report.runs) for status in ("done", "failed", "skipped")}
    echo(f"[sbu batch] {report.sweep.name}: {len(report.runs)} runs — {counts['done']} done, {counts['failed']} "
         f"failed, {counts['skipped']} skipped (finished before)")
    echo(f"  in {report.folder}: " + ", ".join(path.name for path in report.written))
    for run in report.failed:
        echo(f"  failed {run.run_id}: {run.error}  ({run.folder / 'failed.json'})")

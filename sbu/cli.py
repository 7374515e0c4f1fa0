"""The ``sbu`` command line.

``sbu run`` executes the notebooks with papermill into ``results/<timestamp>/``; ``sbu model-report`` trains (or
loads from the cache) the base and retrain models of a profile and prints their accuracy table and targets;
``sbu cohort`` writes the synthetic cohort as JSONL; ``sbu ingest`` loads a corpus into a memory store;
``sbu forget`` runs a forget request through the synchronized protocol (:mod:`sbu.sync`) and ``sbu resume``
finishes every request a crash interrupted; ``sbu obligations`` lists the standing obligations committed requests
left (by request id and state, never their content); ``sbu batch`` runs one notebook over a parameter grid
(:mod:`sbu.batch`); ``sbu study-report`` reads a notebook-04 sweep run in pieces as one study.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import sys
from pathlib import Path

from sbu.errors import SbuError

PROJECT = Path(__file__).resolve().parents[1]


def _notebooks(names: list[str] | None) -> list[Path]:
    folder = PROJECT / "notebooks"
    found = sorted(folder.glob("[0-9][0-9]_*.ipynb"))
    if not found:
        raise SbuError(f"no notebooks in {folder}: `sbu run` works from a checkout of the project")
    if names:
        found = [p for p in found if any(p.stem.startswith(n) or p.name == n for n in names)]
        if not found:
            available = [p.stem for p in sorted(folder.glob("*.ipynb"))]
            raise SbuError(f"no notebook matches {names}; available: {available}")
    return found


def run(args) -> int:
    import yaml

    from sbu.kernel import execute_notebook

    notebooks = _notebooks(args.notebooks)  # check everything before anything is written
    params_file = Path(args.params) if args.params else PROJECT / "params" / f"{args.profile}.yaml"
    if not params_file.is_file():
        raise SbuError(f"no parameter file {params_file}; give --params FILE or a profile in params/")
    params = yaml.safe_load(params_file.read_text()) or {}
    if args.seed is not None:
        params["seed"] = args.seed
    stamp = dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    out = Path(args.out or PROJECT / "results" / stamp).resolve()
    out.mkdir(parents=True, exist_ok=True)
    for notebook in notebooks:
        target = out / notebook.stem
        target.mkdir(parents=True, exist_ok=True)
        print(f"[sbu run] {notebook.name} → {target}", flush=True)
        execute_notebook(notebook, target / notebook.name, cwd=str(notebook.parent),
                         parameters={**params, "out_dir": str(target)}, progress_bar=True)
    print(f"\n[sbu run] results in {out}")
    for folder in sorted(p for p in out.iterdir() if p.is_dir()):
        files = sorted(f.name for f in folder.iterdir())
        print(f"  {folder.name}/: " + ", ".join(files))
    kinds = {"ipynb": "executed notebooks", "json": "metrics", "csv": "tables", "png": "figures"}
    found = {p.suffix.lstrip(".") for p in out.rglob("*.*")}
    print(" · ".join(f"{label}: */*.{ext}" for ext, label in kinds.items() if ext in found))
    return 0


def batch(args) -> int:
    from sbu.batch import run_sweep

    report = run_sweep(args.sweep, workers=args.workers, out=args.out, notebooks_dir=args.notebooks_dir,
                       scheduler=args.scheduler, cluster=args.cluster)
    return 0 if report.ok else 1


def model_report(args) -> int:
    import pandas as pd

    from sbu.experiment import Experiment

    exp = Experiment.from_params(profile=args.profile, seed=args.seed or 0, out_dir=args.out,
                                 forget_split=args.forget_split)
    table = exp.model_table({"base": exp.base_model(), "retrain": exp.retrain_model()})
    targets = exp.targets(table)
    exp.save_metrics(model_table=table.reset_index().to_dict(orient="records"))
    with pd.option_context("display.width", 160, "display.max_columns", 20):
        print(table.round(3).to_string())
        print()
        print(targets.to_string(index=False))
    print(f"\nwritten to {exp.out_dir}")
    return 0


def write_cohort(args) -> int:
    from sbu.config import ExperimentConfig
    from sbu.data import cohort

    config = ExperimentConfig.from_profile(args.profile, seed=args.seed or 0)
    paths = cohort.generate(config.cohort).write(args.out)
    print(json.dumps([str(p) for p in paths], indent=1))
    return 0


def _corpus(ref: dict):
    from sbu.data.schema import Corpus
    from sbu.experiment import Experiment

    if ref.get("dir"):
        return Corpus.read(ref["dir"])
    return Experiment.from_params(profile=ref.get("profile", "smoke"), seed=ref.get("seed", 0)).corpus


def _corpus_ref(args) -> dict:
    if args.corpus:
        return {"dir": str(Path(args.corpus).resolve())}
    return {"profile": args.profile, "seed": args.seed or 0}


def ingest(args) -> int:
    from sbu.memory import open_store
    from sbu.memory.ingest import ingest as ingest_corpus

    corpus = _corpus(_corpus_ref(args))
    with open_store(args.store) as store:
        if len(store):
            raise SbuError(f"the memory at {args.store} already holds {len(store)} quads; ingest into an empty one")
        result = ingest_corpus(store, corpus)
    skipped = f"; {result.skipped} records left out by the barrier {result.reasons}" if result.skipped else ""
    print(f"[sbu ingest] {result.quads} quads of {corpus.name} into {args.store}{skipped}")
    return 0


def _say(message: str) -> None:
    print(f"[sbu forget] {message}", flush=True)


def _protocol(work: Path, store, model_path: str | None, corpus_ref: dict, config):
    from sbu.experiment import Experiment
    from sbu.model.network import load
    from sbu.sync import ForgetProtocol

    corpus = _corpus(corpus_ref)
    if model_path:
        lm = load(model_path)
    else:
        exp = Experiment.from_params(profile=corpus_ref.get("profile", "smoke"), seed=corpus_ref.get("seed", 0))
        lm = exp.base_model()
    return ForgetProtocol(work, store, lm, corpus, config, corpus_ref=corpus_ref, log=_say)


def _unlearn_budget(args) -> dict:
    """The unlearning steps per round: ``--steps``, else the profile's unlearning budget, as in the notebooks."""
    from sbu.config import ExperimentConfig

    steps = args.steps if args.steps is not None else ExperimentConfig.from_profile(args.profile).unlearn_steps
    return {"steps": steps}


def forget(args) -> int:
    from sbu.errors import StoreError
    from sbu.memory import open_store
    from sbu.sync import ProtocolConfig

    if not args.store.startswith("oxigraph:") or args.store == "oxigraph:":
        if not args.store.startswith("http"):
            raise StoreError(f"sbu forget needs a memory that outlives the process (oxigraph:PATH or an endpoint), "
                             f"got {args.store!r}: an in-memory store could not be resumed")
    config = ProtocolConfig(epsilon=args.epsilon, max_rounds=args.max_rounds, method=args.method,
                            unlearn=_unlearn_budget(args), seed=args.seed or 0)
    with open_store(args.store, create=False) as store:
        protocol = _protocol(Path(args.work), store, args.model, _corpus_ref(args), config)
        certificate = protocol.submit(args.patient)
    _say(f"COMMITTED after {certificate.rounds} round(s); certificate {Path(args.work) / certificate.request}"
         "/certificate.json")
    print(certificate.to_json())
    if args.purge_caches:
        import shutil

        from sbu.model.cache import models_trained_on

        gone = models_trained_on(_corpus(_corpus_ref(args)), args.patient)
        for path in gone:
            shutil.rmtree(path)
        _say(f"purged {len(gone)} cached model(s) trained on data that held the forgotten patient(s); the next run "
             "that needs one trains it again (the unlearned model is in the work folder)")
    return 0


def resume(args) -> int:
    from sbu.journal import Journal
    from sbu.memory import open_store
    from sbu.sync import ProtocolConfig

    journal = Journal(Path(args.work) / "journal.jsonl")
    pending = journal.pending()
    if not pending:
        print(f"[sbu resume] nothing to resume in {journal.path}")
        return 0
    for request in pending:
        received = journal.records(request)[0]
        config = ProtocolConfig(**received["config"])
        _say(f"resuming {request} after {journal.records(request)[-1]['state']}")
        with open_store(received["store"], create=False) as store:
            protocol = _protocol(Path(args.work), store, received["model"], received["corpus"], config)
            certificate = protocol.resume(request)
        _say(f"COMMITTED {request} after {certificate.rounds} round(s)")
    return 0


def obligations(args) -> int:
    from sbu.journal import Sealer
    from sbu.memory.barrier import load_keys
    from sbu.obligations import ObligationBook

    work = Path(args.work)
    if not work.is_dir():
        raise SbuError(f"no work folder {work}: give the --work of sbu forget")
    book = ObligationBook(work / "obligations", Sealer(*load_keys(create=False)))
    rows = book.listing()  # every file is opened: one that cannot be is a clear error here
    if not rows:
        print(f"[sbu obligations] no standing obligation in {book.folder}")
        return 0
    print(f"{'request':<40}  {'state':<18}  clean  checks  re-suppressions")
    for row in rows:
        print(f"{row.request:<40}  {row.state:<18}  {row.clean}/{row.discharge_after:<3}  {row.checks:>6}  "
              f"{row.resuppressions:>15}")
    return 0


def study_report(args) -> int:
    import pandas as pd

    from sbu.eval import study

    results, per_round = study.from_sweep(args.folder)
    out = Path(args.out or Path(args.folder) / "study")
    written = study.write_report(results, per_round, out, args.headline_split)
    seeds = sorted(set(results.seed))
    print(f"[sbu study-report] {len(results)} rows of {results.forget_split.nunique()} split(s) x seeds {seeds} "
          f"→ {out}")
    with pd.option_context("display.width", 250, "display.max_columns", 30):
        for name, table in written.items():
            if name.startswith("main_table_"):
                print(f"\n{table.to_string()}")
    print("\n" + study.describe_claims(written["claims"]))
    return 0


def rotate_key(args) -> int:
    from sbu.memory.barrier import default_key_path
    from sbu.memory.barrier import rotate_key as rotate

    new_id = rotate()
    print(f"[sbu rotate-key] new barrier key {new_id} (its id; the key itself is never printed) at the head of "
          f"{default_key_path()}; the old keys stay below it and keep checking their blocklists")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="sbu", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("run", help="execute the notebooks with papermill into results/<timestamp>/")
    p.add_argument("--profile", default="smoke",
                   help="smoke (default), smoke-study or paper: reads params/<profile>.yaml")
    p.add_argument("--params", help="a YAML file of notebook parameters instead of the profile's")
    p.add_argument("--seed", type=int)
    p.add_argument("--out", help="output folder (default results/<timestamp>)")
    p.add_argument("notebooks", nargs="*", help="run only these notebooks (name prefixes such as 01 or 02)")
    p.set_defaults(func=run)

    p = sub.add_parser("batch", help="run one notebook over a parameter grid (a sweep file), resumably, into "
                       "results/NAME/<run-id>/", description="Run the notebook of a sweep file once per combination "
                       "of its grid with papermill, in --workers processes or on a Dask cluster, into "
                       "OUT/NAME/<run-id>/ (NAME: the sweep file's name); then OUT/NAME/results.csv (every run's "
                       "table), runs.csv and, for a long-format table, summary.csv and summary.png/.svg (the metrics "
                       "the file's plot: names, else at most 12). Started again, it skips finished runs and retries "
                       "failed or interrupted ones. Exit status 0 if every run finished, 1 if any failed, 2 if the "
                       "sweep file, its folder or the cluster is wrong (nothing is run then). The file format is in "
                       "sbu/batch/__init__.py.")
    p.add_argument("sweep", help="a sweep file, e.g. params/sweeps/seeds.yaml")
    p.add_argument("--workers", type=int, default=1,
                   help="notebooks running at once (default 1); each gets the cores / WORKERS as its thread count "
                   "unless OMP_NUM_THREADS is set")
    p.add_argument("--out", help="folder that receives NAME/ (default results/)")
    p.add_argument("--notebooks-dir", help="where the sweep's notebook: is looked up by name or name prefix "
                   "(default notebooks/ of this checkout; the tests use tests/data)")
    p.add_argument("--scheduler", metavar="tcp://HOST:PORT", help="run each run on a worker of this Dask scheduler "
                   "(`dask scheduler`, `dask worker`); the checkout and --out must be on a file system the workers "
                   "share; each run gets its worker's threads")
    p.add_argument("--cluster", nargs=2, metavar=("SYSTEM", "CONFIG.yaml"), help="start the Dask workers as batch "
                   "jobs through dask-jobqueue: SYSTEM is slurm, pbs, sge or lsf, CONFIG.yaml its settings (cores, "
                   "memory, queue, walltime, …) and jobs: how many")
    p.set_defaults(func=batch)

    p = sub.add_parser("study-report", help="notebook 04's tables, figures and claims from a sweep whose runs each "
                       "hold some splits or seeds", description="Read every finished run of a notebook-04 sweep "
                       "(results.csv and rounds.csv of results/NAME/<run-id>/) as one study and write what notebook "
                       "04 writes after its run: summary.csv, main_table_<split>.csv, claims.csv, privacy_utility, "
                       "backflow and costs (.png, .svg). For a long study run in pieces, e.g. "
                       "params/sweeps/paper.yaml (one run per split and seed, each resumable).")
    p.add_argument("folder", help="the sweep's folder, e.g. results/paper")
    p.add_argument("--out", help="where to write (default FOLDER/study)")
    p.add_argument("--headline-split", help="the split of the backflow figure (default forget05 if present)")
    p.set_defaults(func=study_report)

    p = sub.add_parser("model-report", help="train or load the base and retrain models and print their targets")
    p.add_argument("--profile", default="smoke")
    p.add_argument("--seed", type=int)
    p.add_argument("--forget-split", default="forget05")
    p.add_argument("--out", default="results/model-report")
    p.set_defaults(func=model_report)

    p = sub.add_parser("cohort", help="write the synthetic cohort of a profile as JSONL")
    p.add_argument("--profile", default="smoke")
    p.add_argument("--seed", type=int)
    p.add_argument("--out", default="data/cohort-smoke")
    p.set_defaults(func=write_cohort)

    p = sub.add_parser("ingest", help="load a corpus into an empty memory store")
    p.add_argument("--store", required=True, help="oxigraph:PATH, or an endpoint http://HOST:PORT/query")
    p.add_argument("--corpus", help="a corpus folder (Corpus.write); default: the profile's cohort")
    p.add_argument("--profile", default="smoke")
    p.add_argument("--seed", type=int)
    p.set_defaults(func=ingest)

    p = sub.add_parser("forget", help="forget patients from memory and weights together (journaled; resumable)")
    p.add_argument("--patient", action="append", required=True, help="an entity id such as patient/p007 (repeat "
                   "for several in one request)")
    p.add_argument("--store", required=True, help="oxigraph:PATH, or an endpoint http://HOST:PORT/query")
    p.add_argument("--model", help="the agent's model folder (default: the profile's base model)")
    p.add_argument("--corpus", help="the corpus the probes come from (default: the profile's cohort)")
    p.add_argument("--profile", default="smoke")
    p.add_argument("--seed", type=int)
    p.add_argument("--work", default="results/forget", help="journal, adapters, models and certificates")
    p.add_argument("--method", default="sra", help="the unlearning method of each round (default: sra; any name "
                   "registered in sbu.unlearn.METHODS)")
    p.add_argument("--steps", type=int, help="unlearning steps per round (default: the profile's unlearning budget)")
    p.add_argument("--epsilon", type=float, default=0.15, help="leakage allowed at commit")
    p.add_argument("--max-rounds", type=int, default=3)
    p.add_argument("--purge-caches", action="store_true", help="after the commit, delete the cached models that "
                   "were trained on the forgotten patients (training caches hold the data; see RELIABILITY.md)")
    p.set_defaults(func=forget)

    p = sub.add_parser("resume", help="finish every forget request of a work folder that did not commit")
    p.add_argument("--work", default="results/forget")
    p.set_defaults(func=resume)

    p = sub.add_parser("obligations", help="list the standing obligations of a work folder (request id, state, "
                       "clean consolidations so far / to discharge)")
    p.add_argument("--work", default="results/forget")
    p.set_defaults(func=obligations)

    p = sub.add_parser("rotate-key", help="put a new barrier key first in the key file (old ones keep checking)")
    p.set_defaults(func=rotate_key)

    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except SbuError as err:
        print(f"sbu: error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())

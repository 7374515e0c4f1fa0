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
import time
from pathlib import Path

from sbu import __version__
from sbu.errors import SbuError, StoreError

PROJECT = Path(__file__).resolve().parents[1]
DESCRIPTION = ("Forget patients from an LLM agent's memory (an RDF graph) and its weights (a LoRA update) together, "
               "and run the notebooks and studies that measure it. `sbu COMMAND --help` shows a command's options.")


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


def _check_run_parameters(notebooks: list[Path], params: dict) -> None:
    """Every parameter given is one each notebook declares, with a value its check cell accepts (sbu.params)."""
    from sbu.batch.sweep import notebook_parameters
    from sbu.errors import ParameterError
    from sbu.params import check_values

    for notebook in notebooks:
        declared = notebook_parameters(notebook)
        unknown = [name for name in params if name not in declared]
        if unknown:
            raise ParameterError(f"{notebook.stem} has no parameter {unknown[0]!r}; its parameters are "
                                 f"{', '.join(declared)} (run only some notebooks by naming them)")
        check_values(notebook.stem, params)


def run(args) -> int:
    import yaml

    from sbu.batch.sequence import NotebookRun, execute_all, plan_line

    notebooks = _notebooks(args.notebooks)  # check everything before anything is written
    params_file = Path(args.params) if args.params else PROJECT / "params" / f"{args.profile}.yaml"
    if not params_file.is_file():
        raise SbuError(f"no parameter file {params_file}; give --params FILE or a profile in params/")
    params = yaml.safe_load(params_file.read_text()) or {}
    if args.seed is not None:
        params["seed"] = args.seed
    for name, value in args.parameter or ():
        params[name] = yaml.safe_load(value)  # as YAML: 7 is a number, [a, b] a list
    _check_run_parameters(notebooks, params)
    stamp = dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    out = Path(args.out or PROJECT / "results" / stamp).resolve()
    runs = [NotebookRun(nb, out / nb.stem, {**params, "out_dir": str(out / nb.stem)}) for nb in notebooks]
    profile = str(params.get("profile", args.profile))
    if args.prepare_only:
        print(f"[sbu run] preparing {len(runs)} notebook(s) with their parameters, without running them", flush=True)
    else:
        print(plan_line(runs, profile, _models_line(params), jobs=args.jobs), flush=True)
    start = time.perf_counter()
    for notebook_run in runs:
        notebook_run.out.mkdir(parents=True, exist_ok=True)
    execute_all(runs, profile, jobs=args.jobs, prepare_only=args.prepare_only)
    print(f"\n[sbu run] results in {out}" + ("" if args.prepare_only else
                                             f" after {time.perf_counter() - start:.0f} s"))
    for folder in sorted(p for p in out.iterdir() if p.is_dir()):
        files = sorted(f.name for f in folder.iterdir())
        print(f"  {folder.name}/: " + ", ".join(files))
    kinds = {"ipynb": "executed notebooks", "json": "metrics", "csv": "tables", "png": "figures"}
    found = {p.suffix.lstrip(".") for p in out.rglob("*.*")}
    print(" · ".join(f"{label}: */*.{ext}" for ext, label in kinds.items() if ext in found))
    return 0


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def _models_line(params: dict) -> str:
    """Where the run's models come from, as far as the parameters tell: the smoke defaults' models ship with the
    package; any other model is trained on first use (minutes at smoke scale, hours at paper scale) and cached."""
    if params.get("model_name_or_path"):
        return f"model {params['model_name_or_path']}"
    splits = params.get("forget_splits") or [params.get("forget_split", "forget05")]
    shipped = (params.get("profile", "smoke") == "smoke" and params.get("seed", 0) == 0
               and params.get("dataset", "cohort") == "cohort" and set(splits) <= {"forget05"})
    if shipped:
        return "models shipped with the package (nothing to train)"
    return "models not yet in the cache are trained first"


def batch(args) -> int:
    from sbu.batch.start import run_sweep

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

    config = ExperimentConfig.from_profile(args.profile, seed=args.seed)
    out = args.out or f"data/cohort-{args.profile}" + (f"-seed{args.seed}" if args.seed else "")
    paths = cohort.generate(config.cohort).write(out)
    print(json.dumps([str(p) for p in paths], indent=1))
    return 0


def _profile_config(ref: dict):
    """The experiment settings of a corpus reference's profile and seed (the cohort and its base model)."""
    from sbu.config import ExperimentConfig

    return ExperimentConfig.from_profile(ref.get("profile", "smoke"), seed=ref.get("seed", 0), dataset="cohort")


def _corpus(ref: dict):
    """The corpus of a reference: a folder written by ``Corpus.write``, else the profile's cohort (made in memory;
    nothing is written)."""
    from sbu.data import cohort
    from sbu.data.schema import Corpus

    if ref.get("dir"):
        return Corpus.read(ref["dir"])
    return cohort.generate(_profile_config(ref).cohort)


def _corpus_ref(args) -> dict:
    """How a command (and ``sbu resume``, from the journal) finds the corpus: a folder, else the profile's cohort. The
    profile and seed also name the base model used without ``--model``."""
    ref = {"profile": args.profile, "seed": args.seed}
    return {"dir": str(Path(args.corpus).resolve()), **ref} if args.corpus else ref


def _lasting_store(url: str, command: str) -> None:
    """Refuse a memory that ends with the process: what ``command`` writes or resumes must outlive it."""
    scheme, _, rest = url.partition(":")
    if scheme in ("http", "https") or (scheme == "oxigraph" and rest):
        return
    gone = ", a memory that is gone when the command exits" if scheme in ("oxigraph", "memory") and not rest else ""
    raise StoreError(f"sbu {command} needs a memory that outlives the process: oxigraph:PATH (a folder on disk) or "
                     f"a SPARQL endpoint http://HOST:PORT/query; got {url!r}{gone}")


def _existing_store(url: str) -> None:
    """An on-disk memory must already hold a store: say how to make one, before anything else is done."""
    from sbu.memory.store import finish_compaction, holds_store

    _lasting_store(url, "forget")
    scheme, _, rest = url.partition(":")
    path = Path(rest).expanduser()
    if scheme != "oxigraph":
        return
    finish_compaction(path)  # as opening it would: a rewrite a crash interrupted is put in place first
    if holds_store(path):
        return
    if path.is_dir() and any(path.iterdir()) or path.exists() and not path.is_dir():
        raise StoreError(f"{str(path)!r} holds other files, not a memory store: give the folder of a store that "
                         "`sbu ingest` made")
    what = "is an empty folder" if path.exists() else "does not exist"
    raise StoreError(f"no memory store at {str(path)!r} (it {what}): make one with `sbu ingest --store {url}` "
                     "(it loads a corpus into a new store there), or give the folder of an existing store")


def _new_store(url: str) -> None:
    """``sbu ingest`` makes a store in a new or empty folder (or fills an empty store), never among other files."""
    from sbu.memory.store import holds_store

    _lasting_store(url, "ingest")
    scheme, _, rest = url.partition(":")
    path = Path(rest).expanduser()
    if scheme == "oxigraph" and path.is_dir() and any(path.iterdir()) and not holds_store(path):
        raise StoreError(f"{str(path)!r} holds other files, not a memory store: give a new or empty folder")


def ingest(args) -> int:
    from sbu.memory import open_store
    from sbu.memory.ingest import ingest as ingest_corpus

    _new_store(args.store)
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


def _protocol(work: Path, store, model_path: str | None, corpus_ref: dict, corpus, config):
    """The protocol with its model: ``model_path``, else the profile's base model (from the cache, or trained)."""
    from sbu.data import cohort
    from sbu.model.cache import trained_model
    from sbu.model.network import load
    from sbu.sync import ForgetProtocol

    if model_path:
        lm = load(model_path)
    else:
        settings = _profile_config(corpus_ref)
        lm = trained_model(cohort.generate(settings.cohort), settings.model, settings.train)  # as Experiment's
    return ForgetProtocol(work, store, lm, corpus, config, corpus_ref=corpus_ref, log=_say)


def _check_patients(store, work: Path, patients: list[str]) -> None:
    """Every patient against memory and the work folder's journal, before any model is loaded or trained."""
    from sbu.journal import Journal
    from sbu.memory.barrier import Barrier
    from sbu.sync import check_targets

    journal = Journal(work / "journal.jsonl")
    keys = ()
    if journal.records():  # the keys hash the ids the journal holds; an empty journal needs none (none is made)
        barrier = Barrier.load(store)
        keys = (barrier.key, *barrier.retired)
    check_targets(store, journal, patients, keys)


def _unlearn_budget(args) -> dict:
    """The unlearning steps per round: ``--steps``, else the profile's unlearning budget, as in the notebooks."""
    from sbu.config import ExperimentConfig

    steps = args.steps if args.steps is not None else ExperimentConfig.from_profile(args.profile).unlearn_steps
    return {"steps": steps}


def forget(args) -> int:
    from sbu.memory import open_store
    from sbu.sync import ProtocolConfig

    _existing_store(args.store)
    config = ProtocolConfig(epsilon=args.epsilon, max_rounds=args.max_rounds, method=args.method,
                            unlearn=_unlearn_budget(args), seed=args.seed)
    corpus_ref = _corpus_ref(args)
    corpus = _corpus(corpus_ref)
    with open_store(args.store, create=False) as store:
        _check_patients(store, Path(args.work), args.patient)
        protocol = _protocol(Path(args.work), store, args.model, corpus_ref, corpus, config)
        certificate = protocol.submit(args.patient)
    _say(f"COMMITTED after {certificate.rounds} round(s); certificate {Path(args.work) / certificate.request}"
         "/certificate.json")
    print(certificate.to_json())
    if args.purge_caches:
        import shutil

        from sbu.model.cache import models_trained_on

        gone = models_trained_on(corpus, args.patient)
        for path in gone:
            shutil.rmtree(path)
        _say(f"purged {len(gone)} cached model(s) trained on data that held the forgotten patient(s); the next run "
             "that needs one trains it again, or copies the smoke defaults' model shipped with the package (the "
             "unlearned model is in the work folder)")
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
            protocol = _protocol(Path(args.work), store, received["model"], received["corpus"],
                                 _corpus(received["corpus"]), config)
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


class HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Each option's help ends with its default: the value, or in words where the help gives it (``(default: …)``
    already written, for a default computed at run time). Flags, required options and positionals show none."""

    def _get_help_string(self, action) -> str:
        text = action.help or ""
        if ("(default" in text or action.required or not action.option_strings or action.nargs == 0
                or action.default in (None, argparse.SUPPRESS)):
            return text
        return f"{text} (default: %(default)s)"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="sbu", description=DESCRIPTION, formatter_class=HelpFormatter)
    parser.add_argument("--version", action="version", version=f"sbu {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def command(name: str, func, help: str, description: str | None = None) -> argparse.ArgumentParser:
        p = sub.add_parser(name, help=help, description=description or help[:1].upper() + help[1:] + ".",
                           formatter_class=HelpFormatter)
        p.set_defaults(func=func)
        return p

    profiles = ", ".join(sorted(p.stem for p in (PROJECT / "params" / "profiles").glob("*.yaml")))

    def profile_and_seed(p: argparse.ArgumentParser, what: str, seeded: str = "the cohort and of training") -> None:
        p.add_argument("--profile", default="smoke", help=f"{what}: one of {profiles} "
                       "(params/profiles/PROFILE.yaml)")
        p.add_argument("--seed", type=int, default=0, help=f"the seed of {seeded}")

    p = command("run", run, "execute the notebooks with papermill into results/<timestamp>/")
    p.add_argument("--profile", default="smoke",
                   help=f"the notebook parameters of a profile, params/PROFILE.yaml: one of {profiles}")
    p.add_argument("--params", help="a YAML file of notebook parameters (default: the profile's)")
    p.add_argument("--seed", type=int, help="the notebooks' seed (default: the parameter file's)")
    p.add_argument("-p", "--parameter", nargs=2, action="append", metavar=("NAME", "VALUE"), help="a notebook "
                   "parameter, VALUE read as YAML (-p seed 7, -p forget_splits [forget05]); checked before any run; "
                   "repeat for several (default: none, the parameter file's values)")
    p.add_argument("--prepare-only", action="store_true", help="write the notebooks with their parameters "
                   "injected, not run (course handouts)")
    p.add_argument("--out", metavar="DIR", help="output folder (default: results/<timestamp> in the checkout)")
    p.add_argument("--jobs", type=_positive_int, default=2, metavar="N", help="notebooks run at once, each kernel "
                   "with the cores / N threads (default: 2; 1 runs them one after another on every core)")
    p.add_argument("notebooks", nargs="*", help="run only these notebooks (name prefixes such as 01 or 02; "
                   "default: all four)")

    p = command("batch", batch, "run one notebook over a parameter grid (a sweep file), resumably, into "
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
                   help="notebooks running at once; each gets the cores / WORKERS as its thread count "
                   "unless OMP_NUM_THREADS is set")
    p.add_argument("--out", metavar="DIR", help="folder that receives NAME/ (default: results/ of this checkout)")
    p.add_argument("--notebooks-dir", help="where the sweep's notebook: is looked up by name or name prefix "
                   "(default: notebooks/ of this checkout; the tests use tests/data)")
    p.add_argument("--scheduler", metavar="tcp://HOST:PORT", help="run each run on a worker of this Dask scheduler "
                   "(`dask scheduler`, `dask worker`); the checkout and --out must be on a file system the workers "
                   "share; each run gets its worker's threads (default: local processes)")
    p.add_argument("--cluster", nargs=2, metavar=("SYSTEM", "CONFIG.yaml"), help="start the Dask workers as batch "
                   "jobs through dask-jobqueue: SYSTEM is slurm, pbs, sge or lsf, CONFIG.yaml its settings (cores, "
                   "memory, queue, walltime, …) and jobs: how many (default: local processes)")

    p = command("study-report", study_report, "notebook 04's tables, figures and claims from a sweep whose runs "
                "each hold some splits or seeds", description="Read every finished run of a notebook-04 sweep "
                "(results.csv and rounds.csv of results/NAME/<run-id>/) as one study and write what notebook "
                "04 writes after its run: summary.csv, main_table_<split>.csv, claims.csv, privacy_utility, "
                "backflow and costs (.png, .svg). For a long study run in pieces, e.g. "
                "params/sweeps/paper.yaml (one run per split and seed, each resumable).")
    p.add_argument("folder", help="the sweep's folder, e.g. results/paper")
    p.add_argument("--out", metavar="DIR", help="where to write (default: FOLDER/study)")
    p.add_argument("--headline-split", help="the split of the backflow figure (default: forget05 if the study has "
                   "it, else its first split)")

    p = command("model-report", model_report, "train or load the base and retrain models and print their targets")
    profile_and_seed(p, "the models and cohort of a profile")
    p.add_argument("--forget-split", default="forget05", help="the patients the retrain model leaves out: forget01, "
                   "forget05 or forget10")
    p.add_argument("--out", metavar="DIR", default="results/model-report",
                   help="where model_table.csv and metrics.json go")

    p = command("cohort", write_cohort, "write the synthetic cohort of a profile as JSONL")
    profile_and_seed(p, "the cohort of a profile")
    p.add_argument("--out", metavar="DIR",
                   help="the folder to write (default: data/cohort-PROFILE, or data/cohort-PROFILE-seedN for a "
                   "seed other than 0)")

    p = command("ingest", ingest, "load a corpus into an empty memory store")
    p.add_argument("--store", required=True, metavar="URL",
                   help="oxigraph:PATH (a new or empty folder, made if missing) or an endpoint http://HOST:PORT/query")
    p.add_argument("--corpus", metavar="DIR",
                   help="a corpus folder, written by sbu cohort or Corpus.write (default: the profile's cohort)")
    profile_and_seed(p, "the cohort to load without --corpus")

    p = command("forget", forget, "forget patients from memory and weights together (journaled; resumable)")
    p.add_argument("--patient", action="append", required=True, metavar="ID",
                   help="an entity id such as patient/p007 (repeat for several in one request)")
    p.add_argument("--store", required=True, metavar="URL",
                   help="oxigraph:PATH (a store made by sbu ingest) or an endpoint http://HOST:PORT/query")
    p.add_argument("--model", metavar="DIR",
                   help="the agent's model folder (default: the profile's base model, from the model cache or "
                   "trained into it)")
    p.add_argument("--corpus", metavar="DIR", help="the corpus the probes come from (default: the profile's cohort)")
    profile_and_seed(p, "the cohort and base model without --corpus or --model",
                     "the cohort, of training and of unlearning")
    p.add_argument("--work", default="results/forget", metavar="DIR",
                   help="the folder of the journal, adapters, models, certificates and standing obligations "
                   "(sbu resume and sbu obligations read it)")
    p.add_argument("--method", default="sra", help="the unlearning method of each round (any name registered in "
                   "sbu.unlearn.METHODS)")
    p.add_argument("--steps", type=int, help="unlearning steps per round (default: the profile's unlearning budget)")
    p.add_argument("--epsilon", type=float, default=0.15, help="leakage allowed at commit")
    p.add_argument("--max-rounds", type=int, default=3, help="memory → parameter → verify rounds at most, while "
                   "leakage exceeds --epsilon")
    p.add_argument("--purge-caches", action="store_true", help="after the commit, delete the cached models that "
                   "were trained on the forgotten patients (training caches hold the data; see RELIABILITY.md)")

    p = command("resume", resume, "finish every forget request of a work folder that did not commit")
    p.add_argument("--work", default="results/forget", metavar="DIR", help="the --work folder of sbu forget")

    p = command("obligations", obligations, "list the standing obligations of a work folder (request id, state, "
                "clean consolidations so far / to discharge)")
    p.add_argument("--work", default="results/forget", metavar="DIR", help="the --work folder of sbu forget")

    command("rotate-key", rotate_key, "put a new barrier key first in the key file (old ones keep checking)")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except SbuError as err:
        print(f"sbu: error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())

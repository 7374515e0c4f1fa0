"""The ``sbu`` command line.

``sbu run`` executes the notebooks with papermill into ``results/<timestamp>/``; ``sbu model-report`` trains (or
loads from the cache) the base and retrain models of a profile and prints their accuracy table and targets;
``sbu cohort`` writes the synthetic cohort as JSONL. Later pathways add their own sub-commands.
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
    import papermill as pm
    import yaml

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
        pm.execute_notebook(str(notebook), str(target / notebook.name), cwd=str(notebook.parent),
                            parameters={**params, "out_dir": str(target)}, progress_bar=True)
    print(f"\n[sbu run] results in {out}")
    for folder in sorted(p for p in out.iterdir() if p.is_dir()):
        files = sorted(f.name for f in folder.iterdir())
        print(f"  {folder.name}/: " + ", ".join(files))
    kinds = {"ipynb": "executed notebooks", "json": "metrics", "csv": "tables", "png": "figures"}
    found = {p.suffix.lstrip(".") for p in out.rglob("*.*")}
    print(" · ".join(f"{label}: */*.{ext}" for ext, label in kinds.items() if ext in found))
    return 0


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


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="sbu", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("run", help="execute the notebooks with papermill into results/<timestamp>/")
    p.add_argument("--profile", default="smoke", help="smoke (default) or paper: reads params/<profile>.yaml")
    p.add_argument("--params", help="a YAML file of notebook parameters instead of the profile's")
    p.add_argument("--seed", type=int)
    p.add_argument("--out", help="output folder (default results/<timestamp>)")
    p.add_argument("notebooks", nargs="*", help="run only these notebooks (name prefixes such as 01 or 02)")
    p.set_defaults(func=run)

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

    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except SbuError as err:
        print(f"sbu: error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())

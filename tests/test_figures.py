"""The figures agree: one palette colour and marker per condition in every figure, integer round ticks, a label on
every axis, legends for markers and reference lines, "CI" in a title only over two seeds or more, and every figure
saved as a 200-dpi PNG and an SVG. Drawn from small hand-made tables in the package's own formats (no training)."""

from __future__ import annotations

import functools

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402
from matplotlib.colors import to_hex  # noqa: E402
from PIL import Image  # noqa: E402

from sbu.eval import plots, study, style  # noqa: E402
from sbu.eval.targets import PRIVLEAK_TARGET  # noqa: E402
from sbu.experiment import Experiment  # noqa: E402

ROUNDS = (0, 1, 2)


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


def per_round(conditions=("memory-only", "parameter-only", "sbu"), seeds=(0,)) -> pd.DataFrame:
    """A backflow table as :func:`sbu.eval.backflow.backflow_study` writes it (notebook 04 adds split and seed)."""
    rng = np.random.default_rng(0)
    rows = [{"condition": c, "round": r, "seed": s, "forget_split": "forget05",
             **{column: float(rng.uniform()) for column in plots.BACKFLOW_PANELS},
             "recreated_artifacts": int(rng.integers(0, 9)), "refused": int(rng.integers(0, 9)),
             "obligation_leakage": float(rng.uniform()), "obligation_leakage_after": float(rng.uniform()),
             "resuppression_rounds": int(rng.integers(0, 3))}
            for c in conditions for r in ROUNDS for s in seeds]
    return pd.DataFrame(rows)


def study_summary(seeds=(0,), splits=(("forget01", 1), ("forget05", 3))) -> pd.DataFrame:
    """The summary :func:`sbu.eval.study.summary` makes of notebook 04's long results table."""
    rng = np.random.default_rng(1)
    conditions = [a.name for a in study.arms(["sra", "npo"])]
    rows = [{"dataset": "cohort", "forget_split": split, "n_forgotten": n, "seed": seed, "condition": c,
             "metric": metric, "value": float(rng.uniform(0.1, 1.0))}
            for split, n in splits for seed in seeds for c in conditions
            for metric in ("min_k_plus_plus PrivLeak", "test acc", "unlearn seconds")]
    return study.summary(pd.DataFrame(rows))


def unlearning_table() -> pd.DataFrame:
    """Notebook 02's comparison table (the columns privacy_utility reads), one row per model."""
    models = ["base", "retrain", "sra", "grad_diff", "npo", "sra, calibrated"]
    return pd.DataFrame({"min_k_plus_plus PrivLeak": np.linspace(-0.5, 0.8, len(models)),
                         "retain accuracy": np.linspace(0.9, 1.0, len(models))},
                        index=pd.Index(models, name="model"))


@functools.cache
def every_figure(seeds=(0,)) -> dict:
    """Every figure function's figure, drawn once per module (the tests only read them)."""
    rounds = per_round(seeds=seeds)
    summary = study_summary(seeds)
    logs = {m: pd.DataFrame({"step": range(5), "forget_term": np.linspace(2, 1, 5)}) for m in ("sra", "npo")}
    requests = pd.DataFrame({"request": ["before", "#1", "#2"], "patients forgotten": [0, 1, 2],
                             "retain acc (closed-book)": [0.95, 0.9, 0.88], "seconds": [0.0, 3.0, 3.2]})
    return {"backflow": plots.backflow_curves(rounds, 0.3),
            "obligations": plots.obligation_rounds(rounds[rounds.seed == seeds[0]], "sbu", 0.15, 0.3).figure,
            "requests": plots.request_costs(requests),
            "privacy_utility": plots.privacy_utility(unlearning_table()).figure,
            "study_privacy_utility": plots.study_privacy_utility(summary).figure,
            "costs": plots.study_costs(summary).figure,
            "training": plots.training_curves(logs).figure,
            "entropy": plots.entropy_shift({"forget": {"base": [1.0, 2.0, 2.5], "sra": [3.0, 3.5, 4.0]},
                                            "retain": {"base": [1.0, 1.5, 2.0], "sra": [1.1, 1.6, 2.1]}}).figure}


def legend_looks(figure) -> dict[str, tuple[str, str]]:
    """``{label: (colour, marker)}`` of every legend entry of a figure."""
    legends = [*figure.legends, *(ax.get_legend() for ax in figure.axes if ax.get_legend())]
    return {text.get_text(): (to_hex(handle.get_color()), handle.get_marker())
            for legend in legends for handle, text in zip(legend.legend_handles, legend.get_texts())
            if hasattr(handle, "get_marker")}


def drawn_colours(figure) -> set[str]:
    return {to_hex(line.get_color()) for ax in figure.axes for line in ax.get_lines()}


def test_a_condition_has_one_colour_and_marker_in_every_figure():
    figures = every_figure()
    sbu, sra, npo = style.look("sbu"), style.look("sra"), style.look("npo")
    assert len({look.colour for look in style.LOOKS.values()}) == len(style.LOOKS), "two conditions share a colour"
    assert style.look("parameter-only") == style.look("parameter-only (sra)") == style.look("SRA") == sra
    assert style.look("retrain + closure") == style.look("retrain")
    for name in ("backflow", "study_privacy_utility", "costs"):
        found = legend_looks(figures[name])
        assert found["sbu"] == (sbu.colour, sbu.marker), name
        assert sbu.colour in drawn_colours(figures[name]) or name == "costs"
    assert legend_looks(figures["backflow"])["parameter-only"] == (sra.colour, sra.marker)
    assert legend_looks(figures["study_privacy_utility"])["parameter-only (npo)"] == (npo.colour, npo.marker)
    assert legend_looks(figures["privacy_utility"])["npo"] == (npo.colour, npo.marker)
    assert legend_looks(figures["privacy_utility"])["sra"] == (sra.colour, sra.marker)
    assert sra.colour in {to_hex(line.get_color()) for line in figures["training"].axes[0].get_lines()}
    # a name the palette does not list still looks the same every time it is drawn
    assert style.look("a new method") == style.look("A new method ")


def test_rounds_are_whole_numbers_and_every_axis_is_labelled():
    figures = every_figure()
    for name in ("backflow", "obligations"):
        for ax in figures[name].axes:
            if ax.get_xlabel().startswith("round"):
                assert list(ax.get_xticks()) == list(ROUNDS), name
                assert [t.get_text() for t in ax.get_xticklabels()] == [str(r) for r in ROUNDS]
    assert sum(ax.get_xlabel().startswith("round") for ax in figures["backflow"].axes) == 6
    for name, figure in figures.items():
        for ax in figure.axes:
            assert ax.get_ylabel().strip(), f"{name}: a y axis without a label ({ax.get_title()!r})"
            twin_of = [o for o in figure.axes if o is not ax and o.get_position().bounds == ax.get_position().bounds]
            assert ax.get_xlabel().strip() or any(o.get_xlabel() for o in twin_of), f"{name}: x axis unlabelled"


def test_shares_are_drawn_on_zero_to_one_and_requests_on_one_axis_per_panel():
    figures = every_figure()
    top, bottom = figures["requests"].axes
    assert len(figures["requests"].axes) == 2  # no twin axes
    assert top.get_ylim()[0] == 0 and top.get_ylim()[1] >= 1 and bottom.get_ylim()[0] == 0
    backflow = {ax.get_title(): ax for ax in figures["backflow"].axes}
    assert backflow["memory exposure (top-k)"].get_ylim()[1] >= 1
    assert backflow["write-backs refused by the barrier"].get_ylim()[0] == 0


def test_a_lone_forget_size_gets_bars_from_zero_not_a_column_on_a_tiny_range():
    summary = study_summary(splits=(("forget05", 3),))
    ax = plots.study_costs(summary)
    assert ax.get_xlim()[0] == 0 and ax.get_xscale() == "linear"
    assert len(ax.patches) == summary.query("metric == 'unlearn seconds' and condition != 'none'").shape[0]
    assert [t.get_text() for t in ax.get_yticklabels()][0] == "memory-only"
    colours = {to_hex(p.get_facecolor()) for p in ax.patches}
    assert style.look("sbu").colour in colours and style.look("parameter-only (npo)").colour in colours
    assert "3 patients forgotten" in ax.get_title()


def test_markers_and_reference_lines_are_explained_in_a_legend():
    figures = every_figure()
    for name in ("privacy_utility", "study_privacy_utility"):
        labels = legend_looks(figures[name])
        assert f"|PrivLeak| = {PRIVLEAK_TARGET:.2f} (SRA's target)" in labels, name
        assert not any(t.get_text() for ax in figures[name].axes for t in ax.texts), "labels printed on points"
    assert "forget01" in legend_looks(figures["study_privacy_utility"])  # the fill of each split
    assert "retrain model's closed-book forget accuracy" in legend_looks(figures["backflow"])
    obligations = [t.get_text() for t in figures["obligations"].axes[0].get_legend().get_texts()]
    assert "ε = 0.15 (leakage allowed)" in obligations and "re-suppression rounds (right axis)" in obligations


@pytest.mark.parametrize("seeds", [(0,), (0, 1, 2)])
def test_a_title_claims_a_ci_only_over_two_seeds_or_more(seeds):
    figures = every_figure(seeds)
    summary = study_summary(seeds)
    titles = {"backflow": figures["backflow"].get_suptitle(),
              "study_privacy_utility": figures["study_privacy_utility"].axes[0].get_title(),
              "costs": figures["costs"].axes[0].get_title(),
              "summary": plots.draw_summary(summary, [], ["test acc"]).get_suptitle()}
    for name, title in titles.items():
        if len(seeds) >= 2:
            assert f"95 % CI over {len(seeds)} seeds" in title, name
        else:
            assert "CI" not in title and "one seed" in title, name
    assert "CI" not in figures["privacy_utility"].axes[0].get_title()


def test_every_figure_is_saved_as_a_200_dpi_png_and_an_svg(tmp_path):
    figure = every_figure()["backflow"]
    png, svg = style.save(figure, tmp_path / "new folder", "backflow")
    with Image.open(png) as image:
        assert image.format == "PNG" and min(image.info["dpi"]) >= style.DPI - 1 >= 199
        assert image.size[0] >= 11 * 190  # 11 inches wide at 200 dpi, less the tight crop
    assert svg.read_text().lstrip().startswith("<?xml") and "<svg" in svg.read_text()
    assert png.stat().st_mode & 0o777 == svg.stat().st_mode & 0o777 == 0o644
    assert "retrain model" not in svg.read_text()  # text is drawn, not written: nothing for a leak scan to find
    exp = Experiment.from_params(out_dir=str(tmp_path / "run"))
    paths = exp.save_figure(plots.privacy_utility(unlearning_table()), "privacy_utility")
    assert [p.name for p in paths] == ["privacy_utility.png", "privacy_utility.svg"]
    with Image.open(paths[0]) as image:
        assert min(image.info["dpi"]) >= 199
    assert not list((tmp_path / "run").glob(".*.tmp"))  # written whole, no temporary left behind


def test_a_study_summary_read_back_redraws_its_figures(tmp_path):
    summary = study_summary(seeds=(0, 1), splits=(("forget05", 7),)).assign(dataset="pubmedqa")
    summary.to_csv(tmp_path / "summary.csv", index=False)
    paths = study.summary_figures(pd.read_csv(tmp_path / "summary.csv"), tmp_path / "figures")
    assert sorted(p.name for p in paths) == ["costs.png", "costs.svg", "privacy_utility.png", "privacy_utility.svg"]
    assert "7 abstracts forgotten" in plots.study_costs(summary).get_title()

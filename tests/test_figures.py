"""The cohort figures: files, sizes, determinism, what the figures say, and the real table."""

from __future__ import annotations

import struct
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from msprofile import figures, stats
from msprofile.jobs.statistics import load_cohort_table, write_figure
from msprofile.outputs import FIGURE_NAMES, figure_names

from conftest import COHORT_SEED_TABLE, require_reference_table

AGES = {"18-29": (18, 29), "30-39": (30, 39), "40-49": (40, 49), "50-59": (50, 59), "60+": (60, 74)}


def synthetic_cohort(per_cell: int = 6) -> pd.DataFrame:
    """Both groups, both sexes, every age group (``per_cell`` subjects each, enough for the
    outlier rule's strata of 5), lesion-free subjects in both groups, two planted extreme MS
    subjects (flagged on several variables, so outlier removal removes someone), one subject
    without age and one of unknown sex."""
    rng = np.random.default_rng(7)
    rows = []
    for group in stats.GROUPS:
        for sex in stats.SEXES:
            for label, (lo, hi) in AGES.items():
                for k in range(per_cell):
                    age = float(rng.integers(lo, hi + 1))
                    icv = float(rng.normal(120000 if sex == "M" else 110000, 4000))
                    vent = float(rng.normal(450 + 6 * (age - 18), 60))
                    scale = 40.0 if group == "HC" else 400.0
                    peri, para, juxt = (float(v) for v in rng.gamma(2.0, scale / 2.0, 3) * (0.6, 0.25, 0.15))
                    if k == 0 and label in ("18-29", "30-39") or (group == "HC" and k == 1 and label == "40-49"):
                        peri = para = juxt = 0.0  # lesion-free
                    rows.append(
                        {
                            "group": group,
                            "sex": sex,
                            "age_years": age,
                            "TotalIntracranialArea": round(icv),
                            "TotalVentricleArea": round(vent),
                            "TotalPeriArea": round(peri),
                            "TotalParaArea": round(para),
                            "TotalJuxtArea": round(juxt),
                        }
                    )
    table = pd.DataFrame(rows)
    ms_young = table.index[(table["group"] == "MS") & (table["age_years"] < 30)][[2, 3]]
    table.loc[ms_young, ["TotalVentricleArea", "TotalPeriArea", "TotalParaArea", "TotalJuxtArea"]] = [
        4000,
        9000,
        5000,
        3000,
    ]
    table.loc[0, "age_years"] = np.nan
    table.loc[1, "sex"] = None
    table["TotalWMHArea"] = table["TotalPeriArea"] + table["TotalParaArea"] + table["TotalJuxtArea"]
    table.insert(0, "subject_id", [f"sub-{k:03d}" for k in range(len(table))])
    table["sex"] = table["sex"].astype("string")
    return table


@pytest.fixture(scope="module")
def cohort() -> pd.DataFrame:
    return synthetic_cohort()


def draw(function, table, png: Path, pdf: Path, **options) -> dict:
    """Draw one figure and write it as the figures rule does; its summary with the paths."""
    return write_figure(function(table, **options), png, pdf)


def write_all(table, folder: Path, **options) -> dict[str, tuple[Path, Path]]:
    """Every figure of ``figures.all_figures`` written into ``folder``: ``{name: (png, pdf)}``."""
    written = {}
    for name, figure in figures.all_figures(table, **options).items():
        summary = write_figure(figure, folder / f"{name}.png", folder / f"{name}.pdf")
        written[name] = summary["png"], summary["pdf"]
    return written


def png_size(path: Path) -> tuple[int, int]:
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n", f"{path} is not a PNG"
    assert data[12:16] == b"IHDR"
    return struct.unpack(">II", data[16:24])


def png_dpi(path: Path) -> float:
    data = path.read_bytes()
    at = data.index(b"pHYs")
    x, _, unit = struct.unpack(">IIB", data[at + 4 : at + 13])
    assert unit == 1  # metre
    return x * 0.0254


def expected_px(name: str) -> tuple[int, int]:
    w, h = figures.FIGURE_SIZES[name]
    return round(w * figures.FIGURE_DPI), round(h * figures.FIGURE_DPI)


def check_files(name: str, png: Path, pdf: Path) -> None:
    assert png.stat().st_size > 10_000, f"{png} is (nearly) empty"
    assert png_size(png) == expected_px(name)
    assert png_dpi(png) == pytest.approx(300, abs=0.1)
    assert pdf.read_bytes()[:5] == b"%PDF-"
    assert pdf.stat().st_size > 5_000


@pytest.mark.parametrize("name", FIGURE_NAMES)
def test_each_figure_writes_png_and_pdf_deterministically(cohort, tmp_path, name):
    function = figures.FIGURES[name]
    first = draw(function, cohort, tmp_path / "a" / f"{name}.png", tmp_path / "a" / f"{name}.pdf")
    second = draw(function, cohort, tmp_path / "b" / f"{name}.png", tmp_path / "b" / f"{name}.pdf")
    for run in (first, second):
        check_files(name, run["png"], run["pdf"])
        assert run["size_px"] == expected_px(name)
    assert first["png"].read_bytes() == second["png"].read_bytes()
    assert first["pdf"].read_bytes() == second["pdf"].read_bytes()
    assert first["texts"] == second["texts"]
    # nothing but the two outputs in the folder: the atomic writes left no temporary files
    assert sorted(p.name for p in (tmp_path / "a").iterdir()) == sorted([f"{name}.pdf", f"{name}.png"])


def test_row_order_and_derived_input_do_not_change_the_files(cohort, tmp_path):
    shuffled = cohort.sample(frac=1.0, random_state=3).reset_index(drop=True)
    derived = stats.derive(cohort)
    outputs = []
    for k, table in enumerate((cohort, shuffled, derived)):
        outputs.append(draw(figures.ventricular_burden, table, tmp_path / f"{k}.png", tmp_path / f"{k}.pdf"))
    for other in outputs[1:]:
        assert other["png"].read_bytes() == outputs[0]["png"].read_bytes()
        assert other["pdf"].read_bytes() == outputs[0]["pdf"].read_bytes()


def test_log_axis_panel_states_how_many_lesion_free_subjects_are_left_out(cohort, tmp_path):
    d = stats.derive(cohort)
    with_age = d["age_years"].notna()
    expected = {g: int(((d["group"] == g) & with_age & (d["WMHRatio"] == 0)).sum()) for g in stats.GROUPS}
    assert expected["HC"] > 0 and expected["MS"] > 0  # the cohort has lesion-free subjects in both groups
    summary = draw(figures.burden_vs_age, cohort, tmp_path / "s.png", tmp_path / "s.pdf")
    assert summary["n_not_shown_log_axis"] == expected
    statement = [t for t in summary["texts"] if t.startswith("Not shown on the log axis")]
    assert statement == [
        f"Not shown on the log axis (lesion-free, WMHRatio = 0):\nHC {expected['HC']}, MS {expected['MS']} subjects"
    ]
    # the subject without age is counted too, and every group's points are accounted for
    assert summary["n_without_age"] == 1
    shown = {g: int(((d["group"] == g) & with_age & (d["WMHRatio"] > 0)).sum()) for g in stats.GROUPS}
    for g in stats.GROUPS:
        assert f"{g} subjects (n = {shown[g]} shown)" in summary["texts"]


def _independent(table: pd.DataFrame) -> pd.DataFrame:
    """Ratios and age groups computed here from the raw columns, without msprofile.stats."""
    d = table.copy()
    lesion = d["TotalPeriArea"] + d["TotalParaArea"] + d["TotalJuxtArea"]
    d["VentricleRatio"] = d["TotalVentricleArea"] / d["TotalIntracranialArea"] * 100.0
    d["WMHRatio"] = lesion / d["TotalIntracranialArea"] * 100.0
    bins = np.digitize(d["age_years"].to_numpy(float), [18, 30, 40, 50, 60])  # 0: under 18 or NaN -> 5
    d["age_bin"] = np.where(np.isnan(d["age_years"].to_numpy(float)), 0, bins)
    return d


def test_trend_r_squared_is_the_quadratic_models(cohort, tmp_path):
    """R² of each group's quadratic age trend, as numpy's least-squares fit gives it."""
    summary = draw(figures.burden_vs_age, cohort, tmp_path / "s.png", tmp_path / "s.pdf")
    d = _independent(cohort)
    for g in stats.GROUPS:
        for variable in ("VentricleRatio", "WMHRatio"):
            sub = d[(d["group"] == g) & d["age_years"].notna()]
            age, y = sub["age_years"].to_numpy(float), sub[variable].to_numpy(float)
            fitted = np.polyval(np.polyfit(age, y, 2), age)
            r_squared = 1.0 - ((y - fitted) ** 2).sum() / ((y - y.mean()) ** 2).sum()
            assert summary["r_squared"][(g, variable)] == pytest.approx(r_squared, rel=1e-9)
            assert f"{g} quadratic OLS trend: R² = {r_squared:.3f} (n = {len(sub)})" in summary["texts"]


def test_burden_bars_are_the_group_means_with_n(cohort, tmp_path):
    """Each bar is the mean lesion area of its group, sex and age group (computed here with
    pandas from the raw columns), and says how many subjects it holds."""
    summary = draw(figures.lesion_burden, cohort, tmp_path / "l.png", tmp_path / "l.pdf")
    d = _independent(cohort)
    lesion = d["TotalPeriArea"] + d["TotalParaArea"] + d["TotalJuxtArea"]
    for g in stats.GROUPS:
        for s in stats.SEXES:
            cell = summary["cells"][(g, "TotalWMHArea", s)]
            for k, age_bin in enumerate(range(1, 6)):
                values = lesion[(d["group"] == g) & (d["sex"] == s) & (d["age_bin"] == age_bin)]
                assert cell["n"][k] == len(values)
                assert cell["mean"][k] == pytest.approx(values.mean(), rel=1e-12)
    assert summary["n_without_age_group"] == 1
    assert any("Not shown: 1 subject(s) without an age group" in t for t in summary["texts"])


def test_lesion_profile_shares_follow_the_lesion_free_option(cohort, tmp_path):
    missing = draw(figures.ms_lesion_profile, cohort, tmp_path / "m.png", tmp_path / "m.pdf")
    zero = draw(figures.ms_lesion_profile, cohort, tmp_path / "z.png", tmp_path / "z.pdf", lesion_free_shares="zero")
    stacks_missing = np.sum([missing["profile"][(stats.POOLED, v)] for v in stats.SHARE_COLUMNS], axis=0)
    stacks_zero = np.sum([zero["profile"][(stats.POOLED, v)] for v in stats.SHARE_COLUMNS], axis=0)
    np.testing.assert_allclose(stacks_missing, 100.0)  # subjects with lesions: shares add up to 100%
    assert (stacks_zero[:2] < 100.0).all()  # lesion-free MS subjects (in 18-29 and 30-39) count as 0%
    assert missing["n_lesion_free_ms"] == zero["n_lesion_free_ms"] > 0
    assert missing["png"].read_bytes() != zero["png"].read_bytes()


def test_demographics_counts_every_subject(cohort, tmp_path):
    summary = draw(figures.demographics, cohort, tmp_path / "d.png", tmp_path / "d.pdf")
    counts = summary["counts"]
    assert sum(counts["All subjects"].values()) == len(cohort)
    assert counts["All subjects"][stats.UNKNOWN_SEX] == 1
    for g in stats.GROUPS:
        assert sum(counts[g].values()) == int((cohort["group"] == g).sum())
    assert sum(summary["n_without_age"].values()) == 1
    assert "Subjects" in summary["texts"] and "Age (years)" in summary["texts"]


def test_correlation_matrix_is_spearmans_rho(cohort, tmp_path):
    """Each heatmap is scipy's Spearman rho of the group's complete cases."""
    from scipy.stats import spearmanr

    summary = draw(figures.correlation_heatmaps, cohort, tmp_path / "c.png", tmp_path / "c.pdf")
    d = _independent(cohort)
    variables = list(stats.CORRELATION_VARIABLES)
    for g in stats.GROUPS:
        complete = d.loc[d["group"] == g, variables].dropna()
        expected = spearmanr(complete.to_numpy(float)).statistic
        np.testing.assert_allclose(summary["rho"][g], expected, rtol=1e-10, atol=1e-12)
        assert f"{g} (n = {len(complete)} complete cases)" in summary["texts"]


def test_outlier_overview_shows_the_removed_subjects(cohort, tmp_path):
    summary = draw(figures.outlier_overview, cohort, tmp_path / "o.png", tmp_path / "o.pdf")
    _, removed = stats.outliers(cohort)
    flags = stats.outlier_flags(cohort)
    d = stats.derive(cohort)
    assert summary["n_removed"] == len(removed) >= 2
    for g in stats.GROUPS:
        assert summary["n_flagged"][g] == flags[(d["group"] == g).to_numpy()].sum().astype(int).to_dict()
    for row in removed.itertuples(index=False):
        assert f"{row.subject_id} ({row.group} {row.age_group}, {row.n_flags})" in summary["texts"]


@pytest.fixture(scope="module")
def all_written(cohort, tmp_path_factory) -> dict:
    """``{remove_outliers: (folder, write_all's answer)}`` for the synthetic cohort."""
    out = {}
    for remove_outliers in (False, True):
        folder = tmp_path_factory.mktemp(f"all_figures_{remove_outliers}")
        out[remove_outliers] = folder, write_all(cohort, folder, remove_outliers=remove_outliers)
    return out


@pytest.mark.parametrize("remove_outliers", [False, True])
def test_all_figures_writes_exactly_the_expected_files(all_written, remove_outliers):
    folder, written = all_written[remove_outliers]
    names = [n for n in FIGURE_NAMES if remove_outliers or n != "outlier_overview"]
    assert list(written) == names == list(figure_names(remove_outliers))
    assert sorted(p.name for p in folder.iterdir()) == sorted(f"{n}.{ext}" for n in names for ext in ("png", "pdf"))
    for name, (png, pdf) in written.items():
        assert (png, pdf) == (folder / f"{name}.png", folder / f"{name}.pdf")
        check_files(name, png, pdf)


def test_all_figures_with_outlier_removal_draws_the_kept_subjects(all_written):
    # the removal changes the figures drawn on the kept subjects (and says so under the title)
    for name in figure_names(False):
        assert all_written[False][1][name][0].read_bytes() != all_written[True][1][name][0].read_bytes(), name


# stats.regressions: R^2 of a constant outcome (every MS WMHRatio 0) is 0/0 inside statsmodels
@pytest.mark.filterwarnings("ignore:invalid value encountered in scalar divide:RuntimeWarning")
def test_degenerate_cohorts_still_give_every_figure(cohort, tmp_path):
    # three subjects: most cells empty, no stratum large enough for the outlier rule
    tiny = cohort.iloc[[2, 70, 100]]
    written = write_all(tiny, tmp_path / "tiny", remove_outliers=True)
    for name, (png, pdf) in written.items():
        check_files(name, png, pdf)
    # every MS subject lesion-free: nothing to show for MS on the log axis, no shares
    lesion_free_ms = cohort.copy()
    lesion_free_ms.loc[lesion_free_ms["group"] == "MS", list(stats.CLASS_AREA_COLUMNS) + ["TotalWMHArea"]] = 0
    summary = draw(figures.burden_vs_age, lesion_free_ms, tmp_path / "b.png", tmp_path / "b.pdf")
    check_files("burden_vs_age", summary["png"], summary["pdf"])
    assert summary["n_not_shown_log_axis"]["MS"] == int(
        ((lesion_free_ms["group"] == "MS") & lesion_free_ms["age_years"].notna()).sum()
    )
    summary = draw(figures.ms_lesion_profile, lesion_free_ms, tmp_path / "p.png", tmp_path / "p.pdf")
    check_files("ms_lesion_profile", summary["png"], summary["pdf"])
    assert summary["n_lesion_free_ms"] == int((lesion_free_ms["group"] == "MS").sum())


def test_unknown_option_is_rejected(cohort, tmp_path):
    with pytest.raises(ValueError, match="lesion_free_shares"):
        write_all(cohort, tmp_path, lesion_free_shares="none")


def test_reference_table_all_figures(tmp_path):
    require_reference_table()
    table = load_cohort_table(COHORT_SEED_TABLE)
    start = time.perf_counter()
    written = write_all(table, tmp_path, remove_outliers=True)
    elapsed = time.perf_counter() - start
    assert list(written) == list(FIGURE_NAMES)
    assert len(list(tmp_path.iterdir())) == 2 * len(FIGURE_NAMES)
    for name, (png, pdf) in written.items():
        check_files(name, png, pdf)
    # a loose guard only (shared machines vary); the target is ~3 s on one unloaded core
    assert elapsed < 30.0, f"all_figures took {elapsed:.1f} s on the reference table"

"""Cohort figures (docs/method.md section 7): one function per figure, each drawing a matplotlib
figure that :mod:`msprofile.jobs.statistics` writes as a PNG (300 dpi) and a vector PDF.

Every figure function has the signature ``(table, **options)``:

``table``
    a cohort table as :mod:`msprofile.stats` accepts it (raw, or already the output of
    :func:`msprofile.stats.derive`; a raw table, or a derived one whose
    ``attrs["notes"]["lesion_free_shares"]`` differs from the option, is derived here).
``lesion_free_shares``
    ``"missing"`` (default) or ``"zero"``, passed to :func:`msprofile.stats.derive`.
``note``
    an optional line added under the figure title (:func:`all_figures` uses it to say that
    outliers were removed).

and returns a :class:`CohortFigure`: the figure, and a summary of what it shows (every text
drawn in it and the counts the figure shows, e.g. how many lesion-free subjects the log axis
leaves out), so that callers and tests can check what a figure says without reading pixels.

Numbers come from :mod:`msprofile.stats` (``descriptives``, ``regressions``, ``correlations``,
``outlier_flags``, ``outliers``); nothing statistical is recomputed here except the 95%
confidence half-width of a mean, ``t(0.975, n - 1) * sd / sqrt(n)`` from the descriptive
``n`` and ``sd``.

Conventions, defined once below: colours (:data:`GROUP_COLOURS` HC vs MS,
:data:`SEX_COLOURS` female vs male, :data:`CLASS_COLOURS` lesion classes; Okabe-Ito
colour-blind-safe hues), figure sizes (:data:`FIGURE_SIZES`, inches; at
:data:`FIGURE_DPI` = 300 a 7 x 5 in figure is 2100 x 1500 px), fonts (:data:`STYLE`, applied
with ``matplotlib.rc_context`` only while a figure is built and while it is saved). Only the object API
is used (``matplotlib.figure.Figure``, Agg canvas for the PNG), never pyplot's global figure
state. Subjects a figure cannot show (no age group, no age, lesion-free on a log axis) are
counted in the figure, never dropped silently.

Output is deterministic: equal input gives byte-identical files (PNG: RGB, 300 dpi in the
pHYs chunk, no text chunks; PDF: no creation date, producer or creator), written atomically
by :func:`msprofile.io.save_figure`. Dense scatters are rasterised inside the PDF
(``rasterized=True``), everything else stays vector.

Speed (the reference spent 14 s on its figures, over half of it writing six 300-dpi PNGs):
moderate figure sizes; the layout is fixed in inches (no constrained layout, whose solver
cost as much as drawing) and titles sit at a fixed height (``axes.titley``); no per-point
Python loops; the PNG is written from the Agg buffer as RGB with zlib level 1;
:func:`all_figures` computes the statistics once.
"""

from __future__ import annotations

import math
import textwrap
from dataclasses import dataclass, field

import matplotlib
import matplotlib.lines
import matplotlib.ticker
import matplotlib.transforms
import numpy as np
import pandas as pd
from matplotlib.colors import ListedColormap
from matplotlib.figure import Figure
from matplotlib.patches import Patch
from matplotlib.text import Text
from scipy import stats as sps

from . import stats
from .outputs import figure_names

# ---------------------------------------------------------------------------------------------
# Conventions

FIGURE_DPI = 300
FIGURE_SIZES = {  # inches (width, height)
    "demographics": (7.0, 5.5),
    "ventricular_burden": (7.0, 5.5),
    "lesion_burden": (7.0, 5.5),
    "ms_lesion_profile": (7.0, 7.5),
    "burden_vs_age": (7.0, 4.6),
    "correlation_heatmaps": (7.5, 3.9),
    "outlier_overview": (7.0, 6.0),
    "change_by_group": (7.0, 3.8),
    "change_vs_interval": (7.0, 3.6),
}

GROUP_COLOURS = {"HC": "#009E73", "MS": "#D55E00"}
SEX_COLOURS = {"F": "#CC79A7", "M": "#0072B2", stats.UNKNOWN_SEX: "#999999"}
SEX_NAMES = {"F": "female", "M": "male", stats.UNKNOWN_SEX: "sex unknown"}
CLASS_COLOURS = {"TotalPeriArea": "#882255", "TotalParaArea": "#E69F00", "TotalJuxtArea": "#56B4E9"}
CLASS_NAMES = {"TotalPeriArea": "periventricular", "TotalParaArea": "paraventricular", "TotalJuxtArea": "juxtacortical"}
SHARE_OF_CLASS = dict(zip(stats.CLASS_AREA_COLUMNS, stats.SHARE_COLUMNS))
POOLED_COLOUR = "black"

VARIABLE_LABELS = {
    stats.AGE: "Age (years)",
    "TotalIntracranialArea": "Intracranial area (mm²)",
    "TotalVentricleArea": "Ventricle area (mm²)",
    "TotalWMHArea": "Lesion (WMH) area (mm²)",
    "TotalPeriArea": "Periventricular lesion area (mm²)",
    "TotalParaArea": "Paraventricular lesion area (mm²)",
    "TotalJuxtArea": "Juxtacortical lesion area (mm²)",
    "VentricleRatio": "VentricleRatio\n(% of intracranial area)",
    "WMHRatio": "WMHRatio\n(% of intracranial area)",
    "PEWMH%": "PEWMH% (% of lesion area)",
    "PAWMH%": "PAWMH% (% of lesion area)",
    "JCWMH%": "JCWMH% (% of lesion area)",
}
SHORT_LABELS = {
    stats.AGE: "Age",
    "TotalIntracranialArea": "Intracranial",
    "TotalVentricleArea": "Ventricle",
    "TotalWMHArea": "Lesion (WMH)",
    "TotalPeriArea": "Peri",
    "TotalParaArea": "Para",
    "TotalJuxtArea": "Juxta",
    "VentricleRatio": "VentricleRatio",
    "WMHRatio": "WMHRatio",
    "PEWMH%": "PEWMH%",
    "PAWMH%": "PAWMH%",
    "JCWMH%": "JCWMH%",
}

STYLE = {
    "font.size": 7.0,
    "axes.titlesize": 7.5,
    "axes.labelsize": 7.0,
    "xtick.labelsize": 6.5,
    "ytick.labelsize": 6.5,
    "legend.fontsize": 6.5,
    "legend.title_fontsize": 6.5,
    "figure.titlesize": 8.5,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.linewidth": 0.7,
    "xtick.major.width": 0.7,
    "ytick.major.width": 0.7,
    "lines.linewidth": 1.2,
    "patch.linewidth": 0.5,
    "legend.frameon": False,
    "axes.titley": 1.0,  # a fixed title position: no per-draw search for overlapping tick labels
    "axes.titlepad": 4.0,
}
CONFIDENCE = 0.95


# ---------------------------------------------------------------------------------------------
# Shared helpers


def _prepare(table: pd.DataFrame, lesion_free_shares: str) -> pd.DataFrame:
    """The derived cohort table (:func:`msprofile.stats.derive`) sorted by ``subject_id``."""
    derived = all(c in table.columns for c in stats.DERIVED_COLUMNS) and isinstance(
        table[stats.AGE_GROUP].dtype, pd.CategoricalDtype
    )
    same_option = table.attrs.get("notes", {}).get("lesion_free_shares") == lesion_free_shares
    d = table if (derived and same_option) else stats.derive(table, lesion_free_shares=lesion_free_shares)
    notes = dict(d.attrs.get("notes", {}))
    d = d.sort_values("subject_id", kind="stable").reset_index(drop=True)
    d.attrs["notes"] = notes
    return d


def _new_figure(name: str) -> Figure:
    return Figure(figsize=FIGURE_SIZES[name], dpi=FIGURE_DPI)


def _inches(fig: Figure) -> tuple[float, float]:
    w, h = fig.get_size_inches()
    return float(w), float(h)


def _header(fig: Figure, title: str, note: str | None, handles=None, ncol: int = 3) -> float:
    """Figure title, optional note line and optional figure legend at the top; returns the
    height they take (inches). The layout is fixed in inches (no layout engine: its solver
    cost more than the drawing)."""
    _, h = _inches(fig)
    used = 0.06
    fig.text(0.5, 1 - used / h, title, ha="center", va="top", fontsize=STYLE["figure.titlesize"])
    used += 0.17
    if note:
        fig.text(0.5, 1 - used / h, note, ha="center", va="top", fontsize=6.5, color="0.25", style="italic")
        used += 0.14
    if handles:
        fig.legend(
            handles=handles,
            loc="upper center",
            bbox_to_anchor=(0.5, 1 - used / h),
            ncol=ncol,
            borderaxespad=0.0,
            handlelength=1.6,
            columnspacing=1.5,
        )
        used += 0.2
    return used


def _footnote(fig: Figure, lines) -> float:
    """Small text at the bottom left (wrapped to the figure width); returns its height (in)."""
    w, h = _inches(fig)
    wrapped = []
    for line in lines:
        if line:
            wrapped += textwrap.wrap(line, width=int(w * 25))
    if not wrapped:
        return 0.05
    fig.text(0.01, 0.04 / h, "\n".join(wrapped), ha="left", va="bottom", fontsize=5.5, color="0.25", linespacing=1.25)
    return 0.1 + 0.1 * len(wrapped)


def _grid(
    fig: Figure,
    nrows: int,
    ncols: int,
    *,
    left: float,
    right: float,
    top: float,
    bottom: float,
    wgap: float = 0.0,
    hgap: float = 0.0,
    **kwargs,
):
    """A GridSpec with margins and gaps given in inches."""
    w, h = _inches(fig)
    aw = (w - left - right - (ncols - 1) * wgap) / ncols
    ah = (h - top - bottom - (nrows - 1) * hgap) / nrows
    return fig.add_gridspec(
        nrows,
        ncols,
        left=left / w,
        right=1 - right / w,
        bottom=bottom / h,
        top=1 - top / h,
        wspace=wgap / aw,
        hspace=hgap / ah,
        **kwargs,
    )


@dataclass
class CohortFigure:
    """A drawn cohort figure: ``name`` (its file stem, one of
    :data:`msprofile.outputs.FIGURE_NAMES`), the matplotlib ``figure`` and a ``summary`` of what
    it shows (the counts and values each figure function documents)."""

    name: str
    figure: Figure
    summary: dict = field(default_factory=dict)

    @property
    def texts(self) -> tuple[str, ...]:
        """Every visible text drawn in the figure."""
        return tuple(t.get_text() for t in self.figure.findobj(Text) if t.get_visible() and t.get_text())


def _finish(fig: Figure, name: str, **summary) -> CohortFigure:
    return CohortFigure(name, fig, summary)


def _unassigned_note(d: pd.DataFrame) -> str | None:
    k = int(d[stats.AGE_GROUP].isna().sum())
    if not k:
        return None
    n_missing = int(d[stats.AGE].isna().sum())
    return f"Not shown: {k} subject(s) without an age group ({n_missing} without age, {k - n_missing} younger than 18)."


def _group_n(d: pd.DataFrame) -> dict[str, int]:
    return {g: int((d["group"] == g).sum()) for g in stats.GROUPS}


def _lookup(desc: pd.DataFrame) -> dict:
    """``{(variable, group, sex, age_group): (n, mean, sd)}`` of a ``descriptives`` table."""
    keys = zip(*(desc[c].astype(str).tolist() for c in ("variable", "group", "sex", "age_group")))
    values = zip(
        desc["n"].to_numpy(int).tolist(), desc["mean"].to_numpy(float).tolist(), desc["sd"].to_numpy(float).tolist()
    )
    return dict(zip(keys, values))


def _cells(lookup: dict, variable: str, group: str, sex: str, age_groups=stats.AGE_GROUP_LABELS):
    """(n, mean, sd) arrays of ``descriptives`` rows (:func:`_lookup`) in ``age_groups`` order."""
    rows = [lookup.get((variable, group, sex, a), (0, math.nan, math.nan)) for a in age_groups]
    n, mean, sd = zip(*rows)
    return np.array(n, int), np.array(mean, float), np.array(sd, float)


def _ci_half_width(n: np.ndarray, sd: np.ndarray) -> np.ndarray:
    """t-based 95% half-width of a mean; missing for n < 2."""
    n = np.asarray(n, float)
    with np.errstate(invalid="ignore", divide="ignore"):
        t = sps.t.ppf(0.5 + CONFIDENCE / 2, np.where(n >= 2, n - 1, np.nan))
        return np.where(n >= 2, t * sd / np.sqrt(n), np.nan)


def _empty_panel(ax, message: str) -> None:
    ax.text(0.5, 0.5, message, transform=ax.transAxes, ha="center", va="center", color="0.4")


def _light_grid(ax, axis: str = "y") -> None:
    ax.grid(axis=axis, color="0.92", linewidth=0.5)
    ax.set_axisbelow(True)


# ---------------------------------------------------------------------------------------------
# 1. Demographics


def demographics(table: pd.DataFrame, *, lesion_free_shares: str = "missing", note: str | None = None) -> CohortFigure:
    """Sex pie charts (all / HC / MS; each wedge with n and percentage) and age histograms by
    group (HC, MS) with female and male bars side by side (one set of 5-year bins for both
    panels, axes "Age (years)" and "Subjects"). Subjects with unknown sex get a grey wedge and
    grey bars; subjects without age are counted in the histogram legend.

    Summary keys: ``counts`` ({panel: {sex: n}}), ``n_without_age`` ({group: n})."""
    with matplotlib.rc_context(STYLE):
        d = _prepare(table, lesion_free_shares)
        fig = _new_figure("demographics")
        top = _header(fig, f"Demographics (n = {len(d)} subjects)", note)
        sex = d["sex"].astype("string").fillna(stats.UNKNOWN_SEX).to_numpy(object)
        sex_levels = [*stats.SEXES, *([stats.UNKNOWN_SEX] if (sex == stats.UNKNOWN_SEX).any() else [])]
        group = d["group"].to_numpy(object)
        age = d[stats.AGE].to_numpy(float)
        _, h = _inches(fig)
        pie_height = 1.85
        pies = _grid(fig, 1, 3, left=0.3, right=0.3, top=top + 0.25, bottom=h - top - 0.25 - pie_height, wgap=0.5)
        counts: dict[str, dict[str, int]] = {}
        for k, (label, mask) in enumerate(
            (("All subjects", np.ones(len(d), bool)), ("HC", group == "HC"), ("MS", group == "MS"))
        ):
            ax = fig.add_subplot(pies[0, k])
            c = {s: int(((sex == s) & mask).sum()) for s in sex_levels}
            counts[label] = c
            total = sum(c.values())
            ax.set_title(f"{label} (n = {total})")
            if total == 0:
                ax.set_axis_off()
                _empty_panel(ax, "no subjects")
                continue
            shown = [s for s in sex_levels if c[s] > 0]
            wedges, _ = ax.pie(
                [c[s] for s in shown],
                colors=[SEX_COLOURS[s] for s in shown],
                startangle=90,
                counterclock=False,
                wedgeprops={"edgecolor": "white", "linewidth": 0.8},
            )
            small = []
            for wedge, s in zip(wedges, shown):
                share = c[s] / total
                label = f"{SEX_NAMES[s]}\nn = {c[s]}\n({100.0 * share:.1f}%)"
                if share >= 0.12:
                    angle = math.radians((wedge.theta1 + wedge.theta2) / 2)
                    ax.text(
                        0.58 * math.cos(angle),
                        0.58 * math.sin(angle),
                        label,
                        ha="center",
                        va="center",
                        fontsize=6.5,
                        color="white",
                        linespacing=1.15,
                    )
                else:  # too narrow for its label: listed under the pie
                    small.append(label.replace("\n", " ", 1).replace("\n", " "))
            if small:
                ax.text(0.0, -1.12, "\n".join(small), ha="center", va="top", fontsize=6.5)
        finite = age[np.isfinite(age)]
        if len(finite):
            lo = 5.0 * math.floor(finite.min() / 5.0)
            hi = 5.0 * (math.floor(finite.max() / 5.0) + 1.0)
            bins = np.arange(lo, hi + 0.5, 5.0)
        else:
            bins = np.arange(15.0, 80.5, 5.0)
        hists = _grid(fig, 1, 2, left=0.55, right=0.15, top=top + 0.25 + pie_height + 0.45, bottom=0.45, wgap=0.65)
        no_age = {}
        for k, g in enumerate(stats.GROUPS):
            ax = fig.add_subplot(hists[0, k])
            in_group = group == g
            datasets, colours, labels = [], [], []
            for s in sex_levels:
                values = age[in_group & (sex == s) & np.isfinite(age)]
                if s == stats.UNKNOWN_SEX and not len(values):
                    continue
                datasets.append(values)
                colours.append(SEX_COLOURS[s])
                labels.append(f"{SEX_NAMES[s]} (n = {len(values)})")
            ax.hist(datasets, bins=bins, color=colours, label=labels, rwidth=0.9)
            no_age[g] = int((in_group & ~np.isfinite(age)).sum())
            ax.set_xlabel("Age (years)")
            ax.set_ylabel("Subjects")
            ax.set_xlim(bins[0], bins[-1])
            ax.set_title(f"{g}: age by sex (n = {int(in_group.sum())}; 5-year bins)")
            ax.legend(loc="upper right", title=f"{no_age[g]} without age, not shown" if no_age[g] else None)
            _light_grid(ax)
        return _finish(fig, "demographics", counts=counts, n_without_age=no_age)


# ---------------------------------------------------------------------------------------------
# 2, 3. Burden by age group


def _burden_by_age(
    d: pd.DataFrame, name: str, variables: tuple[str, str], title: str, note, descriptives
) -> CohortFigure:
    desc = _lookup(stats.descriptives(d) if descriptives is None else descriptives)
    fig = _new_figure(name)
    handles = [Patch(facecolor=SEX_COLOURS[s], label=SEX_NAMES[s]) for s in stats.SEXES]
    handles.append(
        matplotlib.lines.Line2D([], [], color=POOLED_COLOUR, linewidth=1.1, label="both sexes pooled (mean)")
    )
    top = _header(fig, title, note, handles, ncol=3)
    bottom = _footnote(
        fig,
        [
            "Bars: mean per sex; error bars: 95% CI of the mean (t); number above a bar: n "
            "subjects (with an arrow: its interval, from fewer than 5 subjects, runs beyond the "
            "axis).",
            _unassigned_note(d),
        ],
    )
    gs = _grid(fig, 2, 2, left=0.75, right=0.1, top=top + 0.22, bottom=bottom + 0.4, wgap=0.8, hgap=0.5)
    width = 0.38
    x0 = np.arange(len(stats.AGE_GROUP_LABELS), dtype=float)
    group_n = _group_n(d)
    cells = {}
    for r, g in enumerate(stats.GROUPS):
        for c, variable in enumerate(variables):
            ax = fig.add_subplot(gs[r, c])
            n_all, mean_all, _ = _cells(desc, variable, g, stats.POOLED)
            cells[(g, variable, stats.POOLED)] = {"n": n_all.tolist(), "mean": mean_all.tolist()}
            pooled = np.nan_to_num(mean_all)
            bars = {}
            for s in stats.SEXES:
                n, mean, sd = _cells(desc, variable, g, s)
                bars[s] = (n, np.nan_to_num(mean), np.nan_to_num(_ci_half_width(n, sd)))
                cells[(g, variable, s)] = {"n": n.tolist(), "mean": mean.tolist()}
            # The y range covers every mean and the intervals of bars with n >= 5; a wider
            # interval (a handful of subjects) runs off the top, marked with an arrow.
            peak = max(
                [0.0, float(pooled.max())] + [float(np.max(np.where(n >= 5, m + e, m))) for n, m, e in bars.values()]
            )
            ymax = peak * 1.2 if peak > 0 else 1.0
            for k, s in enumerate(stats.SEXES):
                n, height, half = bars[s]
                x = x0 + (k - 0.5) * width
                ax.bar(
                    x,
                    height,
                    width * 0.95,
                    color=SEX_COLOURS[s],
                    yerr=half,
                    error_kw={"elinewidth": 0.6, "capsize": 1.5, "capthick": 0.6, "ecolor": "0.15"},
                )
                for xi, ti, ni in zip(x, np.maximum(height + half, pooled), n):
                    if ti > ymax * 0.94:
                        ax.annotate(
                            f"{ni}↑",
                            (xi, ymax),
                            xytext=(0, -1),
                            textcoords="offset points",
                            ha="center",
                            va="top",
                            fontsize=5.0,
                            color="0.2",
                            bbox={"facecolor": "white", "edgecolor": "none", "pad": 0.3},
                        )
                    else:
                        ax.annotate(
                            str(ni),
                            (xi, ti),
                            xytext=(0, 1.5),
                            textcoords="offset points",
                            ha="center",
                            va="bottom",
                            fontsize=5.0,
                            color="0.2",
                        )
            ax.hlines(mean_all, x0 - width, x0 + width, color=POOLED_COLOUR, linewidth=1.1, zorder=4)
            ax.set_ylim(0.0, ymax)
            ax.set_xlim(-0.6, len(x0) - 0.4)
            ax.set_ylabel(VARIABLE_LABELS[variable])
            ax.set_title(f"{g} (n = {group_n[g]}): {SHORT_LABELS[variable]}")
            ax.set_xticks(x0, list(stats.AGE_GROUP_LABELS))
            _light_grid(ax)
            if r == 1:
                ax.set_xlabel("Age group (years)")
    return _finish(fig, name, cells=cells, n_without_age_group=int(d[stats.AGE_GROUP].isna().sum()))


_BURDEN_DOC = """by age group: rows HC and MS, columns {area} (mm²) and {ratio}
    (% of intracranial area).

    Design: for each age group the female and male means stand side by side, each with its
    95% confidence interval (t-based, from the descriptive n and SD) and its n written above
    it; a black tick across the pair marks the mean of both sexes pooled (including subjects
    of unknown sex). The reference stacked male and female "contributions" into one bar
    instead: a stacked segment mixes the sex ratio of the age group with the sex-specific
    mean, so neither the female-male difference nor its uncertainty can be read, and the
    total only equals the pooled mean when contributions are weighted by n. Side-by-side bars
    with intervals take the same space and show both the sex-specific means and (with the
    tick) the pooled one. Subjects without an age group are counted in a footnote.

    ``descriptives``: :func:`msprofile.stats.descriptives` of the same (derived) table, when the
    caller has it already (:func:`all_figures`); computed here otherwise.

    Summary keys: ``cells`` ({(group, variable, sex): {"n": [...], "mean": [...]}} in age-group
    order, sex ``all`` for the pooled tick), ``n_without_age_group``."""


def ventricular_burden(
    table: pd.DataFrame,
    *,
    lesion_free_shares: str = "missing",
    note: str | None = None,
    descriptives: pd.DataFrame | None = None,
) -> CohortFigure:
    with matplotlib.rc_context(STYLE):
        d = _prepare(table, lesion_free_shares)
        return _burden_by_age(
            d,
            "ventricular_burden",
            ("TotalVentricleArea", "VentricleRatio"),
            "Ventricular burden by age group and sex",
            note,
            descriptives,
        )


def lesion_burden(
    table: pd.DataFrame,
    *,
    lesion_free_shares: str = "missing",
    note: str | None = None,
    descriptives: pd.DataFrame | None = None,
) -> CohortFigure:
    with matplotlib.rc_context(STYLE):
        d = _prepare(table, lesion_free_shares)
        return _burden_by_age(
            d,
            "lesion_burden",
            ("TotalWMHArea", "WMHRatio"),
            "Total lesion (WMH) burden by age group and sex",
            note,
            descriptives,
        )


ventricular_burden.__doc__ = "Ventricular burden " + _BURDEN_DOC.replace("{area}", "ventricle area").replace(
    "{ratio}", "VentricleRatio"
)
lesion_burden.__doc__ = (
    "Total lesion burden "
    + _BURDEN_DOC.replace("{area}", "lesion (WMH) area").replace("{ratio}", "WMHRatio")
    + "\n\n    Lesion-free subjects count with area 0."
)


# ---------------------------------------------------------------------------------------------
# 4. MS lesion-class profile


def ms_lesion_profile(
    table: pd.DataFrame,
    *,
    lesion_free_shares: str = "missing",
    note: str | None = None,
    descriptives: pd.DataFrame | None = None,
) -> CohortFigure:
    """MS lesion-class profile by age group: rows all / female / male; left the mean class
    areas (mm², stacked periventricular, paraventricular, juxtacortical: the stack height is
    the mean total lesion area, because the classes add up to the total), right the mean
    class shares PEWMH%, PAWMH%, JCWMH% (stacked; with ``lesion_free_shares="missing"`` they
    describe the subjects with lesions and add up to 100%; with ``"zero"`` lesion-free
    subjects count as 0% and the stack is lower). Stacking is the right form here (unlike the
    sex split of the burden figures) because the parts add up to a meaningful whole. A last
    column, right of a dashed line, is the unweighted mean of the age-group means
    (``descriptives``' ``mean_of_age_groups`` rows), the figure the reference reports. Share
    segments of at least 8% carry their value; the number above a bar is n subjects (number of
    age groups for the last column). ``descriptives``: as for :func:`ventricular_burden`.

    Summary keys: ``profile`` ({(sex, variable): [means of the 5 age groups, mean of age
    groups]}), ``n_lesion_free_ms``."""
    with matplotlib.rc_context(STYLE):
        d = _prepare(table, lesion_free_shares)
        desc = _lookup(stats.descriptives(d) if descriptives is None else descriptives)
        fig = _new_figure("ms_lesion_profile")
        handles = [
            Patch(facecolor=CLASS_COLOURS[a], label=f"{CLASS_NAMES[a]} ({SHARE_OF_CLASS[a]})")
            for a in stats.CLASS_AREA_COLUMNS
        ]
        top = _header(fig, "MS lesion-class profile by age group", note, handles, ncol=3)
        ms = d[d["group"] == "MS"]
        lesion_free = int((ms["TotalWMHArea"] == 0).sum())
        share_rule = (
            "their shares are missing, so the shares describe subjects with lesions"
            if lesion_free_shares == "missing"
            else "their shares are set to 0 (the reference's choice)"
        )
        bottom = _footnote(
            fig,
            [
                f"Stacked means; number above a bar: n subjects. {lesion_free} lesion-free MS "
                f"subject(s): {share_rule}. Last column: unweighted mean of the age-group means.",
                _unassigned_note(ms),
            ],
        )
        gs = _grid(fig, 3, 2, left=0.7, right=0.1, top=top + 0.22, bottom=bottom + 0.5, wgap=0.8, hgap=0.62)
        levels = list(stats.AGE_GROUP_LABELS) + [stats.MEAN_OF_AGE_GROUPS]
        x = np.arange(len(levels), dtype=float)
        x[-1] += 0.6
        width = 0.7
        profile = {}
        for r, s in enumerate((stats.POOLED, *stats.SEXES)):
            n_sex = len(ms) if s == stats.POOLED else int((ms["sex"] == s).sum())
            row_name = "all" if s == stats.POOLED else SEX_NAMES[s]
            for c, columns in enumerate((stats.CLASS_AREA_COLUMNS, stats.SHARE_COLUMNS)):
                ax = fig.add_subplot(gs[r, c])
                base = np.zeros(len(levels))
                n_bar = np.zeros(len(levels), int)
                for area, variable in zip(stats.CLASS_AREA_COLUMNS, columns):
                    n, mean, _ = _cells(desc, variable, "MS", s, levels)
                    height = np.nan_to_num(mean)
                    ax.bar(x, height, width, bottom=base, color=CLASS_COLOURS[area], edgecolor="white", linewidth=0.4)
                    if c == 1:
                        for xi, b, hh in zip(x, base, height):
                            if hh >= 8.0:
                                ax.text(
                                    xi,
                                    b + hh / 2,
                                    f"{hh:.0f}",
                                    ha="center",
                                    va="center",
                                    fontsize=5.0,
                                    color="black" if area == "TotalParaArea" else "white",
                                )
                    base = base + height
                    n_bar = np.maximum(n_bar, n)
                    profile[(s, variable)] = mean.tolist()
                for xi, t, ni, level in zip(x, base, n_bar, levels):
                    text = f"{ni} group{'s' if ni != 1 else ''}" if level == stats.MEAN_OF_AGE_GROUPS else str(ni)
                    ax.annotate(
                        text,
                        (xi, t),
                        xytext=(0, 1.5),
                        textcoords="offset points",
                        ha="center",
                        va="bottom",
                        fontsize=5.0,
                        color="0.2",
                    )
                ax.axvline((x[-2] + x[-1]) / 2, color="0.5", linestyle="--", linewidth=0.6)
                peak = float(base.max())
                if c == 1:
                    ax.set_ylim(0.0, max(peak, 100.0) * 1.12)
                    ax.set_ylabel("Mean share of\nlesion area (%)")
                    ax.set_title(f"MS {row_name} (n = {n_sex}): lesion-class shares")
                else:
                    ax.set_ylim(0.0, peak * 1.15 if peak > 0 else 1.0)
                    ax.set_ylabel("Mean lesion area (mm²)")
                    ax.set_title(f"MS {row_name} (n = {n_sex}): lesion-class areas")
                ax.set_xlim(-0.6, x[-1] + 0.6)
                ax.set_xticks(x, [*stats.AGE_GROUP_LABELS, "mean of\nage groups"])
                _light_grid(ax)
                if r == 2:
                    ax.set_xlabel("Age group (years)")
        return _finish(fig, "ms_lesion_profile", profile=profile, n_lesion_free_ms=lesion_free)


# ---------------------------------------------------------------------------------------------
# 5. Burden versus age


def burden_vs_age(
    table: pd.DataFrame,
    *,
    lesion_free_shares: str = "missing",
    note: str | None = None,
    regressions: pd.DataFrame | None = None,
) -> CohortFigure:
    """VentricleRatio (linear y axis) and WMHRatio (log y axis) against age, one colour per
    group, with each group's quadratic OLS trend (age + age², coefficients and R² from
    :func:`msprofile.stats.regressions`, fitted on all subjects with age and value, lesion-free
    ones included) and its R² and n in the legend. Lesion-free subjects (WMHRatio = 0) have no
    place on a log axis: the panel's legend says how many per group were left out (summary key
    ``n_not_shown_log_axis``); where the fitted curve is not positive it is not drawn there.
    Points are rasterised in the PDF. ``regressions``: :func:`msprofile.stats.regressions` of
    the same table when the caller has it (:func:`all_figures`); computed here otherwise.

    Summary keys: ``n_not_shown_log_axis`` ({group: n}), ``r_squared`` ({(group, variable):
    R²}), ``n_without_age``."""
    with matplotlib.rc_context(STYLE):
        d = _prepare(table, lesion_free_shares)
        reg = stats.regressions(d) if regressions is None else regressions
        fig = _new_figure("burden_vs_age")
        n = _group_n(d)
        top = _header(fig, f"Burden versus age (HC n = {n['HC']}, MS n = {n['MS']})", note)
        age = d[stats.AGE].to_numpy(float)
        no_age = int((~np.isfinite(age)).sum())
        bottom = _footnote(fig, [f"Not shown: {no_age} subject(s) without age." if no_age else None])
        legend_height = 0.85
        gs = _grid(fig, 1, 2, left=0.75, right=0.1, top=top + 0.22, bottom=bottom + 0.4 + legend_height, wgap=0.85)
        _, h = _inches(fig)
        group = d["group"].to_numpy(object)
        left_out: dict[str, int] = {}
        r_squared = {}
        for col, (variable, log) in enumerate((("VentricleRatio", False), ("WMHRatio", True))):
            ax = fig.add_subplot(gs[0, col])
            y = d[variable].to_numpy(float)
            any_shown = False
            for g in stats.GROUPS:
                ok = (group == g) & np.isfinite(age) & np.isfinite(y)
                shown = ok & (y > 0) if log else ok
                if log:
                    left_out[g] = int((ok & ~(y > 0)).sum())
                any_shown = any_shown or bool(shown.any())
                ax.scatter(
                    age[shown],
                    y[shown],
                    s=3.0,
                    color=GROUP_COLOURS[g],
                    alpha=0.45,
                    linewidths=0,
                    rasterized=True,
                    label=f"{g} subjects (n = {int(shown.sum())} shown)",
                )
                rows = reg[(reg["group"] == g) & (reg["variable"] == variable) & (reg["model"] == "quadratic")]
                coef = (
                    rows.set_index("term")["coefficient"]
                    .reindex(["intercept", stats.AGE, f"{stats.AGE}^2"])
                    .to_numpy(float)
                )
                r2 = float(rows["r_squared"].iloc[0]) if len(rows) else math.nan
                r_squared[(g, variable)] = r2
                if ok.any() and np.isfinite(coef).all():
                    grid = np.linspace(age[ok].min(), age[ok].max(), 200)
                    fit = coef[0] + coef[1] * grid + coef[2] * grid * grid
                    if log:
                        fit = np.where(fit > 0, fit, np.nan)
                    r2_text = f"{r2:.3f}" if math.isfinite(r2) else "n/a"
                    ax.plot(
                        grid,
                        fit,
                        color=GROUP_COLOURS[g],
                        linewidth=1.6,
                        label=f"{g} quadratic OLS trend: R² = {r2_text} (n = {int(rows['n'].iloc[0])})",
                    )
            ax.set_xlabel("Age (years)")
            ax.set_ylabel(VARIABLE_LABELS[variable] + ("\n[log scale]" if log else ""))
            if log:
                if not any_shown:  # a log axis cannot autoscale without a positive value
                    ax.set_ylim(1e-3, 10.0)
                    _empty_panel(ax, "no subject with age and lesions")
                ax.set_yscale("log")
                ax.set_title("Lesion burden vs age (log axis)")
                legend_title = (
                    "Not shown on the log axis (lesion-free, WMHRatio = 0):\n"
                    + ", ".join(f"{g} {left_out[g]}" for g in stats.GROUPS)
                    + " subjects"
                )
            else:
                ax.set_ylim(bottom=0.0)
                ax.set_title("Ventricular burden vs age")
                legend_title = None
            axes_height = ax.get_position().height * h
            ax.legend(
                loc="upper center",
                bbox_to_anchor=(0.5, -0.42 / axes_height),
                markerscale=2.5,
                handlelength=1.5,
                title=legend_title,
                borderaxespad=0.0,
            )
            _light_grid(ax, "both")
        return _finish(fig, "burden_vs_age", n_not_shown_log_axis=left_out, r_squared=r_squared, n_without_age=no_age)


# ---------------------------------------------------------------------------------------------
# 6. Correlation heatmaps


def correlation_heatmaps(
    table: pd.DataFrame,
    *,
    lesion_free_shares: str = "missing",
    note: str | None = None,
    correlations: pd.DataFrame | None = None,
) -> CohortFigure:
    """Spearman correlation matrices per group (:func:`msprofile.stats.correlations`: complete
    cases of :data:`msprofile.stats.CORRELATION_VARIABLES`), drawn as the lower triangle (each
    pair once, no diagonal), every cell annotated with rho and an asterisk where the
    Holm-adjusted p < 0.05; diverging colormap centred at 0 (limits -1 and 1), one colour bar,
    n (complete cases) in each title. Cells without a value (fewer than 3 complete cases) read
    "n/a". ``correlations``: the statistics table of the same table when the caller has it
    (:func:`all_figures`); computed here otherwise.

    Summary key: ``rho`` ({group: full k x k array, diagonal 1})."""
    with matplotlib.rc_context(STYLE):
        d = _prepare(table, lesion_free_shares)
        corr = stats.correlations(d) if correlations is None else correlations
        variables = list(stats.CORRELATION_VARIABLES)
        index = {v: k for k, v in enumerate(variables)}
        k = len(variables)
        fig = _new_figure("correlation_heatmaps")
        w, h = _inches(fig)
        top = _header(fig, "Spearman correlations per group", note) + 0.22
        bottom = (
            _footnote(
                fig,
                [
                    "Areas in mm², ratios in % of intracranial area. * Holm-adjusted p < 0.05 "
                    "(within the group's matrix). Complete cases of all nine variables."
                ],
            )
            + 0.75
        )
        left, gap, cbar_gap, cbar_w, cbar_room = 0.8, 0.9, 0.15, 0.12, 0.55
        side = min(h - top - bottom, (w - left - gap - cbar_gap - cbar_w - cbar_room) / 2)
        x_start = (w - (left + 2 * side + gap + cbar_gap + cbar_w + cbar_room)) / 2 + left
        y0 = bottom + (h - top - bottom - side) / 2
        cmap = matplotlib.colormaps["RdBu_r"].with_extremes(bad="white")
        lower = np.tril(np.ones((k - 1, k - 1), bool))  # rows variables[1:], columns variables[:-1]
        image = None
        matrices = {}
        for col, g in enumerate(stats.GROUPS):
            ax = fig.add_axes(((x_start + col * (side + gap)) / w, y0 / h, side / w, side / h))
            rows = corr[corr["group"] == g]
            rho = np.full((k, k), np.nan)
            p_adj = np.full((k, k), np.nan)
            i = rows["variable_1"].map(index).to_numpy(int)
            j = rows["variable_2"].map(index).to_numpy(int)
            rho[i, j] = rho[j, i] = rows["rho"].to_numpy(float)
            p_adj[i, j] = p_adj[j, i] = rows["p_adjusted"].to_numpy(float)
            n = int(rows["n"].iloc[0]) if len(rows) else 0
            if n >= 3:
                np.fill_diagonal(rho, 1.0)
            matrices[g] = rho
            shown = np.where(lower, rho[1:, :-1], np.nan)
            image = ax.imshow(shown, cmap=cmap, vmin=-1.0, vmax=1.0, interpolation="nearest")
            for a, b in zip(*np.nonzero(lower)):
                value = shown[a, b]
                if not np.isfinite(value):
                    text, colour = "n/a", "0.4"
                else:
                    star = "*" if p_adj[a + 1, b] < 0.05 else ""
                    text, colour = f"{value:.2f}{star}", ("white" if abs(value) > 0.6 else "black")
                ax.text(b, a, text, ha="center", va="center", fontsize=5.0, color=colour)
            ax.set_xticks(
                range(k - 1),
                [SHORT_LABELS[v] for v in variables[:-1]],
                rotation=45,
                ha="right",
                rotation_mode="anchor",
                fontsize=6,
            )
            ax.set_yticks(range(k - 1), [SHORT_LABELS[v] for v in variables[1:]], fontsize=6)
            ax.tick_params(length=0)
            for spine in ax.spines.values():
                spine.set_visible(False)
            ax.set_title(f"{g} (n = {n} complete cases)")
        cax = fig.add_axes(
            ((x_start + 2 * side + gap + cbar_gap) / w, (y0 + 0.1 * side) / h, cbar_w / w, 0.8 * side / h)
        )
        fig.colorbar(image, cax=cax, label="Spearman ρ", ticks=[-1, -0.5, 0, 0.5, 1])
        return _finish(fig, "correlation_heatmaps", rho=matrices)


# ---------------------------------------------------------------------------------------------
# 7. Outlier overview

OUTLIER_ROW_LABEL_LIMIT = 70


def outlier_overview(
    table: pd.DataFrame,
    *,
    lesion_free_shares: str = "missing",
    note: str | None = None,
    iqr_factor: float = 2.0,
    z_threshold: float = 3.5,
    min_stratum: int = 5,
    min_flags: int = 3,
    mad_zero: str = "no_flag",
) -> CohortFigure:
    """The outlier rule's result (:func:`msprofile.stats.outlier_flags` and
    :func:`msprofile.stats.outliers` with the given options) on the table *before* removal.

    Left: per variable (:data:`msprofile.stats.OUTLIER_VARIABLES`) the number of subjects
    flagged, per group; the part of them that was removed solid, the flagged but kept part
    pale. Right: the removed subjects (rows, sorted by group, age group, subject) and their
    flags (filled cells in the group's colour); rows are labelled "subject (group age group,
    number of flags)" while there are at most :data:`OUTLIER_ROW_LABEL_LIMIT` of them
    (otherwise the list is in the statistics stage's ``outliers_removed.tsv``). Only
    meaningful with outlier removal: :func:`all_figures` draws it only when
    ``remove_outliers`` is true.

    Summary keys: ``n_removed``, ``n_flagged`` ({group: {variable: n}})."""
    with matplotlib.rc_context(STYLE):
        d = _prepare(table, lesion_free_shares)
        options = {
            "iqr_factor": iqr_factor,
            "z_threshold": z_threshold,
            "min_stratum": min_stratum,
            "mad_zero": mad_zero,
        }
        flags = stats.outlier_flags(d, **options)
        _, removed = stats.outliers(d, min_flags=min_flags, **options)
        variables = list(stats.OUTLIER_VARIABLES)
        is_removed = d["subject_id"].isin(set(removed["subject_id"].astype(str))).to_numpy(bool)
        group = d["group"].to_numpy(object)
        flag_values = flags[variables].to_numpy(bool)
        rows = removed["subject_id"].astype(str).tolist()

        fig = _new_figure("outlier_overview")
        w, h = _inches(fig)
        handles = []
        for g in stats.GROUPS:
            handles += [
                Patch(facecolor=GROUP_COLOURS[g], label=f"{g}: flagged, removed"),
                Patch(facecolor=GROUP_COLOURS[g], alpha=0.3, label=f"{g}: flagged, kept"),
            ]
        top = _header(fig, f"Outlier overview: {len(rows)} of {len(d)} subjects removed", note, handles, ncol=4)
        top += 0.22
        mad_text = "MAD = 0 flags nothing" if mad_zero == "no_flag" else "MAD = 0 replaced by 1e-10 (reference)"
        bottom = _footnote(
            fig,
            [
                f"Flag: within a group x age-group stratum of at least {min_stratum} subjects, a "
                f"value outside [Q1 - {iqr_factor:g} IQR, Q3 + {iqr_factor:g} IQR] and with "
                f"|modified z| > {z_threshold:g} ({mad_text}); subjects with at least {min_flags} "
                "flags are removed. Right: one row per removed subject, labelled subject (group "
                "age group, number of flags)."
            ],
        )
        bottom += 0.7
        left_w = 2.35
        ax = fig.add_axes((0.85 / w, bottom / h, left_w / w, (h - top - bottom) / h))
        y = np.arange(len(variables), dtype=float)
        bar_h = 0.38
        n_flagged = {}
        for k, g in enumerate(stats.GROUPS):
            in_group = group == g
            total = flag_values[in_group].sum(axis=0)
            gone = flag_values[in_group & is_removed].sum(axis=0)
            yy = y + (k - 0.5) * bar_h
            ax.barh(yy, gone, bar_h * 0.95, color=GROUP_COLOURS[g])
            ax.barh(yy, total - gone, bar_h * 0.95, left=gone, color=GROUP_COLOURS[g], alpha=0.3)
            for yi, t in zip(yy, total):
                ax.annotate(
                    str(int(t)),
                    (t, yi),
                    xytext=(2, 0),
                    textcoords="offset points",
                    va="center",
                    fontsize=5.0,
                    color="0.2",
                )
            n_flagged[g] = dict(zip(variables, total.astype(int).tolist()))
        ax.set_yticks(y, [SHORT_LABELS[v] for v in variables])
        ax.set_ylim(len(variables) - 0.5, -0.5)
        ax.set_xlabel("Subjects flagged")
        xmax = max((max(v.values()) for v in n_flagged.values()), default=0)
        ax.set_xlim(0, max(xmax, 1) * 1.15)
        n = _group_n(d)
        ax.set_title(f"Flags per variable (HC n = {n['HC']}, MS n = {n['MS']})")
        _light_grid(ax, "x")

        label_room = 1.05
        right_x = 0.85 + left_w + 0.35 + label_room
        panel_h = min(h - top - bottom, max(len(rows), 3) * 0.16)  # rows at most 0.16 in high, top-aligned
        ax = fig.add_axes((right_x / w, (h - top - panel_h) / h, (w - right_x - 0.1) / w, panel_h / h))
        position = pd.Series(np.arange(len(d)), index=d["subject_id"].astype(str).to_numpy())
        code = np.zeros((max(len(rows), 1), len(variables)), dtype=float)
        if rows:
            idx = position.reindex(rows).to_numpy(int)
            code[: len(rows)] = flag_values[idx] * np.where(group[idx] == "HC", 1.0, 2.0)[:, None]
        cmap = ListedColormap(["white", GROUP_COLOURS["HC"], GROUP_COLOURS["MS"]])
        # One mesh with cell edges, row labels as plain texts: per-row ticks and grid lines
        # would cost more to draw than the rest of the figure.
        ax.pcolormesh(code, cmap=cmap, vmin=0, vmax=2, edgecolors="0.85", linewidth=0.3)
        ax.set_xlim(0, len(variables))
        ax.set_ylim(code.shape[0], 0)
        ax.set_xticks(
            np.arange(len(variables)) + 0.5,
            [SHORT_LABELS[v] for v in variables],
            rotation=60,
            ha="right",
            rotation_mode="anchor",
            fontsize=6,
        )
        ax.set_yticks([])
        for spine in ax.spines.values():
            spine.set_visible(True)
            spine.set_linewidth(0.5)
        if 0 < len(rows) <= OUTLIER_ROW_LABEL_LIMIT:
            fontsize = max(3.5, min(6.0, 280.0 / len(rows)))
            to_row = matplotlib.transforms.blended_transform_factory(ax.transAxes, ax.transData)
            for k, (sid, g, a, f) in enumerate(zip(rows, removed["group"], removed["age_group"], removed["n_flags"])):
                ax.text(
                    -0.015,
                    k + 0.5,
                    f"{sid} ({g} {a}, {f})",
                    transform=to_row,
                    ha="right",
                    va="center",
                    fontsize=fontsize,
                )
        elif rows:
            ax.set_ylabel(f"{len(rows)} subjects (listed in outliers_removed.tsv)")
        else:
            _empty_panel(ax, "no subject removed")
        ax.set_title(f"Removed subjects (n = {len(rows)}) and their flags")
        return _finish(fig, "outlier_overview", n_removed=len(rows), n_flagged=n_flagged)


# ---------------------------------------------------------------------------------------------
# 8, 9. Longitudinal change by group (only where the cohort has pairs of sessions)

#: Okabe-Ito hues for groups other than HC and MS, in the order the groups are listed.
OTHER_GROUP_COLOURS = ("#0072B2", "#E69F00", "#CC79A7", "#56B4E9", "#F0E442", "#000000")


def group_colours(levels) -> dict[str, str]:
    """A colour per group: :data:`GROUP_COLOURS` for HC and MS, the others in turn."""
    others = iter(OTHER_GROUP_COLOURS * (1 + len(levels) // len(OTHER_GROUP_COLOURS)))
    return {g: GROUP_COLOURS[g] if g in GROUP_COLOURS else next(others) for g in levels}


def _spread(values: np.ndarray, width: float = 0.32) -> np.ndarray:
    """Horizontal offsets for a strip of points: points of equal value side by side, centred
    (deterministic, unlike random jitter, so that reruns give the same bytes)."""
    offsets = np.zeros(len(values))
    for value in np.unique(values):
        where = np.flatnonzero(values == value)
        k = len(where)
        step = min(0.08, 2 * width / max(k - 1, 1))
        offsets[where] = (np.arange(k) - (k - 1) / 2) * step
    return offsets


def _exclusion_line(summary: pd.DataFrame) -> str:
    pooled = summary.iloc[-1]
    left_out = [
        (int(pooled[column]), label)
        for column, label in (
            ("n_poor_registration", "poor registration"),
            ("n_registration_failed", "failed registration"),
            ("n_job_failed", "failed job"),
        )
    ]
    if not any(n for n, _ in left_out):
        return f"All {int(pooled['n_pairs'])} pairs analysed; none left out."
    listed = ", ".join(f"{n} {label}" for n, label in left_out if n)
    return f"{int(pooled['n_analysed'])} of {int(pooled['n_pairs'])} pairs analysed; left out: {listed}."


def change_by_group(table: pd.DataFrame, *, groups=(), summary: pd.DataFrame | None = None) -> CohortFigure:
    """New or enlarging lesions by group: per analysed pair (status ``ok``) its count, one point
    per pair (equal values side by side) with the group's median and quartiles; and the share
    of pairs with any new or enlarging lesion with its Wilson 95% interval and ``k / n``. The
    footnote counts the pairs left out (poor or failed registration, failed job).
    ``table``: :func:`msprofile.stats.change_input`.

    Summary keys: ``n_pairs``, ``n_analysed``, ``n_left_out``, ``n_by_group`` ({group:
    analysed pairs}), ``active`` ({group: pairs with activity})."""
    with matplotlib.rc_context(STYLE):
        summary = stats.change_summary(table, groups) if summary is None else summary
        levels = stats.change_groups(table, groups)
        colours = group_colours(levels)
        analysed = table[table["analysed"]]
        fig = Figure(figsize=FIGURE_SIZES["change_by_group"], dpi=FIGURE_DPI)
        pooled = summary.iloc[-1]
        top = _header(fig, f"New or enlarging lesions by group ({int(pooled['n_analysed'])} pairs of sessions)", None)
        bottom = _footnote(
            fig,
            [
                _exclusion_line(summary),
                "Pairs of one subject counted separately; the between-group test (change_tests.tsv) "
                "counts each subject once.",
            ],
        )
        grid = _grid(fig, 1, 2, left=0.55, right=0.15, top=top + 0.25, bottom=bottom + 0.45, wgap=0.7)
        ax = fig.add_subplot(grid[0, 0])
        by_group = summary.set_index("group")
        for x, group in enumerate(levels):
            values = analysed.loc[analysed["group"] == group, stats.CHANGE_COUNT].to_numpy(float)
            if len(values):
                ax.scatter(x + _spread(values), values, s=9, color=colours[group], alpha=0.8, linewidths=0)
                q25, median, q75 = np.percentile(values, [25, 50, 75])
                ax.plot([x - 0.3, x + 0.3], [median, median], color=POOLED_COLOUR, linewidth=1.4)
                ax.plot([x - 0.2, x + 0.2], [q25, q25], color=POOLED_COLOUR, linewidth=0.6)
                ax.plot([x - 0.2, x + 0.2], [q75, q75], color=POOLED_COLOUR, linewidth=0.6)
        ax.set_xticks(range(len(levels)), [f"{g}\n(n = {int(by_group.at[g, 'n_analysed'])})" for g in levels])
        ax.set_xlim(-0.6, len(levels) - 0.4)
        ax.set_ylim(bottom=-0.5)
        ax.yaxis.set_major_locator(matplotlib.ticker.MaxNLocator(integer=True))
        ax.set_ylabel("New or enlarging lesions per pair")
        ax.set_title("Count per pair (median and quartiles)")
        _light_grid(ax)
        ax = fig.add_subplot(grid[0, 1])
        for x, group in enumerate(levels):
            row = by_group.loc[group]
            if row["n_analysed"]:
                share = 100.0 * row["active_share"]
                ax.bar(x, share, width=0.6, color=colours[group])
                ax.errorbar(
                    x,
                    share,
                    yerr=[[share - 100.0 * row["active_ci_low"]], [100.0 * row["active_ci_high"] - share]],
                    color=POOLED_COLOUR,
                    capsize=3,
                    linewidth=0.8,
                )
                ax.text(x, 102, f"{int(row['n_active'])}/{int(row['n_analysed'])}", ha="center", va="bottom")
        ax.set_xticks(range(len(levels)), levels)
        ax.set_xlim(-0.6, len(levels) - 0.4)
        ax.set_ylim(0, 112)
        ax.set_ylabel("Pairs with any new or enlarging lesion (%)")
        ax.set_title("Share of pairs with activity (95% CI)")
        _light_grid(ax)
        return _finish(
            fig,
            "change_by_group",
            n_pairs=int(pooled["n_pairs"]),
            n_analysed=int(pooled["n_analysed"]),
            n_left_out=int(pooled["n_pairs"] - pooled["n_analysed"]),
            n_by_group={g: int(by_group.at[g, "n_analysed"]) for g in levels},
            active={g: int(by_group.at[g, "n_active"]) for g in levels},
        )


def change_vs_interval(table: pd.DataFrame, *, groups=(), summary: pd.DataFrame | None = None) -> CohortFigure:
    """Change against the interval between the sessions (years, from the sheet's ``days``):
    per analysed pair its new and enlarging volume (mL) and its count, one colour per group.
    Pairs without a known interval are not shown and counted in the footnote, with the pairs
    left out (poor or failed registration, failed job).

    Summary keys: ``n_shown``, ``n_without_interval``, ``n_left_out``."""
    with matplotlib.rc_context(STYLE):
        summary = stats.change_summary(table, groups) if summary is None else summary
        levels = stats.change_groups(table, groups)
        colours = group_colours(levels)
        analysed = table[table["analysed"]]
        timed = analysed[analysed[stats.INTERVAL_YEARS].notna()]
        without = len(analysed) - len(timed)
        fig = Figure(figsize=FIGURE_SIZES["change_vs_interval"], dpi=FIGURE_DPI)
        handles = [
            matplotlib.lines.Line2D([], [], marker="o", linestyle="", color=colours[g], label=g, markersize=4)
            for g in levels
        ]
        top = _header(fig, "New and enlarging lesions against the interval between sessions", None, handles)
        lines = [_exclusion_line(summary)]
        if without:
            lines.append(f"Not shown: {without} analysed pair(s) without a known interval (sheet column days).")
        bottom = _footnote(fig, lines)
        grid = _grid(fig, 1, 2, left=0.55, right=0.15, top=top + 0.25, bottom=bottom + 0.45, wgap=0.7)
        for k, (variable, label) in enumerate(
            (
                (stats.CHANGE_VOLUME, "New and enlarging volume (mL)"),
                (stats.CHANGE_COUNT, "New or enlarging lesions"),
            )
        ):
            ax = fig.add_subplot(grid[0, k])
            if timed.empty:
                _empty_panel(ax, "no pair has a known interval\n(sheet column days)")
            for group in levels:
                in_group = timed[timed["group"] == group]
                ax.scatter(
                    in_group[stats.INTERVAL_YEARS],
                    in_group[variable],
                    s=10,
                    color=colours[group],
                    alpha=0.8,
                    linewidths=0,
                    clip_on=False,
                )
            if variable == stats.CHANGE_COUNT:
                ax.yaxis.set_major_locator(matplotlib.ticker.MaxNLocator(integer=True))
            ax.set_xlabel("Interval between sessions (years)")
            ax.set_ylabel(label)
            ax.set_xlim(left=0)
            ax.set_ylim(bottom=0)
            ax.set_title(f"{label.split(' (')[0]} per pair (n = {len(timed)})")
            _light_grid(ax, "both")
        return _finish(
            fig,
            "change_vs_interval",
            n_shown=len(timed),
            n_without_interval=without,
            n_left_out=int(summary.iloc[-1]["n_pairs"] - summary.iloc[-1]["n_analysed"]),
        )


def change_figures(table: pd.DataFrame, *, groups=()) -> dict[str, CohortFigure]:
    """The figures of longitudinal change (:data:`msprofile.outputs.CHANGE_FIGURES`) of a table
    of changes (:func:`msprofile.stats.change_input`), groups in the order of ``groups``."""
    summary = stats.change_summary(table, groups)
    return {
        "change_by_group": change_by_group(table, groups=groups, summary=summary),
        "change_vs_interval": change_vs_interval(table, groups=groups, summary=summary),
    }


# ---------------------------------------------------------------------------------------------
# All figures

FIGURES = {
    "demographics": demographics,
    "ventricular_burden": ventricular_burden,
    "lesion_burden": lesion_burden,
    "ms_lesion_profile": ms_lesion_profile,
    "burden_vs_age": burden_vs_age,
    "correlation_heatmaps": correlation_heatmaps,
    "outlier_overview": outlier_overview,
}


def all_figures(
    table: pd.DataFrame, *, lesion_free_shares: str = "missing", remove_outliers: bool = False
) -> dict[str, CohortFigure]:
    """Every cohort figure, by name, in :func:`msprofile.outputs.figure_names` order.

    The table is derived once (``lesion_free_shares``) and the statistics the figures draw
    (descriptives, regressions, correlations) are computed once. With ``remove_outliers`` the
    reference rule (:func:`msprofile.stats.outliers`, defaults) removes subjects first, as the
    statistics stage does; every figure then shows the kept subjects and says so under its
    title, and ``outlier_overview`` (drawn on the table before removal) shows who was removed
    and why. Without outlier removal there is nothing to overview, so that figure is not drawn.
    """
    d = _prepare(table, lesion_free_shares)
    data, note = d, None
    if remove_outliers:
        data, removed = stats.outliers(d)
        data.attrs["notes"] = dict(d.attrs.get("notes", {}))
        note = f"after outlier removal: {len(removed)} of {len(d)} subjects removed (reference rule)"
    precomputed = {
        "ventricular_burden": {"descriptives": stats.descriptives(data)},
        "correlation_heatmaps": {"correlations": stats.correlations(data)},
        "burden_vs_age": {"regressions": stats.regressions(data)},
    }
    precomputed["lesion_burden"] = precomputed["ms_lesion_profile"] = precomputed["ventricular_burden"]
    drawn: dict[str, CohortFigure] = {}
    for name in figure_names(remove_outliers):
        if name == "outlier_overview":
            drawn[name] = outlier_overview(d, lesion_free_shares=lesion_free_shares)
        else:
            drawn[name] = FIGURES[name](
                data, lesion_free_shares=lesion_free_shares, note=note, **precomputed.get(name, {})
            )
    return drawn

"""Cohort statistics (docs/method.md section 6): pure functions on a cohort DataFrame, tidy tables.

Input: one row per subject with ``subject_id`` (string), ``group`` (``HC``/``MS``),
``age_years`` (float, may be missing), ``sex`` (``F``/``M``, may be missing) and the reference's
area columns (:data:`AREA_COLUMNS`, mm^2). :func:`cohort_input` brings a table read from the reference
study's cohort CSV (or this project's cohort Parquet) into that shape.

Every function takes the raw cohort table or the output of :func:`derive`; a raw table is
derived with the defaults. Definitions (the reference's defects fixed as docs/method.md lists them):

Derived variables (:func:`derive`)
    ``VentricleRatio = ventricle / intracranial * 100`` and ``WMHRatio = lesion / intracranial *
    100`` (percent; missing where the intracranial area is not positive, never an epsilon).
    ``PEWMH% / PAWMH% / JCWMH% = class area / TotalWMHArea * 100``; for lesion-free subjects
    missing (``lesion_free_shares="missing"``, default) or 0 (``"zero"``, the reference).
    ``age_group``: ordered categorical ``18-29 | 30-39 | 40-49 | 50-59 | 60+`` from the half-open
    bins [18,30) [30,40) [40,50) [50,60) [60, inf); no upper limit, so nobody old is dropped (the
    reference's top of 69 lost ages 72 and 74). Ages below 18 or missing get a missing age group;
    :func:`accounting` counts them and they appear in :func:`descriptives` under the age-group
    level ``unassigned`` (subjects with a missing sex under the sex level ``unknown``), so every
    subject is in every pooled (``all``) row.

Descriptives (:func:`descriptives`)
    Long table (:data:`DESCRIPTIVES_COLUMNS`), one row per variable x group x sex x age group,
    pooled levels written ``all``, every combination present (an empty cell has ``n = 0`` and
    missing statistics). ``n`` counts non-missing values; ``sd`` has ddof = 1; quartiles use
    linear interpolation (numpy/pandas default). Variables: :data:`DESCRIPTIVE_VARIABLES`.
    MS lesion-class profile: for :data:`PROFILE_VARIABLES` in MS, for each sex level, a row with
    ``age_group = mean_of_age_groups`` (after that cell's ``all`` row) whose statistics describe
    the set of age-group means (of the five age groups, those with at least one value; the
    ``unassigned`` level is not an age group): ``n`` = number of such age groups (0: the other
    statistics missing), ``mean`` = mean of the age-group means, unweighted (the figure the
    reference reports), ``sd`` = their SD (ddof = 1), ``median/q25/q75/min/max`` = those of the
    age-group means.

Tests (:func:`tests`), long table :data:`TESTS_COLUMNS`
    Contrast ``"A vs B"``: group 1 is A (``n1``), group 2 is B (``n2``); statistics and effect
    sizes are positive when A has the larger values.

    * Mann-Whitney U: ``scipy.stats.mannwhitneyu`` two-sided (method "auto": exact for
      n <= 8 without ties, otherwise the normal approximation with tie and continuity
      correction); ``statistic`` = U of group 1. It gives two rows (same test, same p):
      ``probability_of_superiority`` PS = P(X1 > X2) + P(X1 = X2) / 2 = U1 / (n1 n2) and
      ``rank_biserial`` r = 2 PS - 1 = (U1 - U2) / (n1 n2), both computed from the data (the
      reference derived r from the p-value). CI (analytic, no resampling): DeLong
      (placement-value) standard error of PS, Wald interval on the logit scale,
      back-transformed; r's interval is 2 PS_CI - 1. Missing when PS is 0 or 1 or its
      standard error is 0 (complete separation or no variation: the logit interval is not
      defined) or a group has fewer than 2 values.
    * Welch's t-test (``scipy.stats.ttest_ind(equal_var=False)``), effect size Cohen's d with
      the pooled SD, sqrt(((n1-1) s1^2 + (n2-1) s2^2) / (n1+n2-2)); CI by inverting the
      noncentral t distribution of d sqrt(n1 n2 / (n1+n2)) with n1+n2-2 degrees of freedom.
    * Chi-square test of independence, group x sex (``scipy.stats.chi2_contingency``, default
      correction: Yates' continuity correction for a 2 x 2 table, as the reference; ``test``
      says so); effect size Cramer's V from the uncorrected chi-square, no CI; ``n1``, ``n2``
      the MS and HC subjects with a known sex, in the order of the other rows.

    Analyses (each one Holm family over its distinct tests, equal to
    ``statsmodels.stats.multitest.multipletests(method="holm")``; the two effect-size rows of one
    Mann-Whitney test count once):

    * ``demographics``: group x sex chi-square; age MS vs HC (Mann-Whitney U);
    * ``hc_vs_ms``: :data:`HC_VS_MS_VARIABLES`, MS vs HC, Mann-Whitney U and Welch t;
    * ``ms_sex``: within MS, M vs F, :data:`MS_SEX_VARIABLES`, Mann-Whitney U.

Correlations (:func:`correlations`): per group, Spearman rho among :data:`CORRELATION_VARIABLES`
    on the complete cases of all of them (the shares are left out: they are undefined for
    lesion-free subjects, and listwise deletion would restrict the whole matrix to subjects
    with lesions); p from the t distribution with n - 2 df (as ``scipy.stats.spearmanr``);
    ``p_adjusted``: Holm over the pairs of one group's matrix (one family per group).

Regressions (:func:`regressions`): per group and burden measure (:data:`TREND_VARIABLES`),
    statsmodels OLS on raw age (``linear``: intercept + age) and on age + age^2
    (``quadratic``), complete cases; each model's own R^2 and adjusted R^2, coefficients with
    standard errors, 95% CIs and p-values. No multiplicity adjustment (they are estimates).

Outliers (:func:`outlier_flags`, :func:`outliers`): the reference rule on its 12 variables
    (:data:`OUTLIER_VARIABLES`: age, the six areas, the two ratios, the three shares, exactly
    the reference's list, so that removal stays comparable). Within each group x age-group
    stratum of at least ``min_stratum`` subjects, a non-missing value is flagged when it is
    outside [Q1 - f IQR, Q3 + f IQR] AND |0.6745 (x - median) / MAD| > z (MAD = median absolute
    deviation from the median, unscaled; quartiles and medians over the stratum's non-missing
    values of that variable). MAD = 0 (over half the stratum shares one value, e.g. lesion-free
    controls) is no flag by default (``mad_zero="no_flag"``); the reference replaced MAD by
    1e-10, flagging every value off the median that also fails the IQR rule
    (``mad_zero="reference"``). Subjects without an age group are in no stratum and never
    flagged. Subjects with at least ``min_flags`` flags are removed and listed with the reason.

Outputs (:func:`run_statistics`): tab-separated, ``%.12g`` floats, ``NA`` for missing, rows
in a fixed order (subjects sorted by ``subject_id`` first), written atomically: equal input
gives identical bytes. No random numbers are drawn anywhere.
"""

from __future__ import annotations

import logging
import math
import warnings
from itertools import combinations, product

import numpy as np
import pandas as pd
from scipy import optimize
from scipy import stats as sps
from statsmodels.regression.linear_model import OLS
from statsmodels.stats.proportion import proportion_confint

from .scans import session_sort_key

log = logging.getLogger(__name__)

# ---------------------------------------------------------------------------------------------
# Column names and contracts

AREA_COLUMNS = (
    "TotalIntracranialArea",
    "TotalVentricleArea",
    "TotalWMHArea",
    "TotalPeriArea",
    "TotalParaArea",
    "TotalJuxtArea",
)
CLASS_AREA_COLUMNS = ("TotalPeriArea", "TotalParaArea", "TotalJuxtArea")
RATIO_COLUMNS = ("VentricleRatio", "WMHRatio")
SHARE_COLUMNS = ("PEWMH%", "PAWMH%", "JCWMH%")
AGE = "age_years"
AGE_GROUP = "age_group"
COHORT_COLUMNS = ("subject_id", "group", AGE, "sex", *AREA_COLUMNS)
DERIVED_COLUMNS = (*RATIO_COLUMNS, *SHARE_COLUMNS, AGE_GROUP)

GROUPS = ("HC", "MS")
SEXES = ("F", "M")
AGE_GROUP_LABELS = ("18-29", "30-39", "40-49", "50-59", "60+")
AGE_GROUP_EDGES = (18.0, 30.0, 40.0, 50.0, 60.0, math.inf)
POOLED = "all"
UNASSIGNED_AGE_GROUP = "unassigned"
UNKNOWN_SEX = "unknown"
MEAN_OF_AGE_GROUPS = "mean_of_age_groups"

DESCRIPTIVE_VARIABLES = (AGE, *AREA_COLUMNS, *RATIO_COLUMNS, *SHARE_COLUMNS)
PROFILE_VARIABLES = (*CLASS_AREA_COLUMNS, *SHARE_COLUMNS)
PROFILE_GROUPS = ("MS",)
HC_VS_MS_VARIABLES = ("TotalVentricleArea", "VentricleRatio", "TotalWMHArea", "WMHRatio")
MS_SEX_VARIABLES = (*CLASS_AREA_COLUMNS, *SHARE_COLUMNS)
CORRELATION_VARIABLES = (AGE, *AREA_COLUMNS, *RATIO_COLUMNS)
TREND_VARIABLES = RATIO_COLUMNS
OUTLIER_VARIABLES = (
    AGE,
    "TotalIntracranialArea",
    "TotalVentricleArea",
    "TotalWMHArea",
    *RATIO_COLUMNS,
    *CLASS_AREA_COLUMNS,
    *SHARE_COLUMNS,
)

DESCRIPTIVES_COLUMNS = (
    "variable",
    "group",
    "sex",
    "age_group",
    "n",
    "mean",
    "sd",
    "median",
    "q25",
    "q75",
    "min",
    "max",
)
TESTS_COLUMNS = (
    "analysis",
    "variable",
    "contrast",
    "test",
    "statistic",
    "p_value",
    "p_adjusted",
    "effect_size",
    "effect_size_name",
    "ci_low",
    "ci_high",
    "n1",
    "n2",
)
CORRELATIONS_COLUMNS = ("group", "variable_1", "variable_2", "n", "rho", "p_value", "p_adjusted")
REGRESSIONS_COLUMNS = (
    "group",
    "variable",
    "model",
    "term",
    "coefficient",
    "se",
    "ci_low",
    "ci_high",
    "p_value",
    "r_squared",
    "adj_r_squared",
    "n",
)
OUTLIERS_COLUMNS = ("subject_id", "group", "age_group", "n_flags", "flagged_variables", "reason")

CONFIDENCE = 0.95
FLOAT_FORMAT = "%.12g"
NA_REP = "NA"

# The reference study's column names and this project's.
REFERENCE_INPUT_COLUMNS = {"PatientID": "subject_id", "PatientAge": AGE, "PatientSex": "sex", "StudyGroup": "group"}

MW_TEST = "Mann-Whitney U (two-sided)"
WELCH_TEST = "Welch t-test (two-sided)"


# ---------------------------------------------------------------------------------------------
# Loading and validation


def cohort_input(raw: pd.DataFrame, source: str = "cohort table") -> pd.DataFrame:
    """A cohort table as read from a file, in this module's input shape (:data:`COHORT_COLUMNS`).

    ``raw``: the reference study's columns (``PatientID, PatientAge, PatientSex (0 female,
    1 male), StudyGroup`` and the six area columns), or this project's (``subject_id, group,
    age_years, sex`` and the area columns, as the workflow's cohort table). Mapping: PatientID
    -> ``subject_id`` (string), PatientAge -> ``age_years``, PatientSex 0/1 -> ``F``/``M``,
    StudyGroup -> ``group``. Other columns are kept. Rows of the workflow's table with
    ``status`` ``failed`` (scans whose processing failed under ``on_error: record``) are
    left out, and the log names them. Where a subject has several scans (the workflow's
    ``session`` column), the analyses are cross-sectional and take each subject once: its first
    successful session in natural order (:func:`msprofile.scans.session_sort_key`); the log
    says how many scans that leaves out. Raises ``ValueError`` naming ``source`` (the file) and
    the missing columns (or the offending values) when the table does not fit.
    """
    if "status" in raw.columns:  # the workflow's cohort table: subjects that failed have no measures
        failed = (raw["status"] == "failed").fillna(False).to_numpy(bool)
        if failed.all():
            raise ValueError(f"{source}: no subject was processed successfully (see failures.tsv beside it)")
        if failed.any():
            log.warning(
                "%d of %d subjects failed processing and are left out of the statistics: %s",
                int(failed.sum()),
                len(raw),
                ", ".join(raw.loc[failed, "subject_id"].astype(str)),
            )
            raw = raw.loc[~failed].reset_index(drop=True)
    if "session" in raw.columns:
        raw = first_session_per_subject(raw)
    reference_needed = [*REFERENCE_INPUT_COLUMNS, *AREA_COLUMNS]
    if all(c in raw.columns for c in reference_needed):
        table = raw.rename(columns=REFERENCE_INPUT_COLUMNS)
        sex_code = pd.to_numeric(table["sex"], errors="coerce")
        bad = table["sex"].notna() & ~sex_code.isin([0, 1])
        if bad.any():
            values = sorted({str(v) for v in table.loc[bad, "sex"]})
            raise ValueError(f"{source}: PatientSex must be 0 (female) or 1 (male); found {values}")
        table["sex"] = (
            pd.Series(pd.NA, index=table.index, dtype="string").mask(sex_code == 0, "F").mask(sex_code == 1, "M")
        )
    elif all(c in raw.columns for c in COHORT_COLUMNS):
        table = raw
    else:
        missing = [c for c in reference_needed if c not in raw.columns]
        raise ValueError(
            f"{source}: not a cohort table: missing columns {missing} (expected the reference's "
            f"{reference_needed} or this project's {list(COHORT_COLUMNS)})"
        )
    return _normalise(table, source=source)


def first_session_per_subject(table: pd.DataFrame) -> pd.DataFrame:
    """``table`` (with ``subject_id`` and ``session``, missing or "" for none) with one row per
    subject: its first session in natural order; the order of the rows kept otherwise."""
    sessions = table["session"].astype("string").fillna("").tolist()
    subjects = table["subject_id"].astype(str).tolist()
    keep = np.zeros(len(table), dtype=bool)
    seen = set()
    for i in sorted(range(len(table)), key=lambda i: (session_sort_key(sessions[i]), i)):
        if subjects[i] not in seen:
            seen.add(subjects[i])
            keep[i] = True
    if not keep.all():
        repeated = table.loc[~keep, "subject_id"].nunique()
        log.info(
            "%d later sessions of %d subjects are left out of the statistics: each subject counts once, "
            "with its first session",
            int((~keep).sum()),
            repeated,
        )
    return table.loc[keep].reset_index(drop=True)


def _normalise(table: pd.DataFrame, source: str = "cohort table") -> pd.DataFrame:
    """A copy of ``table`` with checked, canonical dtypes for the cohort columns."""
    missing = [c for c in COHORT_COLUMNS if c not in table.columns]
    if missing:
        raise ValueError(f"{source}: missing columns {missing}")
    out = table.copy()
    sid = out["subject_id"].astype("string").str.strip()
    if sid.isna().any() or (sid == "").any():
        raise ValueError(f"{source}: {int((sid.isna() | (sid == '')).sum())} rows without a subject_id")
    duplicated = sid[sid.duplicated()].unique().tolist()
    if duplicated:
        raise ValueError(f"{source}: duplicate subject_id {duplicated[:10]}")
    out["subject_id"] = sid
    group = out["group"].astype("string").str.strip()
    bad = sorted({str(v) for v in group[~group.isin(GROUPS)]})
    if bad:
        raise ValueError(f"{source}: group must be one of {list(GROUPS)}; found {bad}")
    out["group"] = group
    sex = out["sex"].astype("string").str.strip().str.upper()
    sex = sex.mask(sex == "")
    bad = sorted({str(v) for v in sex[sex.notna() & ~sex.isin(SEXES)]})
    if bad:
        raise ValueError(f"{source}: sex must be F, M or missing; found {bad}")
    out["sex"] = sex
    for column in (AGE, *AREA_COLUMNS):
        try:
            out[column] = pd.to_numeric(out[column], errors="raise").astype("float64")
        except (ValueError, TypeError) as exc:
            raise ValueError(f"{source}: column {column} is not numeric ({exc})") from None
    return out


# ---------------------------------------------------------------------------------------------
# Derived variables


def derive(table: pd.DataFrame, lesion_free_shares: str = "missing") -> pd.DataFrame:
    """The cohort table with :data:`DERIVED_COLUMNS` added (a new DataFrame, rows in input order).

    ``lesion_free_shares``: ``"missing"`` (default) leaves the lesion-class shares of subjects
    with ``TotalWMHArea == 0`` missing; ``"zero"`` sets them to 0 as the reference did.
    Nobody is dropped: subjects without an age group keep every other value; the counts are in
    ``result.attrs["notes"]`` (see :func:`accounting`) and logged.
    """
    if lesion_free_shares not in ("missing", "zero"):
        raise ValueError(f"lesion_free_shares must be 'missing' or 'zero', not {lesion_free_shares!r}")
    out = _normalise(table)
    icv = out["TotalIntracranialArea"].to_numpy(float)
    lesion = out["TotalWMHArea"].to_numpy(float)
    with np.errstate(divide="ignore", invalid="ignore"):
        out["VentricleRatio"] = np.where(icv > 0, out["TotalVentricleArea"].to_numpy(float) / icv * 100.0, np.nan)
        out["WMHRatio"] = np.where(icv > 0, lesion / icv * 100.0, np.nan)
        for share, area in zip(SHARE_COLUMNS, CLASS_AREA_COLUMNS):
            values = np.where(lesion > 0, out[area].to_numpy(float) / lesion * 100.0, np.nan)
            if lesion_free_shares == "zero":
                values = np.where(lesion == 0, 0.0, values)
            out[share] = values
    out[AGE_GROUP] = pd.cut(out[AGE], bins=list(AGE_GROUP_EDGES), right=False, labels=list(AGE_GROUP_LABELS))
    notes = accounting(out)
    notes["lesion_free_shares"] = lesion_free_shares
    out.attrs["notes"] = notes
    if notes["n_age_group_unassigned"]:
        log.warning(
            "%d subjects have no age group (%d without age, %d younger than 18); they are kept in every "
            "analysis that does not need the age group",
            notes["n_age_group_unassigned"],
            notes["n_age_missing"],
            notes["n_age_below_18"],
        )
    return out


def accounting(table: pd.DataFrame) -> dict:
    """Counts that say where every subject of a derived table went: subjects, missing age,
    age below 18, no age group (the two together), missing sex, lesion-free subjects."""
    age = table[AGE]
    return {
        "n_subjects": int(len(table)),
        "n_age_missing": int(age.isna().sum()),
        "n_age_below_18": int((age < AGE_GROUP_EDGES[0]).sum()),
        "n_age_group_unassigned": int(table[AGE_GROUP].isna().sum()),
        "n_sex_missing": int(table["sex"].isna().sum()),
        "n_lesion_free": int((table["TotalWMHArea"] == 0).sum()),
    }


def _ensure_derived(table: pd.DataFrame) -> pd.DataFrame:
    """``table`` itself when it already has the derived columns, else :func:`derive` of it."""
    if all(c in table.columns for c in DERIVED_COLUMNS) and isinstance(table[AGE_GROUP].dtype, pd.CategoricalDtype):
        return table
    return derive(table)


def _keys(table: pd.DataFrame) -> pd.DataFrame:
    """Group, sex and age group as plain strings with the explicit levels for missing values."""
    return pd.DataFrame(
        {
            "group": table["group"].astype("string").to_numpy(object),
            "sex": table["sex"].astype("string").fillna(UNKNOWN_SEX).to_numpy(object),
            "age_group": table[AGE_GROUP].astype("string").fillna(UNASSIGNED_AGE_GROUP).to_numpy(object),
        },
        index=table.index,
    )


# ---------------------------------------------------------------------------------------------
# Descriptives


def descriptives(table: pd.DataFrame) -> pd.DataFrame:
    """Long descriptive table (:data:`DESCRIPTIVES_COLUMNS`); see the module docstring."""
    d = _ensure_derived(table)
    keys = _keys(d)
    sex_levels = [*SEXES, *([UNKNOWN_SEX] if (keys["sex"] == UNKNOWN_SEX).any() else []), POOLED]
    age_levels = [
        *AGE_GROUP_LABELS,
        *([UNASSIGNED_AGE_GROUP] if (keys["age_group"] == UNASSIGNED_AGE_GROUP).any() else []),
        POOLED,
    ]
    levels = {"group": [*GROUPS, POOLED], "sex": sex_levels, "age_group": age_levels}
    values = d[list(DESCRIPTIVE_VARIABLES)].astype("float64")
    copies = []
    for pooled in product((False, True), repeat=3):
        k = keys.copy()
        for name, is_pooled in zip(("group", "sex", "age_group"), pooled):
            if is_pooled:
                k[name] = POOLED
        copies.append(pd.concat([k, values], axis=1))
    wide = pd.concat(copies, ignore_index=True)
    long = wide.melt(id_vars=["group", "sex", "age_group"], var_name="variable", value_name="value")
    long["variable"] = pd.Categorical(long["variable"], categories=list(DESCRIPTIVE_VARIABLES))
    for name, cats in levels.items():
        long[name] = pd.Categorical(long[name], categories=cats)
    by = ["variable", "group", "sex", "age_group"]
    grouped = long.groupby(by, observed=False, sort=True)["value"]
    result = _summary(grouped).reset_index()
    profile = _mean_of_age_groups(result, sex_levels)
    result = pd.concat([result.astype({c: "string" for c in by}), profile], ignore_index=True)
    order = {
        "variable": list(DESCRIPTIVE_VARIABLES),
        "group": levels["group"],
        "sex": sex_levels,
        "age_group": [*age_levels, MEAN_OF_AGE_GROUPS],
    }
    sort_keys = pd.DataFrame({c: pd.Categorical(result[c], categories=cats) for c, cats in order.items()})
    result = result.iloc[np.lexsort([sort_keys[c].cat.codes for c in reversed(by)])].reset_index(drop=True)
    return _finish(result, DESCRIPTIVES_COLUMNS, ints=("n",))


def _summary(grouped) -> pd.DataFrame:
    """The descriptive statistics of a grouped series (SD with ddof 1, linear quartiles)."""
    return pd.DataFrame(
        {
            "n": grouped.count(),
            "mean": grouped.mean(),
            "sd": grouped.std(ddof=1),
            "median": grouped.median(),
            "q25": grouped.quantile(0.25),
            "q75": grouped.quantile(0.75),
            "min": grouped.min(),
            "max": grouped.max(),
        }
    )


def _mean_of_age_groups(result: pd.DataFrame, sex_levels) -> pd.DataFrame:
    """Rows ``age_group = mean_of_age_groups``: statistics of the age-group means, one per
    profile variable, profile group and sex level (``n = 0`` where no age group has a value)."""
    sel = result[
        result["variable"].isin(PROFILE_VARIABLES)
        & result["group"].isin(PROFILE_GROUPS)
        & result["age_group"].isin(AGE_GROUP_LABELS)
        & result["mean"].notna()
    ].copy()
    sel["variable"] = pd.Categorical(sel["variable"].astype(str), categories=list(PROFILE_VARIABLES))
    sel["group"] = pd.Categorical(sel["group"].astype(str), categories=list(PROFILE_GROUPS))
    sel["sex"] = pd.Categorical(sel["sex"].astype(str), categories=list(sex_levels))
    grouped = sel.groupby(["variable", "group", "sex"], observed=False, sort=True)["mean"]
    out = _summary(grouped).reset_index()
    out["age_group"] = MEAN_OF_AGE_GROUPS
    return out.astype({c: "string" for c in ("variable", "group", "sex", "age_group")})


# ---------------------------------------------------------------------------------------------
# Effect sizes and two-sample tests


def probability_of_superiority(x, y) -> tuple[float, float]:
    """``(PS, se)``: PS = P(X > Y) + P(X = Y) / 2 over all pairs, and its DeLong standard error.

    Placement values: V10_i = (#{y < x_i} + #{y = x_i} / 2) / n2, V01_j = (#{x > y_j} +
    #{x = y_j} / 2) / n1; PS = mean(V10); se^2 = var(V10) / n1 + var(V01) / n2 (ddof = 1).
    """
    x = np.sort(np.asarray(x, float))
    y = np.sort(np.asarray(y, float))
    n1, n2 = len(x), len(y)
    if n1 == 0 or n2 == 0:
        return math.nan, math.nan
    below = np.searchsorted(y, x, "left")
    ties = np.searchsorted(y, x, "right") - below
    v10 = (below + 0.5 * ties) / n2
    below_x = np.searchsorted(x, y, "left")
    ties_x = np.searchsorted(x, y, "right") - below_x
    v01 = (n1 - below_x - ties_x + 0.5 * ties_x) / n1
    ps = float(v10.mean())
    if n1 < 2 or n2 < 2:
        return ps, math.nan
    se = math.sqrt(v10.var(ddof=1) / n1 + v01.var(ddof=1) / n2)
    return ps, se


def _ps_interval(ps: float, se: float, level: float = CONFIDENCE) -> tuple[float, float]:
    """Wald interval for PS on the logit scale; missing where it is not defined."""
    if not (0.0 < ps < 1.0) or not (se > 0.0):
        return math.nan, math.nan
    z = sps.norm.ppf(0.5 + level / 2)
    centre = math.log(ps / (1.0 - ps))
    half = z * se / (ps * (1.0 - ps))
    return float(1.0 / (1.0 + math.exp(-(centre - half)))), float(1.0 / (1.0 + math.exp(-(centre + half))))


def mann_whitney(x, y) -> dict:
    """Mann-Whitney U of ``x`` (group 1) against ``y`` (group 2), with PS and rank-biserial r.

    Returns ``u`` (U of x), ``p``, ``ps``, ``ps_ci``, ``r``, ``r_ci``, ``n1``, ``n2``; values
    missing (NaN) where a group is empty. See the module docstring for the definitions.
    """
    x = _finite(x)
    y = _finite(y)
    n1, n2 = len(x), len(y)
    nan2 = (math.nan, math.nan)
    if n1 == 0 or n2 == 0:
        return {
            "u": math.nan,
            "p": math.nan,
            "ps": math.nan,
            "ps_ci": nan2,
            "r": math.nan,
            "r_ci": nan2,
            "n1": n1,
            "n2": n2,
        }
    with warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore", RuntimeWarning)
        res = sps.mannwhitneyu(x, y, alternative="two-sided")
    ps, se = probability_of_superiority(x, y)
    lo, hi = _ps_interval(ps, se)
    return {
        "u": float(res.statistic),
        "p": float(res.pvalue),
        "ps": ps,
        "ps_ci": (lo, hi),
        "r": 2 * ps - 1,
        "r_ci": (2 * lo - 1, 2 * hi - 1),
        "n1": n1,
        "n2": n2,
    }


def cohens_d(x, y) -> tuple[float, tuple[float, float]]:
    """Cohen's d = (mean x - mean y) / pooled SD and its noncentral-t confidence interval."""
    x = _finite(x)
    y = _finite(y)
    n1, n2 = len(x), len(y)
    if n1 < 2 or n2 < 2:
        return math.nan, (math.nan, math.nan)
    pooled = math.sqrt(((n1 - 1) * x.var(ddof=1) + (n2 - 1) * y.var(ddof=1)) / (n1 + n2 - 2))
    if not pooled > 0:
        return math.nan, (math.nan, math.nan)
    d = float((x.mean() - y.mean()) / pooled)
    return d, _d_interval(d, n1, n2)


def _d_interval(d: float, n1: int, n2: int, level: float = CONFIDENCE) -> tuple[float, float]:
    """Invert the noncentral t: t = d sqrt(n1 n2 / (n1 + n2)) ~ nct(df = n1 + n2 - 2, nc)."""
    scale = math.sqrt(n1 * n2 / (n1 + n2))
    df = n1 + n2 - 2
    t = d * scale
    width = 10.0 * math.sqrt(1.0 + t * t / (2.0 * df)) + 1.0
    bounds = []
    for target in (0.5 + level / 2, 0.5 - level / 2):

        def f(nc, target=target):
            return _nct_cdf(t, df, nc) - target

        lo, hi = t - width, t + width
        if not (f(lo) > 0 > f(hi)):
            return math.nan, math.nan
        bounds.append(optimize.brentq(f, lo, hi, xtol=1e-12, rtol=1e-12) / scale)
    return float(bounds[0]), float(bounds[1])


def _nct_cdf(t: float, df: float, nc: float) -> float:
    """``scipy.stats.nct.cdf`` with a guard: scipy returns NaN in parts of the tails (and for
    small df near the centre); there use cdf(t; nc) = sf(-t; -nc), and in the far tails, where
    both fail, 1 or 0."""
    value = float(sps.nct.cdf(t, df, nc))
    if math.isnan(value):
        value = float(sps.nct.sf(-t, df, -nc))
    if math.isnan(value):
        value = 1.0 if nc < t else 0.0
    return value


def welch_t(x, y) -> dict:
    """Welch's t-test of ``x`` against ``y`` with Cohen's d (pooled SD) and its CI."""
    x = _finite(x)
    y = _finite(y)
    n1, n2 = len(x), len(y)
    if n1 < 2 or n2 < 2:
        t = p = math.nan
    else:
        with warnings.catch_warnings(), np.errstate(all="ignore"):
            warnings.simplefilter("ignore", RuntimeWarning)
            res = sps.ttest_ind(x, y, equal_var=False)
        t, p = float(res.statistic), float(res.pvalue)
    d, ci = cohens_d(x, y)
    return {"t": t, "p": p, "d": d, "d_ci": ci, "n1": n1, "n2": n2}


def _finite(values) -> np.ndarray:
    a = np.asarray(values, dtype=float)
    return a[np.isfinite(a)]


def _mw_rows(analysis: str, variable: str, contrast: str, x, y) -> list[dict]:
    m = mann_whitney(x, y)
    base = {
        "analysis": analysis,
        "variable": variable,
        "contrast": contrast,
        "test": MW_TEST,
        "statistic": m["u"],
        "p_value": m["p"],
        "n1": m["n1"],
        "n2": m["n2"],
    }
    return [
        {
            **base,
            "effect_size": m["r"],
            "effect_size_name": "rank_biserial",
            "ci_low": m["r_ci"][0],
            "ci_high": m["r_ci"][1],
        },
        {
            **base,
            "effect_size": m["ps"],
            "effect_size_name": "probability_of_superiority",
            "ci_low": m["ps_ci"][0],
            "ci_high": m["ps_ci"][1],
        },
    ]


def _welch_row(analysis: str, variable: str, contrast: str, x, y) -> dict:
    w = welch_t(x, y)
    return {
        "analysis": analysis,
        "variable": variable,
        "contrast": contrast,
        "test": WELCH_TEST,
        "statistic": w["t"],
        "p_value": w["p"],
        "effect_size": w["d"],
        "effect_size_name": "cohens_d",
        "ci_low": w["d_ci"][0],
        "ci_high": w["d_ci"][1],
        "n1": w["n1"],
        "n2": w["n2"],
    }


def cramers_v(counts) -> float:
    """Cramer's V of a contingency table, from the uncorrected Pearson chi-square."""
    counts = np.asarray(counts, float)
    chi2 = sps.chi2_contingency(counts, correction=False).statistic
    return float(math.sqrt(chi2 / (counts.sum() * (min(counts.shape) - 1))))


def _chi_square_row(d: pd.DataFrame) -> dict:
    known = d[d["sex"].notna()]
    counts = pd.crosstab(
        pd.Categorical(known["group"], categories=GROUPS), pd.Categorical(known["sex"], categories=SEXES), dropna=False
    ).to_numpy(float)
    # n1, n2 in the order of every other row's "MS vs HC" contrast.
    row = {
        "analysis": "demographics",
        "variable": "sex",
        "contrast": "group x sex",
        "effect_size_name": "cramers_v",
        "ci_low": math.nan,
        "ci_high": math.nan,
        "n1": int(counts[GROUPS.index("MS")].sum()),
        "n2": int(counts[GROUPS.index("HC")].sum()),
    }
    if (counts.sum(axis=0) == 0).any() or (counts.sum(axis=1) == 0).any():
        return {
            **row,
            "test": "chi-square test of independence",
            "statistic": math.nan,
            "p_value": math.nan,
            "effect_size": math.nan,
        }
    res = sps.chi2_contingency(counts)  # scipy default: Yates' correction when dof == 1
    corrected = res.dof == 1
    test = "chi-square test of independence" + (", Yates-corrected" if corrected else ", uncorrected")
    return {
        **row,
        "test": test,
        "statistic": float(res.statistic),
        "p_value": float(res.pvalue),
        "effect_size": cramers_v(counts),
    }


def holm(p_values) -> np.ndarray:
    """Holm-adjusted p-values; missing p-values stay missing and do not count.

    Written out rather than taken from statsmodels' ``multipletests``, which runs
    ``gc.collect()`` on every call: 56 ms each, half of the whole statistics stage on the
    reference cohort. The tests check it against ``multipletests``."""
    p = np.asarray(p_values, float)
    out = np.full(p.shape, np.nan)
    ok = np.flatnonzero(np.isfinite(p))
    order = ok[np.argsort(p[ok], kind="stable")]
    m = len(order)
    out[order] = np.minimum(1.0, np.maximum.accumulate((m - np.arange(m)) * p[order]))
    return out


def tests(table: pd.DataFrame) -> pd.DataFrame:
    """Hypothesis tests, one row per test and effect size (:data:`TESTS_COLUMNS`); see the
    module docstring for the tests, effect sizes, intervals and Holm families."""
    d = _ensure_derived(table)
    is_ms = (d["group"] == "MS").to_numpy()
    is_hc = (d["group"] == "HC").to_numpy()
    rows: list[dict] = [_chi_square_row(d)]
    age = d[AGE].to_numpy(float)
    rows += _mw_rows("demographics", AGE, "MS vs HC", age[is_ms], age[is_hc])
    for variable in HC_VS_MS_VARIABLES:
        v = d[variable].to_numpy(float)
        rows += _mw_rows("hc_vs_ms", variable, "MS vs HC", v[is_ms], v[is_hc])
        rows.append(_welch_row("hc_vs_ms", variable, "MS vs HC", v[is_ms], v[is_hc]))
    male = is_ms & (d["sex"] == "M").fillna(False).to_numpy(bool)
    female = is_ms & (d["sex"] == "F").fillna(False).to_numpy(bool)
    for variable in MS_SEX_VARIABLES:
        v = d[variable].to_numpy(float)
        rows += _mw_rows("ms_sex", variable, "M vs F", v[male], v[female])
    result = pd.DataFrame(rows)
    result["p_adjusted"] = math.nan
    for _, family in result.groupby("analysis", sort=False):
        distinct = family.drop_duplicates(["variable", "contrast", "test"])
        adjusted = pd.Series(holm(distinct["p_value"].to_numpy(float)), index=distinct.index)
        key = family[["variable", "contrast", "test"]].apply(tuple, axis=1)
        lookup = dict(zip(distinct[["variable", "contrast", "test"]].apply(tuple, axis=1), adjusted))
        result.loc[family.index, "p_adjusted"] = key.map(lookup).to_numpy(float)
    return _finish(result, TESTS_COLUMNS, ints=("n1", "n2"))


# ---------------------------------------------------------------------------------------------
# Correlations and regressions


def spearman_matrix(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(rho, p)`` for the columns of ``values`` (n x k, complete cases): Pearson correlation
    of average ranks; two-sided p from t = rho sqrt((n - 2) / (1 - rho^2)) with n - 2 df."""
    values = np.asarray(values, float)
    n, k = values.shape
    if n < 3:
        return np.full((k, k), np.nan), np.full((k, k), np.nan)
    ranks = sps.rankdata(values, axis=0)
    with np.errstate(all="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        rho = np.corrcoef(ranks, rowvar=False)
        rho = np.clip(rho, -1.0, 1.0)
        t = rho * np.sqrt((n - 2) / ((1.0 - rho) * (1.0 + rho)))
        p = 2.0 * sps.t.sf(np.abs(t), n - 2)
    return rho, p


def correlations(table: pd.DataFrame, variables=CORRELATION_VARIABLES) -> pd.DataFrame:
    """Spearman correlations per group among ``variables`` (complete cases), long format
    (:data:`CORRELATIONS_COLUMNS`), Holm-adjusted within each group's matrix."""
    d = _ensure_derived(table)
    variables = list(variables)
    pairs = list(combinations(range(len(variables)), 2))
    frames = []
    for group in GROUPS:
        sub = d.loc[d["group"] == group, variables].astype("float64").dropna()
        rho, p = spearman_matrix(sub.to_numpy())
        i = np.array([a for a, _ in pairs], dtype=int)
        j = np.array([b for _, b in pairs], dtype=int)
        p_pairs = p[i, j] if len(pairs) else np.array([])
        frames.append(
            pd.DataFrame(
                {
                    "group": group,
                    "variable_1": [variables[a] for a in i],
                    "variable_2": [variables[b] for b in j],
                    "n": len(sub),
                    "rho": rho[i, j] if len(pairs) else [],
                    "p_value": p_pairs,
                    "p_adjusted": holm(p_pairs),
                }
            )
        )
    return _finish(pd.concat(frames, ignore_index=True), CORRELATIONS_COLUMNS, ints=("n",))


def regressions(table: pd.DataFrame, variables=TREND_VARIABLES) -> pd.DataFrame:
    """Age trends per group (:data:`REGRESSIONS_COLUMNS`): OLS of each of ``variables`` on age
    (``linear``) and on age + age^2 (``quadratic``), complete cases, 95% CIs, each model's own
    R^2. Terms: ``intercept``, ``age_years``, ``age_years^2``."""
    d = _ensure_derived(table)
    rows = []
    models = (("linear", ("intercept", AGE)), ("quadratic", ("intercept", AGE, f"{AGE}^2")))
    for group in GROUPS:
        for variable in variables:
            sub = d.loc[d["group"] == group, [AGE, variable]].astype("float64").dropna()
            age = sub[AGE].to_numpy()
            y = sub[variable].to_numpy()
            for model, terms in models:
                X = np.column_stack([np.ones_like(age), age, age * age][: len(terms)])
                n = len(y)
                fit = None
                if n > len(terms) and np.linalg.matrix_rank(X) == len(terms):
                    with warnings.catch_warnings(), np.errstate(all="ignore"):
                        warnings.simplefilter("ignore")
                        fit = OLS(y, X).fit()
                for k, term in enumerate(terms):
                    if fit is None:
                        values = dict.fromkeys(
                            ("coefficient", "se", "ci_low", "ci_high", "p_value", "r_squared", "adj_r_squared"),
                            math.nan,
                        )
                    else:
                        ci = np.asarray(fit.conf_int(1 - CONFIDENCE))
                        values = {
                            "coefficient": fit.params[k],
                            "se": fit.bse[k],
                            "ci_low": ci[k, 0],
                            "ci_high": ci[k, 1],
                            "p_value": fit.pvalues[k],
                            "r_squared": fit.rsquared,
                            "adj_r_squared": fit.rsquared_adj,
                        }
                    rows.append({"group": group, "variable": variable, "model": model, "term": term, **values, "n": n})
    return _finish(pd.DataFrame(rows), REGRESSIONS_COLUMNS, ints=("n",))


# ---------------------------------------------------------------------------------------------
# Outliers


def outlier_flags(
    table: pd.DataFrame,
    iqr_factor: float = 2.0,
    z_threshold: float = 3.5,
    min_stratum: int = 5,
    variables=OUTLIER_VARIABLES,
    mad_zero: str = "no_flag",
) -> pd.DataFrame:
    """Boolean flags (rows of the derived table, columns ``variables``) of the reference rule:
    within a group x age-group stratum of at least ``min_stratum`` subjects, a value outside
    [Q1 - f IQR, Q3 + f IQR] and with |0.6745 (x - median) / MAD| > ``z_threshold``.
    ``mad_zero``: ``"no_flag"`` (MAD = 0 flags nothing) or ``"reference"`` (MAD -> 1e-10)."""
    if mad_zero not in ("no_flag", "reference"):
        raise ValueError(f"mad_zero must be 'no_flag' or 'reference', not {mad_zero!r}")
    d = _ensure_derived(table)
    variables = list(variables)
    flags = pd.DataFrame(False, index=d.index, columns=variables)
    # Subjects without an age group belong to no stratum and are never flagged.
    has_age_group = d[AGE_GROUP].notna().to_numpy()
    stratified = d.loc[has_age_group]
    if stratified.empty:
        return flags
    values = stratified[variables].astype("float64")
    keys = [
        stratified["group"].astype("string").to_numpy(object),
        stratified[AGE_GROUP].astype("string").to_numpy(object),
    ]
    grouped = values.groupby(keys, sort=False)
    eligible = grouped[variables[0]].transform("size").to_numpy() >= min_stratum
    q1 = grouped.transform("quantile", 0.25)
    q3 = grouped.transform("quantile", 0.75)
    median = grouped.transform("median")
    deviation = (values - median).abs()
    mad = deviation.groupby(keys, sort=False).transform("median")
    iqr = q3 - q1
    fails_iqr = (values < q1 - iqr_factor * iqr) | (values > q3 + iqr_factor * iqr)
    if mad_zero == "reference":
        mad = mad.mask(mad == 0, 1e-10)
    with np.errstate(divide="ignore", invalid="ignore"):
        z = 0.6745 * deviation / mad
    fails_z = (z > z_threshold) & (mad > 0)
    flagged = (fails_iqr & fails_z).fillna(False).astype(bool) & values.notna() & eligible[:, None]
    flags.iloc[np.flatnonzero(has_age_group)] = flagged.to_numpy(bool)
    return flags


def outliers(
    table: pd.DataFrame,
    iqr_factor: float = 2.0,
    z_threshold: float = 3.5,
    min_stratum: int = 5,
    min_flags: int = 3,
    variables=OUTLIER_VARIABLES,
    mad_zero: str = "no_flag",
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """``(kept, removed)``: the derived table without subjects with ``min_flags`` or more
    flags (:func:`outlier_flags`), and who was removed and why (:data:`OUTLIERS_COLUMNS`,
    ``flagged_variables`` joined with ``;``), sorted by group, age group, subject."""
    d = _ensure_derived(table)
    variables = list(variables)
    flags = outlier_flags(
        d,
        iqr_factor=iqr_factor,
        z_threshold=z_threshold,
        min_stratum=min_stratum,
        variables=variables,
        mad_zero=mad_zero,
    )
    n_flags = flags.sum(axis=1).to_numpy(int)
    remove = n_flags >= min_flags
    gone = d.loc[remove]
    flagged = flags.loc[remove].to_numpy(bool)
    size = d.groupby(["group", AGE_GROUP], observed=True).size()
    names = np.array(variables, dtype=object)
    removed = pd.DataFrame(
        {
            "subject_id": gone["subject_id"].to_numpy(object),
            "group": gone["group"].to_numpy(object),
            "age_group": gone[AGE_GROUP].astype("string").to_numpy(object),
            "n_flags": n_flags[remove],
            "flagged_variables": [";".join(names[row]) for row in flagged],
        }
    )
    removed["reason"] = [
        f"{k} of {len(variables)} variables (removal at {min_flags}) outside [Q1 - {iqr_factor:g} IQR, "
        f"Q3 + {iqr_factor:g} IQR] and with |modified z| > {z_threshold:g} within stratum {g} {a} "
        f"(n = {int(size.get((g, a), 0))})"
        for k, g, a in zip(removed["n_flags"], removed["group"], removed["age_group"])
    ]
    order = {"group": list(GROUPS), "age_group": list(AGE_GROUP_LABELS)}
    if len(removed):
        removed = removed.iloc[
            np.lexsort(
                [
                    removed["subject_id"].to_numpy(str),
                    pd.Categorical(removed["age_group"], categories=order["age_group"]).codes,
                    pd.Categorical(removed["group"], categories=order["group"]).codes,
                ]
            )
        ]
    kept = d.loc[~remove].copy()
    kept.attrs["notes"] = {**d.attrs.get("notes", {}), "n_outliers_removed": int(remove.sum())}
    return kept, _finish(removed.reset_index(drop=True), OUTLIERS_COLUMNS, ints=("n_flags",))


# ---------------------------------------------------------------------------------------------
# Tables


def _finish(frame: pd.DataFrame, columns, ints=()) -> pd.DataFrame:
    """Contract columns in order, strings as ``string``, counts as int64, the rest float64."""
    frame = frame.reindex(columns=list(columns))
    for column in columns:
        if column in ints:
            frame[column] = frame[column].astype("int64")
        elif frame[column].dtype == object or isinstance(frame[column].dtype, (pd.StringDtype, pd.CategoricalDtype)):
            frame[column] = frame[column].astype("string")
        else:
            frame[column] = frame[column].astype("float64")
    return frame.reset_index(drop=True)


# ---------------------------------------------------------------------------------------------
# Longitudinal change by group (docs/method.md section 8)

DAYS_PER_YEAR = 365.25
CHANGE_COUNT = "new_or_enlarging_lesions"
CHANGE_VOLUME = "new_or_enlarging_volume_ml"
CHANGE_RATE = "new_or_enlarging_per_year"
INTERVAL_YEARS = "interval_years"
#: Columns :func:`change_input` needs: those of the workflow's ``longitudinal.parquet``.
CHANGE_INPUT_COLUMNS = (
    "subject_id",
    "group",
    "baseline_session",
    "followup_session",
    "status",
    "interval_days",
    "new_lesions",
    "enlarging_lesions",
    CHANGE_COUNT,
    "shrinking_lesions",
    "vanished_lesions",
    "new_volume_ml",
    "enlarging_volume_ml",
)
#: Statuses of ``longitudinal.parquet`` that keep a pair out of the statistics, and the
#: column of :func:`change_summary` that counts each.
CHANGE_EXCLUSIONS = {
    "poor_registration": "n_poor_registration",
    "registration_failed": "n_registration_failed",
    "failed": "n_job_failed",
}
#: Per-pair variables of :func:`change_descriptives` (analysed pairs only).
CHANGE_PAIR_VARIABLES = (
    "new_lesions",
    "enlarging_lesions",
    CHANGE_COUNT,
    "shrinking_lesions",
    "vanished_lesions",
    CHANGE_VOLUME,
    INTERVAL_YEARS,
)
CHANGE_SUMMARY_COLUMNS = (
    "group",
    "n_subjects",
    "n_pairs",
    "n_poor_registration",
    "n_registration_failed",
    "n_job_failed",
    "n_analysed",
    "n_active",
    "active_share",
    "active_ci_low",
    "active_ci_high",
    "total_new_or_enlarging",
    "total_new_or_enlarging_volume_ml",
    "n_analysed_with_interval",
    "n_subjects_with_interval",
    "follow_up_years",
    "rate_per_year",
)
CHANGE_DESCRIPTIVES_COLUMNS = ("variable", "unit", "group", "n", "mean", "sd", "median", "q25", "q75", "min", "max")
CHANGE_TESTS_COLUMNS = (*TESTS_COLUMNS, "note")
NB_TEST = "negative binomial (NB2) regression, offset log({exposure}), Wald"
NB_OVERALL_TEST = "negative binomial (NB2) regression, likelihood-ratio test of group"


def change_input(raw: pd.DataFrame, source: str = "longitudinal table") -> pd.DataFrame:
    """The workflow's table of changes (``longitudinal.parquet``, one row per pair) with checked
    types and derived columns: ``analysed`` (status ``ok``: the only pairs counted),
    ``interval_years`` (``interval_days`` / 365.25; missing when unknown or not positive),
    ``new_or_enlarging_volume_ml`` (new + enlarging volume). Raises ``ValueError`` naming
    ``source`` and the missing columns."""
    missing = [c for c in CHANGE_INPUT_COLUMNS if c not in raw.columns]
    if missing:
        raise ValueError(f"{source}: not a table of changes: missing columns {missing}")
    out = raw.copy()
    for column in ("subject_id", "group", "baseline_session", "followup_session", "status"):
        out[column] = out[column].astype("string")
    numeric = [c for c in CHANGE_INPUT_COLUMNS[5:] if c in out.columns]
    out[numeric] = out[numeric].apply(pd.to_numeric, errors="raise").astype("float64")
    out["analysed"] = (out["status"] == "ok").fillna(False).astype(bool)
    days = out["interval_days"].to_numpy(float)
    with np.errstate(invalid="ignore"):
        out[INTERVAL_YEARS] = np.where(days > 0, days / DAYS_PER_YEAR, np.nan)
    out[CHANGE_VOLUME] = out["new_volume_ml"] + out["enlarging_volume_ml"]
    return out.sort_values(["subject_id", "baseline_session"], kind="stable").reset_index(drop=True)


def change_groups(table: pd.DataFrame, groups=()) -> list[str]:
    """The groups of a table of changes in the order of ``groups`` (the config's), those not
    listed there after them, sorted; the first is the reference of every contrast."""
    present = set(table["group"].dropna().astype(str))
    return [g for g in groups if g in present] + sorted(present - set(groups))


def wilson_interval(k: int, n: int, level: float = CONFIDENCE) -> tuple[float, float]:
    """Wilson score interval of a proportion ``k / n`` (Wilson 1927, statsmodels'
    ``proportion_confint``); missing for ``n = 0``."""
    if n == 0:
        return math.nan, math.nan
    low, high = proportion_confint(k, n, alpha=1 - level, method="wilson")
    return float(low), float(high)


def change_by_subject(table: pd.DataFrame) -> pd.DataFrame:
    """One row per subject and group (the group of the pair's baseline scan) of the analysed
    pairs: ``n_pairs``, ``new_or_enlarging_lesions`` (summed), ``n_pairs_with_interval`` and,
    over those pairs only, ``count_with_interval``, ``follow_up_years`` and
    ``new_or_enlarging_per_year`` (their count / their years; missing without such a pair)."""
    d = table[table["analysed"]].copy()
    timed = d[INTERVAL_YEARS].notna()
    d["count_with_interval"] = d[CHANGE_COUNT].where(timed, 0.0)
    d["timed"] = timed.astype(int)
    grouped = d.groupby(["subject_id", "group"], sort=True, observed=True)
    out = pd.DataFrame(
        {
            "n_pairs": grouped.size(),
            CHANGE_COUNT: grouped[CHANGE_COUNT].sum(),
            "n_pairs_with_interval": grouped["timed"].sum(),
            "count_with_interval": grouped["count_with_interval"].sum(),
            "follow_up_years": grouped[INTERVAL_YEARS].sum(min_count=1),
        }
    ).reset_index()
    out[CHANGE_RATE] = out["count_with_interval"] / out["follow_up_years"]
    return out


def change_summary(table: pd.DataFrame, groups=()) -> pd.DataFrame:
    """Per group (:func:`change_groups` order) and pooled (``all``), one row
    (:data:`CHANGE_SUMMARY_COLUMNS`): subjects and pairs; the pairs left out of every count
    (poor or failed registration, failed job; :data:`CHANGE_EXCLUSIONS`); the analysed pairs,
    those with any new or enlarging lesion (``n_active``) and their share with its Wilson 95%
    interval (pairs of one subject are counted as independent here); the total count and
    volume (mL) of new and enlarging lesions; the analysed pairs with a known interval, their
    subjects, their follow-up in years and the crude rate (their count / their years)."""
    levels = change_groups(table, groups)
    rows = []
    for group in [*levels, POOLED] if levels else []:
        d = table if group == POOLED else table[table["group"] == group]
        analysed = d[d["analysed"]]
        timed = analysed[analysed[INTERVAL_YEARS].notna()]
        active = int((analysed[CHANGE_COUNT] > 0).sum())
        low, high = wilson_interval(active, len(analysed))
        years = float(timed[INTERVAL_YEARS].sum())
        rows.append(
            {
                "group": group,
                "n_subjects": d["subject_id"].nunique(),
                "n_pairs": len(d),
                **{column: int((d["status"] == status).sum()) for status, column in CHANGE_EXCLUSIONS.items()},
                "n_analysed": len(analysed),
                "n_active": active,
                "active_share": active / len(analysed) if len(analysed) else math.nan,
                "active_ci_low": low,
                "active_ci_high": high,
                "total_new_or_enlarging": float(analysed[CHANGE_COUNT].sum()),
                "total_new_or_enlarging_volume_ml": float(analysed[CHANGE_VOLUME].sum()),
                "n_analysed_with_interval": len(timed),
                "n_subjects_with_interval": timed["subject_id"].nunique(),
                "follow_up_years": years,
                "rate_per_year": float(timed[CHANGE_COUNT].sum()) / years if years > 0 else math.nan,
            }
        )
    ints = [c for c in CHANGE_SUMMARY_COLUMNS if c.startswith("n_")]
    return _finish(pd.DataFrame(rows, columns=list(CHANGE_SUMMARY_COLUMNS)), CHANGE_SUMMARY_COLUMNS, ints=ints)


def change_descriptives(table: pd.DataFrame, groups=()) -> pd.DataFrame:
    """Long table (:data:`CHANGE_DESCRIPTIVES_COLUMNS`) per variable and group (and ``all``):
    the per-pair variables (:data:`CHANGE_PAIR_VARIABLES`, ``unit`` ``pair``, analysed pairs)
    and each subject's annualised rate ``new_or_enlarging_per_year`` (``unit`` ``subject``,
    :func:`change_by_subject`). Statistics as :func:`descriptives` (SD ddof 1, linear
    quartiles; ``n`` counts non-missing values)."""
    levels = change_groups(table, groups)
    analysed = table[table["analysed"]]
    subjects = change_by_subject(table)
    rows = []
    for variable, unit, frame in [
        *((v, "pair", analysed) for v in CHANGE_PAIR_VARIABLES),
        (CHANGE_RATE, "subject", subjects),
    ]:
        for group in [*levels, POOLED] if levels else []:
            values = frame[variable] if group == POOLED else frame.loc[frame["group"] == group, variable]
            values = values.dropna().astype(float)
            rows.append(
                {
                    "variable": variable,
                    "unit": unit,
                    "group": group,
                    "n": len(values),
                    "mean": values.mean(),
                    "sd": values.std(ddof=1),
                    "median": values.median(),
                    "q25": values.quantile(0.25),
                    "q75": values.quantile(0.75),
                    "min": values.min(),
                    "max": values.max(),
                }
            )
    frame = pd.DataFrame(rows, columns=list(CHANGE_DESCRIPTIVES_COLUMNS))
    return _finish(frame, CHANGE_DESCRIPTIVES_COLUMNS, ints=("n",))


def negative_binomial_rates(counts, exposure, group_codes, group_names) -> dict:
    """Negative binomial (NB2) regression of ``counts`` on group (dummy coded; ``group_codes``
    index ``group_names``, group 0 the reference) with offset log(``exposure``), by maximum likelihood (statsmodels
    ``NegativeBinomial``, BFGS from the Poisson fit); variance mu + alpha mu^2.

    Returns ``log_ratio``, ``se``, ``z``, ``p`` (arrays over groups 1..k-1 against group 0,
    Wald), ``alpha``, ``lr``, ``lr_p`` (likelihood-ratio test of all group terms against the
    intercept-only model, k - 1 df) and ``error`` (``None``, or why the model cannot be
    estimated: a group without any event gives a rate ratio of 0 or infinity, no event at all
    or no converged fit gives nothing)."""
    from statsmodels.discrete.discrete_model import NegativeBinomial

    counts = np.asarray(counts, float)
    group_codes = np.asarray(group_codes, int)
    n_groups = len(group_names)
    totals = np.bincount(group_codes, weights=counts, minlength=n_groups)
    nan = np.full(n_groups - 1, np.nan)
    failed = {"log_ratio": nan, "se": nan, "z": nan, "p": nan, "alpha": math.nan, "lr": math.nan, "lr_p": math.nan}
    if (totals == 0).any():
        empty = ", ".join(str(group_names[i]) for i in range(n_groups) if totals[i] == 0)
        return failed | {"error": f"no new or enlarging lesion in {empty}: the rate ratio is 0 or infinite"}
    if len(counts) < n_groups + 2:
        return failed | {"error": f"{len(counts)} subjects are too few for {n_groups} group rates and a dispersion"}
    design = np.column_stack([np.ones(len(counts))] + [(group_codes == g).astype(float) for g in range(1, n_groups)])
    offset = np.log(np.asarray(exposure, float))

    def fit(exog):
        with warnings.catch_warnings(), np.errstate(all="ignore"):
            warnings.simplefilter("ignore")
            return NegativeBinomial(counts, exog, offset=offset, loglike_method="nb2").fit(
                method="bfgs", maxiter=1000, disp=0
            )

    try:
        full, null = fit(design), fit(design[:, :1])
    except (np.linalg.LinAlgError, ValueError) as exc:
        return failed | {"error": f"the model could not be fitted ({exc})"}
    params, bse = np.asarray(full.params), np.asarray(full.bse)
    if not full.mle_retvals.get("converged", False) or not np.isfinite(np.r_[params, bse]).all():
        return failed | {"error": "the model did not converge"}
    z = params[1:n_groups] / bse[1:n_groups]
    lr = max(0.0, 2.0 * (float(full.llf) - float(null.llf)))
    return {
        "log_ratio": params[1:n_groups],
        "se": bse[1:n_groups],
        "z": z,
        "p": 2 * sps.norm.sf(np.abs(z)),
        "alpha": float(params[-1]),
        "lr": lr,
        "lr_p": float(sps.chi2.sf(lr, n_groups - 1)),
        "error": None,
    }


def change_tests(table: pd.DataFrame, groups=()) -> pd.DataFrame:
    """Between-group tests of new and enlarging lesions (:data:`CHANGE_TESTS_COLUMNS`), each
    group against the first (:func:`change_groups`), on subjects (:func:`change_by_subject`):
    a subject's pairs are not independent, so each subject counts once, with its summed count
    over its summed follow-up.

    * ``change_rate``: negative binomial regression of the count with log follow-up (years)
      as offset (:func:`negative_binomial_rates`); effect size the rate ratio with its Wald 95%
      interval; with three or more groups also a likelihood-ratio test of group. Subjects
      whose analysed pairs have no known interval are left out (``note`` counts them). Where no
      analysed pair has a known interval the offset is the number of pairs (a count per
      interval between scans, which assumes comparable intervals; ``variable`` and ``note``
      say so).
    * ``change_rank``: Mann-Whitney U of the subjects' annualised rates (per pair without any
      interval), with rank-biserial r and probability of superiority as :func:`tests`.

    ``p_adjusted``: Holm within each analysis over its contrasts. Empty (the columns only) with
    fewer than two groups with analysed pairs."""
    subjects = change_by_subject(table)
    levels = [g for g in change_groups(table, groups) if (subjects["group"] == g).any()]
    if len(levels) < 2:
        return _finish(pd.DataFrame(columns=list(CHANGE_TESTS_COLUMNS)), CHANGE_TESTS_COLUMNS, ints=("n1", "n2"))
    timed = subjects[subjects["follow_up_years"] > 0]
    if len(timed):
        data, count, exposure = timed, "count_with_interval", "follow_up_years"
        rate, variable = CHANGE_RATE, CHANGE_RATE
        left_out = len(subjects) - len(timed)
        note = (
            f"{left_out} subject(s) without a known interval (sheet days) left out"
            if left_out
            else "every subject timed"
        )
    else:
        data, count, exposure = subjects, CHANGE_COUNT, "n_pairs"
        data = data.assign(per_pair=data[CHANGE_COUNT] / data["n_pairs"])
        rate, variable = "per_pair", "new_or_enlarging_per_pair"
        note = "no interval known (sheet days): count per interval between scans, assuming comparable intervals"
    codes = data["group"].map({g: i for i, g in enumerate(levels)}).to_numpy(int)
    n = np.bincount(codes, minlength=len(levels))
    model = negative_binomial_rates(data[count], data[exposure], codes, levels)
    model_note = f"{note}; " + (model["error"] or f"dispersion alpha = {model['alpha']:.3g}")
    z = sps.norm.ppf(0.5 + CONFIDENCE / 2)
    rows = []
    reference = levels[0]
    for i, group in enumerate(levels[1:]):
        log_ratio, se = model["log_ratio"][i], model["se"][i]
        rows.append(
            {
                "analysis": "change_rate",
                "variable": variable,
                "contrast": f"{group} vs {reference}",
                "test": NB_TEST.format(exposure=exposure),
                "statistic": model["z"][i],
                "p_value": model["p"][i],
                "effect_size": math.exp(log_ratio) if np.isfinite(log_ratio) else math.nan,
                "effect_size_name": "rate_ratio",
                "ci_low": math.exp(log_ratio - z * se) if np.isfinite(se) else math.nan,
                "ci_high": math.exp(log_ratio + z * se) if np.isfinite(se) else math.nan,
                "n1": int(n[i + 1]),
                "n2": int(n[0]),
                "note": model_note,
            }
        )
    if len(levels) > 2:
        rows.append(
            {
                "analysis": "change_rate",
                "variable": variable,
                "contrast": "group (overall)",
                "test": NB_OVERALL_TEST,
                "statistic": model["lr"],
                "p_value": model["lr_p"],
                "effect_size_name": "none",
                "n1": int(n[1:].sum()),
                "n2": int(n[0]),
                "note": model_note,
            }
        )
    values = data[rate].to_numpy(float)
    for i, group in enumerate(levels[1:]):
        for row in _mw_rows(
            "change_rank", variable, f"{group} vs {reference}", values[codes == i + 1], values[codes == 0]
        ):
            rows.append(row | {"note": note})
    result = pd.DataFrame(rows)
    result["p_adjusted"] = math.nan
    for _, family in result.groupby("analysis", sort=False):
        distinct = family.drop_duplicates(["contrast", "test"])
        adjusted = dict(zip(distinct["contrast"] + distinct["test"], holm(distinct["p_value"].to_numpy(float))))
        result.loc[family.index, "p_adjusted"] = (family["contrast"] + family["test"]).map(adjusted).to_numpy(float)
    return _finish(result, CHANGE_TESTS_COLUMNS, ints=("n1", "n2"))

from functools import partial

from msprofile.jobs.longitudinal import SESSION_FILES, change_pair
from msprofile.longitudinal import ChangeSettings
from msprofile.workflow import run_subject_job

pair = snakemake.params.pair
wildcards = snakemake.wildcards
files = {
    role: {name: snakemake.input.get(f"{role}_{name}") for name in SESSION_FILES} for role in ("baseline", "followup")
}
run_subject_job(
    snakemake,
    "longitudinal_change",
    partial(
        change_pair,
        wildcards.subject_id,
        wildcards.baseline,
        wildcards.followup,
        files["baseline"],
        files["followup"],
        baseline_scan=pair["baseline_scan"],
        followup_scan=pair["followup_scan"],
        interval_days=pair["interval_days"],
        settings=ChangeSettings(**snakemake.params.settings),
        labels_path=snakemake.output.labels,
        change_json_path=snakemake.output.change,
        qc_png_path=snakemake.output.qc_png,
    ),
    upstream=[path for role in files.values() for name, path in role.items() if path and name != "flair"],
    subject_id=f"{wildcards.subject_id} {wildcards.baseline} to {wildcards.followup}",
)

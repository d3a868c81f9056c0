from msprofile.jobs.evaluation import evaluate_segmentations
from msprofile.workflow import logged

with logged(snakemake.log[0], "evaluate segmentation"):
    evaluate_segmentations(
        snakemake.params.subjects,
        snakemake.input.segmentations,
        snakemake.input.uncertainties,
        snakemake.input.brain_masks,
        snakemake.input.wmh,
        snakemake.params.ventricles,
        snakemake.output.table,
        snakemake.output.summary,
        snakemake.output.uncertainty,
        snakemake.output.figure_png,
        snakemake.output.figure_pdf,
        on_error=snakemake.config["on_error"],
    )

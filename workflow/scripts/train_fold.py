from msprofile.jobs.training import cross_validation_fold
from msprofile.segmentation.train import TrainingSettings
from msprofile.workflow import logged

with logged(snakemake.log[0], f"cross-validation fold without {snakemake.wildcards.subject}"):
    cross_validation_fold(
        snakemake.wildcards.subject,
        snakemake.input.slices,
        snakemake.input.flair,
        snakemake.input.brain_mask,
        snakemake.input.wmh,
        snakemake.input.ventricles,
        snakemake.output.result,
        snakemake.output.member,
        TrainingSettings(**snakemake.params.settings),
        phantoms_path=snakemake.input.get("phantoms"),
        init_model_dir=snakemake.params.init_model,
        flips=snakemake.params.flips,
        device=snakemake.params.device,
    )

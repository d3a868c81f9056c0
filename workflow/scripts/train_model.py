from pathlib import Path

from msprofile.jobs.training import train_final_model
from msprofile.segmentation.train import TrainingSettings
from msprofile.workflow import logged

with logged(snakemake.log[0], f"train model {snakemake.params.name}"):
    train_final_model(
        snakemake.params.name,
        snakemake.input.slices,
        snakemake.input.folds,
        snakemake.input.members,
        Path(snakemake.output.model).parent,
        TrainingSettings(**snakemake.params.settings),
        preprocessing=snakemake.params.preprocessing,
        phantoms_path=snakemake.input.get("phantoms"),
        init_model_dir=snakemake.params.init_model,
        flips=snakemake.params.flips,
        device=snakemake.params.device,
    )

"""The ``training`` section of the workflow's configuration as training settings.

Standard library only: the workflow's planning (``workflow/rules/common.smk``) reads it at every
Snakemake start, where importing the training code (SciPy, TensorFlow) would cost seconds.
"""

from __future__ import annotations

#: Settings a fine-tuning run (``training.init_model`` set) takes from its own keys instead.
FINETUNE_KEYS = {
    "epochs": "finetune_epochs",
    "learning_rate": "finetune_learning_rate",
    "randomisation": "finetune_randomisation",
}
#: Keys of the section that choose what is trained, not how.
NOT_SETTINGS = ("name", "subjects", "cross_validate", "init_model", "phantoms")


def training_settings(section: dict, *, finetune: bool) -> dict:
    """Keyword arguments of :class:`msprofile.segmentation.train.TrainingSettings` from the
    config's ``training`` section (a dict as in ``config/config.yaml``).

    With ``finetune`` (a run started from ``training.init_model``) the epochs, learning rate and
    randomisation are the section's ``finetune_*`` values.
    """
    skipped = set(NOT_SETTINGS) | set(FINETUNE_KEYS.values())
    settings = {key: value for key, value in section.items() if key not in skipped}
    if finetune:
        settings.update({key: section[source] for key, source in FINETUNE_KEYS.items()})
    return settings

"""Model files: ``model.keras`` plus its model card ``model.json``, checked by sha256.

The card says what the model expects (classes, input, pixel size, normalisation,
preprocessing settings), how it was trained and validated, what it measured, and the sha256
of the weights file, which :func:`load_model` verifies before loading: a model that does not
match its card is never used.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

from ..io import atomic_path, save_json

MODEL_FILE = "model.keras"
CARD_FILE = "model.json"


class ModelError(RuntimeError):
    """A model folder that cannot be used (missing file, bad card, checksum mismatch)."""


def sha256_of(path: str | os.PathLike) -> str:
    """Hex sha256 of a file, read in 1 MiB blocks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def save_model(model, folder: str | os.PathLike, card: dict) -> dict:
    """Write ``model`` as ``folder/model.keras`` and ``card`` plus the weights' sha256 and
    size as ``folder/model.json``, each atomically. Returns the card as written.

    The optimizer state is left out (an uncompiled copy is saved): inference needs none of
    it, and Adam's two moments would triple the file.
    """
    import keras

    folder = Path(folder)
    inference_model = keras.models.clone_model(model)
    inference_model.set_weights(model.get_weights())
    with atomic_path(folder / MODEL_FILE, suffix=".keras") as tmp:
        inference_model.save(tmp)
    card = {**card, "weights_file": MODEL_FILE, "sha256": sha256_of(folder / MODEL_FILE),
            "size_bytes": (folder / MODEL_FILE).stat().st_size}
    save_json(card, folder / CARD_FILE)
    return card


def read_card(folder: str | os.PathLike) -> dict:
    """The model card of ``folder``; :class:`ModelError` when missing or unreadable."""
    path = Path(folder) / CARD_FILE
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        raise ModelError(f"model card {path} not found") from None
    except json.JSONDecodeError as exc:
        raise ModelError(f"model card {path} is not valid JSON ({exc})") from None


def verify_checksum(folder: str | os.PathLike, card: dict | None = None) -> dict:
    """Check ``model.keras`` against the card's sha256; returns the card."""
    folder = Path(folder)
    card = read_card(folder) if card is None else card
    weights = folder / card.get("weights_file", MODEL_FILE)
    if not weights.is_file():
        raise ModelError(f"model weights {weights} not found")
    actual = sha256_of(weights)
    if actual != card.get("sha256"):
        raise ModelError(f"model weights {weights} do not match their card: sha256 {actual}, card says {card.get('sha256')}")
    return card


def load_model(folder: str | os.PathLike):
    """Verify and load a model folder; returns ``(keras model, card)``.

    Loaded with Keras' safe mode on (no arbitrary code from the file) and without the
    training configuration (inference needs none).
    """
    import keras

    card = verify_checksum(folder)
    model = keras.saving.load_model(Path(folder) / card.get("weights_file", MODEL_FILE), compile=False, safe_mode=True)
    return model, card

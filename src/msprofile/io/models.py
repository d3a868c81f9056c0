"""Model folders: ``model.keras`` (training format), ``model.onnx`` (inference format) and the
model card ``model.json``.

The card says what the model expects (classes, input, pixel size, normalisation,
preprocessing settings), how it was trained and validated, what it measured, and the
sha256 of each file, which is verified before the file is used: a model that does not
match its card is never run.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

from . import atomic_path, save_json

KERAS_FILE = "model.keras"
ONNX_FILE = "model.onnx"
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


def _file_entry(path: Path) -> dict:
    return {"sha256": sha256_of(path), "size_bytes": path.stat().st_size}


def save_model(model, onnx_model: bytes, folder: str | os.PathLike, card: dict) -> dict:
    """Write the Keras ``model`` as ``model.keras``, the serialised ONNX network ``onnx_model`` as
    ``model.onnx`` and the card with both files' sha256 as ``model.json`` into ``folder``, each
    atomically. Returns the card as written.

    ``model`` should be an uncompiled inference copy
    (:func:`msprofile.segmentation.model.inference_copy`) and ``onnx_model`` its checked export
    (:func:`msprofile.segmentation.onnx_export.checked_onnx`).
    """
    folder = Path(folder)
    with atomic_path(folder / KERAS_FILE, suffix=".keras") as tmp:
        model.save(tmp)
    with atomic_path(folder / ONNX_FILE, suffix=".onnx") as tmp:
        tmp.write_bytes(onnx_model)
    card = {**card, "files": {name: _file_entry(folder / name) for name in (KERAS_FILE, ONNX_FILE)}}
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


def verified_path(folder: str | os.PathLike, name: str, card: dict) -> Path:
    """Path of the model file ``name`` after checking it against the card's sha256."""
    path = Path(folder) / name
    expected = card.get("files", {}).get(name, {}).get("sha256")
    if expected is None:
        raise ModelError(f"model card {Path(folder) / CARD_FILE} lists no {name}")
    if not path.is_file():
        raise ModelError(f"model file {path} not found")
    actual = sha256_of(path)
    if actual != expected:
        raise ModelError(f"model file {path} does not match its card: sha256 {actual}, card says {expected}")
    return path


def load_keras_model(folder: str | os.PathLike):
    """Verify and load the Keras model (safe mode, no training configuration); returns
    ``(model, card)``."""
    import keras

    card = read_card(folder)
    model = keras.saving.load_model(verified_path(folder, KERAS_FILE, card), compile=False, safe_mode=True)
    return model, card


def load_onnx(folder: str | os.PathLike) -> tuple[bytes, dict]:
    """Verify the ONNX network of ``folder`` against its card; returns ``(serialised network,
    card)`` for :class:`msprofile.segmentation.onnx_export.OnnxNetwork`."""
    card = read_card(folder)
    return verified_path(folder, ONNX_FILE, card).read_bytes(), card

"""Model folders: ``model.keras`` (training format), ``model.onnx`` (inference format), the
ensemble members ``members/*.onnx`` (the cross-validation folds' networks) and the model card
``model.json``.

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
MEMBERS_DIR = "members"


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


def save_model(
    model, onnx_model: bytes, folder: str | os.PathLike, card: dict, members: dict[str, bytes] | None = None
) -> dict:
    """Write the Keras ``model`` as ``model.keras``, the serialised ONNX network ``onnx_model`` as
    ``model.onnx``, each of ``members`` (name -> serialised ONNX network) as
    ``members/<name>.onnx``, and the card with every file's sha256 as ``model.json`` into
    ``folder``, each atomically; member files of an earlier model that are not in ``members``
    are removed. The card's ``ensemble`` section lists the networks in the order
    :func:`load_ensemble` runs them: ``model.onnx`` first, then the members. Returns the card
    as written.

    ``model`` should be an uncompiled inference copy
    (:func:`msprofile.segmentation.model.inference_copy`) and ``onnx_model`` its checked export
    (:func:`msprofile.segmentation.onnx_export.checked_onnx`).
    """
    folder = Path(folder)
    members = members or {}
    with atomic_path(folder / KERAS_FILE, suffix=".keras") as tmp:
        model.save(tmp)
    with atomic_path(folder / ONNX_FILE, suffix=".onnx") as tmp:
        tmp.write_bytes(onnx_model)
    member_files = [f"{MEMBERS_DIR}/{name}.onnx" for name in members]
    for old in sorted((folder / MEMBERS_DIR).glob("*.onnx")):
        if f"{MEMBERS_DIR}/{old.name}" not in member_files:
            old.unlink()
    for name, serialised in members.items():
        (folder / MEMBERS_DIR).mkdir(exist_ok=True)
        with atomic_path(folder / MEMBERS_DIR / f"{name}.onnx", suffix=".onnx") as tmp:
            tmp.write_bytes(serialised)
    names = [KERAS_FILE, ONNX_FILE, *member_files]
    ensemble = {**card.get("ensemble", {}), "networks": [ONNX_FILE, *member_files]}
    card = {**card, "ensemble": ensemble, "files": {name: _file_entry(folder / name) for name in names}}
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


def load_ensemble(folder: str | os.PathLike, count: int) -> tuple[list[bytes], dict]:
    """The first ``count`` networks of the card's ensemble (``model.onnx``, then the members),
    each verified against the card, and the card. A folder without members gives its one
    network whatever ``count``; ``count`` < 1 is a :class:`ModelError`."""
    if count < 1:
        raise ModelError(f"an ensemble needs at least one network, asked for {count}")
    card = read_card(folder)
    names = card.get("ensemble", {}).get("networks", [ONNX_FILE])[:count]
    return [verified_path(folder, name, card).read_bytes() for name in names], card

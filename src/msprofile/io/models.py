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

import numpy as np

from ..io import atomic_path, save_json

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


def save_model(model, folder: str | os.PathLike, card: dict, *, check_input: np.ndarray) -> dict:
    """Write ``model`` as ``model.keras`` and ``model.onnx`` in ``folder`` and the card with
    both files' sha256 as ``model.json``, each atomically. Returns the card as written.

    The Keras file leaves the optimizer state and the training loss out (a fresh, uncompiled
    copy of the network with the trained weights is saved): inference needs neither, Adam's
    two moments would triple the file, and a custom loss could not be loaded in safe mode.
    The ONNX export is checked against the Keras output on ``check_input`` (N, H, W, 1)
    before it is written.
    """
    from .model import build_attention_unet
    from .onnx_export import export_onnx

    folder = Path(folder)
    inference_model = build_attention_unet(
        input_shape=model.input_shape[1:], num_classes=model.output_shape[-1],
        base_filters=model.get_layer("enc1_conv1").filters, name=model.name,
    )
    inference_model.set_weights(model.get_weights())
    with atomic_path(folder / KERAS_FILE, suffix=".keras") as tmp:
        inference_model.save(tmp)
    export_onnx(inference_model, folder / ONNX_FILE, check_input=check_input)
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


def load_network(folder: str | os.PathLike, *, device: str = "auto", threads: int = 0):
    """Verify and load the ONNX network for inference; returns ``(OnnxNetwork, card)``."""
    from .onnx_export import OnnxNetwork

    card = read_card(folder)
    return OnnxNetwork(verified_path(folder, ONNX_FILE, card), device=device, threads=threads), card


def export_onnx(model, path: str | os.PathLike, *, check_input: np.ndarray | None = None, atol: float = 1e-4) -> None:
    """Write ``model`` as ONNX to ``path`` (atomically), after checking that ONNX Runtime
    reproduces the Keras output on ``check_input`` (N, H, W, 1) within ``atol``."""
    import onnx

    from ..io import atomic_path

    onnx_model = keras_to_onnx(model)
    if check_input is not None:
        expected = np.asarray(model(check_input, training=False))
        actual = OnnxNetwork(onnx_model.SerializeToString(), device="cpu")(check_input)
        worst = float(np.max(np.abs(actual - expected)))
        if worst > atol:
            raise RuntimeError(f"ONNX export differs from the Keras model by {worst:.2e} (> {atol})")
    with atomic_path(path, suffix=".onnx") as tmp:
        onnx.save(onnx_model, tmp)


class OnnxNetwork:
    """An ONNX network ready to run: ``network(batch)`` maps (N, H, W, 1) float32 slices to
    (N, H, W, classes) probabilities. ``device``: ``"cpu"``, ``"gpu"`` (CUDA, required) or
    ``"auto"`` (CUDA when ONNX Runtime offers it). ``threads``: CPU threads (0: the runtime's
    default)."""

    def __init__(self, model: str | os.PathLike | bytes, device: str = "auto", threads: int = 0):
        import onnxruntime as ort

        available = ort.get_available_providers()
        wants_gpu = device in ("gpu", "auto") and "CUDAExecutionProvider" in available
        if device == "gpu" and not wants_gpu:
            raise RuntimeError("segmentation.device is 'gpu' but ONNX Runtime offers no CUDA provider "
                               "(install the gpu extra: onnxruntime-gpu, on a machine with a CUDA GPU)")
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        # The default arena keeps every activation buffer it ever allocated; a job that runs
        # one subject and exits gains nothing from it and would hold gigabytes.
        options.enable_cpu_mem_arena = False
        providers = ["CUDAExecutionProvider", "CPUExecutionProvider"] if wants_gpu else ["CPUExecutionProvider"]
        source = model if isinstance(model, bytes) else os.fspath(model)
        self.session = ort.InferenceSession(source, sess_options=options, providers=providers)
        self.device = "gpu" if self.session.get_providers()[0] == "CUDAExecutionProvider" else "cpu"

    def __call__(self, batch: np.ndarray) -> np.ndarray:
        return self.session.run([OUTPUT_NAME], {INPUT_NAME: np.ascontiguousarray(batch, dtype=np.float32)})[0]

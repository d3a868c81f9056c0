"""Segmentation speed and memory: forward pass per slice, the ensemble per subject, per-job overhead, peak memory.

Prints one ``name value unit`` line per figure, for the shipped model and for the reference
width (base filters 64, 31.4 M parameters; random weights, exported the same way):

* forward pass in ms per slice on the CPU with 2 threads and with 1 thread (a real 20-slice
  subject of ../shared/data/flair_sample, in batches of ``segmentation.batch_size`` of
  config/config.yaml as the segment rule runs it; ``--batch-size`` for another), median and
  minimum over repeats after a warm-up;
* per-job overhead in s: a fresh Python process doing everything a segment job does but the
  forward pass (interpreter start, imports, checksum, model load, reading the inputs),
  median over repeats; for comparison, the same for ``import tensorflow`` alone;
* the shipped ensemble (``segmentation.ensemble_members`` of config/config.yaml, and one
  network alone for comparison): seconds per 20-slice subject of a whole segment job in a
  fresh process on 2 threads (interpreter, imports, checksums, every network's session, the
  forward passes, post-processing, the three outputs written), median over repeats, and the
  part of it that is not forward passes (the overhead);
* peak resident memory in MB of a process running a whole segment job;
* on a machine whose ONNX Runtime offers CUDA, the forward pass in ms per slice on the GPU.

Targets on 2 cores: shipped model at most 2 s per 20-slice subject, per-job overhead at most
3 s (issue 3); the shipped ensemble at most 3 s per 20-slice subject, overhead included
(issue 12). Reference figures measured on the project's 2-core machine: 0.39 s per slice on
2 threads for the reference width in TensorFlow, ``import tensorflow`` about 3.0 s.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
SAMPLE = REPO / ".." / "shared" / "data" / "flair_sample"
SUBJECT = "104252"


def python_seconds(code: str, repeats: int) -> list[float]:
    """Wall seconds of fresh interpreters running ``code``."""
    seconds = []
    for _ in range(repeats):
        started = time.perf_counter()
        subprocess.run([sys.executable, "-c", code], check=True, capture_output=True)
        seconds.append(time.perf_counter() - started)
    return seconds


def forward_ms_per_slice(
    model_dir: Path, batch: np.ndarray, device: str, threads: int, repeats: int, batch_size: int
) -> list[float]:
    from msprofile.jobs.segmentation import load_network

    network, _ = load_network(model_dir, device=device, threads=threads)
    run = lambda: [network(batch[i : i + batch_size]) for i in range(0, len(batch), batch_size)]  # noqa: E731
    run()
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        run()
        times.append((time.perf_counter() - started) * 1000.0 / len(batch))
    return times


def ensemble_forward_seconds(
    model_dir: Path, paths: dict, members: int, flips: bool, repeats: int, batch_size: int
) -> list[float]:
    """In-process seconds of the ensemble's forward passes for one subject (sessions warm)."""
    from msprofile.geometry import Grid
    from msprofile.io import load_image, read_grid
    from msprofile.jobs.segmentation import load_networks
    from msprofile.segmentation.data import brain_to_model, input_normalisation
    from msprofile.segmentation.infer import ensemble_probabilities

    networks, card = load_networks(model_dir, members, device="cpu", threads=2)
    flair, affine = load_image(paths["flair_preproc"], "bench")
    model_grid = Grid(flair.shape, affine)
    brain = brain_to_model(load_image(paths["brain_mask"], "bench")[0] > 0, read_grid(paths["brain_mask"]), model_grid)
    options = {"normalisation": input_normalisation(card), "context": int(card["input"].get("context_slices", 0))}
    run = lambda: ensemble_probabilities(networks, flair, brain, flips=flips, batch_size=batch_size, **options)  # noqa: E731
    run()
    seconds = []
    for _ in range(repeats):
        started = time.perf_counter()
        run()
        seconds.append(time.perf_counter() - started)
    return seconds


def segment_job_seconds(
    model_dir: Path, paths: dict, out: Path, members: int, flips: bool, repeats: int, batch_size: int
) -> list[float]:
    """Wall seconds of fresh processes running a whole segment job on 2 threads."""
    return python_seconds(
        textwrap.dedent(f"""
        from msprofile.jobs.segmentation import segment_subject
        segment_subject("bench", {str(paths["flair_preproc"])!r}, {str(paths["brain_mask"])!r}, {str(model_dir)!r},
                        {str(out / "seg.nii.gz")!r}, {str(out / "unc.nii.gz")!r}, members={members},
                        flips={flips}, device="cpu", batch_size={batch_size}, threads=2)
        """),
        repeats,
    )


def reference_width_model(folder: Path, batch: np.ndarray) -> Path:
    from msprofile.jobs.training import save_trained_model
    from msprofile.segmentation.data import NORMALISATION
    from msprofile.segmentation.model import build_attention_unet

    model = build_attention_unet(input_shape=(None, None, 1), base_filters=64)
    card = {"name": "reference-width-random", "input": {"normalisation": NORMALISATION, "context_slices": 0}}
    save_trained_model(model, folder, card, check_input=batch[:1])
    return folder


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, default=REPO / "resources" / "models" / "msprofile-default")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--shipped-only", action="store_true", help="leave out the reference-width model")
    parser.add_argument("--batch-size", type=int, help="slices per forward pass (default: the config's)")
    args = parser.parse_args()
    if not (SAMPLE / SUBJECT / "flair.nii.gz").is_file():
        raise SystemExit(f"real sample not found at {SAMPLE.resolve()}")

    from msprofile.io import load_image
    from msprofile.jobs.preprocess import preprocess_subject
    from msprofile.preprocess import PreprocessSettings
    from msprofile.segmentation.data import SLICE_ZSCORE, model_input

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        paths = {k: tmp / f"{k}.nii.gz" for k in ("brain_mask", "flair_preproc")}
        preprocess_subject(
            SUBJECT,
            SAMPLE / SUBJECT / "flair.nii.gz",
            skull_stripped=False,
            settings=PreprocessSettings(),
            brain_mask_path=paths["brain_mask"],
            flair_preproc_path=paths["flair_preproc"],
            qc_json_path=tmp / "qc.json",
            qc_png_path=tmp / "qc.png",
        )
        # Whole slices, as the shipped (slice z-score) model runs; the forward time does not
        # depend on the intensities.
        batch = model_input(load_image(paths["flair_preproc"], SUBJECT)[0], None, SLICE_ZSCORE)
        models = {"shipped": args.model}
        if not args.shipped_only:
            models["reference_width"] = reference_width_model(tmp / "reference", batch)

        import yaml

        segmentation = yaml.safe_load((REPO / "config" / "config.yaml").read_text())["segmentation"]
        shipped_members = segmentation["ensemble_members"]
        flips = segmentation["test_time_flips"]
        batch_size = args.batch_size or segmentation["batch_size"]
        print(f"batch_size {batch_size} slices")
        card = json.loads((args.model / "model.json").read_text())
        available = len(card.get("ensemble", {}).get("networks", ["model.onnx"]))
        print(f"shipped_ensemble_networks {min(shipped_members, available)} networks")
        for members, name in ((1, "single_network"), (shipped_members, "ensemble")):
            job = segment_job_seconds(args.model, paths, tmp, members, flips, args.repeats, batch_size)
            forward = ensemble_forward_seconds(args.model, paths, members, flips, args.repeats, batch_size)
            print(f"shipped_{name}_seconds_per_20_slice_subject_2threads {statistics.median(job):.2f} s")
            print(f"shipped_{name}_forward_seconds_per_20_slice_subject_2threads {statistics.median(forward):.2f} s")
            print(f"shipped_{name}_overhead_seconds {statistics.median(job) - statistics.median(forward):.2f} s")
        member_bytes = sum(entry["size_bytes"] for name, entry in card["files"].items() if name.endswith(".onnx"))
        print(f"shipped_onnx_files_size {member_bytes / 1e6:.1f} MB")

        for label, model_dir in models.items():
            for threads in (2, 1):
                ms = forward_ms_per_slice(model_dir, batch, "cpu", threads, args.repeats, batch_size)
                print(f"{label}_forward_ms_per_slice_cpu_{threads}threads_median {statistics.median(ms):.1f} ms")
                print(f"{label}_forward_ms_per_slice_cpu_{threads}threads_min {min(ms):.1f} ms")
            ms = forward_ms_per_slice(model_dir, batch, "cpu", 2, args.repeats, batch_size)
            print(
                f"{label}_forward_seconds_per_20_slice_subject_cpu_2threads {statistics.median(ms) * 20 / 1000:.2f} s"
            )
            overhead = python_seconds(
                textwrap.dedent(f"""
                from msprofile.io import load_image, read_grid
                from msprofile.jobs.segmentation import load_network
                load_network({str(model_dir)!r}, device="cpu", threads=2)
                load_image({str(paths["flair_preproc"])!r}, 'bench'); read_grid({str(paths["brain_mask"])!r})
            """),
                args.repeats,
            )
            print(f"{label}_per_job_overhead_median {statistics.median(overhead):.2f} s")
            print(f"{label}_per_job_overhead_min {min(overhead):.2f} s")
            peak = subprocess.run(
                [
                    sys.executable,
                    "-c",
                    textwrap.dedent(f"""
                import resource
                from msprofile.jobs.segmentation import segment_subject
                segment_subject("bench", {str(paths["flair_preproc"])!r}, {str(paths["brain_mask"])!r},
                                {str(model_dir)!r}, {str(tmp / "seg.nii.gz")!r}, {str(tmp / "unc.nii.gz")!r},
                                device="cpu", batch_size={batch_size}, threads=2)
                print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
            """),
                ],
                check=True,
                capture_output=True,
                text=True,
            ).stdout.split()[-1]
            print(f"{label}_segment_job_peak_memory {int(peak) / 1024:.0f} MB")
            import onnxruntime

            if "CUDAExecutionProvider" in onnxruntime.get_available_providers():
                ms = forward_ms_per_slice(model_dir, batch, "gpu", 0, args.repeats, batch_size)
                print(f"{label}_forward_ms_per_slice_gpu_median {statistics.median(ms):.2f} ms")
            card = json.loads((Path(model_dir) / "model.json").read_text())
            print(f"{label}_onnx_file_size {card['files']['model.onnx']['size_bytes'] / 1e6:.1f} MB")

    tensorflow = python_seconds("import tensorflow", args.repeats)
    print(f"import_tensorflow_seconds_median {statistics.median(tensorflow):.2f} s")


if __name__ == "__main__":
    main()

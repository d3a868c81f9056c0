"""BIDS input at cohort scale: reading a BIDS dataset's scan table, as every Snakemake start does.

Prints one ``name value unit`` line per figure: median and minimum seconds (wall and CPU) over
``--repeats`` calls of :func:`msprofile.bids_input.load_bids_scans` on generated BIDS datasets of
``--sizes`` participants, one FLAIR each (``sub-<n>/anat/sub-<n>_FLAIR.nii.gz``, empty files:
indexing reads names, not images) with ``participants.tsv`` and ``dataset_description.json``.
Generation is not timed. The figures are what BIDS input adds to the planning figures of
``benchmarks/dag.py``.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time
from pathlib import Path


def write_dataset(root: Path, n_participants: int) -> None:
    """A minimal valid BIDS dataset of ``n_participants`` participants with one FLAIR each."""
    root.mkdir(parents=True, exist_ok=True)
    (root / "dataset_description.json").write_text(json.dumps({"Name": "benchmark", "BIDSVersion": "1.9.0"}))
    rows = ["participant_id\tage\tsex\tgroup"]
    for number in range(1, n_participants + 1):
        label = f"{number:05d}"
        anat = root / f"sub-{label}" / "anat"
        anat.mkdir(parents=True)
        (anat / f"sub-{label}_FLAIR.nii.gz").touch()
        rows.append(f"sub-{label}\t{30 + number % 40}\t{'FM'[number % 2]}\t{('HC', 'MS')[number % 3 > 0]}")
    (root / "participants.tsv").write_text("\n".join(rows) + "\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[1381, 13810])
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()

    from msprofile.bids_input import load_bids_scans

    with tempfile.TemporaryDirectory() as tmp:
        for n_participants in args.sizes:
            root = Path(tmp) / f"bids_{n_participants}"
            write_dataset(root, n_participants)
            wall, cpu = [], []
            for _ in range(args.repeats):
                started, started_cpu = time.perf_counter(), time.process_time()
                scans = load_bids_scans(root)
                wall.append(time.perf_counter() - started)
                cpu.append(time.process_time() - started_cpu)
            if len(scans) != n_participants:
                raise SystemExit(f"expected {n_participants} scans, read {len(scans)}")
            print(f"bids_scan_table_seconds_{n_participants}_participants_median {statistics.median(wall):.1f} s")
            print(f"bids_scan_table_seconds_{n_participants}_participants_min {min(wall):.1f} s")
            print(f"bids_scan_table_cpu_seconds_{n_participants}_participants_median {statistics.median(cpu):.1f} s")
    print(f"load_average_1min {os.getloadavg()[0]:.2f} load")


if __name__ == "__main__":
    main()

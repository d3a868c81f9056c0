"""The ``msprofile`` command: the workflow as a BIDS App.

    msprofile BIDS_DIR OUTPUT_DIR participant [--participant-label LABEL ...]
              [--session-label LABEL ...] [--configfile FILE ...] [--config KEY=VALUE ...]
              [any other Snakemake option]

It runs this repository's Snakemake workflow on the BIDS dataset ``BIDS_DIR`` with
``OUTPUT_DIR`` as the results folder and Snakemake's working directory (so its bookkeeping,
``.snakemake/``, stays with the outputs, and two output folders never share a lock). The
``participant`` level runs everything: every selected scan's chain, then the cohort table,
statistics, figures and the BIDS derivatives of the selected participants. Options it does not
know go to Snakemake unchanged (``--cores 8``, ``--dry-run``, ``--workflow-profile slurm``).
The settings come from the repository's ``config/config.yaml`` unless ``--configfile`` names
others; the positional arguments and label filters override them.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

from . import __version__

#: The repository's workflow, beside the package's source folder (an editable install).
REPOSITORY = Path(__file__).resolve().parents[2]
SNAKEFILE = REPOSITORY / "workflow" / "Snakefile"
DEFAULT_CONFIG = REPOSITORY / "config" / "config.yaml"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="msprofile",
        description=(
            "Neuroanatomical profiling of multiple sclerosis from FLAIR MRI, run on a BIDS dataset "
            "(a BIDS App). Options not listed here are passed on to Snakemake, e.g. --cores 8 or --dry-run."
        ),
    )
    parser.add_argument("bids_dir", help="root folder of the BIDS dataset (with participants.tsv)")
    parser.add_argument("output_dir", help="results folder, written as a BIDS derivatives dataset")
    parser.add_argument(
        "analysis_level",
        choices=["participant"],
        help="participant: every selected scan, then the cohort table, statistics and figures",
    )
    parser.add_argument(
        "--participant-label",
        "--participant_label",
        nargs="+",
        action="extend",
        default=[],
        metavar="LABEL",
        help="participants to process (with or without sub-); default: all",
    )
    parser.add_argument(
        "--session-label",
        "--session_label",
        nargs="+",
        action="extend",
        default=[],
        metavar="LABEL",
        help="sessions to process (with or without ses-); default: all",
    )
    parser.add_argument(
        "--configfile",
        "--configfiles",
        nargs="+",
        action="extend",
        default=[],
        metavar="FILE",
        help=f"workflow config files, later ones overriding earlier ones (default: {DEFAULT_CONFIG})",
    )
    parser.add_argument(
        "--config",
        "-C",
        nargs="+",
        action="extend",
        default=[],
        metavar="KEY=VALUE",
        help="single config values, as with snakemake --config",
    )
    parser.add_argument("--version", action="version", version=f"msprofile {__version__}")
    return parser


def snakemake_command(argv: list[str]) -> list[str]:
    """The Snakemake command line that runs ``msprofile argv``. Raises ``SystemExit`` (with a
    message, as argparse does) for arguments that cannot be run."""
    parser = build_parser()
    args, passed_on = parser.parse_known_args(argv)
    if not SNAKEFILE.is_file():
        parser.error(
            f"the workflow is not beside this installation ({SNAKEFILE} not found): install msprofile from "
            "its repository with `pip install -e .`"
        )
    bids_dir = Path(args.bids_dir).resolve()
    output_dir = Path(args.output_dir).resolve()
    if output_dir == bids_dir:
        parser.error("OUTPUT_DIR must not be BIDS_DIR: the input dataset is never written to")
    output_dir.mkdir(parents=True, exist_ok=True)
    configfiles = [str(Path(path).resolve()) for path in args.configfile] or [str(DEFAULT_CONFIG)]
    labels = {
        key: value
        for key, value in (("participant_label", args.participant_label), ("session_label", args.session_label))
        if value
    }
    config = [*args.config, f"bids_dir={bids_dir}", f"results={output_dir}"]
    if labels:
        config.append(f"bids={json.dumps(labels)}")
    return [
        sys.executable,
        "-m",
        "snakemake",
        "--snakefile",
        str(SNAKEFILE),
        "--directory",
        str(output_dir),
        "--configfile",
        *configfiles,
        "--config",
        *config,
        *passed_on,
    ]


def main(argv: list[str] | None = None) -> int:
    """Run the workflow as ``msprofile`` was asked to; return Snakemake's exit status."""
    return subprocess.call(snakemake_command(sys.argv[1:] if argv is None else list(argv)))


if __name__ == "__main__":
    sys.exit(main())

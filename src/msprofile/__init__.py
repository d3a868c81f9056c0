"""msprofile: neuroanatomical profiling of multiple sclerosis from FLAIR MRI.

The science of the workflow lives here as small functions on arrays; the Snakemake
rules under ``workflow/`` only unpack their inputs and call into this package.
"""

from importlib.metadata import PackageNotFoundError, version

try:
    #: The version of the installed package: ``version`` in pyproject.toml is its one source, and
    #: every output (the cohort table, QC files, model cards, the BIDS derivatives) and
    #: ``msprofile --version`` take it from here. After changing it, reinstall (``pip install -e .``).
    __version__ = version("msprofile")
except PackageNotFoundError:  # run from a source tree that was never installed
    __version__ = "0+unknown"

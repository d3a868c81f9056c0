"""msprofile: neuroanatomical profiling of multiple sclerosis from FLAIR MRI.

The science of the workflow lives here as small functions on arrays; the Snakemake
rules under ``workflow/`` only unpack their inputs and call into this package.
"""

__version__ = "0.1.0"

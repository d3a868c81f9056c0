"""The jobs layer: one module per rule file, holding the functions its scripts call.

A job function takes paths and settings, reads its inputs through :mod:`msprofile.io`, calls
the science modules (arrays and frames in, arrays and frames out) and writes its outputs
through :mod:`msprofile.io`. Only this package and :mod:`msprofile.io` open files. The
scripts under ``workflow/scripts`` unpack ``snakemake.*`` and call one of these functions.
"""

"""The foundation, the ground floor every package may use: errors, image I/O, downloads and
weight files, options, the workspace, provenance, locks, the journal, parallel back-ends,
shards. Nothing here imports from the rest of carbench."""

__version__ = "0.1.0"

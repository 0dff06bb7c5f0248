"""The foundation, the ground floor every package may use: errors, image I/O, downloads and
weight files, the workspace, provenance, locks, the journal, parallel back-ends, shards.

Nothing here imports from ``degradations``, ``methods``, ``reports`` or the rest of ``bench``.
"""

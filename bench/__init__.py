"""The pipeline: datasets, protocols, suites, generate, run, the result store, check; and
the metric table (``carbench.bench.metrics``)."""

"""carbench: benchmark and dataset generation for compression-artifact removal."""

__version__ = "0.1.0"

"""The networks carbench implements itself, each with its upstream's parameter names so that the
released checkpoints load with ``strict=True``: FBCNN, JDEC, PromptCIR, SCUNet and SwinIR (stage 1
of DiffBIR, SwinIR-CAR), DiffBIR's IRControlNet, SUPIR's GLVControl/ZeroSFT UNet, the RAM tagger
(OSEDiff's DAPE), and the Swin blocks they share. Builders return randomly initialised networks
and touch no files.

These modules import torch at the top; adapters import them when they load, never at start-up.
"""

"""The Stable Diffusion machinery shared by the diffusion adapters: the SD-2.1 model and its
files (``model``), LoRA checkpoints (``lora``), latent and VAE tiling (``tiling``), colour fixes
(``color``), single-file LDM checkpoints (``single_file``), the one-step adapter base
(``one_step``) and the samplers (``edm``, ``supir_sampler``).

Nothing here is imported by ``import methods``: adapters import these modules when they load.
"""

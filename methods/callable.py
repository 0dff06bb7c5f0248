"""A Python callable or ``torch.nn.Module`` as a method, for ``carbench.run(my_model, ...)``:
a model in a notebook is benchmarked without writing an adapter.

A callable takes and returns a uint8 image (``HxWx3`` RGB or ``HxW`` gray numpy array). A
module takes a float tensor ``1xCxHxW`` in [0, 1] on the run's device and returns one of the
same shape (clamped and rounded to uint8, as the adapters do). Rows record the method's name,
``method_source`` (module and qualified name of the callable or the module's class) and, for a
module, the sha256 of its state dict as ``method_weights_sha256``.
"""

from __future__ import annotations

import hashlib

import numpy as np

from carbench.core.errors import BenchError
from carbench.methods.base import Method, Sample


def state_dict_sha256(module) -> str:
    """sha256 over the state dict's names, dtypes, shapes and bytes (in key order)."""
    import torch

    h = hashlib.sha256()
    for key, t in module.state_dict().items():
        t = t.detach().cpu().contiguous()
        h.update(f"{key}:{t.dtype}:{tuple(t.shape)}".encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()


class CallableMethod(Method):
    """Wraps ``fn`` (a callable on uint8 arrays, or a ``torch.nn.Module``) under ``name``."""

    name = "callable"
    group = "external"
    description = "A Python callable or torch.nn.Module passed to carbench.run"

    def __init__(self, fn, name: str | None = None) -> None:
        super().__init__()
        from carbench import methods

        if not callable(fn):
            raise BenchError(f"carbench.run: {fn!r} is neither a method id nor callable")
        self.fn = fn
        self.label = name or getattr(fn, "__name__", None) or type(fn).__name__
        if self.label in methods.registry():
            raise BenchError(
                f"a callable named {self.label!r} would share the id of the registered method; "
                "pass another name"
            )
        self.is_module = _is_module(fn)
        self.uses_torch = self.is_module
        self.saves_outputs = True

    @property
    def id(self) -> str:
        return self.label

    def method_source(self) -> str:
        target = self.fn if not self.is_module and hasattr(self.fn, "__qualname__") else type(
            self.fn
        )
        return f"{target.__module__}:{target.__qualname__}"

    def load(self, device: str = "cpu", dtype: str = "fp32", kinds=("rgb", "gray")) -> None:
        super().load(device, dtype)
        if self.is_module:
            from carbench.methods.torch_utils import torch_dtype

            self.fn.eval().to(device, torch_dtype(dtype))
            self._weights_sha = state_dict_sha256(self.fn)

    def restore(self, sample: Sample) -> np.ndarray:
        if not self.is_module:
            out = np.asarray(self.fn(sample.decoded))
            if out.dtype != np.uint8 or out.shape != sample.decoded.shape:
                raise BenchError(
                    f"{self.label} returned {out.dtype} {out.shape}; expected uint8 "
                    f"{sample.decoded.shape} like its input"
                )
            return out
        import torch

        from carbench.methods.torch_utils import to_tensor, to_uint8, torch_dtype

        x = to_tensor(sample.decoded, self.device, torch_dtype(self.dtype))
        with torch.no_grad():
            y = self.fn(x)
        if tuple(y.shape) != tuple(x.shape):
            raise BenchError(f"{self.label} returned shape {tuple(y.shape)} for {tuple(x.shape)}")
        return to_uint8(y)


def _is_module(fn) -> bool:
    """Whether ``fn`` is a torch module (checked without importing torch for plain callables)."""
    return any(
        c.__module__.startswith("torch.nn") and c.__name__ == "Module" for c in type(fn).__mro__
    )

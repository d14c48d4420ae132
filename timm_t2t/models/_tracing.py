"""Whether the model is being recorded rather than run: tracing, exporting, FX symbolic tracing."""
import torch

__all__ = ['is_exporting', 'is_tracing', 'records_grad']

# Newer torch has `is_fx_symbolic_tracing`, and its `is_fx_tracing` logs a warning when first called.
_is_fx_symbolic_tracing = getattr(
    torch.fx._symbolic_trace, 'is_fx_symbolic_tracing', torch.fx._symbolic_trace.is_fx_tracing)


@torch.jit.unused  # TorchScript cannot compile torch.compiler.is_exporting; scripted code never calls this
def is_exporting() -> bool:
    """True while `torch.jit.trace` or `torch.export` (ONNX export, both routes) records the model."""
    return torch.jit.is_tracing() or torch.compiler.is_exporting()


@torch.jit.unused  # see is_exporting
def is_tracing() -> bool:
    """`is_exporting`, or FX symbolic tracing (which cannot branch on a traced batch size)."""
    return is_exporting() or _is_fx_symbolic_tracing()


@torch.jit.unused  # see is_exporting; scripted code never records through autograd functions
def records_grad(x: torch.Tensor) -> bool:
    """Whether autograd records an op on `x` eagerly, where a custom `torch.autograd.Function` can take over its
    backward: `x` is a real tensor (FX symbolic tracing passes proxies) that needs a gradient, grad mode is on, and
    `torch.jit.trace` is not recording (traced graphs keep the plain ops)."""
    return isinstance(x, torch.Tensor) and x.requires_grad and torch.is_grad_enabled() and not torch.jit.is_tracing()

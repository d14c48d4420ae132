"""Training-memory savers: the GELU recompute in every MLP and grad checkpointing of the stem change what autograd
keeps, not the forward values or the gradients."""
from typing import Dict, List

import pytest
import torch
import torch.nn.functional as F
from torch.utils._python_dispatch import TorchDispatchMode

import timm
import timm_t2t  # noqa: F401  registers the models
from timm_t2t.bench import saved_activation_bytes
from timm_t2t.models.memory import GeluRecomputeMlp


def _train_step(model: torch.nn.Module, x: torch.Tensor) -> Dict[str, torch.Tensor]:
    torch.manual_seed(1)  # the Performer's always-on dropouts draw the same masks on both runs
    model.zero_grad()
    F.cross_entropy(model(x), torch.tensor([3, 7])).backward()
    return {n: p.grad.clone() for n, p in model.named_parameters()}


def _set_recompute(model: torch.nn.Module, enable: bool) -> None:
    mlps = [m for m in model.modules() if isinstance(m, GeluRecomputeMlp)]
    assert mlps
    for m in mlps:
        m.recompute_act = enable


@pytest.mark.parametrize('arch', ['t2t_vit_7', 't2t_vit_t_14'])
def test_gelu_recompute_keeps_gradients_and_saves_memory(arch):
    torch.manual_seed(0)
    model = timm.create_model(arch, depth=2, img_size=64).train()
    x = torch.randn(2, 3, 64, 64)
    recomputed = _train_step(model, x)
    saved_recomputed = saved_activation_bytes(model, x)
    _set_recompute(model, False)
    plain = _train_step(model, x)
    saved_plain = saved_activation_bytes(model, x)
    for name, grad in plain.items():
        torch.testing.assert_close(recomputed[name], grad, rtol=1e-5, atol=1e-7, msg=name)
    # Each MLP keeps one hidden-width float32 tensor fewer: the two stem MLPs (hidden 64, at 16 x 16 and 8 x 8 tokens)
    # and the two blocks' (hidden 256 * 2 or 384 * 3, at 17 tokens), batch 2.
    hidden = 512 if arch == 't2t_vit_7' else 1152
    assert saved_plain - saved_recomputed == 2 * 4 * (64 * (16 * 16 + 8 * 8) + 2 * 17 * hidden)


def test_gelu_recompute_mlp_is_timm_mlp_in_eval_and_script():
    torch.manual_seed(0)
    mlp = GeluRecomputeMlp(8, 16)
    x = torch.randn(3, 8)
    expected = mlp.fc2(F.gelu(mlp.fc1(x)))
    torch.testing.assert_close(mlp.eval()(x), expected, rtol=0, atol=0)
    torch.testing.assert_close(mlp.train()(x), expected, rtol=0, atol=0)
    torch.testing.assert_close(torch.jit.script(mlp)(x), expected, rtol=0, atol=1e-7)
    assert not GeluRecomputeMlp(8, 16, drop=0.1).recompute_act  # dropout between: plain path


def _aten_ops(fn) -> List[str]:
    """Names of the aten ops `fn()` dispatches."""
    ops = []

    class Log(TorchDispatchMode):
        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            ops.append(str(func))
            return func(*args, **(kwargs or {}))

    with Log():
        fn()
    return ops


@pytest.mark.parametrize('grad_mode', [torch.no_grad, torch.inference_mode])
def test_gelu_runs_in_place_without_autograd(grad_mode):
    """Without autograd the MLP's GELU overwrites fc1's output (one hidden-width tensor fewer); same values. With
    autograd recording, in eval mode too, the GELU is not in place (backward needs its input)."""
    torch.manual_seed(0)
    mlp = GeluRecomputeMlp(8, 16).eval()
    x = torch.randn(3, 8)
    with torch.no_grad():
        expected = mlp.fc2(F.gelu(mlp.fc1(x)))
    with grad_mode():
        ops = _aten_ops(lambda: mlp(x))
        torch.testing.assert_close(mlp(x), expected, rtol=0, atol=0)
    assert 'aten.gelu_.default' in ops and 'aten.gelu.default' not in ops
    ops = _aten_ops(lambda: mlp(x).sum().backward())
    assert 'aten.gelu_.default' not in ops


def test_gelu_stays_out_of_place_where_fc1_output_is_visible():
    """A forward hook on fc1 or an FX graph returning fc1's output must get fc1's values, not the GELU's."""
    torch.manual_seed(0)
    model = timm.create_model('t2t_vit_7', depth=1, img_size=64).eval()
    fc1 = model.blocks[0].mlp.fc1
    x = torch.randn(2, 3, 64, 64)
    seen = []
    handle = fc1.register_forward_hook(lambda m, i, o: seen.append((o, o.clone())))
    with torch.inference_mode():
        model(x)
    handle.remove()
    assert torch.equal(seen[0][0], seen[0][1])
    with torch.inference_mode():
        extractor = timm.models.create_feature_extractor(model, return_nodes={'blocks.0.mlp.fc1': 'fc1'})
        torch.testing.assert_close(extractor(x)['fc1'], seen[0][1], rtol=0, atol=1e-6)


@pytest.mark.parametrize('arch', ['t2t_vit_7', 't2t_vit_t_14'])
def test_grad_checkpointing_covers_the_stem(arch):
    """`set_grad_checkpointing()` (timm's --grad-checkpointing) recomputes the stem's T2T layers in backward: they run
    twice per step, the gradients are those of the plain step, and the stem keeps (almost) nothing."""
    torch.manual_seed(0)
    model = timm.create_model(arch, depth=2, img_size=64).train()
    x = torch.randn(2, 3, 64, 64)
    expected = _train_step(model, x)
    stem_saved = saved_activation_bytes(model.patch_embed, x)

    model.set_grad_checkpointing(True)
    calls = []
    for layer in (model.patch_embed.attn1, model.patch_embed.attn2):
        layer.register_forward_pre_hook(lambda m, i: calls.append(m))  # recomputes stop once all is recomputed
    grads = _train_step(model, x)
    assert len(calls) == 4  # attn1 and attn2, each in forward and again in backward
    for name, grad in expected.items():
        torch.testing.assert_close(grads[name], grad, rtol=1e-5, atol=1e-7, msg=name)
    # Checkpointed, the stem keeps its two 64-wide maps (16 x 16 and 8 x 8 tokens), the inputs of attn2 and of the
    # projection (a Conv, which keeps only its input), and nothing of its layers.
    checkpointed = saved_activation_bytes(model.patch_embed, x)
    assert checkpointed == 2 * 4 * 64 * (16 * 16 + 8 * 8)
    assert checkpointed < stem_saved / 10

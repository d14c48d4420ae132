"""One computation in every mode: hooks see whole batches, train and eval agree without dropout, autograd on or off
gives the same values, and the float32 Performer keeps autocast runs finite."""
import pytest
import timm
import torch

import timm_t2t  # noqa: F401  registers the models
from timm_t2t.models.t2t_vit import TokenPerformer


def _no_dropout(model: torch.nn.Module) -> torch.nn.Module:
    """Switch off every dropout, the Performer's always-on 0.1 ones included."""
    for m in model.modules():
        if isinstance(m, torch.nn.Dropout):
            m.p = 0.
    return model


@pytest.mark.parametrize('batch', [8, 32])
def test_hook_features_have_the_whole_batch(batch):
    """timm's hook-based feature extraction under no_grad: every tap, the stem's included, holds the whole batch."""
    torch.manual_seed(0)
    model = timm.create_model(
        't2t_vit_7', depth=1, features_only=True, feature_cls='hook', out_indices=(0, 1, 2)).eval()
    with torch.no_grad():
        feats = model(torch.randn(batch, 3, 224, 224))
    assert [f.shape[0] for f in feats] == [batch] * 3
    assert [tuple(f.shape[1:]) for f in feats] == [(3136, 64), (784, 64), (197, 256)]  # module outputs, as hooked


@pytest.mark.parametrize('arch', ['t2t_vit_7', 't2t_vit_t_14'])
def test_forward_hook_on_each_t2t_layer_fires_once_with_the_whole_batch(arch):
    torch.manual_seed(0)
    model = timm.create_model(arch, depth=1, img_size=64)
    seen = []
    for name in ('attn1', 'attn2'):
        model.patch_embed.get_submodule(name).register_forward_hook(
            lambda m, i, o, name=name: seen.append((name, i[0].shape[0], o.shape[0])))
    x = torch.randn(10, 3, 64, 64)
    for train, grad in [(False, False), (False, True), (True, True), (True, False)]:
        seen.clear()
        with torch.set_grad_enabled(grad):
            model.train(train)(x)
        assert seen == [('attn1', 10, 10), ('attn2', 10, 10)], (train, grad)


@pytest.mark.parametrize('arch', ['t2t_vit_7', 't2t_vit_t_14'])
def test_train_and_eval_agree_without_dropout(arch):
    """With every dropout and drop-path at 0, train mode computes what eval mode computes, with or without autograd."""
    torch.manual_seed(0)
    model = _no_dropout(timm.create_model(arch, depth=2, img_size=64, drop_path_rate=0.))
    x = torch.randn(3, 3, 64, 64)
    with torch.no_grad():
        eval_out = model.eval()(x)
    train_out = model.train()(x)
    torch.testing.assert_close(train_out.detach(), eval_out, rtol=1e-5, atol=1e-6)
    with torch.inference_mode():
        torch.testing.assert_close(model.eval()(x), eval_out, rtol=0, atol=1e-6)


@pytest.mark.parametrize('arch', ['t2t_vit_7', 't2t_vit_t_14'])
def test_dropouts_switched_on_in_an_eval_model_still_drop(arch):
    """Monte Carlo dropout (an eval model with its dropouts in train mode) drops with autograd off as with it on."""
    torch.manual_seed(0)
    model = timm.create_model(arch, depth=2, img_size=64, proj_drop_rate=0.1).eval()
    for m in model.modules():
        if isinstance(m, torch.nn.Dropout):
            m.train()
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        torch.manual_seed(1)
        first = model(x)
        second = model(x)
    torch.manual_seed(1)
    with_grad = model(x)
    assert not torch.allclose(first, second)  # the masks differ between calls
    torch.testing.assert_close(first, with_grad.detach(), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize('arch', ['t2t_vit_7', 't2t_vit_t_14'])
def test_eval_under_cpu_autocast(arch):
    torch.manual_seed(0)
    model = timm.create_model(arch, depth=2).eval()
    x = torch.randn(2, 3, 224, 224)
    with torch.no_grad():
        ref = model(x)
        with torch.autocast('cpu', dtype=torch.bfloat16):
            out = model(x)
    assert out.dtype == torch.bfloat16
    assert (out.float() - ref).abs().max() < 0.05 * ref.abs().max()


def test_performer_layer_trains_under_autocast_and_scripted():
    """Under bf16 autocast the Performer attention still runs in float32 and gives finite gradients; TorchScript
    compiles the same layer (without the autocast context) and trains it."""
    torch.manual_seed(0)
    layer = TokenPerformer(36, 8, patch_size=3).train()
    x = torch.randn(2, 40, 36, requires_grad=True)
    with torch.autocast('cpu', dtype=torch.bfloat16):
        out = layer(x)
    out.float().sum().backward()
    assert torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0
    scripted = torch.jit.script(layer)
    x.grad = None
    scripted(x).sum().backward()
    assert torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0
    with torch.no_grad():
        torch.testing.assert_close(scripted.eval()(x), layer.eval()(x), rtol=1e-5, atol=1e-6)


def test_fx_trace_keeps_the_batch_symbolic():
    """FX traces without autograd too (timm's suite traces under inference_mode): the traced graph gives the model's
    values at another batch size than it was traced at."""
    torch.manual_seed(0)
    model = timm.create_model('t2t_vit_7', depth=1, img_size=64).eval()
    with torch.inference_mode():
        traced = timm.models.create_feature_extractor(model, return_nodes={'head': 'logits'})
        x = torch.randn(10, 3, 64, 64)
        torch.testing.assert_close(traced(x)['logits'], model(x), rtol=0, atol=1e-5)

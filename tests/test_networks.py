"""The networks of nbs/02-05 (embeddings, attention, blocks, UNet, UNet_classifier): shapes for every preset,
gradients, batch independence, bad input, a peer check of the attention against torch.nn.MultiheadAttention,
and that the models trace as one graph under torch.compile."""
import math

import pytest
import torch
from torch import nn

import butterfly_diffusion as bd
from butterfly_diffusion.core import get_config
from butterfly_diffusion.embeddings import timestep_embedding, TimeEmbedding
from butterfly_diffusion.attention import SelfAttention2d
from butterfly_diffusion.blocks import group_norm, perturb_zeroed
from butterfly_diffusion.blocks import ResBlock, Downsample, Upsample
from butterfly_diffusion.core import NetConfig
from butterfly_diffusion.unet import UNet, UNet_classifier, UNetClassifier, Encoder, net_config

PRESETS = ('tiny', 'demo', 'seed')


@pytest.fixture(autouse=True, scope='module')
def one_thread():
    "These models are tiny: one thread is faster, and avoids OpenMP oversubscription when tests run side by side."
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def batch_leak(f, x):
    "Largest |d f(x)[0] / d x[1]|: exactly 0 when the items of a batch do not interact."
    x = x.clone().requires_grad_()
    f(x)[0].sum().backward()
    return x.grad[1].abs().max().item()


def tiny_inputs(cfg, batch=3):
    g = torch.Generator().manual_seed(0)
    x = torch.randn(batch, 3, cfg.image_size, cfg.image_size, generator=g)
    return x, torch.tensor([3, 400, 999][:batch]), torch.tensor([0, cfg.num_classes - 1, cfg.num_classes][:batch])


# --- embeddings -----------------------------------------------------------------------------------------------------

def test_timestep_embedding_known_values():
    e = timestep_embedding(torch.tensor([0, 2]), 6)
    assert torch.equal(e[0], torch.tensor([0., 0, 0, 1, 1, 1]))
    freqs = 10_000 ** (-torch.arange(3) / 3)
    torch.testing.assert_close(e[1], torch.cat([(2 * freqs).sin(), (2 * freqs).cos()]))
    odd = timestep_embedding(torch.tensor([4.5]), 7)
    assert odd.shape == (1, 7) and odd[0, -1] == 0
    with pytest.raises(ValueError, match=r'shape \(B,\)'):
        timestep_embedding(torch.zeros(2, 2), 8)


def test_time_embedding_shape():
    assert TimeEmbedding(32, 256)(torch.tensor([0, 500])).shape == (2, 256)


# --- attention ------------------------------------------------------------------------------------------------------

@pytest.mark.parametrize('heads', [1, 2, 4])
def test_attention_matches_multihead_attention(heads):
    "Peer check: torch.nn.MultiheadAttention with our weights gives the same output."
    torch.manual_seed(heads)
    C = 16
    # float64 throughout: the two implementations sum in different orders, and float64 makes that rounding ~1e-15
    attn = perturb_zeroed(SelfAttention2d(C, heads), std=0.3).double()   # `proj` is built at zero: give it weights
    mha = nn.MultiheadAttention(C, heads, batch_first=True).double()
    with torch.no_grad():
        mha.in_proj_weight.copy_(attn.qkv.weight.reshape(3 * C, C)); mha.in_proj_bias.copy_(attn.qkv.bias)
        mha.out_proj.weight.copy_(attn.proj.weight.reshape(C, C)); mha.out_proj.bias.copy_(attn.proj.bias)
    x = torch.randn(2, C, 6, 5, dtype=torch.float64)
    tokens = attn.norm(x).flatten(2).transpose(1, 2)                                   # (B, HW, C)
    ref = x + mha(tokens, tokens, tokens, need_weights=False)[0].transpose(1, 2).reshape(x.shape)
    torch.testing.assert_close(attn(x), ref, atol=1e-10, rtol=1e-10)


def test_attention_matches_explicit_softmax():
    torch.manual_seed(0)
    B, C, H, W, heads = 2, 8, 3, 4, 2
    attn, x = perturb_zeroed(SelfAttention2d(C, heads), std=0.3).double(), torch.randn(B, C, H, W, dtype=torch.float64)   # float64: see above
    q, k, v = attn.qkv(attn.norm(x)).reshape(B, 3, heads, C // heads, H * W).unbind(1)   # each (B, heads, d, HW)
    w = torch.einsum('bhdi,bhdj->bhij', q, k).div(math.sqrt(C // heads)).softmax(-1)     # (B, heads, HW, HW)
    out = torch.einsum('bhij,bhdj->bhdi', w, v).reshape(B, C, H, W)
    torch.testing.assert_close(attn(x), x + attn.proj(out), atol=1e-10, rtol=1e-10)


@pytest.mark.parametrize('fmt', [torch.contiguous_format, torch.channels_last])
def test_attention_is_eligible_for_the_fused_kernel(fmt):
    "SDPA falls back to its slow math path when q, k, v have a strided last dim; forcing flash attention would fail."
    from torch.nn.attention import sdpa_kernel, SDPBackend
    attn, x = perturb_zeroed(SelfAttention2d(32, 4)), torch.randn(2, 32, 8, 8).to(memory_format=fmt)
    with sdpa_kernel(SDPBackend.FLASH_ATTENTION):
        out = attn(x)
    torch.testing.assert_close(out, attn(x))


def test_group_norm_divides_all_preset_channels():
    assert all(c % group_norm(c).num_groups == 0 for c in range(1, 1025))
    for name in PRESETS:
        with torch.device('meta'):
            model = UNet.from_config(get_config(name))
        norms = [m for m in model.modules() if isinstance(m, nn.GroupNorm)]
        assert norms and all(m.num_channels % m.num_groups == 0 for m in norms)


# --- blocks ---------------------------------------------------------------------------------------------------------

def test_blocks_shapes_and_no_batchnorm():
    rb = ResBlock(16, 32, 64, dropout=0.1)
    x, emb = torch.randn(2, 16, 8, 8), torch.randn(2, 64)
    assert rb(x, emb).shape == (2, 32, 8, 8)
    assert Downsample(16)(x).shape == (2, 16, 4, 4) and Upsample(16)(x).shape == (2, 16, 16, 16)
    for name in PRESETS:
        with torch.device('meta'):
            for m in (UNet.from_config(get_config(name)), UNet_classifier.from_config(get_config(name))):
                assert not any(isinstance(l, nn.modules.batchnorm._BatchNorm) for l in m.modules())


# --- UNet and classifier --------------------------------------------------------------------------------------------

@pytest.mark.parametrize('name', PRESETS)
def test_output_shapes_for_presets(name):
    cfg = get_config(name)
    batch = 1 if name == 'seed' else 2
    torch.manual_seed(0)
    x, t = torch.randn(batch, 3, cfg.image_size, cfg.image_size), torch.tensor([10, 900][:batch])
    unet, clf = UNet.from_config(cfg).eval(), UNet_classifier.from_config(cfg).eval()
    with torch.no_grad():
        eps, logits = unet(x, t), clf(x, t)
    assert eps.shape == x.shape and logits.shape == (batch, cfg.num_classes)
    assert torch.isfinite(eps).all() and torch.isfinite(logits).all()


def test_seed_defaults():
    with torch.device('meta'):
        unet, clf = UNet(), UNet_classifier(num_classes=75)
    assert unet.config == UNet.from_config(get_config('seed')).config
    assert unet.config.image_size == 128 and unet.config.base_filters == 64 and unet.config.time_dim == 32
    assert unet.num_classes is None and unet.label_embed is None
    assert clf.num_classes == 75 and clf.config == unet.config == NetConfig() and UNetClassifier is UNet_classifier


def test_importable_from_the_package():
    "The seed's names: `import butterfly_diffusion as bd; bd.UNet, bd.UNet_classifier` (re-exported by __init__)."
    assert bd.UNet is UNet and bd.UNet_classifier is UNet_classifier


def test_classifier_reuses_the_encoder_class():
    cfg = get_config('tiny')
    unet, clf = UNet.from_config(cfg), UNet_classifier.from_config(cfg)
    assert type(unet.encoder) is Encoder and type(clf.encoder) is Encoder
    assert [p.shape for p in unet.encoder.parameters()] == [p.shape for p in clf.encoder.parameters()]


@pytest.mark.parametrize('conditional', [False, True])
def test_every_unet_parameter_gets_a_gradient(conditional):
    cfg = get_config('tiny', dropout=0.1)
    torch.manual_seed(0)
    unet = perturb_zeroed(UNet.from_config(cfg, num_classes=cfg.num_classes if conditional else None)).train()
    x, t, y = tiny_inputs(cfg)
    unet(x, t, y if conditional else None).square().mean().backward()
    assert [n for n, p in unet.named_parameters() if p.grad is None or not p.grad.abs().sum() > 0] == []


def test_every_classifier_parameter_gets_a_gradient():
    cfg = get_config('tiny', dropout=0.1)
    torch.manual_seed(0)
    clf = perturb_zeroed(UNet_classifier.from_config(cfg)).train()
    x, t, y = tiny_inputs(cfg)
    nn.functional.cross_entropy(clf(x, t), y % cfg.num_classes).backward()
    assert [n for n, p in clf.named_parameters() if p.grad is None or not p.grad.abs().sum() > 0] == []


def test_timestep_and_label_change_the_output():
    cfg = get_config('tiny')
    torch.manual_seed(0)
    unet = perturb_zeroed(UNet.from_config(cfg, num_classes=cfg.num_classes)).eval()
    clf = perturb_zeroed(UNet_classifier.from_config(cfg)).eval()
    x, t, y = tiny_inputs(cfg)
    with torch.no_grad():
        assert not torch.allclose(unet(x, t, y), unet(x, t + 1, y))
        assert not torch.allclose(unet(x, t, y), unet(x, t, (y + 1) % cfg.num_classes))
        assert not torch.allclose(clf(x, t), clf(x, t + 50))
        assert torch.equal(unet(x, t), unet(x, t, torch.full_like(y, cfg.num_classes)))   # None = "no class"
        assert torch.equal(unet(x, 7, y), unet(x, torch.full_like(t, 7), y))                # scalar t broadcasts


@pytest.mark.parametrize('mode', ['train', 'eval'])
@pytest.mark.parametrize('which', ['unet', 'conditional unet', 'classifier'])
def test_batch_items_do_not_interact(which, mode):
    "Guidance differentiates each image's score w.r.t. that image: d out[0] / d x[1] must be exactly 0."
    cfg = get_config('tiny', dropout=0.2)
    torch.manual_seed(0)
    x, t, y = tiny_inputs(cfg)
    if which == 'classifier':
        model = UNet_classifier.from_config(cfg)
        f = lambda x: model(x, t)
    else:
        model = UNet.from_config(cfg, num_classes=cfg.num_classes if which == 'conditional unet' else None)
        f = lambda x: model(x, t, y if which == 'conditional unet' else None)
    getattr(perturb_zeroed(model), mode)()   # every residual branch acting: a zero branch cannot leak
    assert batch_leak(f, x) == 0.0


@pytest.mark.parametrize('name', ['tiny', 'demo'])
def test_new_networks_start_at_the_identity(name):
    "zero_init: a new UNet predicts eps = 0 and a new classifier gives equal logits; one Adam step moves the zeroed layers."
    cfg = get_config(name)
    torch.manual_seed(0)
    unet, clf = UNet.from_config(cfg), UNet_classifier.from_config(cfg)
    x, t, y = torch.randn(2, 3, cfg.image_size, cfg.image_size), torch.tensor([3, 700]), torch.tensor([0, 1])
    with torch.no_grad():
        assert torch.equal(unet(x, t, y if unet.num_classes else None), torch.zeros_like(x))
        assert torch.equal(clf(x, t), torch.zeros(2, cfg.num_classes))
    opt = torch.optim.Adam(unet.parameters(), lr=1e-3)
    unet(x, t, y if unet.num_classes else None).sub(x).square().mean().backward(); opt.step()
    with torch.no_grad(): assert unet(x, t, y if unet.num_classes else None).abs().max() > 0   # it learns at once


def test_clear_errors():
    cfg = get_config('tiny')
    unet, clf = UNet.from_config(cfg, num_classes=cfg.num_classes), UNet_classifier.from_config(cfg)
    x, t, y = tiny_inputs(cfg)
    with pytest.raises(ValueError, match='cannot be halved 3 times'): UNet(image_size=100)
    with pytest.raises(ValueError, match='cannot be halved'): UNet_classifier(image_size=20)
    with pytest.raises(ValueError, match='match no level'): UNet(attn_resolutions=(20,))
    with pytest.raises(ValueError, match='not divisible by num_heads'): UNet(num_heads=3)
    for model in (unet, clf):
        with pytest.raises(ValueError, match='expected 3 channels, got 1'): model(x[:, :1], t)
        with pytest.raises(ValueError, match='built for 16x16 images, got 32x32'):
            model(torch.randn(3, 3, 32, 32), t)
        with pytest.raises(ValueError, match='add a batch dimension'): model(x[0], t)
        with pytest.raises(ValueError, match='one timestep per image'): model(x, t[:2])
        with pytest.raises(ValueError, match='one timestep per image'): model(x, t[:, None])
    with pytest.raises(ValueError, match='must lie in'): unet(x, t, torch.tensor([0, 1, cfg.num_classes + 1]))
    with pytest.raises(ValueError, match='must lie in'): unet(x, t, torch.tensor([0, -1, 2]))
    with pytest.raises(ValueError, match='must be integers'): unet(x, t, torch.tensor([0., 1., 2.]))
    with pytest.raises(ValueError, match='unconditional'): UNet.from_config(cfg)(x, t, y)


def test_config_rebuilds_the_model(tmp_path):
    cfg = get_config('tiny')
    for model in (UNet.from_config(cfg, num_classes=4), UNet_classifier.from_config(cfg)):
        path = tmp_path / 'ckpt.pt'
        torch.save({'config': vars(model.config), 'num_classes': model.num_classes, 'state_dict': model.state_dict()}, path)
        ckpt = torch.load(path, weights_only=True)                      # plain values: loads without unpickling code
        rebuilt = type(model)(config=NetConfig(**ckpt['config']), num_classes=ckpt['num_classes'])
        rebuilt.load_state_dict(ckpt['state_dict'])
        x, t, _ = tiny_inputs(cfg)
        with torch.no_grad():
            assert torch.equal(model.eval()(x, t), rebuilt.eval()(x, t))


def test_channels_last_gives_the_same_result():
    cfg = get_config('tiny')
    torch.manual_seed(0)
    unet = UNet.from_config(cfg).eval().double()   # float64: the layouts' kernels sum in other orders (rounding ~1e-15)
    x, t, _ = tiny_inputs(cfg)
    x = x.double()
    with torch.no_grad():
        ref = unet(x, t)
        out = unet.to(memory_format=torch.channels_last)(x.to(memory_format=torch.channels_last), t)
    torch.testing.assert_close(out, ref, atol=1e-9, rtol=1e-9)


def test_compiles_as_one_graph():
    "No graph breaks (fullgraph=True): no data-dependent Python control flow, no host syncs in forward."
    cfg = get_config('tiny')
    torch.manual_seed(0)
    torch._dynamo.reset()
    unet, clf = UNet.from_config(cfg, num_classes=cfg.num_classes).eval(), UNet_classifier.from_config(cfg).eval()
    x, t, y = tiny_inputs(cfg)
    with torch.no_grad():
        torch.testing.assert_close(torch.compile(unet, fullgraph=True, backend='aot_eager')(x, t, y), unet(x, t, y))
        torch.testing.assert_close(torch.compile(clf, fullgraph=True, backend='aot_eager')(x, t), clf(x, t))


def test_size_beside_diffusers():
    "Same scale as diffusers' UNet2DModel with 64/128/256/256 channels (25.3 M parameters)."
    diffusers = pytest.importorskip('diffusers')
    with torch.device('meta'):
        ours = sum(p.numel() for p in UNet().parameters())
        ref = diffusers.UNet2DModel(sample_size=128, block_out_channels=(64, 128, 256, 256), layers_per_block=2,
                                    down_block_types=('DownBlock2D', 'DownBlock2D', 'AttnDownBlock2D', 'DownBlock2D'),
                                    up_block_types=('UpBlock2D', 'AttnUpBlock2D', 'UpBlock2D', 'UpBlock2D'))
        theirs = sum(p.numel() for p in ref.parameters())
    assert abs(theirs / 1e6 - 25.3) < 0.05
    assert 0.9 < ours / theirs < 1.1


def test_level_sizes():
    assert NetConfig().level_sizes == [128, 64, 32, 16]
    with pytest.raises(ValueError, match='multiple of 8'): net_config(image_size=60, channel_mults=(1, 2, 2, 2))

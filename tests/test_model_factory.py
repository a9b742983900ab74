import pytest
import torch
from safetensors.torch import save_file

from pipeline.core.config import from_mapping
from pipeline.core.errors import ConfigError
from pipeline.models import ModelConfig, ModelOutput, create_model
from pipeline.core.compat import import_timm
from pipeline.models.backbone import create_backbone, zero_init_residual_branches

BACKBONE = "test_efficientnet"  # timm's tiny test model: 256 features, fast on CPU
IMAGES = torch.randn(4, 3, 32, 32, generator=torch.Generator().manual_seed(0))
LABELS = torch.tensor([0, 1, 2, 0])


def test_forward_shapes_and_heads():
    model = create_model(ModelConfig(BACKBONE, head="cosface"), num_classes=3)
    assert (model.feature_dim, model.num_classes) == (256, 3)
    out = model(IMAGES, LABELS)
    assert isinstance(out, ModelOutput)
    assert out.features.shape == out.embeddings.shape == (4, 256)
    assert out.logits.shape == (4, 3)
    # the margin lowers the target logit by s*m and leaves the others alone
    plain = model.head(out.embeddings)
    target = torch.nn.functional.one_hot(LABELS, 3).bool()
    assert torch.allclose(out.logits[target], plain[target] - 30 * 0.35, atol=1e-4)
    assert torch.allclose(out.logits[~target], plain[~target])


def test_reduction_sets_the_feature_dim_and_no_head_gives_no_logits():
    model = create_model(ModelConfig(BACKBONE, embedding_dim=16, neck="none"), num_classes=0)
    out = model(IMAGES)
    assert model.feature_dim == 16 and out.features.shape == (4, 16)
    assert out.logits is None and torch.equal(out.features, out.embeddings)


@pytest.mark.parametrize("embedding", ["post_bn", "pre_bn"])
def test_embed_returns_the_configured_feature_in_eval_mode(embedding):
    model = create_model(ModelConfig(BACKBONE, embedding=embedding, dropout=0.5), num_classes=3)
    model(IMAGES, LABELS)  # one train-mode pass so the BNNeck running stats differ from identity
    model.eval()
    with torch.no_grad():
        out = model(IMAGES)
        expected = out.embeddings if embedding == "post_bn" else out.features
        assert torch.equal(model.embed(IMAGES), expected)
        assert not torch.allclose(out.embeddings, out.features)


def test_bnneck_and_parameter_groups():
    model = create_model(ModelConfig(BACKBONE, pooling="gem", embedding_dim=8), num_classes=3)
    bn = model.neck.bn
    assert not bn.bias.requires_grad and not bn.bias.any()
    assert torch.equal(bn.weight.detach(), torch.ones(8))
    groups = model.parameter_groups()
    ids = {k: {id(p) for p in v} for k, v in groups.items()}
    assert not ids["backbone"] & ids["head"]
    assert ids["backbone"] == {id(p) for p in model.backbone.parameters()}
    head_parts = [model.pooling.p, model.reduction.weight, model.reduction.bias, bn.weight, model.head.weight]
    expected_head = {id(p) for p in head_parts}
    assert ids["head"] == expected_head
    trainable = {id(p) for p in model.parameters() if p.requires_grad}
    assert ids["backbone"] | ids["head"] == trainable


def test_attention_pooling_from_a_recipe_sits_on_the_backbone_width_and_trains_with_the_head():
    config = from_mapping(ModelConfig, {"backbone": BACKBONE, "pooling": "attention"}, "recipe.yaml")
    model = create_model(config, num_classes=3)
    assert model.pooling.score.weight.shape == (1, 256, 1, 1)
    assert id(model.pooling.score.weight) in {id(p) for p in model.parameter_groups()["head"]}
    model.eval()
    with torch.no_grad():  # the zero start is average pooling: the embedding of an avg-pooled twin
        twin = create_model(ModelConfig(BACKBONE, pooling="avg"), num_classes=3).eval()
        twin.load_state_dict({k: v for k, v in model.state_dict().items() if not k.startswith("pooling.")})
        torch.testing.assert_close(model.embed(IMAGES), twin.embed(IMAGES))
    with pytest.raises(ConfigError, match="'pooling' must be one of 'gem', 'avg', 'max', 'attention'"):
        from_mapping(ModelConfig, {"backbone": BACKBONE, "pooling": "median"}, "recipe.yaml")


@pytest.mark.parametrize("suffix", [".pth", ".safetensors"])
def test_pretrained_file_loads_the_backbone_and_ignores_the_classifier(tmp_path, suffix):
    source = create_backbone(BACKBONE)
    state = {k: v.clone() for k, v in source.state_dict().items()}
    state["classifier.weight"] = torch.zeros(1000, 256)  # a timm classifier the re-id model drops
    path = tmp_path / f"weights{suffix}"
    if suffix == ".pth":
        torch.save({"state_dict": state}, path)
    else:
        save_file(state, str(path))
    model = create_model(ModelConfig(BACKBONE, pretrained_file=str(path)), num_classes=3)
    loaded = model.backbone.state_dict()
    assert all(torch.equal(loaded[k], v) for k, v in source.state_dict().items())


def test_a_reid_checkpoint_can_seed_the_backbone(tmp_path):
    trained = create_model(ModelConfig(BACKBONE), num_classes=5)
    path = tmp_path / "reid.pth"
    torch.save(trained.state_dict(), path)
    model = create_model(ModelConfig(BACKBONE, pretrained_file=str(path)), num_classes=3)
    first = next(iter(trained.backbone.state_dict()))
    assert torch.equal(model.backbone.state_dict()[first], trained.backbone.state_dict()[first])


def test_unusable_weight_files_are_clear_errors(tmp_path):
    unrelated = tmp_path / "unrelated.pth"
    torch.save({"foo.weight": torch.zeros(2)}, unrelated)
    with pytest.raises(ConfigError, match="no key matches"):
        create_model(ModelConfig(BACKBONE, pretrained_file=str(unrelated)), 3)
    wrong = tmp_path / "wrong.pth"
    torch.save({"conv_stem.weight": torch.zeros(1, 1, 1, 1)}, wrong)
    with pytest.raises(ConfigError, match="wrong shape.*conv_stem.weight"):
        create_model(ModelConfig(BACKBONE, pretrained_file=str(wrong)), 3)
    with pytest.raises(ConfigError, match="file not found"):
        create_model(ModelConfig(BACKBONE, pretrained_file=str(tmp_path / "missing.pth")), 3)
    garbage = tmp_path / "garbage.pth"
    garbage.write_bytes(b"not a checkpoint")
    with pytest.raises(ConfigError, match="cannot read weights"):
        create_model(ModelConfig(BACKBONE, pretrained_file=str(garbage)), 3)


def test_unknown_backbone_names_close_matches():
    with pytest.raises(ConfigError, match="not a timm model name.*close: resnet18"):
        create_model(ModelConfig("resnet_18"), 3)


def test_model_config_from_yaml_mapping_is_validated():
    config = from_mapping(ModelConfig, {"backbone": BACKBONE, "head": "arcface", "gem_p": 4}, "recipe.yaml")
    assert config.gem_p == 4.0 and config.head == "arcface"
    with pytest.raises(ConfigError, match="unknown key 'poolng'"):
        from_mapping(ModelConfig, {"backbone": BACKBONE, "poolng": "gem"}, "recipe.yaml")
    with pytest.raises(ConfigError, match="'head' must be one of"):
        from_mapping(ModelConfig, {"backbone": BACKBONE, "head": "softmax"}, "recipe.yaml")
    with pytest.raises(ConfigError, match="exclusive"):
        from_mapping(ModelConfig, {"backbone": BACKBONE, "pretrained": True, "pretrained_file": "w.pth"}, "recipe.yaml")
    with pytest.raises(ValueError, match="dropout"):
        ModelConfig(BACKBONE, dropout=1.0).validate()


def test_drop_path_rate_reaches_the_backbone():
    model = create_model(ModelConfig("test_resnet", drop_path_rate=0.1), num_classes=3)
    rates = [m.drop_prob for m in model.backbone.modules() if type(m).__name__ == "DropPath"]
    assert rates and max(rates) > 0


def _skip_block_io(backbone: torch.nn.Module, images: torch.Tensor) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """(input, output) of every block with a skip connection, in one eval forward pass."""
    seen = []
    hooks = [
        m.register_forward_hook(lambda _, args, out: seen.append((args[0], out)))
        for m in backbone.modules()
        if getattr(m, "has_skip", False)
    ]
    backbone.eval()
    with torch.no_grad():
        backbone(images)
    for hook in hooks:
        hook.remove()
    return seen


@pytest.mark.parametrize(
    ("backbone", "skip_blocks"),
    # B0's 16 blocks: the first block of each of its 7 stages changes shape, so 9 have a skip
    [("efficientnet_b0", 9), ("efficientnet_blur_b0", 9), ("tf_efficientnetv2_b0", None), ("mobilenetv3_large_100", None)],
)
def test_zero_init_residual_makes_every_skip_block_the_identity(backbone, skip_blocks):
    images = torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(1))
    plain = create_model(ModelConfig(backbone), num_classes=3)
    assert any(not torch.equal(x, y) for x, y in _skip_block_io(plain.backbone, images))
    model = create_model(ModelConfig(backbone, zero_init_residual=True), num_classes=3)
    pairs = _skip_block_io(model.backbone, images)
    assert pairs and all(torch.equal(x, y) for x, y in pairs)
    assert skip_blocks is None or len(pairs) == skip_blocks


def test_zero_init_residual_uses_timm_hooks_and_rejects_what_it_cannot_do():
    backbone = import_timm().create_model("test_resnet", num_classes=0, zero_init_last=False)
    blocks = [m for m in backbone.modules() if hasattr(m, "zero_init_last")]
    assert zero_init_residual_branches(backbone) == len(blocks) == 4
    last_norms = [b.bn3 if hasattr(b, "bn3") else b.bn2 for b in blocks]  # test_resnet mixes both block types
    assert blocks and all(not norm.weight.any() for norm in last_norms)
    with pytest.raises(ConfigError, match="no residual block"):
        create_model(ModelConfig(BACKBONE, zero_init_residual=True), num_classes=3)  # no skip blocks
    with pytest.raises(ConfigError, match="cannot tell where the residual branch of timm's UniversalInvertedResidual"):
        create_model(ModelConfig("mobilenetv4_conv_small", zero_init_residual=True), num_classes=3)
    with pytest.raises(ValueError, match="erase pretrained weights"):
        ModelConfig(BACKBONE, zero_init_residual=True, pretrained_file="w.pth").validate()


def test_every_name_of_each_choice_table_builds_and_nothing_else_is_accepted():
    """One table per kind (HEADS, POOLINGS, NECKS): the config accepts exactly its names, and
    each name builds a model that embeds and classifies."""
    from pipeline.models.heads import HEADS
    from pipeline.models.neck import NECKS
    from pipeline.models.pooling import POOLINGS

    for key, table in (("head", HEADS), ("pooling", POOLINGS), ("neck", NECKS)):
        for name in table:
            model = create_model(ModelConfig(backbone="test_efficientnet", **{key: name}), num_classes=4).eval()
            with torch.no_grad():
                output = model(torch.rand(2, 3, 32, 32), torch.tensor([0, 1]))
            assert output.logits.shape == (2, 4), (key, name)
        with pytest.raises(ValueError, match=rf"'{key}' must be one of {', '.join(map(repr, table))}, got 'nope'"):
            ModelConfig(backbone="test_efficientnet", **{key: "nope"}).validate()

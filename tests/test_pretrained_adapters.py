"""Every pretrained model mmtok converts, built tiny with random weights, saved with save_pretrained
and converted: mmtok's ids are the model's own, decoding is the model's own, an input's ids do not
depend on its batch, and the vocabulary layout round-trips the ids through LLM ids."""

import json

import pytest
import torch
from pretrained_models import AUDIO, BUILDERS, HOPS, build, example, own_codes, own_decode, save

from mmtok import load_tokenizer
from mmtok.config import ConfigError
from mmtok.models.registry import recipe_class
from mmtok.pretrained import convert


@pytest.fixture(scope="module")
def converted(tmp_path_factory):
    """family -> (the source model, its converted and reloaded FrozenTokenizer)."""
    root = tmp_path_factory.mktemp("pretrained")
    result = {}
    for family in BUILDERS:
        folder = save(family, root / family / "source")
        result[family] = (build(family), load_tokenizer(convert(folder, root / family / "tokenizer")))
    return result


@pytest.fixture(params=sorted(BUILDERS))
def family(request, converted):
    return request.param, *converted[request.param]


def grid(name: str) -> int:
    """Frames or grid side of the test inputs: the one size of models converted to a fixed size."""
    return {"hf-chameleon": 16, "hf-janus": 8}.get(name, 6)


def batch(name: str, frames: int, count: int = 2) -> torch.Tensor:
    """`count` inputs of whole frames (audio) or of `frames` x `frames` tokens (images)."""
    x = torch.stack([example(name, frames, seed) for seed in range(count)])
    return x[..., : frames * HOPS[name]] if name in AUDIO else x


def test_ids_are_the_models_own(family):
    name, model, frozen = family
    frames = grid(name)
    x = batch(name, frames)
    ids = frozen.encode_tensor(x)
    assert ids.dtype == torch.int64 and ids.shape[-1] == frozen.num_codebooks
    assert torch.equal(ids, own_codes(name, model, x))
    assert all(len(ids[..., c].unique()) >= 3 for c in range(ids.shape[-1]))  # the codebooks are really used
    assert tuple(ids.shape[1:-1]) == frozen.token_shape_for(tuple(x.shape[1:]))
    assert ids.max() < max(frozen.codebook_sizes) and len(frozen.vocab.codebook_sizes) == frozen.num_codebooks
    if name in AUDIO:  # a clip's partial last frame is cut off before the model sees it
        ragged = torch.stack([example(name, frames, seed) for seed in range(2)])
        assert ragged.shape[-1] % HOPS[name]
        assert torch.equal(frozen.encode_tensor(ragged), ids)


def test_decoding_is_the_models_own(family):
    name, model, frozen = family
    ids = frozen.encode_tensor(batch(name, grid(name)))
    if name == "hf-chameleon":
        with pytest.raises(NotImplementedError, match="encoder only"):
            frozen.decode(ids)
        return
    decoded = frozen.decode(ids)
    torch.testing.assert_close(decoded, own_decode(name, model, ids), rtol=1e-5, atol=1e-5)
    media = frozen.decode_media(ids)
    if name in AUDIO:  # float samples at the model's rate, at least the whole frames encoded
        assert media.dtype == "float32" and media.shape[:2] == (2, 1) and media.shape[-1] >= ids.shape[1] * HOPS[name]
    else:  # 8-bit RGB at f times the token grid
        assert media.dtype == "uint8" and media.shape == (2, ids.shape[1] * 2, ids.shape[2] * 2, 3)


def test_ids_alone_equal_ids_next_to_inputs_of_other_sizes(family):
    name, _, frozen = family
    sizes = [8] * 3 if name == "hf-janus" else [4, 9, 6, 4, 12]  # Janus encodes its one size only
    inputs = [example(name, size, seed) for seed, size in enumerate(sizes)]
    many = frozen.encode_many(inputs)
    for x, ids in zip(inputs, many):
        alone = frozen.encode_tensor(x[None])[0]
        assert torch.equal(ids, alone), f"{name}: input of shape {tuple(x.shape)}"
        assert tuple(ids.shape[:-1]) == frozen.token_shape_for(tuple(x.shape))


def test_causal_codecs_share_one_padded_batch(converted):
    def batches(name, frames):
        calls = []
        encoder = converted[name][1].model.model.encoder
        hook = encoder.register_forward_pre_hook(lambda module, args: calls.append(tuple(args[0].shape)))
        converted[name][1].encode_many([example(name, n, seed) for seed, n in enumerate(frames)])
        hook.remove()
        return sorted(calls)

    hop = HOPS["hf-mimi"]
    assert batches("hf-mimi", [4, 9, 6]) == [(3, 1, 9 * hop)]  # one batch: the longest, cut to whole frames
    # EnCodec reflect-pads: clips no longer than a padding they meet (7 frames here) go alone.
    hop = HOPS["hf-encodec"]
    assert converted["hf-encodec"][1].model.min_padded_length == 7 * hop
    assert batches("hf-encodec", [8, 12, 4, 10]) == [(1, 1, 4 * hop), (3, 1, 12 * hop)]
    assert converted["hf-dac"][1].model.padding_axes is None  # non-causal: one batch per length


def test_llm_ids_round_trip(family):
    name, _, frozen = family
    ids = frozen.encode_tensor(batch(name, grid(name)))[0]
    layout = frozen.vocab.with_base_offset(1000)
    llm = layout.to_llm_ids(ids)
    assert llm[0] == layout.base_offset and llm[-1] == layout.base_offset + 1
    codes = [v for v in llm.tolist() if v not in layout.special_tokens.values()]  # row markers aside
    assert min(codes) >= layout.codes_offset and max(codes) < layout.end_offset
    parts = layout.from_llm_ids([5, 6, *llm.tolist(), 7])
    assert parts[0] == [5, 6] and parts[2] == [7] and torch.equal(parts[1], ids)
    (segment,) = frozen.vocab.from_llm_ids(frozen.to_llm_ids(batch(name, grid(name)))[0])
    assert torch.equal(segment, ids)


def test_codebook_vectors_for_embedding_init(family):
    name, model, frozen = family
    codebooks = frozen.quantizer
    assert codebooks.codebook_sizes == frozen.vocab.codebook_sizes
    ids = torch.zeros(5, codebooks.num_codebooks, dtype=torch.long)
    ids[:, 0] = torch.arange(5)
    vectors = codebooks.decode_ids(ids)
    assert vectors.shape[0] == 5 and vectors.ndim == 2
    assert len({tuple(v.tolist()) for v in vectors}) == 5  # different codes, different vectors
    if name in ("hf-chameleon", "hf-emu3", "diffusers-vqmodel"):
        assert torch.equal(vectors, model.quantize.embedding.weight[:5])
    with pytest.raises(ValueError, match="out of range"):
        codebooks.decode_ids(torch.full((1, codebooks.num_codebooks), codebooks.codebook_sizes[0]))


def test_artifact_is_plain_and_honest(converted, tmp_path):
    model, frozen = converted["hf-dac"]
    files = sorted(p.name for p in frozen.path.iterdir())
    assert files == ["README.md", "config.json", "model.safetensors", "vocab.json"]
    config = json.loads((frozen.path / "config.json").read_text())
    assert config["family"] == "hf-dac" and config["model"]["model_class"] == "DacModel"
    assert config["model"]["model_config"]["n_codebooks"] == 3 and config["input"]["sample_rate"] == 16000
    assert config["input"]["loudness_db"] is None  # recordings keep their own level
    card = (frozen.path / "README.md").read_text()
    assert "source: " in card and "license: not stated by the source" in card
    with pytest.raises(ConfigError, match="does not train it"):
        recipe_class("hf-dac")
    # Fewer codebooks: a prefix of the full ids, as the model's own encode at that rate.
    out = convert(frozen.config["model"]["source"], tmp_path / "two", num_quantizers=2)
    two = load_tokenizer(out)
    x = batch("hf-dac", 6)
    assert two.num_codebooks == 2 and torch.equal(two.encode_tensor(x), frozen.encode_tensor(x)[..., :2])
    assert torch.equal(two.encode_tensor(x), model.encode(x, n_quantizers=2).audio_codes.transpose(1, 2))
    with pytest.raises(ConfigError, match="num_quantizers"):
        convert(frozen.config["model"]["source"], tmp_path / "bad", num_quantizers=9)
    with pytest.raises(ConfigError, match="unknown key"):
        convert(frozen.config["model"]["source"], tmp_path / "bad", bandwith=6.0)

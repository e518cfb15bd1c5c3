"""The AR probe: a small causal LM on a tokenizer's ids, held-out bits per token, samples."""

import json
import math

import pytest
import torch
from train_helpers import TINY_IMAGE_MODEL, write_images

from mmtok import load_tokenizer
from mmtok.cli import main
from mmtok.eval.harness import EvalOptions, run_eval
from mmtok.eval.probes.ar import ProbeSettings, token_bits, train_probe
from mmtok.llm_sampling import code_positions, sample_segment, unigram_entropy_bits
from mmtok.models import build_tokenizer
from mmtok.vocab import VocabLayout

pytest.importorskip("transformers")

LAYOUT = VocabLayout("image", [4, 4], [16], row_markers=True)  # 16 codes at ids 3..18
TINY = ProbeSettings(steps=60, batch_size=8, block=48, width=32, layers=1, heads=2, lr=1e-2)


def stream_of(examples: list[torch.Tensor]) -> torch.Tensor:
    return torch.cat([LAYOUT.to_llm_ids(ids) for ids in examples])


def patterned(count: int) -> list[torch.Tensor]:
    """Every image the same ramp: its ids are fully predictable after the first."""
    return [(torch.arange(16) % 16).reshape(4, 4, 1) for _ in range(count)]


def uniform(count: int, seed: int) -> list[torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    return [torch.randint(0, 16, (4, 4, 1), generator=generator) for _ in range(count)]


def heldout_code_bits(model, stream: torch.Tensor) -> float:
    bits = token_bits(model, stream, TINY.block)
    return float(bits[code_positions(stream[1:], LAYOUT)].mean())


def test_predictable_ids_cost_fewer_bits_than_random_ones():
    predictable = train_probe(stream_of(patterned(60)), LAYOUT.size, TINY, seed=0)
    random_model = train_probe(stream_of(uniform(60, 1)), LAYOUT.size, TINY, seed=0)
    easy = heldout_code_bits(predictable, stream_of(patterned(5)))
    hard = heldout_code_bits(random_model, stream_of(uniform(5, 2)))
    assert easy < 1.0 < math.log2(16) - 0.5 < hard
    assert hard > math.log2(16) - 0.3  # nothing to learn in uniform codes: about log2(K) bits, not less


def test_unigram_entropy():
    assert unigram_entropy_bits(stream_of(patterned(3)), LAYOUT) == pytest.approx(4.0)  # all 16 codes equally
    constant = stream_of([torch.zeros(4, 4, 1, dtype=torch.long)])
    assert unigram_entropy_bits(constant, LAYOUT) == 0.0
    assert unigram_entropy_bits(stream_of(uniform(200, 0)), LAYOUT) == pytest.approx(4.0, abs=0.05)


def test_unigram_entropy_is_per_codebook():
    two = VocabLayout("audio", [None], [16, 16])
    generator = torch.Generator().manual_seed(0)
    ids = torch.randint(0, 16, (4000, 2), generator=generator)
    assert unigram_entropy_bits(two.to_llm_ids(ids), two) == pytest.approx(4.0, abs=0.02)  # not 5: codebooks apart


def test_the_probe_never_trains_on_what_it_scores(two_tokenizers):
    tmp, small, _ = two_tokenizers
    held = str(tmp / "heldout")
    with pytest.raises(ValueError, match="is DATA itself"):
        run_eval([small], held, tmp / "r", EvalOptions(sweep=False, baselines=False, ar_probe=held))
    from mmtok.eval.harness import load_items

    train = {name for name, _ in load_items("sample-images", "image", training=True)}
    assert train and not train & {name for name, _ in load_items("sample-images", "image")}


def test_the_same_seed_gives_the_same_model():
    stream = stream_of(uniform(30, 3))
    first, again = (train_probe(stream, LAYOUT.size, TINY, seed=5) for _ in range(2))
    other = train_probe(stream, LAYOUT.size, TINY, seed=6)
    held = stream_of(uniform(3, 4))
    assert torch.equal(token_bits(first, held, TINY.block), token_bits(again, held, TINY.block))
    assert not torch.equal(token_bits(first, held, TINY.block), token_bits(other, held, TINY.block))


def test_windows_score_like_one_pass_when_the_stream_fits():
    model = train_probe(stream_of(uniform(10, 0)), LAYOUT.size, TINY, seed=0)
    stream = stream_of(uniform(2, 9))[: TINY.block + 1]
    logits = model(input_ids=stream[None, :-1]).logits[0].double()
    direct = torch.nn.functional.cross_entropy(logits, stream[1:], reduction="none") / math.log(2)
    assert torch.allclose(token_bits(model, stream, TINY.block), direct)
    longer = stream_of(uniform(8, 9))  # several windows: every position scored, none twice
    bits = token_bits(model, longer, TINY.block)
    assert bits.shape == (len(longer) - 1,) and (bits > 0).all()


def test_samples_follow_the_grammar():
    model = train_probe(stream_of(patterned(20)), LAYOUT.size, TINY, seed=0)
    for seed in range(3):
        segment = sample_segment(model, [1], LAYOUT, (4, 4), seed=seed)
        [ids] = LAYOUT.media_segments(segment)
        assert ids.shape == (4, 4, 1)


@pytest.fixture(scope="module")
def two_tokenizers(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("probe")
    torch.manual_seed(0)
    small = build_tokenizer(TINY_IMAGE_MODEL).save_pretrained(tmp / "small")
    wide = {**TINY_IMAGE_MODEL, "quantizer": {"kind": "fsq", "options": {"levels": [8, 8, 5, 5]}}}
    large = build_tokenizer(wide).save_pretrained(tmp / "large")
    write_images(tmp / "train", 12, size=32)
    write_images(tmp / "heldout", 3, size=32, seed=7)
    return tmp, small, large


def test_eval_reports_the_probe_for_every_tokenizer(two_tokenizers, capsys):
    tmp, small, large = two_tokenizers
    args = ["eval", str(small), str(large), str(tmp / "heldout"), "--report", str(tmp / "report")]
    args += ["--no-sweep", "--no-baselines", "--ar-probe", str(tmp / "train"), "--ar-probe-steps", "5"]
    assert main([*args, "--ar-probe-seeds", "2"]) == 0
    assert "AR probe (5 steps, 2 seed(s)" in capsys.readouterr().out
    report = json.loads((tmp / "report" / "report.json").read_text())
    probe = report["ar_probe"]
    assert probe["settings"]["steps"] == 5 and probe["settings"]["seeds"] == [0, 1]
    names = [t["name"] for t in report["tokenizers"]]
    assert [t["name"] for t in probe["tokenizers"]] == names
    for tok, codes in zip(probe["tokenizers"], (625, 1600)):
        bits = tok["bits_per_token"]
        assert len(bits["per_seed"]) == 2 and bits["ci95"] > 0
        assert bits["mean"] == pytest.approx(sum(bits["per_seed"]) / 2)
        assert tok["raw_bits_per_token"] == pytest.approx(math.log2(codes))
        # the raw rate is the harness's: the same bits per pixel as the summary
        summary = next(t for t in report["tokenizers"] if t["name"] == tok["name"])["summary"]
        assert tok["raw_rate"] == pytest.approx(summary["rate"]["mean"])
        assert tok["lm_to_raw"] == pytest.approx(tok["lm_rate"] / tok["raw_rate"])
        assert 0 < tok["unigram_entropy_bits"] <= math.log2(codes)
        assert len(tok["samples"]) == 2
        for sample in tok["samples"]:
            assert (tmp / "report" / "media" / sample["image"]).is_file()
    assert "AR probe: how learnable" in (tmp / "report" / "index.html").read_text()


def test_samples_decode_to_the_heldout_shape(two_tokenizers, tmp_path):
    from PIL import Image

    from mmtok.eval.harness import load_items, prepared_examples
    from mmtok.eval.probes.ar import probe_tokenizer
    from mmtok.eval.suites import suite_for

    tmp, small, _ = two_tokenizers
    frozen = load_tokenizer(small)
    suite = suite_for("image")
    train = list(prepared_examples(frozen, load_items(str(tmp / "train"), "image"), None, []))
    held = list(prepared_examples(frozen, load_items(str(tmp / "heldout"), "image"), None, []))
    result = probe_tokenizer("small", frozen, train, held, suite, TINY, tmp_path)
    assert result["train_tokens"] == sum(len(frozen.to_llm_ids(x)[0]) for _, x, _ in train)
    for sample in result["samples"]:
        assert Image.open(tmp_path / sample["image"]).size[0] >= 32

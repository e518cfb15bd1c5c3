"""The `mmtok` command line. Each subcommand imports its machinery lazily so `mmtok --help` is instant.

Every refusal is one line on stderr, `mmtok COMMAND: error: MESSAGE`: exit code 2 for usage errors
(bad or missing arguments, unknown or ill-typed config keys: ConfigError) and 1 for failures of the
work (missing files, bad artifacts, refused inputs); 130 after Ctrl-C. `mmtok --debug ...` or
MMTOK_DEBUG=1 shows the traceback instead.
"""

from __future__ import annotations

import argparse
import errno
import logging
import os
import re
import sys
from pathlib import Path

DEBUG_VARIABLE = "MMTOK_DEBUG"
USAGE_ERROR, FAILURE, INTERRUPTED = 2, 1, 130


class _Parser(argparse.ArgumentParser):
    """argparse, with its usage errors as one line (`--help` still prints the usage)."""

    def error(self, message: str):
        _print_refusal(self.prog, message)
        raise SystemExit(USAGE_ERROR)


def _print_refusal(prog: str, message: str) -> None:
    lines = [line.strip() for line in str(message).splitlines() if line.strip()]
    print(f"{prog}: error: {'; '.join(lines)}", file=sys.stderr)


def _error_message(error: BaseException) -> str:
    """One readable line: the message alone for the errors mmtok raises on purpose, the type too otherwise."""
    if isinstance(error, OSError) and error.strerror and error.filename is not None:
        target = f"{error.filename} -> {error.filename2}" if error.filename2 is not None else error.filename
        return f"{error.strerror}: {target}"
    text = str(error) or type(error).__name__
    if isinstance(error, (ValueError, OSError)):
        return text
    if isinstance(error, KeyError):  # str(KeyError) is the bare key, quoted
        return f"missing key {text}"
    return f"{type(error).__name__}: {text} (run `mmtok --debug ...` for the traceback)"


def _positive_int(text: str) -> int:
    value = _int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {text}")
    return value


def _non_negative_int(text: str) -> int:
    value = _int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be an integer >= 0, got {text}")
    return value


def _int(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be an integer, got {text!r}") from None


def _cmd_quantizers(args: argparse.Namespace) -> int:
    from mmtok.quantize import KINDS

    width = max(len(kind) for kind in KINDS)
    print(f"{'kind':<{width}}  {'codebook size':<44}  {'implementation':<24}  description")
    for kind, info in KINDS.items():
        print(f"{kind:<{width}}  {info.codebook_size:<44}  {info.source:<24}  {info.summary}")
    print("\nAny kind takes groups=g: the feature dim is split in g parts, each with its own codebook(s).")
    return 0


def _cmd_train(args: argparse.Namespace) -> int:
    from mmtok.train.config import load_run_config
    from mmtok.train.trainer import Trainer

    if not Path(args.config).is_file():  # a missing file is a failure (1), not a bad config (2)
        raise FileNotFoundError(errno.ENOENT, "no such config file", args.config)
    config = load_run_config(args.config, args.overrides)
    Trainer(config, resume=args.resume).fit()
    return 0


def _cmd_quickstart(args: argparse.Namespace) -> int:
    from mmtok.train.quickstart import run_quickstart

    run_quickstart(out=args.out, max_steps=args.max_steps, extra=args.overrides)
    return 0


def _cmd_export(args: argparse.Namespace) -> int:
    from mmtok.train.export import export_run

    out = export_run(args.run_dir, args.out_dir, use_ema=args.ema)
    print(f"exported {args.run_dir} ({'EMA' if args.ema else 'raw'} weights) to {out}")
    return 0


def _cmd_convert(args: argparse.Namespace) -> int:
    from mmtok.config import apply_overrides
    from mmtok.pretrained import convert

    options = apply_overrides({}, args.options)
    out = convert(
        args.model, args.out_dir, revision=args.revision, subfolder=args.subfolder, license=args.license, **options
    )
    print(f"converted {args.model} to {out}")
    return 0


def _cmd_inspect(args: argparse.Namespace) -> int:
    from mmtok.inspect import describe_artifact

    print(describe_artifact(args.path))
    return 0


def _cmd_tokenize(args: argparse.Namespace) -> int:
    from mmtok.tokenize import TokenizeInterrupted, tokenize

    try:
        tokenize(
            args.tokenizer_dir,
            args.input,
            args.output_dir,
            batch_size=args.batch_size,
            num_workers=args.num_workers,
            shard_size=args.shard_size,
            llm_ids=args.llm_ids,
            limit=args.limit,
            column=args.column,
            split=args.split,
            streaming=args.streaming,
            precision=args.precision,
            num_codebooks=args.num_codebooks,
            deterministic=args.deterministic,
            engine=args.engine,
            ray=_ray_settings(args),
            break_lock=args.break_lock,
        )
    except TokenizeInterrupted as stop:
        print(f"mmtok tokenize: {stop}", file=sys.stderr)
        return INTERRUPTED
    return 0


def _ray_settings(args: argparse.Namespace) -> dict | None:
    given = {
        "address": args.ray_address,
        "actors": args.ray_actors,
        "actor_cpus": args.ray_actor_cpus,
        "actor_gpus": args.ray_actor_gpus,
        "decode_cpus": args.ray_decode_cpus,
    }
    given = {key: value for key, value in given.items() if value is not None}
    if args.engine != "ray":
        if given:
            raise SystemExit(f"mmtok tokenize: --ray-* options need --engine ray (got {', '.join(given)})")
        return None
    return given


def _templates(entries: list[str]) -> dict[str, str]:
    """--template "[MODALITY=]TEMPLATE" entries -> {modality or "": template}."""
    templates = {}
    for entry in entries:
        head, sep, tail = entry.partition("=")
        modality, template = (head, tail) if sep and re.fullmatch(r"[a-z]+", head) else ("", entry)
        templates[modality] = template
    return templates


def _cmd_pack(args: argparse.Namespace) -> int:
    from mmtok.pack import PackSettings, run_pack
    from mmtok.pack_text import open_text

    *inputs, out_dir = args.paths
    if not inputs:
        args.parser.error("give at least one SHARDS folder and then OUT_DIR")
    settings = PackSettings(
        seq_len=args.seq_len,
        documents=args.documents,
        templates=_templates(args.template),
        shuffle=args.shuffle,
        seed=args.seed,
        shuffle_buffer=args.shuffle_buffer,
        bos=args.bos,
        missing_text=args.missing_text,
        formats=tuple(f.strip() for f in args.formats.split(",") if f.strip()),
        rows_per_file=args.rows_per_file,
    )
    text = open_text(args.text, column=args.text_column, key_column=args.text_key, files=args.text_files)
    record = run_pack(
        inputs, out_dir, settings, text_source=text, text_tokenizer=args.text_tokenizer, overwrite=args.overwrite
    )
    counts = record["counts"]
    print(
        f"packed {counts['documents']} documents, {counts['tokens']} tokens ({counts['media_tokens']} media) "
        f"into {out_dir}: {counts['rows']} rows of {settings.seq_len}, vocabulary {record['vocab']['size']} "
        f"({record['ids_dtype']}), {record['tokens_per_second']:,.0f} tokens/s"
    )
    return 0


def _cmd_eval(args: argparse.Namespace) -> int:
    from mmtok.eval.harness import EvalOptions, run_eval

    *tokenizers, data = args.inputs
    if not tokenizers:
        args.parser.error("give at least one TOKENIZER and then DATA")
    options = EvalOptions(
        limit=args.limit,
        sweep=not args.no_sweep,
        baselines=not args.no_baselines,
        media_items=args.media_items,
        crop_size=args.crop_size,
        device=args.device,
        lpips_weights=args.lpips_weights,
        fid_weights=args.fid_weights,
        probe_train=args.probe_train,
        ar_probe=args.ar_probe,
        ar_probe_steps=args.ar_probe_steps,
        ar_probe_seeds=args.ar_probe_seeds,
        transcripts=args.transcripts,
    )
    report = run_eval(tokenizers, data, args.report, options)
    from mmtok.eval.report.text import markdown_summary

    print(markdown_summary(report, sweeps=False))
    print(f"report: {args.report}/index.html ({report['seconds']:.1f} s)")
    return 0


BENCH_ROWS = (
    "search", "search_shared", "vq_step", "encode", "decode", "encode_shared", "train_step", "tokenize", "processes",
    "peers",
)  # fmt: skip


def _cmd_bench(args: argparse.Namespace) -> int:
    # The rows are the scripts of benchmarks/ (they share their cases with the per-topic scripts there),
    # so the command needs the source tree that `pip install -e .` leaves in place.
    folder = Path(__file__).resolve().parents[1] / "benchmarks"
    if not (folder / "bench.py").is_file():
        raise FileNotFoundError(
            errno.ENOENT, "mmtok bench runs the benchmarks/ folder of a source checkout (pip install -e .)", folder
        )
    sys.path.insert(0, str(folder))
    import bench

    return bench.run(args)


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="mmtok",
        description="Train, monitor, export and apply media tokenizers that emit ids for language models.",
    )
    parser.add_argument(
        "--debug", action="store_true", help=f"show the full traceback of an error (or set {DEBUG_VARIABLE}=1)"
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    quantizers = sub.add_parser("quantizers", help="list every quantizer kind with its codebook size formula")
    quantizers.set_defaults(func=_cmd_quantizers)

    train = sub.add_parser(
        "train",
        help="train a tokenizer from a YAML recipe (use `accelerate launch -m mmtok train` for many processes)",
        description="Train a tokenizer. Overrides are dotted keys, e.g. train.max_steps=20 output_dir=runs/x.",
    )
    train.add_argument("config", help="YAML recipe, e.g. configs/quickstart.yaml")
    train.add_argument("overrides", nargs="*", metavar="KEY=VALUE", help="dotted config overrides")
    train.add_argument("--resume", action="store_true", help="continue from the latest checkpoint in output_dir")
    train.set_defaults(func=_cmd_train)

    quickstart = sub.add_parser(
        "quickstart",
        help="train the default image tokenizer on scikit-image's photos (CPU, ~5 min) and report",
    )
    quickstart.add_argument("--out", default="runs/quickstart", help="output folder (default: runs/quickstart)")
    quickstart.add_argument("--max-steps", type=_positive_int, default=None, help="shorten the training budget")
    quickstart.add_argument("overrides", nargs="*", metavar="KEY=VALUE", help="dotted config overrides")
    quickstart.set_defaults(func=_cmd_quickstart)

    export = sub.add_parser("export", help="turn a training run's latest checkpoint into a frozen tokenizer directory")
    export.add_argument("run_dir", help="the run's output_dir")
    export.add_argument("out_dir", help="where to write config.json, model.safetensors, vocab.json, README.md")
    export.add_argument("--ema", action="store_true", help="export the EMA weights instead of the raw ones")
    export.set_defaults(func=_cmd_export)

    convert = sub.add_parser(
        "convert",
        help="turn a pretrained tokenizer (EnCodec, DAC, Mimi, X-Codec, Chameleon/Janus/Emu3 VQ, VQModel) "
        "into an mmtok artifact",
        description="Read MODEL (a hub id or a local save_pretrained folder; safetensors only) and write "
        "OUT_DIR as `mmtok export` does. Options are the adapter's config fields, e.g. bandwidth=6.0 "
        "(EnCodec, X-Codec), num_quantizers=8 (DAC, Mimi), resize_to=256 crop_to=256 (image models).",
    )
    convert.add_argument("model", help="a hub id (e.g. facebook/encodec_24khz) or a folder written by save_pretrained")
    convert.add_argument("out_dir", help="where to write config.json, model.safetensors, vocab.json, README.md")
    convert.add_argument("options", nargs="*", metavar="KEY=VALUE", help="adapter options")
    convert.add_argument("--revision", default=None, help="hub revision (branch, tag or commit)")
    convert.add_argument("--subfolder", default=None, help="the model's folder inside MODEL (e.g. movq)")
    convert.add_argument("--license", default=None, help="the licence to record when the source's card states none")
    convert.set_defaults(func=_cmd_convert)

    inspect = sub.add_parser("inspect", help="show an exported tokenizer: config, vocab layout, token counts, bitrate")
    inspect.add_argument("path", help="a directory written by `mmtok export` or save_pretrained")
    inspect.set_defaults(func=_cmd_inspect)

    tokenize = sub.add_parser(
        "tokenize",
        help="tokenize a media dataset into parquet shards (`accelerate launch -m mmtok tokenize` for many processes)",
        description="Run a frozen tokenizer over INPUT into OUTPUT_DIR/shard-*.parquet, manifest.json and "
        "errors.jsonl. "
        "Running the same command again resumes: completed shards are kept, partial ones redone.",
    )
    tokenize.add_argument(
        "tokenizer_dir", help="a directory written by `mmtok export`, save_pretrained or `mmtok convert`, or hf:ID"
    )
    tokenize.add_argument(
        "input",
        help="a folder of media files, a quoted glob, a webdataset-style .tar or a .parquet, local or an fsspec "
        "URL (s3://, gs://, hf://, https://); or datasets:NAME_OR_PATH[:SPLIT], a Hugging Face dataset",
    )
    tokenize.add_argument("output_dir", help="where the shards, manifest.json and errors.jsonl go (a folder or URL)")
    tokenize.add_argument("--batch-size", type=_positive_int, default=32, help="inputs per encode call (default: 32)")
    tokenize.add_argument(
        "--num-workers", type=_non_negative_int, default=4, help="DataLoader workers decoding per process (default: 4)"
    )
    tokenize.add_argument("--shard-size", type=_positive_int, default=10_000, help="inputs per shard (default: 10000)")
    tokenize.add_argument(
        "--llm-ids", action="store_true", help="store framed ids at their LLM vocabulary offsets (vocab.json)"
    )
    tokenize.add_argument(
        "--num-codebooks",
        type=_positive_int,
        default=None,
        metavar="N",
        help="residual tokenizers: store only the first N codebooks of each token (a lower rate; default: all)",
    )
    tokenize.add_argument("--limit", type=_positive_int, default=None, help="tokenize only the first N inputs")
    tokenize.add_argument(
        "--column", default=None, help="parquet or dataset column holding the encoded media (default: by name)"
    )
    tokenize.add_argument("--split", default=None, help="datasets: inputs: the split (default: train)")
    tokenize.add_argument(
        "--streaming", action="store_true", help="datasets: inputs: stream the dataset instead of downloading it first"
    )
    tokenize.add_argument(
        "--precision", choices=("auto", "bf16", "fp32"), default="auto", help="auto: bf16 on GPU, fp32 on CPU"
    )
    tokenize.add_argument(
        "--deterministic",
        nargs="?",
        const=True,
        default=False,
        type=_positive_int,
        metavar="N",
        help="encode in calls of exactly N inputs (default 16; lengths bucketed) so ids do not depend on how "
        "inputs were grouped (--batch-size, --shard-size, processes, engine), in bf16 too; costs the padding",
    )
    tokenize.add_argument(
        "--engine",
        choices=("accelerate", "ray"),
        default="accelerate",
        help="accelerate: this machine or `accelerate launch` processes; ray: a Ray cluster (pip install "
        "'mmtok[ray]'). Either resumes the other's OUTPUT_DIR",
    )
    tokenize.add_argument("--ray-address", default=None, help="Ray cluster to join (default: $RAY_ADDRESS, or local)")
    tokenize.add_argument(
        "--ray-actors", type=_positive_int, default=None, help="encoding actors (default: one per GPU, or per CPU)"
    )
    tokenize.add_argument("--ray-actor-cpus", type=float, default=None, help="CPUs per encoding actor (default: 1)")
    tokenize.add_argument(
        "--ray-actor-gpus", type=float, default=None, help="GPUs per encoding actor (default: 1 if the cluster has any)"
    )
    tokenize.add_argument(
        "--ray-decode-cpus",
        type=float,
        default=None,
        help="CPUs per decoding task (default: 1 with GPUs; 0, the CPU-only default, decodes in threads of each actor)",
    )
    tokenize.add_argument(
        "--resume", action="store_true", help="accepted for symmetry with train: a restart always resumes"
    )
    tokenize.add_argument(
        "--break-lock",
        action="store_true",
        help="remove a lock left by a job that died, after checking no job is running",
    )
    tokenize.set_defaults(func=_cmd_tokenize)

    pack = sub.add_parser(
        "pack",
        help="turn tokenized shards (+ captions or transcripts) into packed LLM training data "
        "(Megatron .bin/.idx, parquet for datasets) with the extended text tokenizer",
        description="Read the shard folders (written by `mmtok tokenize`), make one document per row (its text "
        "and media ids under a template, then the end-of-document id) and write OUT_DIR: megatron/documents.bin/"
        ".idx, parquet/part-*.parquet rows of --seq-len ids, tokenizer/ (the extended text tokenizer), "
        "documents.parquet and pack.json.",
    )
    pack.add_argument("paths", nargs="+", metavar="SHARDS... OUT_DIR", help="shard folders, then the output folder")
    pack.add_argument(
        "--text",
        default=None,
        help="a table of the items' texts (.parquet, .jsonl, .csv or datasets:NAME[:SPLIT]), matched by its "
        "key column, or by row number when it has none",
    )
    pack.add_argument("--text-column", default=None, help="the table's text column (default: text, caption, ...)")
    pack.add_argument("--text-key", default="key", help="the table's column of shard keys (default: key)")
    pack.add_argument(
        "--text-files",
        nargs="?",
        const=".txt",
        default=None,
        metavar="SUFFIX",
        help="read each item's text from the file beside its media file (default suffix: .txt)",
    )
    pack.add_argument(
        "--text-tokenizer",
        default=None,
        help="a Hugging Face tokenizer folder to extend (default: a bare one holding only <|endoftext|>)",
    )
    pack.add_argument(
        "--template",
        action="append",
        default=[],
        metavar="[MODALITY=]TEMPLATE",
        help='how a document reads, e.g. "{text}{media}" (the default with text) or audio="{media}{text}"',
    )
    pack.add_argument("--seq-len", type=_positive_int, default=2048, help="ids per parquet row (default: 2048)")
    pack.add_argument(
        "--documents",
        choices=("split", "whole"),
        default="split",
        help="split: documents run on into the next row (no padding); whole: a document that does not fit "
        "starts the next row, the rest is padding (default: split)",
    )
    pack.add_argument("--shuffle", action="store_true", help="mix the inputs and shuffle documents (seeded)")
    pack.add_argument("--seed", type=_non_negative_int, default=0, help="the shuffle's seed (default: 0)")
    pack.add_argument(
        "--shuffle-buffer", type=_positive_int, default=10_000, help="documents held by the shuffle (default: 10000)"
    )
    pack.add_argument("--bos", action="store_true", help="begin each document with the text tokenizer's bos token")
    pack.add_argument(
        "--missing-text",
        choices=("error", "drop", "keep"),
        default="error",
        help="an item without text: stop (default), leave it out, or pack its media alone",
    )
    pack.add_argument(
        "--formats", default="megatron,parquet", help="comma-separated: megatron, parquet (default: both)"
    )
    pack.add_argument("--rows-per-file", type=_positive_int, default=10_000, help="rows per parquet part file")
    pack.add_argument("--overwrite", action="store_true", help="replace a pack made from other inputs or settings")
    pack.set_defaults(func=_cmd_pack, parser=pack)

    evaluate = sub.add_parser(
        "eval",
        help="compare tokenizers (and classical codecs) on held-out media; writes a report folder",
        description="Evaluate every TOKENIZER on the items of DATA through each one's input path, next to the "
        "classical codecs (JPEG/WebP/AVIF, Opus, H.264/AV1, DCT) at matching bits, with rate-distortion sweeps; "
        "writes REPORT/report.json, PNG plots and a static index.html.",
    )
    evaluate.add_argument(
        "inputs",
        nargs="+",
        metavar="TOKENIZER... DATA",
        help="tokenizer folders (or hf: ids), then the data: a folder, glob, .tar, .parquet, datasets:NAME, or "
        "sample-images[:N] (the N bundled photos the quickstart holds out, default 3)",
    )
    evaluate.add_argument("--report", required=True, help="the report folder to write")
    evaluate.add_argument("--limit", type=_positive_int, default=None, help="evaluate only the first N items")
    evaluate.add_argument(
        "--media-items", type=_non_negative_int, default=4, help="items shown with their media (default: 4)"
    )
    evaluate.add_argument(
        "--crop-size",
        type=_positive_int,
        default=None,
        help="images, video: centred crops of at most this many px per side",
    )
    evaluate.add_argument("--device", default="cpu", help="where the tokenizers run, e.g. cuda (default: cpu)")
    evaluate.add_argument("--no-sweep", action="store_true", help="skip the k-token / codebook-count sweeps")
    evaluate.add_argument("--no-baselines", action="store_true", help="skip the classical codecs")
    evaluate.add_argument("--lpips-weights", default=None, help="a torchvision VGG16 state dict: adds LPIPS")
    evaluate.add_argument("--fid-weights", default=None, help="a torchvision Inception v3 state dict: adds FID")
    evaluate.add_argument(
        "--transcripts",
        default=None,
        help="audio: speech transcripts (a Sphinx transcription file, a stem<TAB>words .tsv, or a folder of them "
        "and clip.txt sidecars) for PocketSphinx's word error rate; default: those in the DATA folder",
    )
    evaluate.add_argument(
        "--probe-train",
        default=None,
        help="EEG: a labelled .ts file of training trials; DATA (a labelled .ts file) is then probed too",
    )
    evaluate.add_argument(
        "--ar-probe",
        default=None,
        metavar="TRAIN_DATA",
        help="train a small causal LM on each tokenizer's ids of TRAIN_DATA (same budget and seeds for all) and "
        "report held-out bits per token, its rate against the raw rate, the codes' unigram entropy, samples",
    )
    evaluate.add_argument(
        "--ar-probe-steps", type=_positive_int, default=200, help="AR probe: training steps (default: 200)"
    )
    evaluate.add_argument(
        "--ar-probe-seeds",
        type=_positive_int,
        default=1,
        help="AR probe: models trained per tokenizer; with 2 or more, a 95 %% interval over seeds (default: 1)",
    )
    evaluate.set_defaults(func=_cmd_eval, parser=evaluate)

    bench = sub.add_parser(
        "bench",
        help="every speed and memory figure in one Markdown table and a JSON file, on the device present",
        description="Measure mmtok against its peers (vector-quantize-pytorch, diffusers VQModel, transformers "
        "EnCodec/DAC/Mimi): search, VQ step, encode/decode and training of every family, the tokenize job, "
        "one process against two on the same cores.",
    )
    bench.add_argument("--smoke", action="store_true", help="toy sizes: every row in about a minute")
    bench.add_argument("--only", action="append", choices=BENCH_ROWS, metavar="ROW",
                       help=f"run this row only (repeatable): {', '.join(BENCH_ROWS)}")  # fmt: skip
    bench.add_argument("--out", default="runs/bench", help="folder for bench.md and bench.json (default: runs/bench)")
    bench.add_argument("--device", default=None, help="cpu or cuda[:N] (default: cuda when present)")
    bench.add_argument("--repeats", type=_positive_int, default=None, help="timed runs per figure (default 3; smoke 1)")
    bench.add_argument(
        "--compile", choices=("auto", "on", "off"), default="auto",
        help="also measure encode/decode under torch.compile (auto: on CUDA, not in --smoke)",
    )  # fmt: skip
    bench.add_argument(
        "--memory-budget-gib", type=float, default=8.0,
        help="on CPU, skip a peer case whose N x K buffers would need more than this (default 8)",
    )  # fmt: skip
    bench.set_defaults(func=_cmd_bench)
    for command in sub.choices.values():  # `mmtok COMMAND ... --debug` works too; SUPPRESS keeps the top-level value
        command.add_argument("--debug", action="store_true", default=argparse.SUPPRESS, help=argparse.SUPPRESS)
    return parser


def _prefer_passive_omp_waits() -> None:
    """OpenMP threads that sleep at a barrier instead of spinning, unless the user chose otherwise. It only takes
    effect before torch is imported. Measured on 2 cores beside a busy process: image encode 1.29 s -> 0.97 s per
    batch; alone 0.53-0.54 s either way (within noise)."""
    if "torch" not in sys.modules:
        os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")


def main(argv: list[str] | None = None) -> int:
    _prefer_passive_omp_waits()
    parser = build_parser()
    args = parser.parse_args(argv)  # usage errors: one line, SystemExit(2)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    logging.getLogger("accelerate").setLevel(logging.WARNING)  # one line per saved file is noise
    if not getattr(args, "func", None):
        parser.print_help()
        return 0
    prog = f"mmtok {args.command}"
    debug = args.debug or os.environ.get(DEBUG_VARIABLE, "").strip().lower() in ("1", "true", "yes")
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        if debug:
            raise
        _print_refusal(prog, "interrupted")
        return INTERRUPTED
    except Exception as error:
        if debug:
            raise
        from mmtok.config import ConfigError

        _print_refusal(prog, _error_message(error))
        return USAGE_ERROR if isinstance(error, ConfigError) else FAILURE


if __name__ == "__main__":
    sys.exit(main())

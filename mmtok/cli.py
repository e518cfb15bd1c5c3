"""The `mmtok` command line. Each subcommand imports its machinery lazily so `mmtok --help` is instant."""

from __future__ import annotations

import argparse
import sys


def _cmd_quantizers(args: argparse.Namespace) -> int:
    from mmtok.quantize import KINDS

    width = max(len(kind) for kind in KINDS)
    print(f"{'kind':<{width}}  {'codebook size':<44}  {'implementation':<24}  description")
    for kind, info in KINDS.items():
        print(f"{kind:<{width}}  {info.codebook_size:<44}  {info.source:<24}  {info.summary}")
    print("\nAny kind takes groups=g: the feature dim is split in g parts, each with its own codebook(s).")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="mmtok",
        description="Train, monitor, export and apply media tokenizers that emit ids for language models.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    quantizers = sub.add_parser("quantizers", help="list every quantizer kind with its codebook size formula")
    quantizers.set_defaults(func=_cmd_quantizers)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 0
    return int(args.func(args) or 0)


if __name__ == "__main__":
    sys.exit(main())

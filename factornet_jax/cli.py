"""The `factornet` command: sub-commands dispatch to one function each, through a table.

Each command module in `factornet_jax.commands` defines `add_arguments(parser)` and
`main(args) -> int`. User errors (`FactorNetError`) are printed as one line, exit code 2.
"""
import argparse
import importlib
import sys

from factornet_jax.errors import FactorNetError

# (command words, module in factornet_jax.commands, one-line help)
COMMANDS = [
    (("preprocess", "build"), "build", "build the genome and cell-line Zarr stores"),
    (("train", "run"), "train", "train a FactorNet model from built stores"),
    (("predict",), "predict", "score the bins of a BED file, write bedGraph.gz (and bigWig)"),
    (("evaluate",), "evaluate", "DREAM-style scoring of predictions against peaks"),
    (("call",), "call", "binding sites (narrowPeak) from predictions at a target FDR"),
    (("visualize",), "visualize", "kernel motifs, logos, signal profiles and known-motif matches"),
    (("explain",), "explain", "per-base sequence and track contributions (ISM, IG, saliency), motifs"),
    (("import-keras",), "import_keras", "convert a released Keras 1 FactorNet model"),
    (("simulate",), "simulate", "write a realistic simulated dataset (FASTA, bigWigs, peaks)"),
    (("variants",), "variants", "score the effect of VCF variants on predicted binding"),
    (("demo",), "demo", "simulate -> build -> train -> predict -> evaluate -> call, end to end"),
]


def build_parser(commands=COMMANDS, only=None):
    """The argument parser; with `only` (command words), only that command's module is imported."""
    parser = argparse.ArgumentParser(
        prog="factornet",
        description="FactorNet transcription-factor binding prediction on JAX/Flax, trained and "
                    "run from on-disk Zarr stores. Start with `factornet demo`.")
    top = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    groups = {}
    for words, module_name, help_text in commands:
        if len(words) == 1:
            sub = top.add_parser(words[0], help=help_text, description=help_text)
        else:
            if words[0] not in groups:
                group_parser = top.add_parser(words[0], help=f"{words[0]} sub-commands")
                groups[words[0]] = group_parser.add_subparsers(dest="subcommand", metavar="SUBCOMMAND",
                                                               required=True)
            sub = groups[words[0]].add_parser(words[1], help=help_text, description=help_text)
        if only is None or tuple(words) == tuple(only):
            module = importlib.import_module(f"factornet_jax.commands.{module_name}")
            module.add_arguments(sub)
            sub.set_defaults(_main=module.main)
    return parser


def run_command(parser, argv):
    """Parse argv and run the command; returns the exit code, printing user errors as one line."""
    args = parser.parse_args(argv)
    try:
        return int(args._main(args) or 0)
    except FactorNetError as err:
        print(f"{parser.prog}: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"{parser.prog}: interrupted", file=sys.stderr)
        return 130


def chosen_command(argv, commands=COMMANDS):
    """The command words that argv starts with, or () when it names none."""
    for words, _, _ in commands:
        if tuple(argv[: len(words)]) == tuple(words):
            return tuple(words)
    return ()


def named_config_argv(words, folder, argv):
    """`python -m train NAME FLAGS...` -> the argv of `factornet train run`: the named JSON
    config's flags (folder/NAME.json: {"flags": [...], "needs": [...], "description"}), then the
    user's, which win where both give a flag (argparse keeps the last)."""
    import json
    from pathlib import Path
    path = Path(folder) / f"{argv[0]}.json"
    config = json.loads(path.read_text())
    missing = [flag for flag in config.get("needs", []) if flag not in argv[1:]]
    if missing:
        raise FactorNetError(f"{argv[0]} ({path}) needs {', '.join(missing)}")
    return [*words, *config["flags"], *argv[1:]]


def run_stage(words, folder, argv):
    """A stage driver of a checkout (`python -m preprocess`, `python -m train`): `WORD ...` is
    the `factornet` command; `list` shows the named configs in `folder`; `NAME ...` runs the
    command with that named config's flags first (named_config_argv)."""
    from pathlib import Path
    names = sorted(p.stem for p in Path(folder).glob("*.json"))
    prog = f"python -m {words[0]}"
    if argv[:1] == [words[1]] or argv[:1] in (["-h"], ["--help"]):
        main([words[0], *argv])
    if not argv or argv[0] == "list":
        import json
        print(f"{prog} {words[1]} ...: `factornet {' '.join(words)}`; {prog} NAME ...: with a named config:")
        for name in names:
            config = json.loads((Path(folder) / f"{name}.json").read_text())
            print(f"  {name:12s} {' '.join(config['flags'])}   {config['description']}")
        sys.exit(0)
    if argv[0] not in names:
        print(f"{prog}: error: unknown {argv[0]!r}; use `{words[1]}`, `list` or a named config "
              f"({', '.join(names)})", file=sys.stderr)
        sys.exit(2)
    try:
        expanded = named_config_argv(words, folder, argv)
    except FactorNetError as err:
        print(f"{prog}: error: {err}", file=sys.stderr)
        sys.exit(2)
    print(f"{prog} {argv[0]}: factornet {' '.join(expanded)}", file=sys.stderr)
    main(expanded)


def main(argv=None):
    argv = sys.argv[1:] if argv is None else list(argv)
    sys.exit(run_command(build_parser(only=chosen_command(argv)), argv))


if __name__ == "__main__":
    main()

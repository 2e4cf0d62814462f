"""``trimnet completion``: a shell completion script for commands, flags and config keys.

    eval "$(trimnet completion bash)"          # in ~/.bashrc
    eval "$(trimnet completion zsh)"           # in ~/.zshrc
    trimnet completion fish > ~/.config/fish/completions/trimnet.fish

The script lists every word itself, so pressing TAB never starts Python.
"""

from __future__ import annotations

import argparse

SHELLS = ("bash", "zsh", "fish")


def add_parser(sub, name: str) -> None:
    p = sub.add_parser(name, help="print a shell completion script (bash, zsh, fish)",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("shell", choices=SHELLS, help="the shell to complete in")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from trimnet.cli.main import _known_flags, build_parser
    from trimnet.errors import ConfigError

    if args.overrides:
        raise ConfigError("trimnet completion takes only the shell name, e.g. trimnet completion bash")
    parser = build_parser()
    words = {name: sorted(set(_known_flags(p)) | {"--help"}) for name, p in parser.subcommands.items()}
    print(SCRIPTS[args.shell](words), end="")
    return 0


def _bash(words: dict[str, list[str]]) -> str:
    cases = "\n".join(f"        {name}) opts=\"{' '.join(flags)}\" ;;" for name, flags in words.items())
    return f"""# trimnet completion for bash; eval "$(trimnet completion bash)"
_trimnet() {{
    local cur=${{COMP_WORDS[COMP_CWORD]}} cmd=${{COMP_WORDS[1]}} opts=""
    if [ "$COMP_CWORD" -eq 1 ]; then
        COMPREPLY=($(compgen -W "{' '.join(words)} --help --version --verbose" -- "$cur"))
        return
    fi
    case "$cmd" in
{cases}
    esac
    if [[ "$cur" == -* ]]; then
        COMPREPLY=($(compgen -W "$opts" -- "$cur"))
    else
        COMPREPLY=($(compgen -f -- "$cur"))
    fi
}}
complete -o filenames -F _trimnet trimnet
"""


def _zsh(words: dict[str, list[str]]) -> str:
    return "# trimnet completion for zsh; eval \"$(trimnet completion zsh)\"\n" \
           "autoload -U +X bashcompinit && bashcompinit\n" + _bash(words).split("\n", 1)[1]


def _fish(words: dict[str, list[str]]) -> str:
    lines = ["# trimnet completion for fish; trimnet completion fish > ~/.config/fish/completions/trimnet.fish",
             f"complete -c trimnet -n __fish_use_subcommand -f -a '{' '.join(words)}'"]
    for name, flags in words.items():
        for flag in flags:
            lines.append(f"complete -c trimnet -n '__fish_seen_subcommand_from {name}' -l '{flag[2:]}'")
    return "\n".join(lines) + "\n"


SCRIPTS = {"bash": _bash, "zsh": _zsh, "fish": _fish}

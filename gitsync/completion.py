"""``gitsync completion bash|zsh``: a static shell completion script made from the parser.

argparse has no completion of its own, and a completion package would run Python on every
<TAB>. The command tree changes only with a release, so the script is generated once from the
parser: for each command path the words that may follow (subcommands and flags). zsh loads the
same script through ``bashcompinit``.
"""

from __future__ import annotations

import argparse

SHELLS = ("bash", "zsh")


def command_words(parser: argparse.ArgumentParser) -> dict[str, tuple[list[str], list[str]]]:
    """``{"app wait": (subcommands, flags), ...}``; the top level is ``""``."""
    out: dict[str, tuple[list[str], list[str]]] = {}

    def walk(p: argparse.ArgumentParser, path: str) -> None:
        children: list[str] = []
        flags: list[str] = []
        for action in p._actions:
            if isinstance(action, argparse._SubParsersAction):
                for name, child in action.choices.items():
                    children.append(name)
                    walk(child, f"{path} {name}".strip())
            else:
                flags += [o for o in action.option_strings if o.startswith("--")]
        out[path] = (children, flags)

    walk(parser, "")
    return out


def script(parser: argparse.ArgumentParser, shell: str) -> str:
    if shell not in SHELLS:
        raise ValueError(f"unknown shell {shell!r} (bash or zsh)")
    words = command_words(parser)
    cases_children = "".join(
        f'    "{path}") echo "{" ".join(children)}" ;;\n'
        for path, (children, _) in sorted(words.items())
        if children
    )
    cases_words = "".join(
        f'    "{path}") echo "{" ".join(children + flags)}" ;;\n'
        for path, (children, flags) in sorted(words.items())
    )
    body = f"""# gitsync {shell} completion: eval "$(gitsync completion {shell})"
_gitsync_children() {{
  case "$1" in
{cases_children}  esac
}}
_gitsync_words() {{
  case "$1" in
{cases_words}  esac
}}
_gitsync() {{
  local cur path w i
  cur="${{COMP_WORDS[COMP_CWORD]}}"
  path=""
  for ((i = 1; i < COMP_CWORD; i++)); do
    w="${{COMP_WORDS[i]}}"
    case " $(_gitsync_children "$path") " in
      *" $w "*) path="${{path:+$path }}$w" ;;
    esac
  done
  COMPREPLY=($(compgen -W "$(_gitsync_words "$path")" -- "$cur"))
}}
complete -o default -F _gitsync gitsync
"""
    if shell == "zsh":
        body = "autoload -U +X bashcompinit && bashcompinit\n" + body
    return body

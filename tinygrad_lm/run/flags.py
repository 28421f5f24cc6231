"""The argparse parser of the command line, strict where argparse guesses, helpful where it is terse.

`Parser` is `argparse.ArgumentParser` with three changes, so that a typo never runs something
other than what was meant, and the error says what was:

  * No abbreviations (`allow_abbrev=False`): `--max-iter 5` is an error, not `--max-iters 5`.
    argparse takes any unique prefix of a flag by default, so adding a flag would silently
    change what an old command line means (`--sample` stopped being `--sample-tokens` the day
    a `--sample-*` flag came).
  * An unknown flag is an error of the subcommand it was given to, with that subcommand's usage
    (argparse reports it at the top level, whose usage lists only the subcommands) and the
    nearest flags of that subcommand: `--max-itres: did you mean --max-iters?` (difflib; a flag
    the typed text begins, for an abbreviation).
  * A mistyped choice or subcommand (`--tokenizer bep`, `trian`) names the nearest choice.

The subparsers `add_subparsers().add_parser` makes are of the parser's own class, so every
subcommand gets the same behaviour. Python 3.14's `suggest_on_error` does the last point alone.
Leaves out: suggestions for values that are no choice (numbers, paths).
"""
import argparse
import difflib
import sys


class Parser(argparse.ArgumentParser):
    """An ArgumentParser without abbreviations that names the nearest flag or choice of a typo."""

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("allow_abbrev", False)
        super().__init__(*args, **kwargs)

    def parse_known_args(self, args=None, namespace=None):
        """argparse's, but an unknown flag given to a subcommand is an error before any other (a
        required flag it misspelt is not "missing"), and leftover words are an error too."""
        words = list(sys.argv[1:] if args is None else args)
        if not any(isinstance(a, argparse._SubParsersAction) for a in self._actions):  # a subcommand's parser
            words = words[:words.index("--")] if "--" in words else words
            for before, word in zip([None] + words, words):
                if _is_flag(word) and word.split("=", 1)[0] not in self._option_string_actions:
                    self.error(self._value_like_a_flag(before, word) or self._unrecognized([word]))
        namespace, extras = super().parse_known_args(args, namespace)
        if extras:
            parser = self._chosen(namespace)
            parser.error(parser._unrecognized(extras))
        return namespace, extras

    def _chosen(self, namespace):
        """The innermost subcommand's parser named in `namespace` (self when there is none)."""
        for action in self._actions:
            if isinstance(action, argparse._SubParsersAction):
                parser = action.choices.get(getattr(namespace, action.dest, None) or "")
                if isinstance(parser, Parser):
                    return parser._chosen(namespace)
        return self

    def _unrecognized(self, extras):
        """The message for words no argument took: each unknown flag with its nearest flags."""
        flags = [word for word in extras if _is_flag(word)]
        if not flags:
            shown = " ".join(repr(word) for word in extras)
            return (f"unrecognized argument(s) {shown} (a flag missing before it, or quotes missing around a value "
                    "that holds spaces?)")
        return "unrecognized argument(s): " + "; ".join(self._nearest(flag.split("=", 1)[0]) for flag in flags)

    def _value_like_a_flag(self, before, word):
        """The message for a value that begins with "-" after a flag that takes one (argparse
        reads it as a flag), or None."""
        action = self._option_string_actions.get(before)
        if action is None or action.nargs not in (None, "?"):
            return None
        return f"{before} {word}: a value that begins with '-' must be joined to its flag: write {before}={word}"

    def _nearest(self, flag):
        """`--max-itres: did you mean --max-iters?`, or that no flag is near (see --help)."""
        known = [name for name in self._option_string_actions if name.startswith("--")]
        close = sorted(name for name in known if name.startswith(flag)) or difflib.get_close_matches(flag, known, n=1)
        if not close:
            return f"{flag}: no such flag (see {self.prog} --help)"
        return f"{flag}: did you mean {' or '.join(close[:3])}?"

    def _check_value(self, action, value):
        try:
            super()._check_value(action, value)
        except argparse.ArgumentError as e:
            close = difflib.get_close_matches(str(value), [str(c) for c in action.choices or ()], n=1)
            if not close:
                raise
            raise argparse.ArgumentError(action, f"{e.message}; did you mean {close[0]!r}?") from None


def _is_flag(word):
    """Whether argparse reads `word` as a flag: it begins with "-" and is no number (-1 is a value)."""
    if not word.startswith("-") or len(word) < 2:
        return False
    try:
        float(word)
        return False
    except ValueError:
        return True


__all__ = ["Parser"]

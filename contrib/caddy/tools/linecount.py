"""Lines of the Caddy backend, by file: all lines (``wc -l``) and code lines (no blank line,
comment or docstring), for the README's walk-through.

    python contrib/caddy/tools/linecount.py
"""

from __future__ import annotations

import io
import sys
import tokenize
from pathlib import Path

HERE = Path(__file__).resolve().parent.parent


def code_lines(path: Path) -> int:
    """Lines holding a token other than a comment, a docstring or a line break."""
    lines: set[int] = set()
    previous = tokenize.NEWLINE
    for tok in tokenize.generate_tokens(io.StringIO(path.read_text()).readline):
        kind = tok.type
        docstring = kind == tokenize.STRING and previous in (tokenize.NEWLINE, tokenize.INDENT)
        if (
            kind
            not in (
                tokenize.COMMENT,
                tokenize.NL,
                tokenize.NEWLINE,
                tokenize.INDENT,
                tokenize.DEDENT,
                tokenize.ENDMARKER,
            )
            and not docstring
        ):
            lines.update(range(tok.start[0], tok.end[0] + 1))
        if kind not in (tokenize.COMMENT, tokenize.NL):
            previous = kind
    return len(lines)


def main() -> int:
    total_all = total_code = 0
    for folder in ("polyingress_caddy", "tests"):
        for path in sorted((HERE / folder).glob("*.py")):
            count = len(path.read_text().splitlines())
            code = code_lines(path)
            total_all += count
            total_code += code
            name = f"{folder}/{path.name}"
            print(f"{name:<36} {count:>5} lines {code:>5} code")
    print(f"{'total':<36} {total_all:>5} lines {total_code:>5} code")
    return 0


if __name__ == "__main__":
    sys.exit(main())

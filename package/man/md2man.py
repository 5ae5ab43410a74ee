#!/usr/bin/env python3
"""Renders ddv's man pages from the Markdown pages in docs/, so each man
page and the page GitHub shows are one text and cannot drift:

    docs/config.md      -> package/man/ddv.toml.5
    docs/ddv_master.md  -> package/man/ddv_master.8
    docs/ddvctl.md      -> package/man/ddvctl.8

    python3 package/man/md2man.py --write   # after editing one of them
    python3 package/man/md2man.py --check   # what tests/package does

The roff is written here (no pandoc). The Markdown is the subset those
pages use; anything else is an error, not a silent mangle:

- line 1: <!-- man: NAME SECTION "one-line summary" -->
- <!-- man: skip --> ... <!-- man: end -->: left out of the man page
  (notes for developers, links that only make sense on GitHub)
- "# Title": the web page's title, not in the man page; text before the
  first "##" becomes DESCRIPTION
- "## Heading" -> .SH (upper case, `code` kept), "### Heading" -> .SS
  (as written)
- paragraphs; "- " lists (continuation lines indented); ``` fences and
  4-space indented blocks -> .EX
- tables -> one .TP per row: the first cell is the tag, the last the
  text, the cells between become "Header: value." before it
- inline: `code` and **strong** bold, *emphasis* italic, [text](link) ->
  text
"""
import argparse
import os
import re
import sys

PAGES = [
    ("docs/config.md", "package/man/ddv.toml.5"),
    ("docs/ddv_master.md", "package/man/ddv_master.8"),
    ("docs/ddvctl.md", "package/man/ddvctl.8"),
]
MANUALS = {"5": "File Formats", "8": "System Administration"}
# Fixed, so the output depends on the Markdown only (reproducible builds).
DATE = "2025"
WIDTH = 72


class MarkdownError(Exception):
    pass


def escape(text):
    """Plain text to roff: backslashes and hyphen-minus (which groff would
    otherwise render as a typographic hyphen, breaking copied options)."""
    return text.replace("\\", "\\e").replace("-", "\\-")


def inline(text):
    """Markdown inline markup to roff fonts, the rest escaped."""
    out = []
    pos = 0
    pattern = re.compile(r"`([^`]+)`|\*\*(.+?)\*\*|\*([^*\s][^*]*?)\*"
                         r"|\[([^\]]+)\]\(([^)\s]+)\)")
    for m in pattern.finditer(text):
        out.append(escape(text[pos:m.start()]))
        if m.group(1) is not None:
            out.append("\\fB" + escape(m.group(1)) + "\\fR")
        elif m.group(2) is not None:
            out.append("\\fB" + inline(m.group(2)) + "\\fR")
        elif m.group(3) is not None:
            out.append("\\fI" + inline(m.group(3)) + "\\fR")
        else:
            out.append(inline(m.group(4)))
        pos = m.end()
    out.append(escape(text[pos:]))
    return "".join(out)


def fill(text):
    """Roff source lines for one paragraph's text: joined, converted,
    re-wrapped at spaces (never inside a word or an escape)."""
    words = inline(" ".join(text.split())).split(" ")
    lines, line = [], ""
    for word in words:
        if line and len(line) + 1 + len(word) > WIDTH:
            lines.append(line)
            line = word
        else:
            line = f"{line} {word}" if line else word
    if line:
        lines.append(line)
    # A line starting with . or ' would be a roff request.
    return [("\\&" + l) if l[:1] in (".", "'") else l for l in lines]


def heading(text):
    """Upper case outside code spans, as man section names are."""
    parts = re.split(r"(`[^`]+`)", text)
    return "".join(p[1:-1] if p.startswith("`") else p.upper() for p in parts)


def code_lines(lines):
    out = [".EX"]
    for line in lines:
        line = escape(line)
        out.append(("\\&" + line) if line[:1] in (".", "'") else line)
    out.append(".EE")
    return out


def table_cells(line):
    cells = re.split(r"(?<!\\)\|", line.strip())
    if cells[0] != "" or cells[-1] != "":
        raise MarkdownError(f"table row must start and end with |: {line}")
    return [c.strip().replace("\\|", "|") for c in cells[1:-1]]


def table(rows):
    header = table_cells(rows[0])
    if not re.fullmatch(r"\|[\s:|-]+\|", rows[1].strip()):
        raise MarkdownError(f"second table row must be |---|: {rows[1]}")
    out = []
    for row in rows[2:]:
        cells = table_cells(row)
        if len(cells) != len(header):
            raise MarkdownError(f"{len(cells)} cells, header has "
                                f"{len(header)}: {row}")
        # The tag is the one line after .TP.
        out += [".TP", " ".join(fill(cells[0]))]
        facts = ["Required." if value == "required" else
                 f"{name.capitalize()}: {value}."
                 for name, value in zip(header[1:-1], cells[1:-1])
                 if value and value not in ("-", "—")]
        if facts:
            out += fill(" ".join(facts))
            out.append(".br")
        out += fill(cells[-1])
    return out


def render(markdown, source):
    lines = markdown.split("\n")
    m = re.fullmatch(r'<!-- man: (\S+) (\d) "([^"]+)" -->', lines[0])
    if not m:
        raise MarkdownError(f'{source}:1: needs <!-- man: NAME SECTION '
                            f'"summary" -->')
    name, section, summary = m.groups()
    out = [
        f'.\\" {name}({section}): generated from {source} by '
        'package/man/md2man.py.',
        '.\\" Edit the Markdown, then run: python3 package/man/md2man.py '
        '--write',
        f'.TH {escape(name.upper())} {section} {DATE} ddv '
        f'"{MANUALS[section]}"',
        ".SH NAME",
        f"{escape(name)} \\- {escape(summary)}",
    ]
    i = 1
    started = False  # a .SH is open
    skipping = False
    while i < len(lines):
        line = lines[i]
        stripped = line.strip()
        if stripped == "<!-- man: skip -->":
            skipping = True
            i += 1
            continue
        if stripped == "<!-- man: end -->":
            skipping = False
            i += 1
            continue
        if skipping or not stripped:
            i += 1
            continue
        if stripped.startswith("<!--"):
            raise MarkdownError(f"{source}:{i + 1}: unknown comment {line}")
        if line.startswith("# "):
            i += 1
            continue
        if not started and not line.startswith("## "):
            out.append(".SH DESCRIPTION")
            started = True
        if line.startswith("## "):
            out.append(".SH " + heading(line[3:].strip()))
            started = True
            i += 1
        elif line.startswith("### "):
            out.append(".SS " + " ".join(fill(line[4:].strip())))
            i += 1
        elif line.startswith("```"):
            end = i + 1
            while end < len(lines) and not lines[end].startswith("```"):
                end += 1
            if end == len(lines):
                raise MarkdownError(f"{source}:{i + 1}: unclosed ```")
            out += [".PP"] + code_lines(lines[i + 1:end])
            i = end + 1
        elif line.startswith("    "):
            block = []
            while i < len(lines) and (lines[i].startswith("    ") or
                                      not lines[i].strip()):
                block.append(lines[i][4:])
                i += 1
            while block and not block[-1].strip():
                block.pop()
            out += [".IP", ".RS"] + code_lines(block) + [".RE"]
        elif line.startswith("|"):
            rows = []
            while i < len(lines) and lines[i].startswith("|"):
                rows.append(lines[i])
                i += 1
            out += table(rows)
        elif line.startswith("- "):
            while i < len(lines) and lines[i].startswith("- "):
                item = [lines[i][2:]]
                i += 1
                while i < len(lines) and lines[i].startswith("  ") and \
                        lines[i].strip():
                    item.append(lines[i].strip())
                    i += 1
                out += [".IP \\(bu 2"] + fill(" ".join(item))
        else:
            para = []
            while i < len(lines) and lines[i].strip() and not any(
                    lines[i].startswith(p) for p in
                    ("#", "```", "|", "- ", "    ", "<!--")):
                para.append(lines[i])
                i += 1
            out += [".PP"] + fill(" ".join(para))
    # .PP straight after .SH/.SS is redundant.
    cleaned = []
    for line in out:
        if line == ".PP" and cleaned and cleaned[-1].startswith((".SH", ".SS")):
            continue
        cleaned.append(line)
    return "\n".join(cleaned) + "\n"


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--root", default=os.path.join(
        os.path.dirname(os.path.abspath(__file__)), "..", ".."))
    mode = parser.add_mutually_exclusive_group(required=True)
    mode.add_argument("--write", action="store_true",
                      help="write the man pages")
    mode.add_argument("--check", action="store_true",
                      help="exit 1 if a man page differs from its source")
    mode.add_argument("--render", metavar="MARKDOWN",
                      help="print the roff for one page")
    args = parser.parse_args()
    if args.render:
        with open(args.render, encoding="utf-8") as f:
            sys.stdout.write(render(f.read(), args.render))
        return 0
    stale = []
    for source, page in PAGES:
        with open(os.path.join(args.root, source), encoding="utf-8") as f:
            roff = render(f.read(), source)
        path = os.path.join(args.root, page)
        current = None
        if os.path.exists(path):
            with open(path, encoding="utf-8") as f:
                current = f.read()
        if current == roff:
            continue
        if args.write:
            with open(path, "w", encoding="utf-8") as f:
                f.write(roff)
            print(f"wrote {page}")
        else:
            stale.append(page)
    if stale:
        print(f"out of date: {', '.join(stale)}; run python3 "
              f"package/man/md2man.py --write", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())

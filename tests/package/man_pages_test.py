#!/usr/bin/env python3
"""The man pages (package/man/) against their sources and the binaries.

- each page is exactly what package/man/md2man.py renders from its
  Markdown source in docs/ (config.md, ddv_master.md, ddvctl.md), so the
  man page and the web page cannot drift;
- `ddv_master --help` shows ddv's own flags, every one of them, in groups,
  and no library's flag (those are behind --helpfull); ddv_master(8)
  documents the same flags in the same groups, and mentions no flag the
  binary lacks;
- ddvctl(8) documents ddvctl's flags, commands and exit codes as
  `ddvctl --help` lists them;
- docs/config.md (so ddv.toml(5)) lists, per table, exactly the keys the
  loader accepts: asked of ddv_master itself, through the "known keys" of
  its unknown-key errors.

So a flag, command or key added without its documentation, or removed
with some left behind, fails here.
"""
import os
import re
import subprocess
import sys
import tempfile
import unittest

RUNFILES = os.path.join(os.environ.get("TEST_SRCDIR", "."),
                        os.environ.get("TEST_WORKSPACE", "ddv"))
sys.path.insert(0, os.path.join(RUNFILES, "package", "man"))
import md2man  # noqa: E402


def runfile(path):
    return os.path.join(RUNFILES, path)


def read(path):
    with open(runfile(path), encoding="utf-8") as f:
        return f.read()


def run(binary, *args):
    return subprocess.run([runfile(binary), *args], capture_output=True,
                          text=True, check=False, timeout=30)


def unroff(text):
    """Roff escapes and quotes out of one line's words."""
    text = re.sub(r"\\f[BIRP]|\\c|\\&", "", text).replace("\\-", "-")
    return text.replace('"', " ")


def sections(page):
    """{section name: [lines]} of a man page, by .SH."""
    result, current = {}, None
    for line in page.splitlines():
        if line.startswith(".SH "):
            current = unroff(line[4:]).strip()
            result[current] = []
        elif current is not None:
            result[current].append(line)
    return result


def items(lines):
    """The first word of each .TP item's tag line, e.g. "--config" of
    `\\fB\\-\\-config=FILE\\fR`, "status" of `\\fBstatus\\fR [...]`."""
    names = []
    for i, line in enumerate(lines[:-1]):
        if line.strip() == ".TP":
            words = unroff(re.sub(r"^\.[A-Z]+\s*", "", lines[i + 1])).split()
            if words:
                names.append(words[0].split("=")[0].rstrip(","))
    return names


def subsections(lines):
    """[(title, [.TP item names])] of one .SH section, by .SS."""
    result = []
    for line in lines:
        if line.startswith(".SS "):
            result.append((unroff(line[4:]).strip(), []))
        elif result:
            result[-1][1].append(line)
    return [(title, items(body)) for title, body in result]


def mentioned_flags(page):
    """Every --flag the page names, outside roff comments; "--" followed by
    italic (`--`*flag*`=`*value*) is a placeholder, not a flag."""
    text = "\n".join(line for line in page.splitlines()
                     if not line.startswith('.\\"'))
    text = re.sub(r"\\-\\-(\\fR)?\\fI", "", text)
    return set(re.findall(r"--([a-z][a-z0-9_]*)", unroff(text)))


def help_groups(text):
    """[(title, [flag names])] of our --help/--helpfull output: a group is
    a line "Title:" at column 0 followed by "  --flag" lines."""
    groups = []
    for line in text.splitlines():
        if re.fullmatch(r"[A-Za-z].*:", line) and not line.startswith(
                ("usage:", "commands:", "exit codes:")):
            groups.append((line[:-1], []))
        elif groups and (m := re.match(r"  --([a-z0-9_]+)", line)):
            groups[-1][1].append(m.group(1))
        elif line.startswith("  Flags from "):
            break
    return groups


def own_flags(binary, main_file):
    """The flags `main_file` defines, from gflags' --helpxml."""
    xml = run(binary, "--helpxml").stdout
    return {m.group(2) for m in re.finditer(
        r"<file>([^<]*)</file>\s*<name>([^<]*)</name>", xml)
        if m.group(1).endswith(main_file)}


def library_flags(binary, main_file):
    xml = run(binary, "--helpxml").stdout
    return {m.group(2) for m in re.finditer(
        r"<file>([^<]*)</file>\s*<name>([^<]*)</name>", xml)
        if not m.group(1).endswith(main_file)}


class GeneratedPages(unittest.TestCase):

    def test_each_page_is_its_markdown_rendered(self):
        # By the genrule (//package:rendered_man_pages) and here.
        for source, page in md2man.PAGES:
            with self.subTest(page=page):
                rendered = read(page.replace("/man/", "/rendered/"))
                self.assertEqual(rendered, md2man.render(read(source), source))
                self.assertEqual(
                    read(page), rendered,
                    f"{page} is not {source} rendered: run python3 "
                    "package/man/md2man.py --write")

    def test_renderer_refuses_what_it_does_not_know(self):
        with self.assertRaises(md2man.MarkdownError):
            md2man.render("# no header\n", "x.md")
        with self.assertRaises(md2man.MarkdownError):
            md2man.render('<!-- man: x 5 "y" -->\n```\nunclosed\n', "x.md")
        with self.assertRaises(md2man.MarkdownError):
            md2man.render('<!-- man: x 5 "y" -->\n| a | b |\n|---|---|\n'
                          '| only one |\n', "x.md")

    def test_roff_escapes(self):
        roff = md2man.render(
            '<!-- man: x 5 "a-b" -->\n# X\n\nUse `--flag` and *FILE*,\n'
            '.dot at a line start, a \\ backslash.\n', "x.md")
        self.assertIn("\\fB\\-\\-flag\\fR", roff)
        self.assertIn("\\fIFILE\\fR", roff)
        self.assertIn("\\e backslash", roff)
        self.assertNotIn("\n.dot", roff)
        self.assertIn("x \\- a\\-b", roff)


class DdvMaster(unittest.TestCase):

    def setUp(self):
        self.help = run("src/ddv_master", "--help")
        self.full = run("src/ddv_master", "--helpfull").stdout
        self.own = own_flags("src/ddv_master", "src/ddv_master_main.cc")
        self.page = read("package/man/ddv_master.8")

    def test_help_shows_own_flags_in_groups_and_exits_0(self):
        self.assertEqual(self.help.returncode, 0)
        self.assertTrue(self.help.stdout.startswith("usage: ddv_master "))
        self.assertEqual(run("src/ddv_master", "-h").stdout,
                         self.help.stdout)
        groups = help_groups(self.full)
        self.assertNotIn("Other", [t for t, _ in groups],
                         "a flag of ddv_master_main.cc is in no group of "
                         "its --help (Help() in src/ddv_master_main.cc)")
        grouped = {f for _, flags in groups for f in flags}
        self.assertEqual(self.own - grouped, set())
        # --help: no glog or gflags flag but the few in the Logging group;
        # --helpfull: all of them.
        shown = {f for _, flags in help_groups(self.help.stdout)
                 for f in flags}
        library = library_flags("src/ddv_master", "src/ddv_master_main.cc")
        self.assertIn("alsologtostderr", library)
        self.assertLessEqual(shown & library, {"log_dir", "minloglevel", "v"})
        self.assertIn("-alsologtostderr (", self.full)
        self.assertIn("-tab_completion_columns (", self.full)
        # ddv's flags come first.
        self.assertLess(self.full.index("--config="),
                        self.full.index("-alsologtostderr ("))

    def test_page_documents_the_help_groups(self):
        groups = help_groups(self.full)
        documented = subsections(sections(self.page)["OPTIONS"])
        self.assertEqual([t for t, _ in documented], [t for t, _ in groups])
        for (title, flags), (_, names) in zip(groups, documented):
            with self.subTest(group=title):
                self.assertEqual(sorted("--" + f for f in flags),
                                 sorted(names))

    def test_mentions_only_real_flags(self):
        everything = self.own | library_flags("src/ddv_master",
                                              "src/ddv_master_main.cc")
        unknown = {f for f in mentioned_flags(self.page)
                   if f not in everything and not (
                       f.startswith("no") and f[2:] in everything)}
        self.assertEqual(unknown, set())


class Ddvctl(unittest.TestCase):

    def setUp(self):
        self.page = read("package/man/ddvctl.8")
        self.sections = sections(self.page)
        result = run("src/ddvctl", "--help")
        self.assertEqual(result.returncode, 0)
        self.usage = result.stdout
        self.own = own_flags("src/ddvctl", "src/ddvctl_main.cc")

    def usage_block(self, title):
        """The first words of the lines under "title:" in --help."""
        block = self.usage.split(title + ":\n", 1)[1].split("\n\n", 1)[0]
        return [line.split()[0] for line in block.splitlines()
                if line.startswith("  ") and not line.startswith("    ")]

    def test_flags(self):
        documented = {name[2:] for name in items(self.sections["OPTIONS"])
                      if name.startswith("--")}
        self.assertEqual(self.own - documented, set())
        self.assertEqual(documented - self.own, {"help"})
        grouped = {f for _, flags in help_groups(self.usage) for f in flags}
        self.assertEqual(grouped, self.own)
        everything = self.own | library_flags("src/ddvctl",
                                              "src/ddvctl_main.cc")
        unknown = {f for f in mentioned_flags(self.page)
                   if f not in everything and f != "help"}
        self.assertEqual(unknown, set())

    def test_commands(self):
        self.assertEqual(set(items(self.sections["COMMANDS"])),
                         set(self.usage_block("commands")))

    def test_exit_codes(self):
        self.assertEqual(set(items(self.sections["EXIT STATUS"])),
                         set(self.usage_block("exit codes")))


def config_md_keys():
    """{"[master]": {...}, "[[listener]]": {...}, "[[site]]": {...}} from the
    first column of docs/config.md's key tables."""
    keys, table = {}, None
    for line in read("docs/config.md").splitlines():
        m = re.match(r"## `(\[+\w+\]+)`", line)
        if m:
            table = m.group(1)
            keys[table] = set()
            continue
        if line.startswith("## "):
            table = None
        m = re.match(r"\| `(\w+)`", line)
        if table and m:
            keys[table].add(m.group(1))
    return keys


def loader_keys():
    """The keys the loader accepts per table, from the "known keys" its
    unknown-key errors list (a key far from every real one gets the list,
    not a "did you mean")."""
    text = ("zzzzzzzzzzzz = 1\n[master]\nzzzzzzzzzzzz = 1\n"
            "[[listener]]\nzzzzzzzzzzzz = 1\n[[site]]\nzzzzzzzzzzzz = 1\n")
    with tempfile.NamedTemporaryFile("w", suffix=".toml",
                                     dir=os.environ.get("TEST_TMPDIR"),
                                     delete=False) as f:
        f.write(text)
    err = run("src/ddv_master", f"--config={f.name}", "--check_config").stderr
    keys = {}
    for m in re.finditer(r'unknown key "zzzzzzzzzzzz" in (.+?); known keys: '
                         r'(.+)', err):
        keys[m.group(1)] = set(m.group(2).split(", "))
    return keys


class ConfigKeys(unittest.TestCase):

    def test_config_md_lists_the_loaders_keys(self):
        documented = config_md_keys()
        known = loader_keys()
        self.assertEqual(set(known), {"the top level", "[master]",
                                      "[[listener]]", "[[site]]"})
        self.assertEqual(set(documented),
                         {"[master]", "[[listener]]", "[[site]]"})
        for table, keys in documented.items():
            with self.subTest(table=table):
                self.assertEqual(keys, known[table])


if __name__ == "__main__":
    unittest.main()

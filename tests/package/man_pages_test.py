#!/usr/bin/env python3
"""The hand-written man pages (package/man/) against what they describe.

- ddv_master(8) documents every flag ddv_master defines (its --helpfull
  section for src/ddv_master_main.cc) and mentions no flag it lacks;
- ddvctl(8) documents ddvctl's flags, commands and exit codes as
  `ddvctl --help` lists them;
- ddv.toml(5) lists the same keys per table as docs/config.md.

So a flag, command or key added without its man page entry, or removed
with one left behind, fails here.
"""
import os
import re
import subprocess
import unittest

RUNFILES = os.path.join(os.environ.get("TEST_SRCDIR", "."),
                        os.environ.get("TEST_WORKSPACE", "ddv"))


def runfile(path):
    return os.path.join(RUNFILES, path)


def read(path):
    with open(runfile(path), encoding="utf-8") as f:
        return f.read()


def unroff(text):
    """Roff escapes and quotes out of one macro line's words."""
    text = re.sub(r"\\f[BIRP]|\\c", "", text).replace("\\-", "-")
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
    `.BI \\-\\-config= FILE`, "status" of `.BR status " [" ...`."""
    names = []
    for i, line in enumerate(lines[:-1]):
        if line.strip() == ".TP":
            tag = lines[i + 1]
            words = unroff(re.sub(r"^\.[A-Z]+\s*", "", tag)).split()
            if words:
                names.append(words[0].split("=")[0].rstrip(","))
    return names


def mentioned_flags(page):
    """Every --flag the page names; `\\-\\-\\fIflag` (italic) is a
    placeholder, not a flag."""
    page = re.sub(r"\\-\\-\\fI", "", page)
    return set(re.findall(r"--([a-z][a-z0-9_]*)", unroff(page)))


def helpfull(binary):
    """{source file: set of flag names} from gflags' --helpfull."""
    out = subprocess.run([runfile(binary), "--helpfull"], capture_output=True,
                         text=True, check=False).stdout
    flags, source = {}, None
    for line in out.splitlines():
        m = re.match(r"\s+Flags from (.+):$", line)
        if m:
            source = m.group(1)
            flags[source] = set()
            continue
        m = re.match(r"\s+-([a-z][a-z0-9_]*) \(", line)
        if m and source:
            flags[source].add(m.group(1))
    return flags


def known(flags, name):
    everything = set().union(*flags.values())
    return name in everything or (name.startswith("no") and
                                  name[2:] in everything)


class DdvMasterPage(unittest.TestCase):

    def setUp(self):
        self.page = read("package/man/ddv_master.8")
        self.flags = helpfull("src/ddv_master")
        self.own = self.flags["src/ddv_master_main.cc"]

    def test_every_flag_is_documented(self):
        documented = {name[2:] for name in
                      items(sections(self.page)["OPTIONS"])
                      if name.startswith("--")}
        self.assertEqual(self.own - documented, set(),
                         "flags of ddv_master missing from ddv_master.8")
        self.assertEqual(documented - self.own, set(),
                         "ddv_master.8 documents flags ddv_master lacks")

    def test_mentions_only_real_flags(self):
        unknown = {f for f in mentioned_flags(self.page)
                   if not known(self.flags, f)}
        self.assertEqual(unknown, set())


class DdvctlPage(unittest.TestCase):

    def setUp(self):
        self.page = read("package/man/ddvctl.8")
        self.sections = sections(self.page)
        self.flags = helpfull("src/ddvctl")
        self.usage = subprocess.run([runfile("src/ddvctl"), "--help"],
                                    capture_output=True, text=True,
                                    check=True).stdout

    def usage_block(self, title):
        """The first words of the lines under "title:" in --help."""
        block = self.usage.split(title + ":\n", 1)[1].split("\n\n", 1)[0]
        return [line.split()[0] for line in block.splitlines()
                if line.startswith("  ") and not line.startswith("    ")]

    def test_flags(self):
        own = self.flags["src/ddvctl_main.cc"]
        documented = {name[2:] for name in items(self.sections["OPTIONS"])
                      if name.startswith("--")}
        self.assertEqual(own - documented, set())
        self.assertEqual(documented - own, {"help"})
        unknown = {f for f in mentioned_flags(self.page)
                   if not known(self.flags, f) and f != "help"}
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


class DdvTomlPage(unittest.TestCase):

    def test_same_keys_as_config_md(self):
        page = sections(read("package/man/ddv.toml.5"))
        expected = config_md_keys()
        self.assertEqual(set(expected),
                         {"[master]", "[[listener]]", "[[site]]"})
        for table, keys in expected.items():
            with self.subTest(table=table):
                self.assertEqual(set(items(page[table])), keys)


if __name__ == "__main__":
    unittest.main()

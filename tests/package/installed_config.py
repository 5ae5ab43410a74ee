#!/usr/bin/env python3
"""The packaged /etc/ddv/ddv.toml, moved into a throwaway root for a test.

package_test.sh extracts the .deb with `dpkg -x` instead of installing it,
so the paths the packaged config names (/usr/lib/ddv/ddv_hello,
/var/log/ddv, /run/ddv) are not where the files are, and the `ddv` user
does not exist. This reads the installed file as TOML and changes only
that:

- a path under /usr/ gets the extracted root in front;
- log files go to --state, and so does the control socket;
- the listeners move to 127.0.0.1, the first to --port, the next to
  --port + 1...;
- a site's user and group become --user/--group (or are dropped when
  --user is empty: a non-root test cannot switch users).

Every other key is kept, so what runs is the packaged config. --add_site
appends sites (TOML text) the test needs beside it. The result is written
with a small TOML writer for the value types a ddv config uses.
"""
import argparse
import sys
import tomllib


def moved(path, root):
    return root + path if path.startswith("/usr/") else path


def toml_value(value):
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, str):
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if isinstance(value, list):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{ " + ", ".join(
            f"{k} = {toml_value(v)}" for k, v in value.items()) + " }"
    raise TypeError(f"no TOML for {value!r}")


def toml_table(header, table):
    lines = [header]
    lines += [f"{key} = {toml_value(value)}" for key, value in table.items()]
    return "\n".join(lines) + "\n"


def rewrite(config, args):
    state = args.state.rstrip("/")
    master = config.setdefault("master", {})
    master["control_socket"] = f"{state}/control.sock"
    if not config.get("listener"):
        sys.exit("installed_config: the packaged config has no [[listener]]")
    for i, listener in enumerate(config["listener"]):
        listener["address"] = f"127.0.0.1:{args.port + i}"
    for site in config["site"]:
        site["command"] = [moved(site["command"][0], args.root)] + \
            site["command"][1:]
        for key in ("log_output", "log_error", "log_all"):
            if key in site:
                site[key] = f"{state}/{site[key].rsplit('/', 1)[-1]}"
        if args.user:
            if "user" in site:
                site["user"] = args.user
            if "group" in site:
                site["group"] = args.group
        else:
            site.pop("user", None)
            site.pop("group", None)
    return config


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", required=True, help="the installed file")
    parser.add_argument("--root", required=True, help="the extracted root")
    parser.add_argument("--state", required=True,
                        help="directory for logs and the control socket")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--user", default="")
    parser.add_argument("--group", default="")
    parser.add_argument("--add_site", action="append", default=[],
                        help="TOML of one more [[site]] body")
    args = parser.parse_args()
    with open(args.config, "rb") as f:
        config = rewrite(tomllib.load(f), args)
    out = []
    if config.get("master"):
        out.append(toml_table("[master]", config["master"]))
    out += [toml_table("[[listener]]", l) for l in config["listener"]]
    out += [toml_table("[[site]]", s) for s in config["site"]]
    out += ["[[site]]\n" + extra.strip() + "\n" for extra in args.add_site]
    sys.stdout.write("\n".join(out))


if __name__ == "__main__":
    main()

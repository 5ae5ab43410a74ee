"""Scraping a real master's metrics address with curl, and reading the text
with the Prometheus client library's own parser (Debian's
python3-prometheus-client, scripts/setup.sh), so a line it would refuse
fails the test."""
import subprocess
import sys

try:
    from prometheus_client.parser import text_string_to_metric_families
except ImportError:  # a python3 other than Debian's: its packages' path
    sys.path.append("/usr/lib/python3/dist-packages")
    from prometheus_client.parser import text_string_to_metric_families


def curl(url, *args, timeout=5):
    """(status, headers text, body) of one request with curl."""
    out = subprocess.run(
        ["curl", "-sS", "--max-time", str(timeout), "-D", "-", *args, url],
        capture_output=True, check=False)
    if out.returncode != 0:
        raise RuntimeError(f"curl {url} failed ({out.returncode}): "
                           f"{out.stderr.decode(errors='replace')}")
    head, _, body = out.stdout.partition(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1])
    return status, head.decode(), body.decode()


def parse(text):
    """{(sample name, frozenset of labels): value}; the parser raises on
    anything that is not the text format."""
    samples = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            key = (s.name, frozenset(s.labels.items()))
            if key in samples:
                raise ValueError(f"sample {key} appears twice")
            samples[key] = s.value
    return samples


def scrape(port, path="/metrics"):
    """GET /metrics through curl, parsed."""
    status, head, body = curl(f"http://127.0.0.1:{port}{path}")
    if status != 200:
        raise RuntimeError(f"{path}: {status} {body}")
    return parse(body)


def value(samples, name, **labels):
    """One sample's value; 0 when absent (a series not shown yet)."""
    return samples.get((name, frozenset(labels.items())), 0)


def total(samples, name, **labels):
    """The sum of every sample of `name` whose labels include `labels`."""
    want = set(labels.items())
    return sum(v for (n, l), v in samples.items() if n == name and want <= l)

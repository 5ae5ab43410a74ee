"""contrib/grafana/ddv.json against a real master: valid JSON, a sane
dashboard, and every metric and label it queries present in a real
/metrics scrape, so a renamed metric breaks this test, not the dashboard."""
import json
import re
import unittest

import harness
from harness import free_port, http_get
from scrape import scrape

METRIC = re.compile(r"\b(?:ddv|process)_[a-z0-9_]+\b")
BY = re.compile(r"\bby \(([^)]*)\)")
# Added by Prometheus at scrape time, or the histogram bucket label.
SCRAPE_LABELS = {"instance", "job", "le"}


def expressions(dashboard):
    for panel in dashboard["panels"]:
        for target in panel.get("targets", []):
            yield panel["title"], target["expr"]
    for variable in dashboard["templating"]["list"]:
        query = variable.get("query")
        if isinstance(query, dict):
            yield variable["name"], query["query"]


class GrafanaDashboardTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        with open(harness.runfile("contrib/grafana/ddv.json")) as f:
            cls.dashboard = json.load(f)

    def test_is_a_dashboard(self):
        d = self.dashboard
        self.assertEqual(d["uid"], "ddv-front-door")
        ids = [p["id"] for p in d["panels"]]
        self.assertEqual(len(ids), len(set(ids)), "panel ids repeat")
        for p in d["panels"]:
            g = p["gridPos"]
            self.assertLessEqual(g["x"] + g["w"], 24, p["title"])
            if p["type"] != "row":
                self.assertTrue(p["targets"], p["title"])
                self.assertEqual(p["datasource"]["uid"], "${datasource}")

    def test_every_metric_and_label_it_queries_is_scraped(self):
        port = free_port()
        ddv = harness.Ddv(extra_flags=[f"--metrics_address=127.0.0.1:{port}"])
        try:
            self.assertEqual(http_get(ddv.http_port, "a.localhost")[0], 200)
            samples = scrape(port)
        finally:
            self.assertEqual(ddv.stop(), 0, ddv.read_log())
        labels_of = {}
        for name, labels in samples:
            labels_of.setdefault(name, set()).update(k for k, _ in labels)
        queried = set()
        for where, expr in expressions(self.dashboard):
            names = METRIC.findall(expr)
            self.assertTrue(names, f"{where}: no metric in {expr!r}")
            for name in names:
                self.assertIn(name, labels_of, f"{where}: {name} not scraped")
                queried.add(name)
            have = set().union(*(labels_of[n] for n in names)) | SCRAPE_LABELS
            for group in BY.findall(expr):
                for label in (l.strip() for l in group.split(",")):
                    self.assertIn(label, have, f"{where}: label {label} in "
                                               f"{expr!r}")
        # It shows what matters: outcomes, latency, workers, health.
        for name in ("ddv_connections_total", "ddv_site_connections_total",
                     "ddv_handoff_latency_seconds_bucket", "ddv_peek_bytes_bucket",
                     "ddv_site_workers_alive", "ddv_healthy",
                     "ddv_master_restarts", "process_cpu_seconds_total"):
            self.assertIn(name, queried)


if __name__ == "__main__":
    unittest.main()

"""The HTTP face of ``gitsync serve`` (Flask, served by waitress): push webhooks, health
probes, Prometheus metrics - and, with the UI issue, the status pages and JSON API.

``create_app`` receives what it serves (an app factory, no globals), so tests build one app per
test. Flask is imported only in this package and the webhook's HTTP adapter.
"""

from gitsync.web.app import create_app

__all__ = ["create_app"]

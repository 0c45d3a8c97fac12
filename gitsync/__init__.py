"""gitsync: a GitOps continuous-delivery controller for Kubernetes.

The package is layered so that data flows one way (see STYLE.md and the import-linter contracts in
pyproject.toml): source -> render -> diff -> sync -> health -> status -> web, with the controller
driving the pipeline and each third-party client living behind exactly one adapter.
"""

__version__ = "0.1.0"

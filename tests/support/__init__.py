"""Test-only helpers: building blocks the tests and the benchmarks share, kept out of the wheel.

What ``gitsync demo`` and ``gitsync cluster`` also need (control plane, simulator, Git server)
is the product's ``gitsync.localenv``; this package holds what only tests use: the cluster a run
uses (``cluster``), ``gitsync serve`` and the CLI as test processes (``controller``, ``cli``),
Applications, repositories and signed webhooks (``apps``, ``manifests``, ``rollouts``), a failing
API proxy (``faultproxy``), a real Prometheus (``prometheus``) and polling (``waiting``).

Importable as ``tests.support`` from the repository root: pytest puts the root on ``sys.path``
(``[tool.pytest.ini_options] pythonpath``), ``python -m bench`` runs from it.
May import ``gitsync`` (anything) and the standard library; never a test module.
"""

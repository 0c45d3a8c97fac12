"""The local environment: a real Kubernetes control plane and a real Git server on one machine.

``gitsync demo`` and ``gitsync cluster up|down`` run these for people; the test suite and the
benchmarks run the same ones, so what a newcomer watches in the demo is what the tests prove. The
control plane is built from Debian's packages (etcd, kube-apiserver, kube-controller-manager) plus
a node and pod simulator; the Git server serves smart HTTP, SSH and file URLs on loopback.

Nothing here fakes an API: the control plane is the real server and controllers, the simulator only
plays the part of kubelets (bind pods, report them running/ready, heartbeat nodes). What only tests
use (fixtures' cluster choice, ``gitsync serve`` as a test process, fault proxies, Prometheus)
lives in ``tests/support/`` and is not shipped.

Owns: the control plane (``controlplane``, ``pki``, ``simulator``), the Git server (``gitserver``)
and the process handling they share (``processes``). May import: kube, model, kinds, errors, logs,
pyyaml and the standard library; never the pipeline (source, render, diff, health, sync, rollout,
engine, controller, web, webhook) nor ``tests`` or ``bench`` (import-linter: ``localenv``,
``no-test-code``). Imported only by ``cli`` and ``demo`` (import-linter: ``layers``).
"""

"""Real infrastructure for tests, the demo and people: a Kubernetes control plane built from
Debian's packages (etcd, kube-apiserver, kube-controller-manager) plus a node and pod simulator, and
a Git server on loopback.

Nothing here fakes an API: the control plane is the real server and controllers, the simulator only
plays the part of kubelets (bind pods, report them running/ready, heartbeat nodes).

Owns: the local environment (control plane, simulator, Git server, audit log) for tests, ``gitsync
demo`` and ``gitsync cluster``. May import anything below ``cli`` and ``demo`` (import-linter:
``layers``).
"""

"""The controller: turns the engine into GitOps - schedules refreshes, reacts to pushes and
drift, syncs automatically, and keeps honest status that survives restarts.

Owns: scheduling, the work queue, the reconcile loop, Application status and Events, leader election
and sharding. May import: engine, rollout, sync, webhook (not its http adapter), render, source,
kube, policy, application, application_status, model, kinds, errors, logs; apscheduler only in
``controller.scheduler``. Never web, cli or localenv (import-linter: ``layers``, ``apscheduler``).
Its face to the web layer is ``controller.interface`` (``ControllerView``, which ``Controller``
implements), the one module of this package ``gitsync.web`` may import
(``web-controller-interface``).
"""

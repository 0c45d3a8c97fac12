"""Notifications: telling people and forges what happened to an Application.

A pure core - the event model derived from an Application's status (``events``), the
NotificationProvider and NotificationRule specs and rule matching (``spec``), the template
language (``template``), each provider type's request (``payloads``) and the dedupe plan
(``plan``) - and one adapter, ``delivery``: a bounded queue and worker threads that send what the
plan hands them, apart from reconciliation, through the outbound-URL check rollout analysis uses
(``gitsync.rollout.endpoints``). The reconciler only records and enqueues (never waits on a
provider); the controller wires the two. The pure modules reach no adapter (import-linter
``pure-cores``).
"""

"""ApplicationSets: many Applications from one template and a set of generators.

Owns: the ApplicationSet spec (``spec``), the template language (``template``), the generators'
parameters and the rendered Applications (``generate``), the create/update/delete decisions
(``plan``) and the set's status (``status``). The controller (``gitsync.controller.appsets``)
watches the sets, gives the generators their inputs (Git checkouts, registered clusters) and
does the writes. May import: render (the safe YAML loader only), application, kinds, errors;
never kube, source, sync, engine or anything above (import-linter: ``layers``,
``appset-core``), so every decision here is tested without a cluster.
"""

"""gitsync's tests: ``unit/`` (no control plane, no Git server), ``integration/`` (the real ones),
``fixtures/`` (data files) and ``support/`` (helpers the tests and ``bench/`` import as
``tests.support``). A package so that ``tests.support`` resolves to this tree, never to another
distribution's ``tests``."""

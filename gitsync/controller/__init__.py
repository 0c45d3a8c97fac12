"""The controller: turns the engine into GitOps - schedules refreshes, reacts to pushes and
drift, syncs automatically, and keeps honest status that survives restarts."""

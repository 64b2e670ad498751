"""Runs: a training run is a directory that any process can read and follow.

``run`` is the folder (files, status under a lock, history), ``events`` the
append-only event log and its one replay rule, ``workspace`` the folder that
holds runs, ``control`` starts, stops, resumes and deletes them,
``run_state`` folds a run's events into what a viewer shows, and
``follower`` tails runs with callbacks, for the CLI, the app or a notebook.
"""

"""Sweeps: one run config and a grid of values, run as a queue of ordinary runs.

``grid`` reads and checks the ``sweep:`` mapping (light: no Optuna), ``sweep``
keeps a sweep's folder and starts, stops and resumes its runner, and
``runner`` is the runner process, which enumerates the grid with Optuna.
"""

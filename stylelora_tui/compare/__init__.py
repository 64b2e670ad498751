"""Comparing base and adapted outputs: samples, style scores, compare.json and compare.html.

``session`` holds a comparison built prompt by prompt (the app drives it as
samples stream in), ``jobs`` runs the generation process behind it, ``build``
picks runs and prompts and builds a comparison in one go (the CLI, a script),
``publish`` saves compare.json and compare.html and runs the export after
them, ``stylometry`` scores how close samples are to the author, ``html``
renders the page.
"""

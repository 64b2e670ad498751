"""Comparing base and adapted outputs: samples, style scores, compare.json and compare.html.

``build`` makes a comparison (the CLI and the app share it), ``stylometry``
scores how close samples are to the author, ``html`` renders the page.
"""

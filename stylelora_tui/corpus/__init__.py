"""The corpus pipeline: raw books, blogs and JSONL in, clean training records out.

``sources`` reads files and folders (reporting every bad line), ``text``
cleans and splits prose into passages, ``dedup`` drops near-duplicates,
``report`` counts what happened, and ``pipeline`` ties them into ``prepare``.
"""

"""The corpus pipeline: raw books, blogs and JSONL in, clean training records out.

``sources`` reads files, folders and datasets (reporting every bad line),
``text`` cleans prose into paragraphs, ``passages`` cuts sentences and
passages, ``dedup`` drops near-duplicates, ``records`` makes the lab's
instruction records, ``report`` counts what happened, ``folder`` writes and
reads a prepared folder, and ``pipeline`` ties them into ``prepare``.
"""

"""Neural architecture search (issue 18): search spaces, strategies, performance estimation.

``convnet.nas`` follows the three parts of the notes: the search space (``space``, ``cell``),
the search strategy (``strategies``, ``darts``) and performance estimation.
"""

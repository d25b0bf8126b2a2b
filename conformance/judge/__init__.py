"""How an observation is judged: the error model of spec E (``error_model``), the comparison against the oracle
(``compare``), and their compiled twins for large vectors (``compiled``, ``_compiled_kernels``)."""

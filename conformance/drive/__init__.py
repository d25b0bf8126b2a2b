"""How a candidate is driven: resolved from its name (``resolve``), probed for what it implements (``probe``),
run step by step against the oracle (``runner``; ``large`` for vectors stored as digests), within the per-item
limit (``timeout``).  Under ``--isolate`` the child process that runs every call into the candidate is
``conformance/isolation.py``, on top: it runs the API and property checks too."""

"""How a candidate is driven: resolved from its name (``resolve``), probed for what it implements (``probe``),
run step by step against the oracle (``runner``; ``large`` for vectors stored as digests), in a child process
under ``--isolate`` (``isolation``), within the per-item limit (``timeout``)."""

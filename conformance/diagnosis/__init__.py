"""Why a candidate fails: the failure localised and explained by known variants (``diagnose``), and the kill
matrix of the variants against the vectors (``kill_matrix``)."""

"""Why a candidate fails: where the run first leaves its bound (``localise``), which known deviations explain each
item (``diagnose``), which explain the run as a whole (``profile``), and the kill matrix of the deviations against
the vectors (``kill_matrix``)."""

"""How results are written: the record of one item (``record``), the JSON document (``document``), its compact
summary (``summary``), the terminal (``terminal``), the README's tables (``tables``) and the HTML page (``html``)."""

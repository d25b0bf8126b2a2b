"""How results are written: the record of one item (``record``), the JSON document (``document``), the terminal
(``terminal``), the README's tables (``tables``) and the HTML page (``html``)."""

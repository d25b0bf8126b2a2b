"""How a vector is read: the limits (``limits``), the loaded type (``vector``), its checks through the oracle
(``verify``), files and the verified-file cache (``files``), and the format's decoding (``vector_format``)."""

"""One module per CLI verb: parse, call the library, print."""

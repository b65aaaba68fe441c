"""Bank statement sources: where incoming transfers to our accounts are read from."""

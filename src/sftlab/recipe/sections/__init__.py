"""One module per recipe section; each stage owns its own section."""

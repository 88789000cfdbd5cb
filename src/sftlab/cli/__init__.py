"""The command line: thin commands that load the recipe, call one library function, print a summary."""

"""The torch halves of the CLI's commands that run no training: dry run, eval, probe."""

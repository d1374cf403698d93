"""Benchmark commands (`inkstep bench …`); each module has add_arguments() and run()."""
